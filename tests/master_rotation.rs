//! Master-key rotation: everything the master key protects moves to the
//! new key (and nothing stays under the old one), the old key is refused,
//! every read, lookup, tombstone, certificate and backup keeps working,
//! and a crash at any step is finished by running the rotation again.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::softhsm::Token;
use lethedb::{
    Db, Error, FileRootKeyStore, Identifier, MemoryKeyProvider, Options, ProfileId, RootKeyDevice,
    RootKeyStore, Update, Value,
};

fn opts(roots: &Arc<FileRootKeyStore>) -> Options {
    Options::new()
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(3600))
        .root_keys(Arc::clone(roots) as Arc<dyn RootKeyStore>)
}

struct World {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    backup: std::path::PathBuf,
    roots: Arc<FileRootKeyStore>,
    old: MemoryKeyProvider,
    /// (id, e-mail, name) of the people who stay.
    people: Vec<(ProfileId, String, String)>,
    /// Forgotten and purged before the backup.
    gone_before: ProfileId,
    /// Forgotten after the backup (its ledger line is in the backup's ledger).
    gone_after: ProfileId,
    certificate: String,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let roots = Arc::new(FileRootKeyStore::new(dir.path().join("s.rootkeys")));
    let old = MemoryKeyProvider::generate().unwrap();
    let db = Db::open(&path, &old, opts(&roots).create_if_missing(true)).unwrap();
    let mut people = Vec::new();
    for i in 0..12 {
        let email = format!("p{i}@example.com");
        let name = format!("Person {i}");
        let id = db
            .resolve(
                &[Identifier::email(&email)],
                Update::new().set("name", name.as_str()),
            )
            .unwrap()
            .profile
            .unwrap();
        people.push((id, email, name));
    }
    let gone_before = people.remove(0).0;
    db.forget(&gone_before).unwrap();
    let certificate = db.purge().unwrap().certificates.remove(0);
    let backup = dir.path().join("backup");
    db.backup(&backup).unwrap();
    let gone_after = people.remove(0).0;
    db.forget(&gone_after).unwrap();
    drop(db);
    World {
        _dir: dir,
        path,
        backup,
        roots,
        old,
        people,
        gone_before,
        gone_after,
        certificate,
    }
}

fn check_rotated(w: &World, new: &MemoryKeyProvider, held_before: &BTreeSet<u32>, staged: bool) {
    assert!(matches!(
        Db::open(&w.path, &w.old, opts(&w.roots)),
        Err(Error::WrongKey)
    ));
    let db = Db::open(&w.path, new, opts(&w.roots)).unwrap();
    for (id, email, name) in &w.people {
        assert_eq!(
            db.get(id).unwrap().fields["name"],
            Value::from(name.as_str())
        );
        assert_eq!(db.lookup(&Identifier::email(email)).unwrap(), Some(*id));
    }
    for g in [w.gone_before, w.gone_after] {
        assert!(matches!(db.get(&g), Err(Error::ProfileErased { .. })));
    }
    // No root of before the rotation survives: every root held now was
    // made (sealed) under the new key.
    let held: BTreeSet<u32> = w.roots.epochs().unwrap().into_iter().collect();
    assert!(held.is_disjoint(held_before), "{held:?} vs {held_before:?}");
    let status = db.key_tree_status().unwrap();
    assert_eq!(
        held,
        [status.root_epoch, status.backups[0].1.unwrap()].into(),
        "the live root and the backup's"
    );
    // The chain verifies under the new key, and names the rotation.
    let audit = db.verify_audit().unwrap();
    assert!(audit.head_sealed);
    // The signing key is the same key: old certificates verify.
    let pk = db.public_key().unwrap();
    lethedb::verify_certificate(&w.certificate, &pk).unwrap();
    // The pending erasure purges under the new key, and certifies.
    let r = db.purge().unwrap();
    assert_eq!(r.certificates.len(), 1);
    lethedb::verify_certificate(&r.certificates[0], &pk).unwrap();
    drop(db);
    // The backup restores with the new key, replaying the erasure made
    // after it (its ledger line re-sealed), and not with the old key.
    let dir = w.path.parent().unwrap();
    let to_old = dir.join("restored-old");
    assert!(Db::restore(
        &w.backup,
        &to_old,
        &w.old,
        Options::new().root_keys(Arc::new(FileRootKeyStore::new(dir.join("ro.rootkeys"))))
    )
    .is_err());
    let to = dir.join("restored");
    let (r, report) = Db::restore(
        &w.backup,
        &to,
        new,
        Options::new().root_keys(Arc::new(FileRootKeyStore::new(dir.join("r.rootkeys")))),
    )
    .unwrap();
    assert_eq!(report.used_staged_ledger, staged);
    assert!(matches!(
        r.get(&w.gone_after),
        Err(Error::ProfileErased { .. })
    ));
    for (id, _, name) in &w.people {
        assert_eq!(
            r.get(id).unwrap().fields["name"],
            Value::from(name.as_str())
        );
    }
}

