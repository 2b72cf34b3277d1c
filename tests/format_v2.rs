//! Record format v2 (docs/design.md, "Record format v2"): one nonce and one
//! tag per profile record with the keyring inside, consent records anchored
//! in the profile record, authenticated index entries — and the attacker
//! with write access to the raw store who puts older copies back, splices
//! fields, re-points an identifier or adds a profile to a `who` list. Every
//! case must end in a typed error, never in an answer. Plus: stores of
//! format v1 read, upgrade lazily and with `upgrade`, also across a kill.

mod common;

use std::path::Path;

use common::*;
use lethedb::{ConsentRecord, ConsentStatus, Db, Error, Identifier, ProfileId, Update, Value};

fn person(db: &Db, email: &str, name: &str) -> ProfileId {
    db.resolve(
        &[Identifier::email(email)],
        Update::new().set("name", name).set("phone", "+15550001111"),
    )
    .unwrap()
    .profile
    .unwrap()
}

fn consent(db: &Db, id: &ProfileId, purpose: &str, status: ConsentStatus) {
    db.record_consent(id, ConsentRecord::new(purpose, status))
        .unwrap();
}

/// The raw (key, value) pairs of column family `cf` whose key starts with `prefix`.
fn raw_entries(path: &Path, cf: &str, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let raw = raw(path);
    let h = raw.cf_handle(cf).unwrap();
    raw.iterator_cf(h, rocksdb::IteratorMode::Start)
        .map(Result::unwrap)
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn with_prefix(tag: u8, id: &ProfileId) -> Vec<u8> {
    let mut p = vec![tag];
    p.extend_from_slice(id.as_bytes());
    p
}

fn integrity(r: lethedb::Result<impl std::fmt::Debug>, what: &str) {
    match r {
        Err(Error::Integrity { .. }) => {}
        other => panic!("{what}: expected an integrity error, got {other:?}"),
    }
}

#[test]
fn records_are_v2_with_the_keyring_inside_and_reads_open_only_what_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let db = create(dir.path(), &key(1));
    let a = person(&db, "ada@example.com", "Ada");
    db.upsert(&a, Update::new().set("name", "Ada L.")).unwrap();
    assert_eq!(db.get(&a).unwrap().fields["name"], Value::from("Ada L."));
    assert_eq!(
        db.get_fields(&a, &["phone"]).unwrap().fields.len(),
        1,
        "one field asked, one returned"
    );
    drop(db);
    let rec = {
        let raw = raw(dir.path());
        raw_get(&raw, "profiles", &profile_key(&a))
    };
    assert_eq!(rec[0], 2, "format v2");
    let parsed = parse_record(&rec);
    assert!(parsed.fields.len() >= 3, "name, phone, $ids");
    assert!(
        raw_entries(dir.path(), "keys", &with_prefix(b'k', &a)).is_empty(),
        "no keyring entry of its own: it is inside the record"
    );
    // The identity entry is v2: profile id and an 8-byte MAC.
    let ids = raw_entries(dir.path(), "identities", b"i");
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].1.len(), 1 + 16 + 8);
    assert_eq!(ids[0].1[0], 2);
}

#[test]
fn a_withdrawn_consent_rolled_back_to_granted_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, before_cur, before_grant) = {
        let db = create(dir.path(), &key(1));
        let a = person(&db, "ada@example.com", "Ada");
        consent(&db, &a, "email_marketing", ConsentStatus::Granted);
        assert_eq!(db.consented_profiles("email_marketing").unwrap(), vec![a]);
        drop(db);
        let cur = raw_entries(dir.path(), "consents", &with_prefix(b'c', &a));
        let grant = raw_entries(dir.path(), "consents", b"g");
        assert_eq!((cur.len(), grant.len()), (1, 1));
        let db = reopen(dir.path(), &key(1));
        consent(&db, &a, "email_marketing", ConsentStatus::Withdrawn);
        assert!(db.consented_profiles("email_marketing").unwrap().is_empty());
        (a, cur, grant)
    };
    // The attacker puts the granted state back: current record and index entry.
    {
        let raw = raw(dir.path());
        raw_put(&raw, "consents", &before_cur[0].0, &before_cur[0].1);
        raw_put(&raw, "consents", &before_grant[0].0, &before_grant[0].1);
    }
    let db = reopen(dir.path(), &key(1));
    integrity(db.consent(&a, "email_marketing"), "consent");
    integrity(db.consents(&a), "consents");
    integrity(db.get_for_purpose(&a, "email_marketing"), "get_for_purpose");
    integrity(db.consented_profiles("email_marketing"), "who");
}

