//! Corruption: bytes flipped at random in a copy of a compacted store's SST
//! files. Every read either returns exactly what was written or fails with a
//! typed error (RocksDB's block checksum, or AES-GCM authentication for
//! bytes that pass it, see tests/crypto_binding.rs); never wrong data, never
//! a missing profile or identifier, never a panic.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use lethedb::{Db, Error, Identifier, Options, ProfileId, Update, Value};
use rand::{Rng, SeedableRng};

fn typed(e: &Error) -> bool {
    matches!(
        e,
        Error::Storage { .. }
            | Error::Corrupt { .. }
            | Error::Decrypt { .. }
            | Error::UnsupportedFormat { .. }
    )
}

#[test]
fn byte_flips_in_sst_files_give_typed_errors_never_wrong_data() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let k = common::key(5);
    let db = Db::open(
        &src,
        &k,
        Options::new().create_if_missing(true).key_tree(3, 2),
    )
    .unwrap();
    let mut people: Vec<(ProfileId, Identifier, BTreeMap<String, Value>)> = Vec::new();
    for i in 0..300 {
        let email = Identifier::email(format!("person{i}@example.com"));
        let fields: BTreeMap<String, Value> = [
            (
                "name".to_string(),
                Value::String(format!("Person number {i}")),
            ),
            ("visits".to_string(), Value::Int(i * 7)),
        ]
        .into();
        let mut u = Update::new();
        for (n, v) in &fields {
            u = u.set(n.clone(), v.clone());
        }
        let id = db
            .resolve(std::slice::from_ref(&email), u)
            .unwrap()
            .profile
            .unwrap();
        people.push((id, email, fields));
    }
    db.compact().unwrap();
    drop(db);
    let ssts: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    assert!(!ssts.is_empty());

    let seed: u64 = rand::thread_rng().gen();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut refused_open, mut read_errors, mut clean) = (0, 0, 0);
    for trial in 0..60 {
        let dir = tmp.path().join(format!("trial-{trial}"));
        common::copy_dir(&src, &dir);
        let victim = dir.join(ssts[rng.gen_range(0..ssts.len())].file_name().unwrap());
        let mut bytes = std::fs::read(&victim).unwrap();
        let at = rng.gen_range(0..bytes.len());
        bytes[at] ^= 1 << rng.gen_range(0..8);
        std::fs::write(&victim, &bytes).unwrap();
        let ctx = format!("seed {seed}, trial {trial}, {} byte {at}", victim.display());

        // The copy opens with the source's root keys (it is the same store).
        let roots = std::sync::Arc::new(lethedb::FileRootKeyStore::beside(&src));
        let db = match Db::open(&dir, &k, Options::new().root_keys(roots)) {
            Ok(db) => db,
            Err(e) => {
                assert!(typed(&e), "{ctx}: open failed untyped: {e:?}");
                refused_open += 1;
                continue;
            }
        };
        let mut errors = 0;
        for (id, email, fields) in &people {
            match db.get(id) {
                Ok(p) => assert_eq!(&p.fields, fields, "{ctx}: wrong data for {id}"),
                Err(e) => {
                    assert!(typed(&e), "{ctx}: get {id}: {e:?}");
                    errors += 1;
                }
            }
            match db.lookup(email) {
                Ok(found) => assert_eq!(found, Some(*id), "{ctx}: lookup"),
                Err(e) => {
                    assert!(typed(&e), "{ctx}: lookup: {e:?}");
                    errors += 1;
                }
            }
        }
        if errors > 0 {
            read_errors += 1;
        } else {
            clean += 1;
        }
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!(
        "corruption (seed {seed}): 60 flips: {refused_open} refused at open, \
         {read_errors} detected on read, {clean} in bytes no read touches"
    );
    assert!(
        refused_open + read_errors > 0,
        "no flip was detected at all"
    );
}

/// A second handle on an open store: a typed storage error of kind Busy
/// (RocksDB reports the held LOCK file as an I/O error).
#[test]
fn a_second_open_of_a_held_store_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let k = common::key(6);
    let _db = Db::open(tmp.path(), &k, Options::new().create_if_missing(true)).unwrap();
    match Db::open(tmp.path(), &k, Options::new()) {
        Err(Error::Storage { kind, .. }) => assert_eq!(kind, lethedb::StorageErrorKind::Busy),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened twice"),
    }
}
