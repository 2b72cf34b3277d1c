//! Blind-index rotation: online (lookups, resolves, merges, unmerges and
//! erasures between steps answer as the specification says), resumable
//! after a crash between steps, and complete (afterwards no entry under
//! the old key is left in the index).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lethedb::{Db, Identifier, MemoryKeyProvider, Options, ProfileId, Update};

fn opts() -> Options {
    Options::new()
        .create_if_missing(true)
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(3600))
}

/// What the specification says each identifier resolves to: the model,
/// kept by the test from the operations it performs, never from the
/// engine.
struct Model {
    owner: BTreeMap<String, Option<ProfileId>>,
}

fn email(i: usize) -> String {
    format!("person{i:04}@example.com")
}
fn device(i: usize) -> String {
    format!("dev-{i:04}")
}

impl Model {
    fn check(&self, db: &Db, ctx: &str) {
        for (k, want) in &self.owner {
            let id = if let Some(e) = k.strip_prefix("e:") {
                Identifier::email(e)
            } else {
                Identifier::device_id(&k[2..])
            };
            assert_eq!(db.lookup(&id).unwrap(), *want, "{ctx}: {k}");
        }
    }
}

fn populate(db: &Db, n: usize) -> (Model, Vec<ProfileId>) {
    let mut owner = BTreeMap::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let p = db
            .resolve(
                &[
                    Identifier::email(email(i)),
                    Identifier::device_id(device(i)),
                ],
                Update::new().set("n", i as i64),
            )
            .unwrap()
            .profile
            .unwrap();
        owner.insert(format!("e:{}", email(i)), Some(p));
        owner.insert(format!("d:{}", device(i)), Some(p));
        ids.push(p);
    }
    (Model { owner }, ids)
}

/// Index entries in the raw store.
fn index_entries(path: &Path) -> usize {
    let raw = common::raw(path);
    let cf = raw.cf_handle("identities").unwrap();
    raw.iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|kv| kv.unwrap())
        .filter(|(k, _)| k[0] == b'i')
        .count()
}

#[test]
fn lookups_and_writes_stay_right_before_during_and_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let keys = MemoryKeyProvider::generate().unwrap();
    let db = Db::open(&path, &keys, opts()).unwrap();
    let (mut m, ids) = populate(&db, 200);
    m.check(&db, "before");
    let before = db.key_tree_status().unwrap();
    assert_eq!(
        (before.blind_index_generation, before.blind_index_rotating),
        (1, false)
    );

    let mut steps = 0;
    let mut moved = 0;
    let mut n = 200;
    loop {
        let s = db.rotate_blind_index_step(20).unwrap();
        steps += 1;
        moved += s.entries_moved;
        m.check(&db, &format!("after step {steps}"));
        if s.finished {
            break;
        }
        assert!(db.key_tree_status().unwrap().blind_index_rotating);
        match steps {
            // A new person (random id: either side of the cursor).
            1 | 4 => {
                let p = db
                    .resolve(
                        &[
                            Identifier::email(email(n)),
                            Identifier::device_id(device(n)),
                        ],
                        Update::new(),
                    )
                    .unwrap()
                    .profile
                    .unwrap();
                m.owner.insert(format!("e:{}", email(n)), Some(p));
                m.owner.insert(format!("d:{}", device(n)), Some(p));
                n += 1;
            }
            // A merge of two people: the older profile survives and owns
            // both people's identifiers.
            2 => {
                let out = db
                    .resolve(
                        &[
                            Identifier::device_id(device(3)),
                            Identifier::device_id(device(150)),
                        ],
                        Update::new(),
                    )
                    .unwrap();
                assert_eq!(out.merges.len(), 1);
                let s = ids[3];
                assert_eq!(out.profile, Some(s));
                m.owner.insert(format!("e:{}", email(150)), Some(s));
                m.owner.insert(format!("d:{}", device(150)), Some(s));
                // Undone a step later.
                let merge = out.merges[0];
                moved += db.rotate_blind_index_step(20).unwrap().entries_moved;
                m.check(&db, "merged, one step on");
                db.unmerge(&merge).unwrap();
                m.owner.insert(format!("e:{}", email(150)), Some(ids[150]));
                m.owner.insert(format!("d:{}", device(150)), Some(ids[150]));
            }
            // An erasure: the person's identifiers resolve to nothing.
            3 => {
                db.forget(&ids[77]).unwrap();
                m.owner.insert(format!("e:{}", email(77)), None);
                m.owner.insert(format!("d:{}", device(77)), None);
            }
            // A new identifier attached to an existing person.
            5 => {
                let p = db
                    .resolve(
                        &[
                            Identifier::device_id(device(10)),
                            Identifier::email("extra@example.com"),
                        ],
                        Update::new(),
                    )
                    .unwrap()
                    .profile;
                assert_eq!(p, Some(ids[10]));
                m.owner.insert("e:extra@example.com".into(), Some(ids[10]));
            }
            _ => {}
        }
        m.check(&db, &format!("after the write of step {steps}"));
    }
    assert!(steps >= 7, "several steps ({steps})");
    // Every entry there was at the start was moved once (but the erased
    // person's two, and the merged person's two, which merge and unmerge
    // re-pointed under the key their owner needed then), plus those the
    // writes made for profiles above the cursor (at most 4 + 1 + 2).
    assert!((396..=407).contains(&moved), "moved {moved}");
    let after = db.key_tree_status().unwrap();
    assert_eq!(
        (after.blind_index_generation, after.blind_index_rotating),
        (2, false)
    );
    m.check(&db, "after");
    // The erasure purges under the new key, and the chain verifies.
    db.purge().unwrap();
    m.check(&db, "after the purge");
    db.verify_audit().unwrap();
    let kinds: Vec<String> = db
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.iter().any(|k| k == "blind_index_rotation_started"));
    assert!(kinds.iter().any(|k| k == "blind_index_rotation_finished"));
    drop(db);
    // Nothing under the old key is left: one entry per identifier the
    // model says resolves.
    let live = m.owner.values().filter(|v| v.is_some()).count();
    assert_eq!(index_entries(&path), live);
    let db = Db::open(&path, &keys, opts()).unwrap();
    m.check(&db, "reopened");
}