#[test]
fn a_removed_current_consent_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = {
        let db = create(dir.path(), &key(1));
        let a = person(&db, "ada@example.com", "Ada");
        consent(&db, &a, "analytics", ConsentStatus::Denied);
        a
    };
    {
        let current = raw_entries(dir.path(), "consents", &with_prefix(b'c', &a));
        assert_eq!(current.len(), 1);
        let raw = raw(dir.path());
        let h = raw.cf_handle("consents").unwrap();
        for (k, _) in current {
            raw.delete_cf(h, k).unwrap();
        }
    }
    let db = reopen(dir.path(), &key(1));
    integrity(db.consent(&a, "analytics"), "consent");
    integrity(db.consents(&a), "consents");
    integrity(db.get_for_purpose(&a, "analytics"), "get_for_purpose");
}

#[test]
fn an_older_profile_record_under_a_newer_consent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, old) = {
        let db = create(dir.path(), &key(1));
        let a = person(&db, "ada@example.com", "Ada");
        drop(db);
        let old = raw_get(&raw(dir.path()), "profiles", &profile_key(&a));
        let db = reopen(dir.path(), &key(1));
        consent(&db, &a, "email_marketing", ConsentStatus::Granted);
        (a, old)
    };
    raw_put(&raw(dir.path()), "profiles", &profile_key(&a), &old);
    let db = reopen(dir.path(), &key(1));
    integrity(db.consent(&a, "email_marketing"), "consent");
    integrity(db.consented_profiles("email_marketing"), "who");
}

#[test]
fn a_field_spliced_in_from_an_older_copy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = {
        let db = create(dir.path(), &key(1));
        person(&db, "ada@example.com", "Ada")
    };
    let old = parse_record(&raw_get(&raw(dir.path()), "profiles", &profile_key(&a)));
    {
        let db = reopen(dir.path(), &key(1));
        db.upsert(&a, Update::new().set("name", "Eve")).unwrap();
    }
    let mut now = parse_record(&raw_get(&raw(dir.path()), "profiles", &profile_key(&a)));
    let i = now
        .fields
        .iter()
        .position(|f| {
            old.fields
                .iter()
                .any(|o| o.id == f.id && o.payload != f.payload)
        })
        .expect("the changed field");
    let o = old
        .fields
        .iter()
        .find(|o| o.id == now.fields[i].id)
        .unwrap();
    now.fields[i].payload = o.payload.clone();
    raw_put(
        &raw(dir.path()),
        "profiles",
        &profile_key(&a),
        &encode_record(&now),
    );
    let db = reopen(dir.path(), &key(1));
    integrity(db.get(&a), "get");
    integrity(db.get_fields(&a, &["phone"]), "get_fields");
}

