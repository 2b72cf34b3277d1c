//! The key tree: erasure that holds against raw disk images and old
//! backups, crash safety of root rotation, the shape of a rotation, the
//! bounded key cache — against both root custodies: a root key file and
//! a PKCS#11 token (SoftHSM2). And the whole-footprint image: the store
//! directory with its parent's lethedb files, per layout.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::softhsm::Token;
use lethedb::{
    Db, Error, FileKeyProvider, FileRootKeyStore, Identifier, MemoryKeyProvider, Options,
    Pkcs11RootKeyStore, ProfileId, RootKeyDevice, RootKeyStore, RootKeys, RotationStep, Update,
    Value,
};

/// Where a test's roots live.
#[derive(Clone)]
enum Custody {
    File(Arc<FileRootKeyStore>),
    Token(Arc<Pkcs11RootKeyStore>),
}

impl Custody {
    fn file(dir: &Path, name: &str) -> Custody {
        Custody::File(Arc::new(FileRootKeyStore::new(
            dir.join(format!("{name}.rootkeys")),
        )))
    }

    /// Root objects `name` on a fresh token.
    fn token(name: &str) -> Custody {
        Custody::Token(Token::new("kt").store(name))
    }

    /// Another prefix on the same token (another store's roots).
    fn sibling(&self, dir: &Path, name: &str, token: Option<&Token>) -> Custody {
        match (self, token) {
            (Custody::Token(_), Some(t)) => Custody::Token(t.store(name)),
            _ => Custody::file(dir, name),
        }
    }

    fn keys(&self) -> RootKeys {
        match self {
            Custody::File(f) => RootKeys::Sealed(Arc::clone(f) as Arc<dyn RootKeyStore>),
            Custody::Token(t) => RootKeys::Device(Arc::clone(t) as Arc<dyn RootKeyDevice>),
        }
    }

    /// Epochs held for `db`'s store, asked of the custody itself.
    fn epochs(&self, store_id: &[u8; 16]) -> Vec<u32> {
        match self {
            Custody::File(f) => f.epochs().unwrap(),
            Custody::Token(t) => t.epochs(store_id).unwrap(),
        }
    }

    fn crash_before_step(&self, n: usize) {
        match self {
            Custody::File(f) => f.crash_before_step(n),
            Custody::Token(t) => t.crash_before_step(n),
        }
    }
}

fn opts(roots: &Custody) -> Options {
    Options::new()
        .create_if_missing(true)
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(3600))
        .root_keys_in(roots.keys())
}