/// Every file under `dir` (recursively), with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}

#[test]
fn rotation_rewraps_everything_and_the_old_key_is_refused() {
    let w = world();
    let held_before: BTreeSet<u32> = w.roots.epochs().unwrap().into_iter().collect();
    // What the old key seals, as stored: the key set and the signing key.
    let sealed_before: Vec<Vec<u8>> = {
        let raw = common::raw(&w.path);
        // Ciphertexts (random nonces, so unique): the sealed key set past
        // its version byte, and the signing key's sealed secret (the last
        // 60 bytes before the record's CRC; its public key does not change).
        let k = common::raw_get(&raw, "meta", b"k");
        let e = common::raw_get(&raw, "keys", b"e");
        vec![k[1..41].to_vec(), e[e.len() - 64..e.len() - 4].to_vec()]
    };
    let ledger = w.backup.join("erasure-ledger.ndjson");
    let ledger_before = std::fs::read(&ledger).unwrap();
    let new = MemoryKeyProvider::generate().unwrap();
    let report = Db::rotate_master(&w.path, &w.old, &new, opts(&w.roots)).unwrap();
    // No version sealed under the old key is left in the store's or the
    // backup's files.
    for (f, bytes) in files(w.path.parent().unwrap()) {
        for needle in &sealed_before {
            assert!(
                !bytes.windows(needle.len()).any(|x| x == needle.as_slice()),
                "{} still holds a record sealed under the old key",
                f.display()
            );
        }
    }
    // A crash between moving the copy and swapping in its re-sealed ledger
    // leaves the ledger staged: restore reads it (and replays from it).
    {
        let staged = w.backup.join("erasure-ledger.ndjson.next");
        std::fs::rename(&ledger, &staged).unwrap();
        std::fs::write(&ledger, &ledger_before).unwrap();
        let dir = w.path.parent().unwrap();
        let (r, report) = Db::restore(
            &w.backup,
            dir.join("restored-staged"),
            &new,
            Options::new().root_keys(Arc::new(FileRootKeyStore::new(dir.join("rs.rootkeys")))),
        )
        .unwrap();
        assert!(report.used_staged_ledger);
        assert_eq!(report.replayed.len(), 1);
        assert!(matches!(
            r.get(&w.gone_after),
            Err(Error::ProfileErased { .. })
        ));
        drop(r);
        std::fs::rename(&staged, &ledger).unwrap();
    }
    assert!(!report.resumed);
    assert_eq!(report.backups_moved, 1);
    assert_eq!(report.backups_invalidated, 0);
    assert_eq!(report.ledger_lines_resealed, 1);
    assert_eq!(
        report
            .root_epochs_destroyed
            .iter()
            .copied()
            .collect::<BTreeSet<_>>(),
        held_before
    );
    check_rotated(&w, &new, &held_before, false);
    // The same key twice is refused, nothing changed.
    assert!(matches!(
        Db::rotate_master(&w.path, &new, &new, opts(&w.roots)),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn every_crash_point_of_a_rotation_is_finished_by_running_it_again() {
    for step in 1..=3u8 {
        let w = world();
        let held_before: BTreeSet<u32> = w.roots.epochs().unwrap().into_iter().collect();
        let new = MemoryKeyProvider::generate().unwrap();
        let stopped = Db::rotate_master(
            &w.path,
            &w.old,
            &new,
            opts(&w.roots).stop_master_rotation_after(step),
        );
        assert!(stopped.is_err(), "step {step}");
        // Committed to the new key: the old one is refused, the new one
        // opens only to finish.
        assert!(matches!(
            Db::open(&w.path, &w.old, opts(&w.roots)),
            Err(Error::WrongKey)
        ));
        match Db::open(&w.path, &new, opts(&w.roots)) {
            Err(Error::InvalidInput(m)) => assert!(m.contains("unfinished"), "{m}"),
            Err(e) => panic!("step {step}: {e:?}"),
            Ok(_) => panic!("step {step}: opened with the rotation unfinished"),
        }
        let report = Db::rotate_master(&w.path, &w.old, &new, opts(&w.roots)).unwrap();
        assert!(report.resumed, "step {step}");
        check_rotated(&w, &new, &held_before, false);
    }
}

#[test]
fn a_new_rotation_is_refused_until_the_unfinished_one_is_finished() {
    let w = world();
    let held_before: BTreeSet<u32> = w.roots.epochs().unwrap().into_iter().collect();
    let b = MemoryKeyProvider::generate().unwrap();
    assert!(Db::rotate_master(
        &w.path,
        &w.old,
        &b,
        opts(&w.roots).stop_master_rotation_after(1)
    )
    .is_err());
    // Starting over from the key the store moved to would strand the
    // backups under the first key.
    let c = MemoryKeyProvider::generate().unwrap();
    match Db::rotate_master(&w.path, &b, &c, opts(&w.roots)) {
        Err(Error::InvalidInput(m)) => assert!(m.contains("unfinished"), "{m}"),
        other => panic!("{other:?}"),
    }
    Db::rotate_master(&w.path, &w.old, &b, opts(&w.roots)).unwrap();
    check_rotated(&w, &b, &held_before, false);
}

#[test]
fn a_crash_before_the_store_moves_leaves_it_on_the_old_key() {
    // The root file fails while the new root is stored: nothing committed.
    for n in 0..2 {
        let w = world();
        let held_before: BTreeSet<u32> = w.roots.epochs().unwrap().into_iter().collect();
        let new = MemoryKeyProvider::generate().unwrap();
        w.roots.crash_before_step(n);
        assert!(Db::rotate_master(&w.path, &w.old, &new, opts(&w.roots)).is_err());
        w.roots.crash_before_step(usize::MAX);
        let db = Db::open(&w.path, &w.old, opts(&w.roots)).unwrap();
        assert_eq!(
            db.get(&w.people[0].0).unwrap().fields["name"],
            Value::from("Person 2")
        );
        drop(db);
        Db::rotate_master(&w.path, &w.old, &new, opts(&w.roots)).unwrap();
        check_rotated(&w, &new, &held_before, false);
    }
}

#[test]
fn a_store_from_before_the_key_set_rotates_and_keeps_its_keys() {
    // The golden fixture (issue 16's build): no key set; its blind-index,
    // tombstone and subject keys are derived from the master key.
    const MASTER: [u8; 32] = *b"lethedb golden fixture key 1 ...";
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    common::copy_dir(&fixture.join("store"), &dir);
    let roots = Arc::new(FileRootKeyStore::new(tmp.path().join("store.rootkeys")));
    std::fs::copy(fixture.join("store.rootkeys"), roots.path()).unwrap();
    let old = MemoryKeyProvider::from_bytes(MASTER);
    let o = || Options::new().root_keys(Arc::clone(&roots) as Arc<dyn RootKeyStore>);
    let before = {
        let db = Db::open(&dir, &old, o()).unwrap();
        let a = db
            .lookup(&Identifier::email("ada@example.com"))
            .unwrap()
            .unwrap();
        (a, db.get(&a).unwrap().fields)
    };
    let new = MemoryKeyProvider::generate().unwrap();
    Db::rotate_master(&dir, &old, &new, o()).unwrap();
    let db = Db::open(&dir, &new, o()).unwrap();
    let a = db.lookup(&Identifier::email("ada@example.com")).unwrap();
    assert_eq!(a, Some(before.0), "blind index keys kept");
    assert_eq!(db.get(&before.0).unwrap().fields, before.1);
    drop(db);
    assert!(matches!(Db::open(&dir, &old, o()), Err(Error::WrongKey)));
}

#[test]
fn roots_in_a_token_rotate_too() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new("rotate");
    let device = token.store("s");
    let o = || Options::new().root_key_device(Arc::clone(&device) as Arc<dyn RootKeyDevice>);
    let path = dir.path().join("s");
    let old = MemoryKeyProvider::generate().unwrap();
    let db = Db::open(&path, &old, o().create_if_missing(true)).unwrap();
    let id = db.create(Update::new().set("name", "Ada")).unwrap();
    let store_id = {
        let hex = db.store_id();
        let mut b = [0u8; 16];
        for (i, x) in b.iter_mut().enumerate() {
            *x = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        b
    };
    drop(db);
    let new = MemoryKeyProvider::generate().unwrap();
    let r = Db::rotate_master(&path, &old, &new, o()).unwrap();
    assert_eq!(device.epochs(&store_id).unwrap(), vec![r.new_root_epoch]);
    assert_eq!(r.root_epochs_destroyed, vec![r.old_root_epoch]);
    let db = Db::open(&path, &new, o()).unwrap();
    assert_eq!(db.get(&id).unwrap().fields["name"], Value::from("Ada"));
}

#[test]
fn the_cli_rotates_the_key_file_and_finishes_an_interrupted_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lethedb"))
            .args(args)
            .env_remove("LETHEDB_DB")
            .env_remove("LETHEDB_KEY_FILE")
            .env_remove("LETHEDB_ROOT_KEYS")
            .output()
            .unwrap()
    };
    assert!(run(&["init", "--db", d]).status.success());
    let o = run(&["put", "--db", d, r#"{"name":"Ada"}"#]);
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let key = tmp.path().join("store.key");
    let old_key = std::fs::read(&key).unwrap();
    let o = run(&["keys", "rotate-master", "--db", d]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["backups_invalidated"], 0);
    assert_ne!(
        std::fs::read(&key).unwrap(),
        old_key,
        "the key file holds the new key"
    );
    assert!(!tmp.path().join("store.key.next").exists());
    let o = run(&["get", "--db", d, "--id", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A rotation interrupted after the store moved: the key file still
    // holds the old key, `.next` the new one. Opening says what to do;
    // running the command again finishes.
    let before = std::fs::read(&key).unwrap();
    let new = lethedb::FileKeyProvider::create(tmp.path().join("store.key.next")).unwrap();
    let old = lethedb::FileKeyProvider::new(&key);
    assert!(Db::rotate_master(
        &dir,
        &old,
        &new,
        Options::new().stop_master_rotation_after(1)
    )
    .is_err());
    let o = run(&["get", "--db", d, "--id", &id]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("keys rotate-master"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&["keys", "rotate-master", "--db", d]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["resumed"], true);
    assert_ne!(std::fs::read(&key).unwrap(), before);
    let o = run(&["get", "--db", d, "--id", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