#[test]
fn a_crash_between_any_two_steps_resumes_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let keys = MemoryKeyProvider::generate().unwrap();
    let db = Db::open(&path, &keys, opts()).unwrap();
    let (m, _) = populate(&db, 120);
    drop(db);
    let mut reopen = 0;
    loop {
        // Each step in a process of its own: the store is closed (as by a
        // crash) after every one.
        let db = Db::open(&path, &keys, opts()).unwrap();
        m.check(&db, &format!("reopen {reopen}"));
        let s = db.rotate_blind_index_step(25).unwrap();
        reopen += 1;
        if s.finished {
            break;
        }
        assert!(db.key_tree_status().unwrap().blind_index_rotating);
    }
    assert!(reopen >= 5);
    let db = Db::open(&path, &keys, opts()).unwrap();
    m.check(&db, "finished");
    assert_eq!(db.key_tree_status().unwrap().blind_index_generation, 2);
    drop(db);
    assert_eq!(index_entries(&path), 240);
}

#[test]
fn a_master_key_rotation_in_the_middle_keeps_the_blind_index_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let old = MemoryKeyProvider::generate().unwrap();
    let db = Db::open(&path, &old, opts()).unwrap();
    let (m, _) = populate(&db, 80);
    db.rotate_blind_index_step(20).unwrap();
    drop(db);
    let new = MemoryKeyProvider::generate().unwrap();
    Db::rotate_master(&path, &old, &new, Options::new()).unwrap();
    let db = Db::open(&path, &new, opts()).unwrap();
    assert!(db.key_tree_status().unwrap().blind_index_rotating);
    m.check(&db, "mid-rotation under the new master key");
    let done = db.rotate_blind_index(|_| {}).unwrap();
    assert!(done.finished);
    m.check(&db, "finished");
}

/// Resolves of known identifiers racing rotation starts, steps and
/// finishes: each must find its person (never create one, never move an
/// identifier). Keys chosen before the identity lock and used after it
/// would miss an entry a step had moved meanwhile.
#[test]
fn resolves_racing_rotations_never_lose_an_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let keys = MemoryKeyProvider::generate().unwrap();
    let db = std::sync::Arc::new(Db::open(dir.path().join("s"), &keys, opts()).unwrap());
    let (m, ids) = populate(&db, 24);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (db, stop, ids) = (db.clone(), stop.clone(), ids.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let i = (n % ids.len() as u64) as usize;
                let out = db
                    .resolve(&[Identifier::device_id(device(i))], Update::new())
                    .unwrap();
                assert!(!out.created, "resolve {n} created a profile for person {i}");
                assert_eq!(out.profile, Some(ids[i]), "resolve {n}");
                n += 1;
            }
            n
        })
    };
    let started = std::time::Instant::now();
    let mut rotations = 0;
    while started.elapsed() < Duration::from_secs(3) {
        if db.rotate_blind_index_step(1).unwrap().finished {
            rotations += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let resolves = reader.join().expect("no resolve went wrong");
    assert!(
        rotations > 10 && resolves > 1000,
        "{rotations} rotations, {resolves} resolves"
    );
    m.check(&db, "after the race");
}