fn store_id(db: &Db) -> [u8; 16] {
    let hex = db.store_id();
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn email(i: usize) -> String {
    format!("person{i:05}@example.com")
}

fn populate(db: &Db, n: usize) -> Vec<(ProfileId, BTreeMap<String, Value>)> {
    (0..n)
        .map(|i| {
            let fields: BTreeMap<String, Value> = [
                (
                    "name".to_string(),
                    Value::from(format!("SUBJECT-{i:05}-name")),
                ),
                (
                    "city".to_string(),
                    Value::from(format!("SUBJECT-{i:05}-city")),
                ),
            ]
            .into();
            let mut u = Update::new();
            for (k, v) in &fields {
                u = u.set(k.clone(), v.clone());
            }
            let id = db
                .resolve(&[Identifier::email(email(i))], u)
                .unwrap()
                .profile
                .unwrap();
            (id, fields)
        })
        .collect()
}

fn assert_reads(db: &Db, people: &[(ProfileId, BTreeMap<String, Value>)], ctx: &str) {
    for (id, fields) in people {
        let p = db
            .get(id)
            .unwrap_or_else(|e| panic!("{ctx}: get {id}: {e}"));
        assert_eq!(&p.fields, fields, "{ctx}: fields of {id}");
    }
}

/// `meta 't'` with another root epoch (valid checksum): what an attacker
/// who edits an old disk image to name today's epoch would write.
fn tree_header(fanout_bits: u8, depth: u8, epoch: u32) -> Vec<u8> {
    let mut v = vec![1, fanout_bits, depth];
    v.extend_from_slice(&epoch.to_be_bytes());
    let crc = crc32fast::hash(&v);
    v.extend_from_slice(&crc.to_be_bytes());
    v
}

#[test]
fn raw_image_of_the_store_cannot_decrypt_a_forgotten_subject_file_roots() {
    let dir = tempfile::tempdir().unwrap();
    raw_image_cannot_decrypt(dir.path(), Custody::file(dir.path(), "live"));
}

#[test]
fn raw_image_of_the_store_cannot_decrypt_a_forgotten_subject_pkcs11_roots() {
    let dir = tempfile::tempdir().unwrap();
    raw_image_cannot_decrypt(dir.path(), Custody::token("live"));
}

fn raw_image_cannot_decrypt(dir: &Path, roots: Custody) {
    let live = dir.join("live");
    let k = common::key(31);
    let db = Db::open(&live, &k, opts(&roots)).unwrap();
    let people = populate(&db, 60);
    db.flush().unwrap();
    // The whole directory, byte for byte, while the subject is still there
    // (a disk image, a snapshot, a stolen drive).
    let image = dir.join("image");
    drop(db);
    common::copy_dir(&live, &image);
    let db = Db::open(&live, &k, opts(&roots)).unwrap();
    let (subject, _) = people[7].clone();
    db.forget(&subject).unwrap();
    let report = db.purge().unwrap();
    assert_eq!(report.root_epoch_destroyed, 1);
    assert_eq!(report.root_epoch, 2);
    assert_eq!(roots.epochs(&store_id(&db)), vec![2]);
    if let Custody::Token(t) = &roots {
        // The live root is a sensitive, non-extractable token object.
        assert_eq!(
            t.key_attributes(&store_id(&db), 2).unwrap(),
            (true, false, true)
        );
    }
    let others: Vec<_> = people
        .iter()
        .filter(|(id, _)| *id != subject)
        .cloned()
        .collect();
    assert_reads(&db, &others, "live store after purge");
    drop(db);

    // The image with today's key material (master key and root key store).
    match Db::open(&image, &k, opts(&roots)) {
        Err(Error::RootKey { epoch: 1, .. }) => {}
        Err(e) => panic!("old image: unexpected error {e:?}"),
        Ok(_) => panic!("old image opened with today's key material"),
    }
    // The attacker edits the image's header to name today's epoch: it
    // opens, but nothing in it decrypts — the subject least of all.
    {
        let raw = common::raw(&image);
        common::raw_put(&raw, "meta", b"t", &tree_header(10, 2, 2));
    }
    let forged = Db::open(&image, &k, opts(&roots)).unwrap();
    match forged.get(&subject) {
        Err(Error::Corrupt { .. } | Error::Decrypt { .. }) => {}
        other => panic!("subject in the old image: {other:?}"),
    }
    if let Custody::File(f) = &roots {
        // The root file never held the old epoch's key again.
        let root_file = std::fs::read(f.path()).unwrap();
        assert!(root_file.len() < 200, "one sealed root, not two");
    }
    drop(forged);

    // And the live store still reads every other profile after reopening.
    let db = Db::open(&live, &k, opts(&roots)).unwrap();
    assert_reads(&db, &others, "live store reopened");
    assert!(matches!(db.get(&subject), Err(Error::ProfileErased { .. })));
}

#[test]
fn crash_at_each_step_of_the_rotation_leaves_a_usable_store_file_roots() {
    crash_at_each_step(|dir| Custody::file(dir, "s"));
}

#[test]
fn crash_at_each_step_of_the_rotation_leaves_a_usable_store_pkcs11_roots() {
    crash_at_each_step(|_| Custody::token("s"));
}

fn crash_at_each_step(custody: impl Fn(&Path) -> Custody) {
    let steps = [
        RotationStep::AfterRootStored,
        RotationStep::AfterTreeCommitted,
        RotationStep::AfterRootDestroyed,
    ];
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let roots = custody(dir.path());
        let k = common::key(32);
        let db = Db::open(&path, &k, opts(&roots)).unwrap();
        let people = populate(&db, 40);
        let gone = [people[3].0, people[11].0];
        for g in &gone {
            db.forget(g).unwrap();
        }
        db.stop_rotation_at(Some(step));
        assert!(db.purge().is_err(), "{step:?}: purge should stop");
        drop(db);
        check_after_crash(&path, &k, &roots, &people, &gone, &format!("{step:?}"));
    }
}