/// What format v1 accepted on its CRC alone is refused once a store holds
/// only format v2 (new stores; upgraded ones): a v1 profile record, a v1
/// identity entry and a v1 grant entry, each planted with a valid CRC.
#[test]
fn v1_records_planted_in_a_v2_store_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let db = create(dir.path(), &key(1));
        let a = person(&db, "ada@example.com", "Ada");
        let b = person(&db, "bob@example.com", "Bob");
        (a, b)
    };
    let crc = |mut v: Vec<u8>| {
        let c = crc32fast::hash(&v);
        v.extend_from_slice(&c.to_be_bytes());
        v
    };
    // Ada's e-mail re-pointed at Bob by a v1 entry.
    let entries = raw_entries(dir.path(), "identities", b"i");
    let (ka, _) = entries
        .iter()
        .find(|(_, v)| &v[1..17] == a.as_bytes())
        .unwrap()
        .clone();
    let mut v1_entry = vec![1u8];
    v1_entry.extend_from_slice(b.as_bytes());
    raw_put(&raw(dir.path()), "identities", &ka, &crc(v1_entry));
    let db = reopen(dir.path(), &key(1));
    integrity(db.lookup(&Identifier::email("ada@example.com")), "lookup");
    // Running `upgrade` on the marked store must not bless it.
    integrity(db.upgrade(|_| {}), "upgrade");
    integrity(
        db.lookup(&Identifier::email("ada@example.com")),
        "lookup after upgrade",
    );
    drop(db);
    // Bob listed as consenting by a v1 grant entry (purpose tag taken from
    // Ada's real grant).
    {
        let db = reopen(dir.path(), &key(1));
        consent(&db, &a, "email_marketing", ConsentStatus::Granted);
    }
    let grant = raw_entries(dir.path(), "consents", b"g");
    let mut key_b = grant[0].0[..9].to_vec();
    key_b.extend_from_slice(b.as_bytes());
    raw_put(&raw(dir.path()), "consents", &key_b, &crc(vec![1u8, 0]));
    let db = reopen(dir.path(), &key(1));
    integrity(db.consented_profiles("email_marketing"), "who");
    drop(db);
    // Bob's record replaced by a v1 record redirecting to Ada (no keys).
    let mut rec = vec![1u8];
    rec.extend_from_slice(&1u32.to_be_bytes());
    rec.extend_from_slice(&0i64.to_be_bytes());
    rec.extend_from_slice(&0i64.to_be_bytes());
    rec.push(1);
    rec.extend_from_slice(a.as_bytes());
    rec.extend_from_slice(&[7u8; 16]);
    rec.push(0);
    rec.extend_from_slice(&0u16.to_be_bytes());
    raw_put(&raw(dir.path()), "profiles", &profile_key(&b), &crc(rec));
    let db = reopen(dir.path(), &key(1));
    integrity(db.get(&b), "get");
    integrity(
        db.upsert(&b, Update::new().set("name", "Mallory")),
        "upsert",
    );
    drop(db);
    // Bob's record replaced by an "erased" record of the older form: a
    // forget must not take it for an erasure already done.
    let mut erased = vec![1u8];
    erased.extend_from_slice(&0u32.to_be_bytes());
    erased.extend_from_slice(&0i64.to_be_bytes());
    erased.extend_from_slice(&0i64.to_be_bytes());
    erased.push(2);
    erased.extend_from_slice(&1u64.to_be_bytes());
    erased.push(0);
    erased.extend_from_slice(&0u16.to_be_bytes());
    raw_put(&raw(dir.path()), "profiles", &profile_key(&b), &crc(erased));
    let db = reopen(dir.path(), &key(1));
    integrity(db.get(&b), "get of a planted erased record");
    integrity(db.forget(&b), "forget of a planted erased record");
    // Nor may `upgrade` turn it into a real tombstone.
    integrity(db.upgrade(|_| {}), "upgrade over a planted erased record");
    integrity(db.get(&b), "get after the refused upgrade");
}

#[test]
fn a_re_pointed_identity_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let db = create(dir.path(), &key(1));
        (
            person(&db, "ada@example.com", "Ada"),
            person(&db, "bob@example.com", "Bob"),
        )
    };
    let entries = raw_entries(dir.path(), "identities", b"i");
    let (ka, va) = entries
        .iter()
        .find(|(_, v)| &v[1..17] == a.as_bytes())
        .unwrap()
        .clone();
    let (kb, vb) = entries
        .iter()
        .find(|(_, v)| &v[1..17] == b.as_bytes())
        .unwrap()
        .clone();
    // Ada's e-mail re-pointed at Bob, keeping the MAC.
    let mut forged = va.clone();
    forged[1..17].copy_from_slice(b.as_bytes());
    raw_put(&raw(dir.path()), "identities", &ka, &forged);
    let db = reopen(dir.path(), &key(1));
    integrity(db.lookup(&Identifier::email("ada@example.com")), "lookup");
    integrity(
        db.resolve(&[Identifier::email("ada@example.com")], Update::new()),
        "resolve",
    );
    drop(db);
    // Bob's whole entry (MAC and all) copied under Ada's key.
    raw_put(&raw(dir.path()), "identities", &ka, &vb);
    let db = reopen(dir.path(), &key(1));
    integrity(db.lookup(&Identifier::email("ada@example.com")), "lookup");
    drop(db);
    raw_put(&raw(dir.path()), "identities", &ka, &va);
    let db = reopen(dir.path(), &key(1));
    assert_eq!(
        db.lookup(&Identifier::email("ada@example.com")).unwrap(),
        Some(a)
    );
    assert_eq!(
        db.lookup(&Identifier::email("bob@example.com")).unwrap(),
        Some(b)
    );
    let _ = kb;
}

