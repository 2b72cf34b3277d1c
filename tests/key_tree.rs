//! The key tree: erasure that holds against raw disk images and old
//! backups, crash safety of root rotation, the shape of a rotation, the
//! bounded key cache.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lethedb::{
    Db, Error, FileRootKeyStore, Identifier, MemoryKeyProvider, Options, ProfileId, RootKeyStore,
    RotationStep, Update, Value,
};

fn opts(roots: &Arc<FileRootKeyStore>) -> Options {
    Options::new()
        .create_if_missing(true)
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(3600))
        .root_keys(Arc::clone(roots) as Arc<dyn RootKeyStore>)
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
fn raw_image_of_the_store_cannot_decrypt_a_forgotten_subject() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let roots = Arc::new(FileRootKeyStore::new(dir.path().join("live.rootkeys")));
    let k = common::key(31);
    let db = Db::open(&live, &k, opts(&roots)).unwrap();
    let people = populate(&db, 60);
    db.flush().unwrap();
    // The whole directory, byte for byte, while the subject is still there
    // (a disk image, a snapshot, a stolen drive).
    let image = dir.path().join("image");
    drop(db);
    common::copy_dir(&live, &image);
    let db = Db::open(&live, &k, opts(&roots)).unwrap();
    let (subject, _) = people[7].clone();
    db.forget(&subject).unwrap();
    let report = db.purge().unwrap();
    assert_eq!(report.root_epoch_destroyed, 1);
    assert_eq!(report.root_epoch, 2);
    assert_eq!(roots.epochs().unwrap(), vec![2]);
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
    // The root file never held the old epoch's key again.
    let root_file = std::fs::read(roots.path()).unwrap();
    assert!(root_file.len() < 200, "one sealed root, not two");
    drop(forged);

    // And the live store still reads every other profile after reopening.
    let db = Db::open(&live, &k, opts(&roots)).unwrap();
    assert_reads(&db, &others, "live store reopened");
    assert!(matches!(db.get(&subject), Err(Error::ProfileErased { .. })));
}

#[test]
fn crash_at_each_step_of_the_rotation_leaves_a_usable_store() {
    let steps = [
        RotationStep::AfterRootStored,
        RotationStep::AfterTreeCommitted,
        RotationStep::AfterRootDestroyed,
    ];
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let roots = Arc::new(FileRootKeyStore::new(dir.path().join("s.rootkeys")));
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
    let mut completed = false;
    let mut crashed = 0;
    for n in 0..16 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let roots = Arc::new(FileRootKeyStore::new(dir.path().join("s.rootkeys")));
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
            completed = true;
            break;
        }
        crashed += 1;
        check_after_crash(&path, &k, &roots, &people, &gone, &format!("fs step {n}"));
    }
    assert!(completed, "a purge with no crash point reached completes");
    assert_eq!(
        crashed, 12,
        "six steps to store the new root, six to destroy the old"
    );
}

fn check_after_crash(
    path: &Path,
    k: &MemoryKeyProvider,
    roots: &Arc<FileRootKeyStore>,
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
        roots.epochs().unwrap(),
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
    let dir = roots.path().parent().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            !name.ends_with(".tmp") && !name.ends_with(".prev"),
            "{ctx}: leftover {name}"
        );
    }
}

#[test]
fn purge_rewraps_exactly_the_touched_paths() {
    let dir = tempfile::tempdir().unwrap();
    let roots = Arc::new(FileRootKeyStore::new(dir.path().join("s.rootkeys")));
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
    let roots = Arc::new(FileRootKeyStore::new(dir.path().join("s.rootkeys")));
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
fn backups_stay_restorable_without_the_subjects_erased_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let roots = Arc::new(FileRootKeyStore::new(dir.path().join("live.rootkeys")));
    let k = common::key(36);
    let db = Db::open(&live, &k, opts(&roots)).unwrap();
    let people = populate(&db, 50);
    let backup = dir.path().join("backup");
    db.backup(&backup).unwrap();
    let backup_epoch = db.key_tree_status().unwrap().backups[0].1.unwrap();
    // A copy of the backup directory made before the erasure (tape, cloud).
    let offline = dir.path().join("offline-copy");
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
    let restored_old = dir.path().join("from-offline");
    let old_opts = Options::new()
        .root_keys(Arc::new(FileRootKeyStore::new(
            dir.path().join("r1.rootkeys"),
        )))
        .backup_root_keys(Arc::clone(&roots) as Arc<dyn RootKeyStore>);
    match Db::restore(&offline, &restored_old, &k, old_opts) {
        Err(Error::RootKey { epoch, .. }) => assert_eq!(epoch, backup_epoch),
        Err(e) => panic!("offline copy: {e:?}"),
        Ok(_) => panic!("an offline copy made before the purge was restored"),
    }

    // The registered backup restores everyone else, without the subject.
    let restored = dir.path().join("restored");
    let (db2, report) = Db::restore(
        &backup,
        &restored,
        &k,
        Options::new().root_keys(Arc::new(FileRootKeyStore::new(
            dir.path().join("restored.rootkeys"),
        ))),
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
    drop(db2);
    assert_reads(&db, &others, "live store");
}

#[test]
fn an_unreachable_backup_is_invalidated_not_left_decryptable() {
    let dir = tempfile::tempdir().unwrap();
    let roots = Arc::new(FileRootKeyStore::new(dir.path().join("s.rootkeys")));
    let k = common::key(37);
    let db = Db::open(dir.path().join("s"), &k, opts(&roots)).unwrap();
    let people = populate(&db, 10);
    let backup = dir.path().join("b");
    db.backup(&backup).unwrap();
    let moved = dir.path().join("b-moved");
    std::fs::rename(&backup, &moved).unwrap();
    db.forget(&people[1].0).unwrap();
    let r = db.purge().unwrap();
    assert_eq!((r.backups_rekeyed, r.backups_invalidated), (0, 1));
    assert_eq!(db.key_tree_status().unwrap().backups[0].1, None);
    assert_eq!(roots.epochs().unwrap().len(), 1);
    let to = dir.path().join("r");
    let o = Options::new()
        .root_keys(Arc::new(FileRootKeyStore::new(
            dir.path().join("r.rootkeys"),
        )))
        .backup_root_keys(Arc::clone(&roots) as Arc<dyn RootKeyStore>);
    assert!(matches!(
        Db::restore(&moved, &to, &k, o),
        Err(Error::RootKey { .. })
    ));
}

#[test]
fn a_root_key_store_of_another_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let roots = Arc::new(FileRootKeyStore::new(dir.path().join("shared.rootkeys")));
    let k = common::key(38);
    drop(Db::open(dir.path().join("a"), &k, opts(&roots)).unwrap());
    // Creating a second store over the same root key store is refused.
    assert!(matches!(
        Db::open(dir.path().join("b"), &k, opts(&roots)),
        Err(Error::RootKey { .. })
    ));
    // A store opened with a root file from another store fails cleanly.
    let other = Arc::new(FileRootKeyStore::new(dir.path().join("c.rootkeys")));
    drop(Db::open(dir.path().join("c"), &k, opts(&other)).unwrap());
    assert!(matches!(
        Db::open(dir.path().join("a"), &k, opts(&other)),
        Err(Error::RootKey { epoch: 1, .. })
    ));
    // A damaged root file is a typed error, never a panic.
    let mut bytes = std::fs::read(roots.path()).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    std::fs::write(roots.path(), &bytes).unwrap();
    assert!(matches!(
        Db::open(dir.path().join("a"), &k, opts(&roots)),
        Err(Error::Corrupt { .. })
    ));
}