#[test]
fn crash_inside_the_root_file_update_leaves_a_usable_store() {
    // File-system steps of the root file during one purge: the put of the
    // new root (write tmp, link, rename, sync dir, zero old, unlink), then
    // the destruction of the old one (the same six).
    let crashed = crash_inside_custody(|dir, _| Custody::file(dir, "s"), 16);
    assert_eq!(
        crashed, 12,
        "six steps to store the new root, six to destroy the old"
    );
}

#[test]
fn crash_inside_the_token_operations_leaves_a_usable_store() {
    // Token steps during one purge: generating the new root, then
    // destroying the old one.
    let token = Token::new("crash");
    let crashed = crash_inside_custody(|_, n| Custody::Token(token.store(&format!("s{n}"))), 6);
    assert_eq!(
        crashed, 2,
        "one step to generate the new root, one to destroy the old"
    );
}

/// Purges with the custody failing at step n = 0, 1, … (as a crash
/// there would) until a purge completes; checks the store after each
/// crash. Returns the number of crash points.
fn crash_inside_custody(custody: impl Fn(&Path, usize) -> Custody, max: usize) -> usize {
    // Step n fails after n crash points were checked.
    for n in 0..max {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let roots = custody(dir.path(), n);
        let k = common::key(33);
        let db = Db::open(&path, &k, opts(&roots)).unwrap();
        let people = populate(&db, 30);
        let gone = [people[0].0];
        db.forget(&gone[0]).unwrap();
        roots.crash_before_step(n);
        let result = db.purge();
        roots.crash_before_step(usize::MAX);
        drop(db);
        if result.is_ok() {
            return n;
        }
        check_after_crash(&path, &k, &roots, &people, &gone, &format!("step {n}"));
    }
    panic!("no purge completed within {max} crash points");
}

fn check_after_crash(
    path: &Path,
    k: &MemoryKeyProvider,
    roots: &Custody,
    people: &[(ProfileId, BTreeMap<String, Value>)],
    gone: &[ProfileId],
    ctx: &str,
) {
    let db = Db::open(path, k, opts(roots)).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let live: Vec<_> = people
        .iter()
        .filter(|(id, _)| !gone.contains(id))
        .cloned()
        .collect();
    assert_reads(&db, &live, ctx);
    for g in gone {
        assert!(
            matches!(db.get(g), Err(Error::ProfileErased { .. })),
            "{ctx}: erased stays erased"
        );
    }
    // The interrupted purge is still owed, and the next one completes it.
    assert_eq!(db.pending_erasures().unwrap().0, gone.len(), "{ctx}");
    let report = db
        .purge()
        .unwrap_or_else(|e| panic!("{ctx}: purge after crash: {e}"));
    assert_eq!(report.certificates.len(), gone.len(), "{ctx}");
    let status = db.key_tree_status().unwrap();
    assert_eq!(
        roots.epochs(&store_id(&db)),
        vec![status.root_epoch],
        "{ctx}: only the current root survives"
    );
    assert_reads(&db, &live, ctx);
    // Writes still work under the rotated tree, and survive a reopen.
    let id = db.create(Update::new().set("name", "after")).unwrap();
    drop(db);
    let db = Db::open(path, k, opts(roots)).unwrap();
    assert_eq!(db.get(&id).unwrap().fields["name"], Value::from("after"));
    assert_reads(&db, &live, ctx);
    // No stray root files.
    if let Custody::File(f) = roots {
        let dir = f.path().parent().unwrap();
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            assert!(
                !name.ends_with(".tmp") && !name.ends_with(".prev"),
                "{ctx}: leftover {name}"
            );
        }
    }
}