#[test]
fn a_profile_added_to_a_who_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = {
        let db = create(dir.path(), &key(1));
        let a = person(&db, "ada@example.com", "Ada");
        let b = person(&db, "bob@example.com", "Bob");
        consent(&db, &a, "email_marketing", ConsentStatus::Granted);
        b
    };
    let grant = raw_entries(dir.path(), "consents", b"g");
    assert_eq!(grant.len(), 1);
    let mut key_b = grant[0].0[..9].to_vec();
    key_b.extend_from_slice(b.as_bytes());
    raw_put(&raw(dir.path()), "consents", &key_b, &grant[0].1);
    let db = reopen(dir.path(), &key(1));
    integrity(db.consented_profiles("email_marketing"), "who");
}

/// A store with people, consents, a merge and an erasure, then every
/// profile rewritten as format v1 did.
fn mixed_store(path: &Path, n: usize) -> Vec<(ProfileId, String)> {
    let db = create(path, &key(1));
    let mut out = Vec::new();
    for i in 0..n {
        let email = format!("p{i}@example.com");
        let id = person(&db, &email, &format!("P{i}"));
        if i % 3 == 0 {
            consent(&db, &id, "email_marketing", ConsentStatus::Granted);
        }
        out.push((id, email));
    }
    // p1 absorbs p2 (shared identifier), p4 is forgotten.
    db.resolve(
        &[
            Identifier::email("p1@example.com"),
            Identifier::email("p2@example.com"),
        ],
        Update::new(),
    )
    .unwrap();
    db.forget(&out[4].0).unwrap();
    for (id, _) in &out {
        match db.debug_downgrade_to_v1(id) {
            Ok(()) | Err(Error::ProfileErased { .. }) => {}
            Err(e) => panic!("downgrade {id}: {e}"),
        }
    }
    out
}

fn answers(db: &Db, people: &[(ProfileId, String)]) -> Vec<String> {
    people
        .iter()
        .map(|(id, email)| {
            format!(
                "{:?} {:?} {:?} {:?}",
                db.get(id).map(|p| p.fields),
                db.lookup(&Identifier::email(email.as_str())),
                db.consent(id, "email_marketing")
                    .map(|c| c.map(|c| c.status)),
                db.get_for_purpose(id, "email_marketing").map(|r| r.fields),
            )
        })
        .chain(std::iter::once(format!(
            "{:?}",
            db.consented_profiles("email_marketing")
        )))
        .collect()
}

fn count_v1(path: &Path) -> usize {
    raw_entries(path, "profiles", b"p")
        .iter()
        .filter(|(_, v)| v[0] == 1)
        .count()
}

#[test]
fn v1_records_read_upgrade_lazily_and_with_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let people = mixed_store(dir.path(), 12);
    let want = {
        let db = reopen(dir.path(), &key(1));
        answers(&db, &people)
    };
    assert!(count_v1(dir.path()) >= 10, "the store is of format v1");
    assert!(!raw_entries(dir.path(), "keys", b"k").is_empty());
    let db = reopen(dir.path(), &key(1));
    assert_eq!(answers(&db, &people), want, "v1 records answer the same");
    // A write upgrades its profile: record v2, keyring entry gone.
    let p0 = people[0].0;
    db.upsert(&p0, Update::new().set("name", "P0")).unwrap();
    consent(&db, &people[3].0, "email_marketing", ConsentStatus::Granted);
    drop(db);
    assert_eq!(
        raw_get(&raw(dir.path()), "profiles", &profile_key(&p0))[0],
        2
    );
    assert!(raw_entries(dir.path(), "keys", &with_prefix(b'k', &p0)).is_empty());
    let db = reopen(dir.path(), &key(1));
    assert_eq!(answers(&db, &people), want, "mixed formats answer the same");
    let done = db.upgrade(|_| {}).unwrap();
    assert!(done.finished);
    assert!(done.profiles_rewritten >= 9, "{done:?}");
    assert!(done.index_entries_rewritten >= 9, "{done:?}");
    assert_eq!(answers(&db, &people), want, "upgraded: the same answers");
    let again = db.upgrade(|_| {}).unwrap();
    assert_eq!(
        (again.profiles_rewritten, again.index_entries_rewritten),
        (0, 0)
    );
    drop(db);
    assert_eq!(count_v1(dir.path()), 0);
    assert!(raw_entries(dir.path(), "keys", b"k").is_empty());
    assert!(raw_entries(dir.path(), "identities", b"i")
        .iter()
        .all(|(_, v)| v[0] == 2));
    assert!(raw_entries(dir.path(), "consents", b"")
        .iter()
        .all(|(_, v)| v[0] == 2));
}