#[test]
fn purge_rewraps_exactly_the_touched_paths() {
    let dir = tempfile::tempdir().unwrap();
    let roots = Custody::file(dir.path(), "s");
    let k = common::key(34);
    // Fan-out 16, depth 2: level 1 = top 4 bits of the id, buckets = top 8.
    let db = Db::open(dir.path().join("s"), &k, opts(&roots).key_tree(4, 2)).unwrap();
    let people = populate(&db, 400);
    let ids: Vec<ProfileId> = people.iter().map(|(id, _)| *id).collect();
    let top = |id: &ProfileId| id.as_bytes()[0];
    let subject = ids[17];
    db.forget(&subject).unwrap();
    let r = db.purge().unwrap();
    let l1: BTreeSet<u8> = ids.iter().map(|id| top(id) >> 4).collect();
    let children: BTreeSet<u8> = ids
        .iter()
        .filter(|id| top(id) >> 4 == top(&subject) >> 4)
        .map(top)
        .collect();
    let bucket_mates = ids
        .iter()
        .filter(|id| top(id) == top(&subject) && **id != subject)
        .count() as u64;
    assert_eq!(r.keys_replaced, 2, "one level-1 node and one bucket");
    assert_eq!(r.nodes_rewrapped, (l1.len() + children.len()) as u64);
    assert_eq!(r.keyrings_rewrapped, bucket_mates);
    assert!(r.key_bytes_written > 0);
    let others: Vec<_> = people
        .iter()
        .filter(|(id, _)| *id != subject)
        .cloned()
        .collect();
    assert_reads(&db, &others, "after the rotation");

    // Many erasures in one purge share the upper levels.
    for id in &ids[100..150] {
        db.forget(id).unwrap();
    }
    let r = db.purge().unwrap();
    let l1_touched: BTreeSet<u8> = ids[100..150].iter().map(|id| top(id) >> 4).collect();
    let buckets_touched: BTreeSet<u8> = ids[100..150].iter().map(top).collect();
    assert_eq!(
        r.keys_replaced,
        (l1_touched.len() + buckets_touched.len()) as u64
    );
    let status = db.key_tree_status().unwrap();
    assert_eq!((status.fanout, status.depth, status.buckets), (16, 2, 256));
    assert_eq!(status.nodes_per_level[0], l1.len() as u64);
    assert_eq!(status.root_epoch, 3);
    assert_eq!(status.pending_purges, 0);
}

#[test]
fn key_cache_stays_bounded_and_reads_stay_correct() {
    let dir = tempfile::tempdir().unwrap();
    let roots = Custody::file(dir.path(), "s");
    let k = common::key(35);
    let db = Db::open(
        dir.path().join("s"),
        &k,
        opts(&roots).key_tree(6, 2).key_cache_entries(32),
    )
    .unwrap();
    let people = populate(&db, 300);
    assert_reads(&db, &people, "small cache");
    db.forget(&people[0].0).unwrap();
    db.purge().unwrap();
    assert_reads(&db, &people[1..], "small cache after a rotation");
    let s = db.key_tree_status().unwrap();
    assert!(s.cached_keys <= 32, "{} cached", s.cached_keys);
    assert!(
        s.nodes_per_level[1] > 100,
        "far more buckets than the cache holds"
    );
}

#[test]
fn backups_stay_restorable_without_the_subjects_erased_after_them_file_roots() {
    let dir = tempfile::tempdir().unwrap();
    backups_stay_restorable(dir.path(), Custody::file(dir.path(), "live"), None);
}

#[test]
fn backups_stay_restorable_without_the_subjects_erased_after_them_pkcs11_roots() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new("backups");
    backups_stay_restorable(
        dir.path(),
        Custody::Token(token.store("live")),
        Some(&token),
    );
}

fn backups_stay_restorable(dir: &Path, roots: Custody, token: Option<&Token>) {
    let live = dir.join("live");
    let k = common::key(36);
    let db = Db::open(&live, &k, opts(&roots)).unwrap();
    let people = populate(&db, 50);
    let backup = dir.join("backup");
    db.backup(&backup).unwrap();
    let backup_epoch = db.key_tree_status().unwrap().backups[0].1.unwrap();
    // A copy of the backup directory made before the erasure (tape, cloud).
    let offline = dir.join("offline-copy");
    common::copy_dir(&backup, &offline);
    let subject = people[4].0;
    db.forget(&subject).unwrap();
    db.forget_field(&people[5].0, "city").unwrap();
    let r = db.purge().unwrap();
    assert_eq!(r.backups_rekeyed, 1);
    assert!(r.root_epochs_destroyed.contains(&backup_epoch));
    let s = db.key_tree_status().unwrap();
    assert_eq!(
        s.root_epochs_held.len(),
        2,
        "live root and the backup's new root"
    );

    // The old copy of the backup: its root is gone.
    let restored_old = dir.join("from-offline");
    let old_opts = Options::new()
        .root_keys_in(roots.sibling(dir, "r1", token).keys())
        .backup_root_keys_in(roots.keys());
    match Db::restore(&offline, &restored_old, &k, old_opts) {
        Err(Error::RootKey { epoch, .. }) => assert_eq!(epoch, backup_epoch),
        Err(e) => panic!("offline copy: {e:?}"),
        Ok(_) => panic!("an offline copy made before the purge was restored"),
    }

    // The registered backup restores everyone else, without the subject.
    let restored = dir.join("restored");
    let (db2, report) = Db::restore(
        &backup,
        &restored,
        &k,
        Options::new()
            .root_keys_in(roots.sibling(dir, "restored", token).keys())
            .backup_root_keys_in(roots.keys()),
    )
    .unwrap();
    // The purge that erased them re-keyed the backup with them and pruned
    // their (sealed) lines from its ledger: nothing left to replay.
    assert_eq!(report.already_present, 0);
    assert!(matches!(
        db2.get(&subject),
        Err(Error::ProfileErased { .. })
    ));
    assert_eq!(db2.lookup(&Identifier::email(email(4))).unwrap(), None);
    let p5 = db2.get(&people[5].0).unwrap();
    assert!(!p5.fields.contains_key("city"));
    assert_eq!(p5.fields["name"], people[5].1["name"]);
    let others: Vec<_> = people
        .iter()
        .filter(|(id, _)| *id != subject && *id != people[5].0)
        .cloned()
        .collect();
    assert_reads(&db2, &others, "restored backup");
    // The restored store has roots of its own; the live one is untouched.
    let restored_roots = db2.key_tree_status().unwrap().root_epochs_held;
    assert_eq!(restored_roots.len(), 1, "{restored_roots:?}");
    assert!(
        !roots.epochs(&store_id(&db)).contains(&restored_roots[0])
            || matches!(roots, Custody::File(_)),
        "the restored store's root is not the live store's"
    );
    drop(db2);
    assert_reads(&db, &others, "live store");
}

#[test]
fn an_unreachable_backup_is_invalidated_not_left_decryptable_file_roots() {
    let dir = tempfile::tempdir().unwrap();
    unreachable_backup_is_invalidated(dir.path(), Custody::file(dir.path(), "s"), None);
}

#[test]
fn an_unreachable_backup_is_invalidated_not_left_decryptable_pkcs11_roots() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new("unreachable");
    unreachable_backup_is_invalidated(dir.path(), Custody::Token(token.store("s")), Some(&token));
}

fn unreachable_backup_is_invalidated(dir: &Path, roots: Custody, token: Option<&Token>) {
    let k = common::key(37);
    let db = Db::open(dir.join("s"), &k, opts(&roots)).unwrap();
    let people = populate(&db, 10);
    let backup = dir.join("b");
    db.backup(&backup).unwrap();
    let moved = dir.join("b-moved");
    std::fs::rename(&backup, &moved).unwrap();
    db.forget(&people[1].0).unwrap();
    let r = db.purge().unwrap();
    assert_eq!((r.backups_rekeyed, r.backups_invalidated), (0, 1));
    assert_eq!(db.key_tree_status().unwrap().backups[0].1, None);
    assert_eq!(roots.epochs(&store_id(&db)).len(), 1);
    let to = dir.join("r");
    let o = Options::new()
        .root_keys_in(roots.sibling(dir, "r", token).keys())
        .backup_root_keys_in(roots.keys());
    assert!(matches!(
        Db::restore(&moved, &to, &k, o),
        Err(Error::RootKey { .. })
    ));
}