/// The child of `upgrade_survives_a_kill`: upgrades one profile per step,
/// announcing each step on stdout, until the parent kills it.
#[test]
#[ignore = "child process of upgrade_survives_a_kill"]
fn upgrade_child() {
    let Ok(path) = std::env::var("LETHEDB_UPGRADE_CHILD") else {
        return;
    };
    let db = reopen(Path::new(&path), &key(1));
    let mut from = None;
    loop {
        let s = db.upgrade_step(from, 1).unwrap();
        println!("step {}", s.profiles_rewritten);
        if s.finished {
            println!("finished");
            return;
        }
        from = s.next;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn upgrade_survives_a_kill() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let people = mixed_store(dir.path(), 60);
    let want = answers(&reopen(dir.path(), &key(1)), &people);
    let before = count_v1(dir.path());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["upgrade_child", "--ignored", "--exact", "--nocapture"])
        .env("LETHEDB_UPGRADE_CHILD", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut steps = 0;
    while steps < 20 {
        let line = lines.next().expect("child output").unwrap();
        if line.starts_with("step") {
            steps += 1;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = count_v1(dir.path());
    assert!(
        left < before && left > 0,
        "killed midway: {left} of {before} left"
    );
    let db = reopen(dir.path(), &key(1));
    assert_eq!(
        answers(&db, &people),
        want,
        "after the kill: the same answers"
    );
    assert!(db.upgrade(|_| {}).unwrap().finished);
    assert_eq!(answers(&db, &people), want, "finished: the same answers");
    drop(db);
    assert_eq!(count_v1(dir.path()), 0);
}

/// Every single-bit flip of a v2 identity entry or grant entry, put back
/// with the raw store, is a typed error at the read that uses it — never
/// another profile, never a listing.
#[test]
fn bit_flips_in_v2_index_entries_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = {
        let db = create(dir.path(), &key(1));
        let a = person(&db, "ada@example.com", "Ada");
        consent(&db, &a, "email_marketing", ConsentStatus::Granted);
        a
    };
    let (ki, vi) = raw_entries(dir.path(), "identities", b"i")[0].clone();
    let (kg, vg) = raw_entries(dir.path(), "consents", b"g")[0].clone();
    for (cf, k, v) in [("identities", &ki, &vi), ("consents", &kg, &vg)] {
        for pos in 0..v.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = v.clone();
                bad[pos] ^= bit;
                raw_put(&raw(dir.path()), cf, k, &bad);
                let db = reopen(dir.path(), &key(1));
                let r = if cf == "identities" {
                    db.lookup(&Identifier::email("ada@example.com")).map(|_| ())
                } else {
                    db.consented_profiles("email_marketing").map(|_| ())
                };
                assert!(
                    matches!(
                        r,
                        Err(Error::Integrity { .. }
                            | Error::Corrupt { .. }
                            | Error::UnsupportedFormat { .. })
                    ),
                    "{cf} flip {bit:#x} at {pos}: {r:?}"
                );
            }
        }
        raw_put(&raw(dir.path()), cf, k, v);
    }
    let db = reopen(dir.path(), &key(1));
    assert_eq!(
        db.lookup(&Identifier::email("ada@example.com")).unwrap(),
        Some(a)
    );
    assert_eq!(db.consented_profiles("email_marketing").unwrap(), vec![a]);
}