#[test]
fn a_root_key_store_of_another_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileRootKeyStore::new(dir.path().join("shared.rootkeys")));
    let roots = Custody::File(Arc::clone(&file));
    let k = common::key(38);
    drop(Db::open(dir.path().join("a"), &k, opts(&roots)).unwrap());
    // Creating a second store over the same root key store is refused.
    assert!(matches!(
        Db::open(dir.path().join("b"), &k, opts(&roots)),
        Err(Error::RootKey { .. })
    ));
    // A store opened with a root file from another store fails cleanly.
    let other = Custody::file(dir.path(), "c");
    drop(Db::open(dir.path().join("c"), &k, opts(&other)).unwrap());
    assert!(matches!(
        Db::open(dir.path().join("a"), &k, opts(&other)),
        Err(Error::RootKey { epoch: 1, .. })
    ));
    // A damaged root file is a typed error, never a panic.
    let mut bytes = std::fs::read(file.path()).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    std::fs::write(file.path(), &bytes).unwrap();
    assert!(matches!(
        Db::open(dir.path().join("a"), &k, opts(&roots)),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_token_prefix_of_another_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new("other");
    let k = common::key(40);
    let a = Custody::Token(token.store("a"));
    let db = Db::open(dir.path().join("a"), &k, opts(&a)).unwrap();
    let a_id = store_id(&db);
    drop(db);
    let c = Custody::Token(token.store("c"));
    drop(Db::open(dir.path().join("c"), &k, opts(&c)).unwrap());
    assert!(matches!(
        Db::open(dir.path().join("a"), &k, opts(&c)),
        Err(Error::RootKey { epoch: 1, .. })
    ));
    // Each store sees only its own roots, even on one token.
    assert_eq!(a.epochs(&a_id), vec![1]);
    assert_eq!(c.epochs(&a_id), Vec::<u32>::new());
    // The wrong PIN is a typed error naming the token, not the PIN (on a
    // token this process has not logged in to: PKCS#11 login state is
    // per application, so a second session would inherit the first's).
    let fresh = Token::new("pin");
    let bad_pin = dir.path().join("bad.pin");
    std::fs::write(&bad_pin, "not-the-pin\n").unwrap();
    let uri = fresh.uri("a").replace(
        &fresh.pin_file.display().to_string(),
        &bad_pin.display().to_string(),
    );
    match Pkcs11RootKeyStore::from_uri(&uri) {
        Err(e @ Error::RootKeyDevice { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("PIN is incorrect") && !m.contains("not-the-pin"),
                "{m}"
            );
        }
        other => panic!("wrong PIN: {other:?}"),
    }
}

/// What an attacker holding a copy of the whole volume gets: the store
/// directory and the lethedb files beside it (master key file, root key
/// file), imaged before the forget, opened after the purge with today's
/// key material.
fn whole_footprint(layout: &str) -> (bool, bool) {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    let elsewhere = dir.path().join("other-device");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let store = volume.join("crm");
    let key_file = volume.join("crm.key");
    let keys = FileKeyProvider::create(&key_file).unwrap();
    let roots = match layout {
        // The default: `<DIR>.rootkeys` beside the store.
        "beside" => Custody::File(Arc::new(FileRootKeyStore::beside(&store))),
        // A root file on another device that is not backed up (here: a
        // directory the image leaves out).
        "other-device" => Custody::file(&elsewhere, "crm"),
        _ => Custody::token("crm"),
    };
    let db = Db::open(&store, &keys, opts(&roots)).unwrap();
    let co_located = db.open_report().root_co_located;
    let people = populate(&db, 40);
    drop(db);
    let image = dir.path().join("image");
    common::copy_dir(&volume, &image);
    let db = Db::open(&store, &keys, opts(&roots)).unwrap();
    let (subject, subject_fields) = people[9].clone();
    db.forget(&subject).unwrap();
    db.purge().unwrap();
    let others: Vec<_> = people
        .iter()
        .filter(|(id, _)| *id != subject)
        .cloned()
        .collect();
    assert_reads(&db, &others, layout);
    drop(db);

    // The attacker: the image, with the key file and root file it holds
    // (or today's root key store when the image holds none).
    let image_keys = FileKeyProvider::new(image.join("crm.key"));
    assert_eq!(
        std::fs::read(image.join("crm.key")).unwrap(),
        std::fs::read(&key_file).unwrap(),
        "today's master key is in the image"
    );
    let attacker_roots = match &roots {
        Custody::File(f) if f.path().starts_with(&volume) => Custody::File(Arc::new(
            FileRootKeyStore::new(image.join(f.path().strip_prefix(&volume).unwrap())),
        )),
        other => other.clone(),
    };
    let attacker_opts = opts(&attacker_roots).create_if_missing(false);
    let decrypted = match Db::open(image.join("crm"), &image_keys, attacker_opts) {
        Ok(old) => match old.get(&subject) {
            Ok(p) => {
                assert_eq!(
                    p.fields, subject_fields,
                    "{layout}: decrypted, and correctly"
                );
                true
            }
            Err(_) => false,
        },
        Err(Error::RootKey { .. }) => false,
        Err(e) => panic!("{layout}: unexpected error {e:?}"),
    };
    // The live store still reads everyone else.
    let db = Db::open(&store, &keys, opts(&roots)).unwrap();
    assert_reads(&db, &others, layout);
    assert!(matches!(db.get(&subject), Err(Error::ProfileErased { .. })));
    (decrypted, co_located)
}

#[test]
fn whole_footprint_image_with_the_root_file_beside_the_store_still_decrypts() {
    // The weakness the co-location policy flags, shown honestly: the image
    // carries the old root and the master key, and the subject decrypts.
    let (decrypted, co_located) = whole_footprint("beside");
    assert!(decrypted, "the image holds the destroyed root: it decrypts");
    assert!(co_located, "and opening said so");
}

#[test]
fn whole_footprint_image_without_the_roots_cannot_decrypt() {
    let (decrypted, _) = whole_footprint("other-device");
    assert!(!decrypted, "root file elsewhere: the subject is gone");
    let (decrypted, co_located) = whole_footprint("pkcs11");
    assert!(!decrypted, "roots in the token: the subject is gone");
    assert!(!co_located);
}

#[test]
fn a_co_located_root_file_can_be_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let keys = MemoryKeyProvider::generate().unwrap();
    let beside = Custody::File(Arc::new(FileRootKeyStore::beside(&store)));
    match Db::open(&store, &keys, opts(&beside).refuse_co_located_roots(true)) {
        Err(Error::InvalidInput(m)) => assert!(m.contains("file system"), "{m}"),
        Err(e) => panic!("co-located roots: unexpected error {e:?}"),
        Ok(_) => panic!("co-located roots accepted"),
    }
    assert!(!Db::store_exists(&store), "nothing created");
    let db = Db::open(&store, &keys, opts(&beside)).unwrap();
    let status = db.key_tree_status().unwrap();
    assert!(status.root_co_located);
    assert!(status.root_object.contains("s.rootkeys") && status.root_object.ends_with("epoch 1"));
    assert_eq!(db.open_report().warnings.len(), 1);
    drop(db);
    let token = Custody::token("refuse");
    let db = Db::open(
        dir.path().join("t"),
        &keys,
        opts(&token).refuse_co_located_roots(true),
    )
    .unwrap();
    let status = db.key_tree_status().unwrap();
    assert!(!status.root_co_located && db.open_report().warnings.is_empty());
    assert!(
        status.root_object.starts_with("pkcs11 token"),
        "{}",
        status.root_object
    );
    assert!(
        status.root_object.contains("\"refuse.1\""),
        "{}",
        status.root_object
    );
}

#[test]
fn a_restore_of_token_roots_needs_a_named_target_and_honours_the_co_location_policy() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new("restore");
    let roots = Custody::Token(token.store("live"));
    let k = common::key(41);
    let db = Db::open(dir.path().join("live"), &k, opts(&roots)).unwrap();
    populate(&db, 5);
    let backup = dir.path().join("b");
    db.backup(&backup).unwrap();
    let to = dir.path().join("restored");
    // No silent move of the roots out of the token into a file.
    match Db::restore(
        &backup,
        &to,
        &k,
        Options::new().backup_root_keys_in(roots.keys()),
    ) {
        Err(Error::InvalidInput(m)) => assert!(m.contains("device"), "{m}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("restored onto a root file by default"),
    }
    assert!(!to.exists(), "nothing written");
    // A refused co-located target is refused before anything is written.
    let beside = Custody::File(Arc::new(FileRootKeyStore::beside(&to)));
    match Db::restore(
        &backup,
        &to,
        &k,
        Options::new()
            .backup_root_keys_in(roots.keys())
            .root_keys_in(beside.keys())
            .refuse_co_located_roots(true),
    ) {
        Err(Error::InvalidInput(m)) => assert!(m.contains("file system"), "{m}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("co-located target accepted"),
    }
    assert!(!to.exists(), "nothing written");
    assert!(!dir.path().join("restored.rootkeys").exists());
    // Named: restores.
    let (r, _) = Db::restore(
        &backup,
        &to,
        &k,
        Options::new()
            .backup_root_keys_in(roots.keys())
            .root_keys_in(Custody::Token(token.store("restored")).keys()),
    )
    .unwrap();
    assert!(r
        .key_tree_status()
        .unwrap()
        .root_object
        .contains("restored."));
}
