//! Erasure: forget, forget_field, suppression, purge remanence, crash
//! safety, certificates, the audit chain, retention, export and restore.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lethedb::forensics::scan_dir;
use lethedb::{
    ConsentRecord, ConsentStatus, Db, Error, FieldClass, Identifier, Options, ProfileId,
    RejectReason, Schema, Timestamp, Update, Value,
};

fn opts() -> Options {
    // Purge only when the tests ask for it.
    Options::new()
        .create_if_missing(true)
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(3600))
}

fn open(path: &Path, k: &lethedb::MemoryKeyProvider) -> Db {
    Db::open(path, k, opts()).expect("open")
}

fn email(i: usize) -> String {
    format!("person{i:05}@example.com")
}

fn phone(i: usize) -> String {
    format!("+1202555{:04}", i % 10_000)
}

/// `n` people with e-mail, phone, marker fields and a consent record.
/// A new person with one identifier and `update` (through `resolve`).
fn person(db: &Db, id: Identifier, update: Update) -> ProfileId {
    db.resolve(&[id], update).unwrap().profile.unwrap()
}

fn populate(db: &Db, n: usize) -> Vec<ProfileId> {
    (0..n)
        .map(|i| {
            let out = db
                .resolve_with_consents(
                    &[Identifier::email(email(i)), Identifier::phone(phone(i))],
                    Update::new()
                        .set("name", format!("MARKER-{i:05}-name-QXJ"))
                        .set("city", format!("MARKER-{i:05}-city-QXJ"))
                        .set("score", i as i64),
                    &[ConsentRecord::new("analytics", ConsentStatus::Granted)],
                )
                .expect("resolve");
            out.profile.expect("profile")
        })
        .collect()
}

fn scan_hits(path: &Path, needles: &[Vec<u8>]) -> usize {
    scan_dir(path, needles).expect("scan").hits.len()
}

#[test]
fn forget_makes_reads_lookups_and_reuse_fail_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let k = common::key(1);
    let db = open(dir.path(), &k);
    let ids = populate(&db, 5);
    let victim = ids[2];
    let r = db.forget(&victim).unwrap();
    assert!(!r.already_erased);
    assert_eq!(r.profiles, vec![victim]);
    assert_eq!(r.index_entries_removed, 2);
    assert_eq!(r.suppressed, 2);
    assert!(r.consent_records_removed >= 2);
    assert!(
        matches!(db.get(&victim), Err(Error::ProfileErased { profile, .. }) if profile == victim)
    );
    assert_eq!(db.lookup(&Identifier::email(email(2))).unwrap(), None);
    assert!(matches!(
        db.upsert(&victim, Update::new().set("name", "back")),
        Err(Error::ProfileErased { .. })
    ));
    assert!(matches!(
        db.record_consent(
            &victim,
            ConsentRecord::new("analytics", ConsentStatus::Granted)
        ),
        Err(Error::ProfileErased { .. })
    ));
    let again = db.forget(&victim).unwrap();
    assert!(again.already_erased);
    assert_eq!(again.erasure_id, r.erasure_id);
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(
            db.get(id).unwrap().fields["name"],
            Value::from(format!("MARKER-{i:05}-name-QXJ"))
        );
    }
    assert!(!db.profile_ids().unwrap().any(|p| p.unwrap() == victim));
    assert!(!db.exists(&victim).unwrap() && db.exists(&ids[0]).unwrap());
    // The erasure survives a reopen.
    drop(db);
    let db = open(dir.path(), &k);
    assert!(matches!(db.get(&victim), Err(Error::ProfileErased { .. })));
    assert_eq!(db.pending_erasures().unwrap().0, 1);
    assert!(matches!(
        db.forget(&ProfileId::from_bytes([9; 16])),
        Err(Error::ProfileNotFound(_))
    ));
}

#[test]
fn forgetting_a_merged_person_erases_every_alias() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), &common::key(2));
    let a = person(
        &db,
        Identifier::email("ada@example.com"),
        Update::new().set("name", "Ada"),
    );
    let b = person(
        &db,
        Identifier::phone("+442071838750"),
        Update::new().set("city", "London"),
    );
    let m = db
        .resolve(
            &[
                Identifier::email("ada@example.com"),
                Identifier::phone("+442071838750"),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(m.merges.len(), 1);
    // Forgetting through the merged-away id erases the whole person.
    let r = db.forget(&b).unwrap();
    assert_eq!(r.profiles.len(), 2);
    assert!(r.profiles.contains(&a) && r.profiles.contains(&b));
    assert_eq!(r.key_ids.len(), 2);
    for id in [a, b] {
        assert!(matches!(db.get(&id), Err(Error::ProfileErased { .. })));
        assert!(db.merges(&id).unwrap().is_empty());
    }
    assert_eq!(
        db.lookup(&Identifier::phone("+442071838750")).unwrap(),
        None
    );
    assert!(db.unmerge(&m.merges[0]).is_err());
}

#[test]
fn suppression_blocks_reingest_until_unsuppressed() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), &common::key(3));
    let ids = populate(&db, 3);
    db.forget(&ids[1]).unwrap();
    let again = db
        .resolve(
            &[Identifier::email(email(1).to_uppercase())],
            Update::new().set("name", "x"),
        )
        .unwrap();
    assert_eq!(again.profile, None);
    assert_eq!(again.rejected.len(), 1);
    assert_eq!(again.rejected[0].reason, RejectReason::Suppressed);
    // A request mixing a live person's id and a suppressed one attaches only the live one.
    let mixed = db
        .resolve(
            &[Identifier::email(email(0)), Identifier::phone(phone(1))],
            Update::new(),
        )
        .unwrap();
    assert_eq!(mixed.profile, Some(ids[0]));
    assert_eq!(mixed.rejected[0].reason, RejectReason::Suppressed);
    assert_eq!(db.suppression_hits(), 2);
    // Segment ingest counts them too.
    let event = format!(
        r#"{{"type":"identify","userId":null,"anonymousId":"anon-1","traits":{{"email":"{}"}}}}"#,
        email(1)
    );
    let parsed = lethedb::ingest::parse_event(&db.schema(), &event).unwrap();
    let out = lethedb::ingest::apply_event(&db, parsed).unwrap();
    assert_eq!(db.lookup(&Identifier::email(email(1))).unwrap(), None);
    assert!(out
        .rejected
        .iter()
        .any(|r| r.reason == RejectReason::Suppressed));

    assert!(db.unsuppress(&Identifier::email(email(1))).unwrap());
    assert!(!db.unsuppress(&Identifier::email(email(1))).unwrap());
    let back = db
        .resolve(&[Identifier::email(email(1))], Update::new())
        .unwrap();
    assert!(back.created);
    assert_ne!(back.profile, Some(ids[1]));

    // Suppression can be switched off.
    drop(db);
    let db = Db::open(
        dir.path(),
        &common::key(3),
        opts().suppress_forgotten(false),
    )
    .unwrap();
    let p = db
        .resolve(&[Identifier::phone(phone(1))], Update::new())
        .unwrap();
    assert!(p.created);
}

#[test]
fn forget_field_rekeys_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let k = common::key(4);
    let db = open(dir.path(), &k);
    let ids = populate(&db, 3);
    let id = ids[0];
    let before = db.debug_key_material(&id).unwrap();
    let r = db.forget_fields(&id, &["city", "email"]).unwrap();
    assert_eq!(r.fields, vec!["city".to_string(), "email".to_string()]);
    assert_eq!(r.key_ids.len(), 1);
    assert_eq!(r.index_entries_removed, 1);
    let p = db.get(&id).unwrap();
    assert!(!p.fields.contains_key("city"));
    assert_eq!(p.fields["name"], Value::from("MARKER-00000-name-QXJ"));
    assert_eq!(p.fields["score"], Value::Int(0));
    // Consent records were re-sealed under the new keyring.
    assert_eq!(
        db.consent(&id, "analytics").unwrap().unwrap().status,
        ConsentStatus::Granted
    );
    assert_eq!(db.consent_history(&id).unwrap().len(), 1);
    // The e-mail identifier is gone; the phone still resolves.
    assert_eq!(db.lookup(&Identifier::email(email(0))).unwrap(), None);
    assert_eq!(db.lookup(&Identifier::phone(phone(0))).unwrap(), Some(id));
    assert_eq!(db.identifiers(&id).unwrap().len(), 1);
    // A new keyring: the stored value and seed changed.
    let after = db.debug_key_material(&id).unwrap();
    assert_ne!(before[0], after[0]);
    assert_ne!(before[1], after[1]);
    // Nothing left to erase: a no-op receipt.
    let none = db.forget_field(&id, "city").unwrap();
    assert_eq!(none.erasure_id, None);
    db.upsert(&id, Update::new().set("city", "Paris")).unwrap();
    assert_eq!(db.get(&id).unwrap().fields["city"], Value::from("Paris"));
    drop(db);
    let db = open(dir.path(), &k);
    assert_eq!(db.get(&id).unwrap().fields["city"], Value::from("Paris"));
    assert!(matches!(
        db.forget_field(&id, "$ids"),
        Err(Error::InvalidFieldName { .. })
    ));
}

/// Scan needles for a profile's key material: the stored keyring value,
/// the raw seed, and the last 12 bytes of each blind-index key (SST blocks
/// store keys prefix-compressed, so only a key's tail is sure to appear).
fn material(db: &Db, id: &ProfileId) -> Vec<Vec<u8>> {
    db.debug_key_material(id)
        .unwrap()
        .into_iter()
        .map(|m| if m.len() == 17 { m[5..].to_vec() } else { m })
        .collect()
}

/// The remanence test: after forget + purge, no byte of any file under
/// the store directory holds a victim's stored keyring, keyring seed or
/// blind-index key, while every other profile still reads.
#[test]
fn purge_leaves_no_victim_key_material_in_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(5);
    // Uncompressed blocks: every stored byte appears verbatim, so the scan
    // can see key material when it is there.
    let open = |p: &Path, k| Db::open(p, k, opts().compression(false)).unwrap();
    let db = open(&path, &k);
    let ids = populate(&db, 400);
    // One victim absorbed another profile (a merged alias).
    let alias = person(
        &db,
        Identifier::user_id("alias-user-0001"),
        Update::new().set("city", "Oslo"),
    );
    db.resolve(
        &[
            Identifier::email(email(7)),
            Identifier::user_id("alias-user-0001"),
        ],
        Update::new(),
    )
    .unwrap();
    db.compact().unwrap();
    // More writes after compaction: victims' data sits in several levels and the WAL.
    for id in ids.iter().step_by(3) {
        db.upsert(id, Update::new().set("score", 1)).unwrap();
    }
    db.flush().unwrap();

    let mut victims: Vec<ProfileId> = ids.iter().step_by(37).copied().collect();
    victims.push(ids[7]);
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for v in &victims {
        needles.extend(material(&db, v));
    }
    let alias_keyring = {
        drop(db);
        let raw = common::raw(&path);
        let v = common::record_keyring(&common::raw_get(
            &raw,
            "profiles",
            &common::profile_key(&alias),
        ));
        drop(raw);
        v
    };
    needles.push(alias_keyring);
    let db = open(&path, &k);
    // The scan sees the stored keyrings and index keys before erasure.
    let seen_before = scan_hits(&path, &needles);
    assert!(
        seen_before >= victims.len(),
        "only {seen_before} hits before"
    );

    let field_victim = ids[100];
    let fv_before = material(&db, &field_victim);
    for v in &victims {
        db.forget(v).unwrap();
    }
    db.forget_field(&field_victim, "city").unwrap();
    let report = db.purge().unwrap();
    assert_eq!(report.erasures.len(), victims.len() + 1);
    assert_eq!(report.certificates.len(), victims.len() + 1);
    assert!(report.bytes_rewritten > 0 && report.bytes_rewritten <= report.store_bytes);

    let hits = scan_dir(&path, &needles).unwrap();
    assert!(
        hits.hits.is_empty(),
        "victim key material found after purge: {:?}",
        hits.hits.iter().take(5).collect::<Vec<_>>()
    );
    // The field victim's old keyring (value and seed) is gone, its new one is live.
    assert_eq!(scan_hits(&path, &fv_before[..2]), 0);
    assert_eq!(
        db.get(&field_victim).unwrap().fields["score"],
        Value::Int(100)
    );
    for (i, id) in ids.iter().enumerate() {
        if victims.contains(id) {
            assert!(matches!(db.get(id), Err(Error::ProfileErased { .. })));
            continue;
        }
        let p = db.get(id).unwrap();
        assert_eq!(
            p.fields["name"],
            Value::from(format!("MARKER-{i:05}-name-QXJ"))
        );
        assert_eq!(db.lookup(&Identifier::phone(phone(i))).unwrap(), Some(*id));
    }
    db.verify_audit().unwrap();
}

#[test]
fn certificate_verifies_and_any_changed_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let k = common::key(6);
    let db = open(&path, &k);
    let ids = populate(&db, 4);
    let r = db.forget(&ids[0]).unwrap();
    let report = db.purge().unwrap();
    let cert = report.certificates[0].clone();
    let pk = db.public_key().unwrap();
    let check = lethedb::verify_certificate(&cert, &pk).unwrap();
    assert_eq!(check.certificate.erasure_id, r.erasure_id.unwrap());
    assert_eq!(check.certificate.subject_ref, r.subject_ref);
    assert_eq!(check.certificate.key_ids_destroyed, r.key_ids);
    assert_eq!(db.certificates().unwrap(), vec![cert.clone()]);
    // PII-free: no identifier, no profile id.
    assert!(!cert.contains("example.com"));
    assert!(!cert.contains(&ids[0].to_string()));
    let bytes = cert.as_bytes();
    for i in 0..bytes.len() {
        let mut t = bytes.to_vec();
        t[i] = if t[i] == b'0' { b'1' } else { b'0' };
        if let Ok(s) = String::from_utf8(t) {
            assert!(
                lethedb::verify_certificate(&s, &pk).is_err(),
                "byte {i} changed and the certificate still verified"
            );
        }
    }
    // Another key does not verify it.
    let other = open(&dir.path().join("other"), &common::key(7));
    assert!(lethedb::verify_certificate(&cert, &other.public_key().unwrap()).is_err());
    drop(db);
    // Keyless check of the chain position.
    lethedb::verify_certificate_in_store(&path, &cert, &pk).unwrap();
    assert!(lethedb::verify_certificate_in_store(dir.path().join("other"), &cert, &pk).is_err());
}

fn audit_key(seq: u64) -> Vec<u8> {
    let mut k = vec![b'a'];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[test]
fn audit_chain_detects_altered_removed_and_reordered_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let k = common::key(8);
    let db = open(&path, &k);
    let ids = populate(&db, 4);
    db.forget(&ids[1]).unwrap();
    db.purge().unwrap();
    db.export(&ids[0]).unwrap();
    db.set_processing_flags(
        &ids[2],
        lethedb::ProcessingFlags {
            restricted: true,
            objected: false,
        },
    )
    .unwrap();
    let report = db.verify_audit().unwrap();
    assert!(report.entries >= 8, "{report:?}");
    let kinds: Vec<String> = db
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        "signing_key_created",
        "consent",
        "forget",
        "purge",
        "export",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} entry in {kinds:?}"
        );
    }
    drop(db);
    lethedb::verify_audit_log(&path).unwrap();

    type Tamper = fn(&rocksdb::DB);
    let tampers: [(&str, Tamper); 4] = [
        ("altered", |raw| {
            let mut v = common::raw_get(raw, "audit", &audit_key(3));
            let n = v.len();
            v[n / 2] ^= 0x01;
            common::raw_put(raw, "audit", &audit_key(3), &v);
        }),
        ("removed", |raw| {
            raw.delete_cf(raw.cf_handle("audit").unwrap(), audit_key(2))
                .unwrap();
        }),
        ("reordered", |raw| {
            let a = common::raw_get(raw, "audit", &audit_key(2));
            let b = common::raw_get(raw, "audit", &audit_key(3));
            common::raw_put(raw, "audit", &audit_key(2), &b);
            common::raw_put(raw, "audit", &audit_key(3), &a);
        }),
        ("tail removed", |raw| {
            let mut it = raw.iterator_cf(
                raw.cf_handle("audit").unwrap(),
                rocksdb::IteratorMode::Start,
            );
            let mut last = None;
            while let Some(Ok((key, _))) = it.next() {
                if key[0] == b'a' {
                    last = Some(key.to_vec());
                }
            }
            raw.delete_cf(raw.cf_handle("audit").unwrap(), last.unwrap())
                .unwrap();
        }),
    ];
    for (name, tamper) in tampers {
        let copy = dir.path().join(name.replace(' ', "-"));
        common::copy_dir(&path, &copy);
        {
            let raw = common::raw(&copy);
            tamper(&raw);
        }
        match lethedb::verify_audit_log(&copy) {
            Err(Error::AuditChain { .. }) => {}
            other => panic!("{name}: audit verify gave {other:?}"),
        }
    }
}

#[test]
fn restore_of_an_old_backup_does_not_resurrect_the_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live");
    let k = common::key(9);
    let db = open(&path, &k);
    let ids = populate(&db, 20);
    db.forget(&ids[0]).unwrap();
    db.purge().unwrap();
    let backup = dir.path().join("backup");
    let info = db.backup(&backup).unwrap();
    assert_eq!(info.last_erasure, 1);
    // Erasures after the backup was taken.
    db.forget(&ids[5]).unwrap();
    db.forget_field(&ids[6], "city").unwrap();
    db.purge().unwrap();
    // The backup itself cannot be opened as a live store.
    assert!(matches!(
        Db::open(backup.join("store"), &k, opts()),
        Err(Error::InvalidInput(_))
    ));
    let restored_path = dir.path().join("restored");
    let (restored, report) = Db::restore(&backup, &restored_path, &k, opts()).unwrap();
    // The purge re-keyed the backup: erasures 2 and 3 are already in it.
    assert_eq!(report.replayed, Vec::<u64>::new());
    // The backup's ledger holds no line of an erasure the copy holds:
    // erasure 1 was in it when taken, 2 and 3 were applied to it by the
    // purge's re-key (and their lines pruned).
    assert_eq!(report.already_present, 0);
    assert_eq!(report.certificates.len(), 2, "{report:?}");
    for gone in [ids[0], ids[5]] {
        assert!(matches!(
            restored.get(&gone),
            Err(Error::ProfileErased { .. })
        ));
    }
    assert_eq!(restored.lookup(&Identifier::email(email(5))).unwrap(), None);
    assert!(!restored.get(&ids[6]).unwrap().fields.contains_key("city"));
    assert_eq!(
        restored.get(&ids[7]).unwrap().fields["city"],
        Value::from("MARKER-00007-city-QXJ")
    );
    restored.verify_audit().unwrap();
    // A restore into a non-empty directory is refused.
    assert!(Db::restore(&backup, &path, &k, opts()).is_err());
}

/// Found by the reference model (issue 17): an erasure acknowledged but not
/// yet purged was missing from the registered backup's ledger (written
/// only at purge), so a restore in between brought the person back.
#[test]
fn a_restore_before_the_purge_still_replays_the_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live");
    let k = common::key(19);
    let db = open(&path, &k);
    let ids = populate(&db, 6);
    let backup = dir.path().join("backup");
    db.backup(&backup).unwrap();
    db.forget(&ids[2]).unwrap();
    db.forget_field(&ids[3], "city").unwrap();
    drop(db);
    let (restored, report) = Db::restore(&backup, dir.path().join("restored"), &k, opts()).unwrap();
    assert_eq!(report.replayed, vec![1, 2], "{report:?}");
    assert!(matches!(
        restored.get(&ids[2]),
        Err(Error::ProfileErased { .. })
    ));
    assert_eq!(restored.lookup(&Identifier::email(email(2))).unwrap(), None);
    assert!(!restored.get(&ids[3]).unwrap().fields.contains_key("city"));
    assert!(restored.get(&ids[4]).unwrap().fields.contains_key("city"));
}

/// Found by the reference model (issue 17): a purge that re-keyed a
/// registered backup left the forgotten person's keyring and blind-index
/// keys in the copy's files (replay deleted them, nothing compacted), and
/// the backup's ledger listed the erased profile ids in hex.
#[test]
fn a_purged_backup_holds_nothing_of_the_forgotten_person() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live");
    let k = common::key(20);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    let ids = populate(&db, 30);
    db.flush().unwrap();
    let backup = dir.path().join("backup");
    db.backup(&backup).unwrap();
    let mut needles = Vec::new();
    for m in material(&db, &ids[4]) {
        needles.extend(common::encodings(&m));
    }
    let id = ids[4];
    needles.extend(common::encodings(id.as_bytes()));
    db.forget(&id).unwrap();
    db.purge().unwrap();
    let r = lethedb::forensics::scan_dir(&backup, &needles).unwrap();
    assert!(r.hits.is_empty(), "{:?}", &r.hits[..r.hits.len().min(3)]);
    assert!(r.files > 3);
    drop(db);
    // The backup still restores, without the person.
    let (restored, _) = Db::restore(&backup, dir.path().join("restored"), &k, opts()).unwrap();
    assert!(matches!(
        restored.get(&id),
        Err(Error::ProfileErased { .. })
    ));
    assert!(restored.get(&ids[5]).is_ok());
}

#[test]
fn retention_erases_expired_fields_then_inactive_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let k = common::key(10);
    let schema = Schema::new()
        .field("plan", FieldClass::NonPersonal, None)
        .retention("city", 30)
        .inactive_profile_days(365);
    let db = Db::open(dir.path(), &k, opts().schema(schema)).unwrap();
    let ids = populate(&db, 5);
    let day = 86_400_000_000i64;
    let now = Timestamp::now().as_micros();
    let r = db.run_retention(Timestamp(now + 10 * day)).unwrap();
    assert_eq!(r.fields_erased, 0);
    let r = db.run_retention(Timestamp(now + 40 * day)).unwrap();
    assert_eq!(r.fields_erased, 5);
    assert_eq!(r.profiles_forgotten, 0);
    assert_eq!(r.certificates.len(), 5);
    assert!(!db.get(&ids[0]).unwrap().fields.contains_key("city"));
    let r = db.run_retention(Timestamp(now + 400 * day)).unwrap();
    assert_eq!(r.profiles_forgotten, 5);
    assert!(matches!(db.get(&ids[0]), Err(Error::ProfileErased { .. })));
    let pk = db.public_key().unwrap();
    for c in &r.certificates {
        lethedb::verify_certificate(c, &pk).unwrap();
    }
}

#[test]
fn export_bundles_fields_identifiers_consents_lineage_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), &common::key(11));
    let ids = populate(&db, 2);
    let b = person(
        &db,
        Identifier::user_id("u-77"),
        Update::new().set("plan", "pro"),
    );
    db.resolve(
        &[Identifier::email(email(0)), Identifier::user_id("u-77")],
        Update::new(),
    )
    .unwrap();
    let bundle = db.export(&b).unwrap();
    assert_eq!(bundle["profile_id"], ids[0].to_string());
    assert_eq!(bundle["fields"]["name"], "MARKER-00000-name-QXJ");
    assert_eq!(bundle["fields"]["plan"], "pro");
    let idents = bundle["identifiers"].as_array().unwrap();
    assert_eq!(idents.len(), 3);
    assert!(idents.iter().any(|i| i["value"] == email(0)));
    assert_eq!(bundle["consents"].as_array().unwrap().len(), 1);
    assert_eq!(bundle["merges"].as_array().unwrap().len(), 1);
    let audit = bundle["audit"].as_array().unwrap();
    let kinds: Vec<&str> = audit.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"consent") && kinds.contains(&"merge"),
        "{kinds:?}"
    );
    assert_eq!(
        bundle["subject_ref"],
        db.subject_reference(&ids[0]).unwrap()
    );
    // The export is itself audited.
    assert_eq!(db.audit_log().unwrap().last().unwrap().kind, "export");
}

#[test]
fn automatic_purge_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), &common::key(12), opts().purge_after_erasures(3)).unwrap();
    let ids = populate(&db, 5);
    db.forget(&ids[0]).unwrap();
    db.forget(&ids[1]).unwrap();
    assert_eq!(db.pending_erasures().unwrap().0, 2);
    db.forget(&ids[2]).unwrap();
    assert_eq!(db.pending_erasures().unwrap().0, 0);
    assert_eq!(db.certificates().unwrap().len(), 3);
}

#[test]
fn automatic_purge_by_deadline_with_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(
        Db::open(
            dir.path(),
            &common::key(13),
            opts().purge_deadline(Duration::from_millis(200)),
        )
        .unwrap(),
    );
    let _t = Db::start_purge_scheduler(&db);
    let ids = populate(&db, 2);
    db.forget(&ids[0]).unwrap();
    let mut waited = 0;
    while db.pending_erasures().unwrap().0 > 0 && waited < 100 {
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    assert_eq!(db.pending_erasures().unwrap().0, 0);
    assert_eq!(db.certificates().unwrap().len(), 1);
}

// ------------------------------------------------------------- crash safety

const CHILD_ENV: &str = "LETHEDB_ERASURE_CRASH_CHILD";
const PEOPLE: usize = 200;

/// Child half of the crash test: forgets people in order with synced
/// writes, printing each acknowledged erasure.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let k = common::key(14);
    let db = Db::open(&dir, &k, opts().sync_writes(true)).unwrap();
    let start: usize = std::env::var("LETHEDB_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let ids: Vec<ProfileId> = std::fs::read_to_string(Path::new(&dir).join("ids.txt"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    for (i, id) in ids.iter().enumerate().skip(start) {
        if i % 2 == 0 {
            db.forget(id).unwrap();
        } else {
            db.forget_fields(id, &["city", "email"]).unwrap();
        }
        println!("ACK {i}");
        if i % 7 == 0 {
            db.purge().unwrap();
            println!("PURGED");
        }
    }
}

#[test]
fn forget_is_atomic_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(14);
    let ids = {
        let db = open(&path, &k);
        populate(&db, PEOPLE)
    };
    std::fs::write(
        path.join("ids.txt"),
        ids.iter().map(|i| format!("{i}\n")).collect::<String>(),
    )
    .unwrap();
    let mut acked = 0usize;
    let mut cycles = 0;
    let mut seed = 0x9e37_79b9_u64;
    while acked < PEOPLE && cycles < 12 {
        cycles += 1;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .env("LETHEDB_CRASH_START", acked.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait_acks = 3 + (seed % 25) as usize;
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = 0;
        while seen < wait_acks {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("ACK ") => {
                    acked = l[4..].trim().parse::<usize>().unwrap() + 1;
                    seen += 1;
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        child.kill().unwrap();
        // Lines written before the kill may still be buffered in the pipe.
        for l in lines.map_while(|l| l.ok()) {
            if let Some(n) = l.strip_prefix("ACK ") {
                acked = n.trim().parse::<usize>().unwrap() + 1;
            }
        }
        child.wait().unwrap();

        let db = open(&path, &k);
        db.verify_audit().unwrap();
        for (i, id) in ids.iter().enumerate() {
            let got = db.get(id);
            let by_phone = db.lookup(&Identifier::phone(phone(i))).unwrap();
            let by_email = db.lookup(&Identifier::email(email(i))).unwrap();
            if i % 2 == 0 {
                match got {
                    Err(Error::ProfileErased { .. }) => {
                        assert_eq!(
                            (by_phone, by_email),
                            (None, None),
                            "person {i}: erased but still indexed"
                        );
                        assert!(db.consent(id, "analytics").is_err());
                    }
                    Ok(p) => {
                        assert!(i >= acked, "acknowledged erasure {i} lost");
                        assert_eq!(p.fields.len(), 3, "person {i}: partially erased");
                        assert_eq!((by_phone, by_email), (Some(*id), Some(*id)));
                    }
                    Err(e) => panic!("person {i}: {e}"),
                }
            } else {
                let p = got.unwrap_or_else(|e| panic!("person {i}: {e}"));
                let erased = !p.fields.contains_key("city");
                assert_eq!(by_phone, Some(*id));
                if erased {
                    assert_eq!(
                        by_email, None,
                        "person {i}: field erased but e-mail still indexed"
                    );
                    assert_eq!(p.fields.len(), 2);
                } else {
                    assert!(i >= acked, "acknowledged field erasure {i} lost");
                    assert_eq!(by_email, Some(*id));
                }
                assert_eq!(
                    db.consent(id, "analytics").unwrap().unwrap().status,
                    ConsentStatus::Granted,
                    "person {i}: consent unreadable after re-key"
                );
            }
        }
    }
    assert!(cycles >= 3, "only {cycles} kill cycles ran");
    assert!(acked > 0);
}

/// A format `/2` certificate issued by the build before RFC 8785 signing
/// (commit 7cad859, `lethedb purge`), kept byte for byte with its public key.
#[test]
fn format_2_certificate_from_an_earlier_build_still_verifies() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let text = std::fs::read_to_string(data.join("certificate_v2.json")).unwrap();
    let pk = lethedb::parse_public_key(
        &std::fs::read_to_string(data.join("certificate_v2.pub")).unwrap(),
    )
    .unwrap();
    let check = lethedb::verify_certificate(&text, &pk).unwrap();
    assert_eq!(check.certificate.format, "lethedb-erasure-certificate/2");
    assert_eq!(check.certificate.erasure_id, 1);
    // Re-serialised (pretty, members reversed) it still verifies ...
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    lethedb::verify_certificate(&serde_json::to_string_pretty(&v).unwrap(), &pk).unwrap();
    // (serde_json's map sorts its keys, so the reversed order is written by hand.)
    let members: Vec<String> = v["certificate"]
        .as_object()
        .unwrap()
        .iter()
        .rev()
        .map(|(k, val)| format!("{} : {val}", serde_json::json!(k)))
        .collect();
    let spaced = format!(
        "{{ \"signature\" : {} ,\n \"certificate\" : {{ {} }} }}",
        v["signature"],
        members.join(",\n   ")
    );
    assert!(spaced.find("public_key") < spaced.find("audit_head"));
    lethedb::verify_certificate(&spaced, &pk).unwrap();
    // ... and any changed value fails.
    for (field, value) in [
        ("erasure_id", serde_json::json!(2)),
        ("profiles_erased", serde_json::json!(0)),
        (
            "purged_at",
            serde_json::json!("2026-11-29T19:44:55.331074Z"),
        ),
        ("root_epochs_destroyed", serde_json::json!([1, 2])),
        ("format", serde_json::json!("lethedb-erasure-certificate/3")),
    ] {
        let mut changed = v.clone();
        changed["certificate"][field] = value;
        assert!(
            lethedb::verify_certificate(&changed.to_string(), &pk).is_err(),
            "{field} changed and the certificate still verified"
        );
    }
}

/// The attacker holds every file under the store's parent directory
/// (store, RocksDB's LOG and LOG.old files, OPTIONS, MANIFEST, the root
/// key file). After forget + purge none of them holds a forgotten
/// subject's keyring, seed or blind-index key in raw, hex or base64 form,
/// nor the subject's profile id in hex or base64 (RocksDB's info log
/// printed manual-compaction bounds — `'p' ‖ profile id`, `'i' ‖ blind
/// key` — in hex).
#[test]
fn purge_leaves_nothing_in_any_encoding_under_the_parent_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(6);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    let ids = populate(&db, 60);
    db.flush().unwrap();
    let victims = [ids[3], ids[41]];
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for v in &victims {
        for m in material(&db, v) {
            needles.extend(common::encodings(&m));
        }
        // The ids themselves, raw or as text: tombstones are keyed (an
        // HMAC of the id), and the ledger record keeps only those once
        // purged.
        needles.extend(common::encodings(v.as_bytes()));
    }
    // Two open/close cycles so RocksDB rotates its info log into LOG.old.*.
    drop(db);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    for v in &victims {
        db.forget(v).unwrap();
    }
    db.purge().unwrap();
    drop(db);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    let report = scan_dir(dir.path(), &needles).unwrap();
    assert!(report.files >= 6, "{report:?}");
    assert!(
        report.hits.is_empty(),
        "forgotten subjects found under the parent directory: {:?}",
        report.hits.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(db.get(&ids[0]).unwrap().fields["score"], Value::Int(0));
}

/// A purge that cannot finish (an obsolete file stays) issues no
/// certificate: it fails with a typed error, the erasure stays pending, and
/// the next purge certifies it.
#[test]
fn no_certificate_before_the_purge_has_finished() {
    let dir = tempfile::tempdir().unwrap();
    let k = common::key(8);
    let options = || opts().obsolete_file_wait(Duration::from_millis(300));
    let db = Db::open(dir.path(), &k, options()).unwrap();
    let ids = populate(&db, 10);
    let r = db.forget(&ids[4]).unwrap();
    // An SST file RocksDB does not know: the wait for obsolete files can
    // never end while it is there.
    let stray = dir.path().join("999999.sst");
    std::fs::write(&stray, b"not a table").unwrap();
    let err = db.purge().unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert!(db.certificates().unwrap().is_empty());
    assert_eq!(db.pending_erasures().unwrap().0, 1);
    std::fs::remove_file(&stray).unwrap();
    let report = db.purge().unwrap();
    assert_eq!(report.erasures, vec![r.erasure_id.unwrap()]);
    assert_eq!(db.certificates().unwrap().len(), 1);
    assert_eq!(db.pending_erasures().unwrap().0, 0);
    db.verify_audit().unwrap();
}

/// A repeated `forget` answers with the first erasure's receipt and does
/// not purge, even when a purge is due (and would fail).
#[test]
fn a_repeated_forget_returns_its_receipt_without_purging() {
    let dir = tempfile::tempdir().unwrap();
    let k = common::key(9);
    let db = Db::open(
        dir.path(),
        &k,
        opts()
            .purge_after_erasures(1)
            .obsolete_file_wait(Duration::from_millis(200)),
    )
    .unwrap();
    let ids = populate(&db, 4);
    let stray = dir.path().join("999998.sst");
    std::fs::write(&stray, b"not a table").unwrap();
    // The first forget commits and is acknowledged; its purge fails on the
    // stray file (kept for `last_purge_error`).
    assert!(db.forget(&ids[1]).unwrap().erasure_id.is_some());
    assert!(db.last_purge_error().is_some());
    assert_eq!(db.pending_erasures().unwrap().0, 1);
    std::fs::remove_file(&stray).unwrap();
    // A purge would now succeed; the repeated forget must not run one.
    let again = db.forget(&ids[1]).unwrap();
    assert!(again.already_erased);
    assert_eq!(db.pending_erasures().unwrap().0, 1);
    db.purge().unwrap();
    assert_eq!(db.certificates().unwrap().len(), 1);
}

/// Issue 17, item 9: the key ids a certificate names are keyed, so whoever
/// holds a profile id (a CDP, a partner) cannot link the certificate to it
/// by recomputing them; the operator can, through the subject reference.
#[test]
fn certificate_key_ids_cannot_be_recomputed_from_a_profile_id() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let k = common::key(10);
    let db = open(dir.path(), &k);
    let ids = populate(&db, 3);
    let victim = ids[1];
    db.forget_field(&victim, "city").unwrap();
    let r = db.forget(&victim).unwrap();
    let report = db.purge().unwrap();
    let store_id: Vec<u8> = (0..32)
        .step_by(2)
        .map(|i| u8::from_str_radix(&db.store_id()[i..i + 2], 16).unwrap())
        .collect();
    let public: Vec<String> = (0u32..8)
        .map(|generation| {
            let mut h = Sha256::new();
            h.update(b"lethedb/key-id");
            h.update(&store_id);
            h.update(victim.as_bytes());
            h.update(generation.to_be_bytes());
            h.finalize()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .collect();
    assert!(!r.key_ids.is_empty());
    for cert in &report.certificates {
        for key_id in &public {
            assert!(
                !cert.contains(key_id.as_str()),
                "certificate names a public key id"
            );
        }
        assert!(!cert.contains(&victim.to_string()));
    }
    // Two erasures of the same profile name different keys (generations).
    let pk = db.public_key().unwrap();
    let certs: Vec<lethedb::Certificate> = report
        .certificates
        .iter()
        .map(|c| lethedb::verify_certificate(c, &pk).unwrap().certificate)
        .collect();
    assert_eq!(certs.len(), 2);
    assert_ne!(certs[0].key_ids_destroyed, certs[1].key_ids_destroyed);
}

/// Issue 17, item 10: an acknowledged erasure is on disk — its batch is
/// written with a synced WAL even when `sync_writes` is off (the default),
/// so a power loss cannot undo a `forget` the caller was told happened.
#[test]
fn forget_and_forget_field_are_synced_even_without_sync_writes() {
    let dir = tempfile::tempdir().unwrap();
    let k = common::key(11);
    let db = open(dir.path(), &k);
    let ids = populate(&db, 3);
    let before = db.debug_synced_writes();
    db.upsert(&ids[0], Update::new().set("score", 5)).unwrap();
    assert_eq!(
        db.debug_synced_writes(),
        before,
        "plain writes follow sync_writes"
    );
    db.forget(&ids[1]).unwrap();
    assert_eq!(db.debug_synced_writes(), before + 1);
    db.forget_field(&ids[2], "city").unwrap();
    assert_eq!(db.debug_synced_writes(), before + 2);
}

/// Issue 17, item 4: a registered backup that exists but cannot be opened
/// (here: another process holds its lock) no longer stops erasure. The
/// purge invalidates it (its root destroyed, counted in the certificate)
/// and completes; the store reopens; the backup can be listed and
/// unregistered.
#[test]
fn a_backup_that_cannot_be_rekeyed_is_invalidated_not_a_reason_to_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(12);
    let db = Db::open(&path, &k, opts()).unwrap();
    let ids = populate(&db, 6);
    let backup = dir.path().join("b1");
    db.backup(&backup).unwrap();
    let held_root = db.backups().unwrap()[0].root_epoch.unwrap();
    // The backup's RocksDB lock is held elsewhere: opening it fails.
    let locked = common::raw(&backup.join("store"));
    db.forget(&ids[2]).unwrap();
    let report = db.purge().unwrap();
    assert_eq!(report.backups_invalidated, 1);
    assert_eq!(report.certificates.len(), 1);
    assert!(report.certificates[0].contains("\"backups_invalidated\":1"));
    assert!(report.root_epochs_destroyed.contains(&held_root));
    assert_eq!(db.last_purge_error(), None);
    drop(locked);
    let listed = db.backups().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].root_epoch, None, "invalidated");
    assert!(!db
        .key_tree_status()
        .unwrap()
        .root_epochs_held
        .contains(&held_root));
    // Unregistering removes it from the registry; purges no longer see it.
    db.unregister_backup(listed[0].number).unwrap();
    assert!(db.backups().unwrap().is_empty());
    db.forget(&ids[3]).unwrap();
    assert_eq!(db.purge().unwrap().backups_invalidated, 0);
    drop(db);
    Db::open(&path, &k, opts()).unwrap();
}

/// Unregistering a live backup destroys its root first: the copy can no
/// longer be restored (it would keep erased people readable otherwise).
#[test]
fn an_unregistered_backup_can_no_longer_be_restored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(13);
    let db = Db::open(&path, &k, opts()).unwrap();
    populate(&db, 3);
    let backup = dir.path().join("b1");
    db.backup(&backup).unwrap();
    let b = db.backups().unwrap().remove(0);
    assert!(b.root_epoch.is_some());
    assert_eq!(b.path, backup.canonicalize().unwrap());
    db.unregister_backup(b.number).unwrap();
    assert!(matches!(
        db.unregister_backup(b.number),
        Err(Error::InvalidInput(_))
    ));
    drop(db);
    assert!(Db::restore(&backup, dir.path().join("restored"), &k, opts()).is_err());
}

/// A root key store that can be told to refuse new roots (a KMS outage).
#[derive(Default)]
struct FlakyRoots {
    inner: lethedb::MemoryRootKeyStore,
    refuse_put: std::sync::atomic::AtomicBool,
}

impl lethedb::RootKeyStore for FlakyRoots {
    fn epochs(&self) -> lethedb::Result<Vec<u32>> {
        self.inner.epochs()
    }
    fn get(&self, epoch: u32) -> lethedb::Result<Option<Vec<u8>>> {
        self.inner.get(epoch)
    }
    fn put(&self, epoch: u32, sealed: &[u8]) -> lethedb::Result<()> {
        if self.refuse_put.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::RootKey {
                epoch,
                reason: "unavailable".into(),
            });
        }
        self.inner.put(epoch, sealed)
    }
    fn destroy(&self, epochs: &[u32]) -> lethedb::Result<()> {
        self.inner.destroy(epochs)
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

/// A store whose overdue purge fails (its root key store is unavailable)
/// still opens; the failure shows in `last_purge_error`, a `forget` whose
/// automatic purge fails is still acknowledged, and the erasures stay
/// pending until a purge succeeds.
#[test]
fn a_store_opens_even_when_its_overdue_purge_fails() {
    let dir = tempfile::tempdir().unwrap();
    let k = common::key(14);
    let roots = std::sync::Arc::new(FlakyRoots::default());
    let with = |deadline: Duration| {
        opts()
            .purge_deadline(deadline)
            .root_keys(std::sync::Arc::clone(&roots) as std::sync::Arc<dyn lethedb::RootKeyStore>)
    };
    let db = Db::open(dir.path(), &k, with(Duration::from_secs(3600))).unwrap();
    let ids = populate(&db, 3);
    db.forget(&ids[0]).unwrap();
    drop(db);
    roots
        .refuse_put
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let db = Db::open(dir.path(), &k, with(Duration::ZERO)).unwrap();
    assert!(db.last_purge_error().is_some());
    assert_eq!(db.pending_erasures().unwrap().0, 1);
    let r = db.forget(&ids[1]).unwrap();
    assert!(r.erasure_id.is_some());
    assert_eq!(db.pending_erasures().unwrap().0, 2);
    roots
        .refuse_put
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(db.purge().unwrap().certificates.len(), 2);
    assert_eq!(db.last_purge_error(), None);
    assert_eq!(db.pending_erasures().unwrap().0, 0);
}

/// Backups taken while purges run: every registered backup's root still
/// exists afterwards (a purge's sweep of unused roots never destroys the
/// root of a backup being registered) and each backup restores.
#[test]
fn backups_and_purges_running_together_lose_no_backup_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(15);
    let db = std::sync::Arc::new(Db::open(&path, &k, opts()).unwrap());
    let ids = populate(&db, 40);
    let purger = {
        let db = std::sync::Arc::clone(&db);
        let ids = ids.clone();
        std::thread::spawn(move || {
            for id in ids.iter().take(12) {
                db.forget(id).unwrap();
                db.purge().unwrap();
            }
        })
    };
    for i in 0..6 {
        db.backup(dir.path().join(format!("b{i}"))).unwrap();
    }
    purger.join().unwrap();
    let held = db.key_tree_status().unwrap().root_epochs_held;
    for b in db.backups().unwrap() {
        let epoch = b.root_epoch.expect("no backup was invalidated");
        assert!(
            held.contains(&epoch),
            "backup {} lost its root {epoch}",
            b.number
        );
    }
    let last = db.backups().unwrap().pop().unwrap();
    drop(db);
    Db::restore(&last.path, dir.path().join("restored"), &k, opts()).unwrap();
}

/// Removes the last two entries of the audit log of the closed store at
/// `path` (which has `entries` entries) and rewrites its head to the new
/// last entry (what the chain check compares against); with
/// `remove_seal`, also deletes the head's seal.
fn cut_audit_tail(path: &std::path::Path, entries: u64, remove_seal: bool) {
    let raw = common::raw(path);
    let cf = raw.cf_handle("audit").unwrap();
    let key = |seq: u64| {
        let mut k = vec![b'a'];
        k.extend_from_slice(&seq.to_be_bytes());
        k
    };
    raw.delete_cf(cf, key(entries)).unwrap();
    raw.delete_cf(cf, key(entries - 1)).unwrap();
    let new_last = raw.get_cf(cf, key(entries - 2)).unwrap().unwrap();
    // AuditHead = version ‖ bincode(seq u64 BE, hash [u8; 32]) ‖ crc32.
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"lethedb/audit/v1");
    h.update(&new_last);
    let hash: [u8; 32] = h.finalize().into();
    let mut head = vec![1u8];
    head.extend_from_slice(&(entries - 2).to_be_bytes());
    head.extend_from_slice(&hash);
    let crc = crc32fast::hash(&head);
    head.extend_from_slice(&crc.to_be_bytes());
    raw.put_cf(cf, [b'h'], head).unwrap();
    if remove_seal {
        raw.delete_cf(cf, [b'm']).unwrap();
    }
}

/// Issue 17, item 8: removing the last entries of the audit log and
/// rewriting its head passes the keyless chain check, but not a signed
/// checkpoint taken before (`verify_audit_log_with_checkpoint` names the
/// cut), nor the keyed head seal (`Db::verify_audit`), whether the seal is
/// left stale or removed too.
#[test]
fn a_cut_audit_tail_is_caught_by_a_signed_checkpoint_and_the_keyed_head() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let k = common::key(16);
    let db = open(&dir, &k);
    let ids = populate(&db, 4);
    db.forget(&ids[0]).unwrap();
    let checkpoint = db.audit_checkpoint().unwrap();
    let pk = db.public_key().unwrap();
    let report = db.verify_audit().unwrap();
    assert!(report.head_sealed);
    let entries = report.entries;
    drop(db);
    // Reopening an intact store does not reseal (exactly one sealing entry).
    let db = open(&dir, &k);
    let sealings = |db: &Db| {
        db.audit_log()
            .unwrap()
            .iter()
            .filter(|e| e.kind == "audit_head_sealed")
            .count()
    };
    assert_eq!(sealings(&db), 1);
    assert_eq!(db.verify_audit().unwrap().entries, entries);
    drop(db);
    let c = lethedb::verify_audit_log_with_checkpoint(&dir, &checkpoint, Some(&pk)).unwrap();
    assert_eq!(c.seq, entries);
    let stale = tmp.path().join("stale-seal");
    let removed = tmp.path().join("removed-seal");
    common::copy_store(&dir, &stale);
    common::copy_store(&dir, &removed);
    cut_audit_tail(&dir, entries, false);
    // The chain alone no longer sees it...
    let keyless = lethedb::verify_audit_log(&dir).unwrap();
    assert_eq!(keyless.entries, entries - 2);
    assert!(!keyless.head_sealed);
    // ...the checkpoint does.
    let err = lethedb::verify_audit_log_with_checkpoint(&dir, &checkpoint, Some(&pk)).unwrap_err();
    assert!(matches!(err, Error::AuditChain { .. }), "{err:?}");
    // A forged or foreign checkpoint is refused.
    let forged = checkpoint.replacen(&format!("\"seq\":{entries}"), "\"seq\":1", 1);
    assert!(lethedb::verify_audit_log_with_checkpoint(&dir, &forged, None).is_err());
    assert!(lethedb::verify_audit_log_with_checkpoint(&dir, &checkpoint, Some(&[7; 32])).is_err());
    // With the key, the head's seal shows the cut, stale or removed, and
    // keeps showing it after later writes (the finding is in the chain).
    for (path, remove_seal) in [(&stale, false), (&removed, true)] {
        cut_audit_tail(path, entries, remove_seal);
        let db = open(path, &k);
        let err = db.verify_audit().unwrap_err();
        assert!(
            matches!(err, Error::AuditChain { .. }),
            "seal removed: {remove_seal}: {err:?}"
        );
        db.forget(&ids[1]).unwrap();
        drop(db);
        let db = open(path, &k);
        assert!(db.verify_audit().is_err(), "seal removed: {remove_seal}");
    }
}

/// A (`uA-n`, plan "a") and B (`anB-n`, name `B-SECRET-NAME-n`), B merged
/// into A, flushed, then unmerged: returns A, B and A's key material as
/// it was while A held B's data (before the unmerge re-keyed it).
fn merge_and_unmerge(db: &Db, n: u32) -> (ProfileId, ProfileId, Vec<Vec<u8>>) {
    let a = person(
        db,
        Identifier::user_id(format!("uA-{n}")),
        Update::new().set("plan", "a"),
    );
    let b = person(
        db,
        Identifier::anonymous_id(format!("anB-{n}")),
        Update::new().set("name", format!("B-SECRET-NAME-{n}")),
    );
    let out = db
        .resolve(
            &[
                Identifier::anonymous_id(format!("anB-{n}")),
                Identifier::user_id(format!("uA-{n}")),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.profile, Some(a));
    db.flush().unwrap();
    let merged_keys = material(db, &a);
    db.unmerge(&out.merges[0]).unwrap();
    (a, b, merged_keys)
}

/// The review of issue 17: an audit head removed while entries exist must
/// not make the next append overwrite entry 1 (the log starts over at an
/// empty head); the log goes on after its last entry and the keyed check
/// fails on the recorded finding. A seal that does not decode is a
/// mismatch, not a store that cannot open.
#[test]
fn a_removed_audit_head_or_a_garbled_seal_is_recorded_not_overwritten() {
    for garble_seal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let k = common::key(26);
        let db = open(&path, &k);
        populate(&db, 3);
        let before = db.audit_log().unwrap();
        drop(db);
        {
            let raw = common::raw(&path);
            let cf = raw.cf_handle("audit").unwrap();
            if garble_seal {
                raw.put_cf(cf, [b'm'], b"not a seal").unwrap();
            } else {
                raw.delete_cf(cf, [b'h']).unwrap();
            }
        }
        if !garble_seal {
            // The keyless check sees entries past a missing head too.
            assert!(matches!(
                lethedb::verify_audit_log(&path),
                Err(Error::AuditChain { .. })
            ));
        }
        let db = open(&path, &k);
        let after = db.audit_log().unwrap();
        assert_eq!(after[..before.len()], before[..], "entries kept");
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(after.last().unwrap().detail["reason"], "mismatch");
        assert!(matches!(db.verify_audit(), Err(Error::AuditChain { .. })));
    }
}

/// Issue 17, item 3: merge copies B's values and identifiers into the
/// survivor under the survivor's keys; unmerge re-keys the survivor, and
/// the next purge makes its old keyring (which sealed B's data in older
/// record versions) undecryptable and absent, while both profiles read.
#[test]
fn unmerge_rekeys_the_survivor_and_purge_retires_its_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(17);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    populate(&db, 20);
    let (a, b, merged_keys) = merge_and_unmerge(&db, 17);
    assert_eq!(
        db.pending_erasures().unwrap().0,
        1,
        "the re-key waits for purge"
    );
    let report = db.purge().unwrap();
    assert!(report.erasures.is_empty() && report.certificates.is_empty());
    // The survivor's bucket was rotated (not only its keyring compacted).
    assert!(
        report.keys_replaced > 0 && report.keyrings_rewrapped > 0,
        "{report:?}"
    );
    let hits = scan_dir(&path, &merged_keys[..2]).unwrap();
    assert!(
        hits.hits.is_empty(),
        "the survivor's old keyring survived: {:?}",
        hits.hits
    );
    assert_eq!(db.get(&a).unwrap().fields["plan"], Value::from("a"));
    assert!(!db.get(&a).unwrap().fields.contains_key("name"));
    assert_eq!(
        db.get(&b).unwrap().fields["name"],
        Value::from("B-SECRET-NAME-17")
    );
    assert_eq!(db.lookup(&Identifier::user_id("uA-17")).unwrap(), Some(a));
    assert_eq!(
        db.lookup(&Identifier::anonymous_id("anB-17")).unwrap(),
        Some(b)
    );
    assert_eq!(db.pending_erasures().unwrap().0, 0);
    db.verify_audit().unwrap();
    drop(db);
    let db = Db::open(&path, &k, opts()).unwrap();
    assert_eq!(db.get(&a).unwrap().fields["plan"], Value::from("a"));
}

/// Issue 17, item 3, with a backup taken between the unmerge and the
/// purge: the copy holds the survivor's old keyring (which sealed B's data)
/// and its pending re-key item. When B is later forgotten, the purge
/// re-keys the backup: the survivor's bucket rotates in the copy too and
/// the ranges the copy's pending items name are compacted, so no file of
/// the backup holds the old keyring or B's key material, and a restore
/// reads the survivor without B.
#[test]
fn a_backup_taken_between_unmerge_and_purge_loses_the_merged_side_when_it_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(21);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    populate(&db, 20);
    let (a, b, merged_keys) = merge_and_unmerge(&db, 21);
    let backup = dir.path().join("backup");
    db.backup(&backup).unwrap();
    db.purge().unwrap();
    let mut needles: Vec<Vec<u8>> = merged_keys[..2].to_vec();
    needles.extend(material(&db, &b));
    db.forget(&b).unwrap();
    let report = db.purge().unwrap();
    assert_eq!(report.backups_rekeyed, 1, "{report:?}");
    let hits = scan_dir(&backup, &needles).unwrap();
    assert!(hits.hits.is_empty(), "{:?}", hits.hits);
    drop(db);
    let (restored, _) = Db::restore(&backup, dir.path().join("restored"), &k, opts()).unwrap();
    assert!(matches!(restored.get(&b), Err(Error::ProfileErased { .. })));
    let p = restored.get(&a).unwrap();
    assert_eq!(p.fields["plan"], Value::from("a"));
    assert!(!p.fields.contains_key("name"));
}

/// Issue 17, item 3 (consent index): merging B, who granted a purpose,
/// into A, who recorded no consent, gives A copies of B's records and a
/// consent-index entry (`'g' ‖ purpose tag ‖ A`). The unmerge removes
/// them, and its re-key item names those keys, so the purge compacts their
/// old versions away: afterwards no file of the `consents` column family
/// holds A's id at all (A never had a consent record of its own). End to
/// end only: in a store this small the compaction of A's other consent
/// ranges rewrites the same file, so this passes without the item naming
/// the index keys — the unit test
/// `the_unmerge_rekey_item_names_the_consent_index_entries_the_merge_produced`
/// (identity/merge.rs) is the one that fails without it.
#[test]
fn unmerge_then_purge_leaves_no_consent_key_of_the_survivor_that_the_merged_side_produced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(22);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    populate(&db, 10);
    let a = person(&db, Identifier::user_id("uA-22"), Update::new());
    let b = person(&db, Identifier::anonymous_id("anB-22"), Update::new());
    db.record_consent(
        &b,
        ConsentRecord::new("ads_targeting", ConsentStatus::Granted),
    )
    .unwrap();
    let out = db
        .resolve(
            &[
                Identifier::anonymous_id("anB-22"),
                Identifier::user_id("uA-22"),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(out.profile, Some(a));
    assert_eq!(db.consented_profiles("ads_targeting").unwrap(), vec![a]);
    db.flush().unwrap();
    db.unmerge(&out.merges[0]).unwrap();
    assert_eq!(db.consented_profiles("ads_targeting").unwrap(), vec![b]);
    db.purge().unwrap();
    drop(db);
    let raw = common::raw(&path);
    let files: Vec<std::path::PathBuf> = raw
        .live_files()
        .unwrap()
        .into_iter()
        .filter(|f| f.column_family_name == "consents")
        .map(|f| path.join(f.name.trim_start_matches('/')))
        .collect();
    drop(raw);
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == a.as_bytes()),
            "{} still holds the survivor's id",
            f.display()
        );
    }
}

/// Found by the reference model (issue 17): B (with a name) is merged into
/// A (without one) after a backup was taken, so A's keys seal B's name;
/// then B's name is erased, which re-keys A. The purge re-keys the backup
/// by replaying the erasure — where A does not hold a name, so the replay
/// left A's old keys live in the copy: with them, an image of the live
/// store from before the erasure decrypts B's erased name. A replay now
/// re-keys every profile the erasure re-keyed.
#[test]
fn a_field_erasure_replayed_into_a_backup_rekeys_what_the_original_rekeyed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(23);
    let db = open(&path, &k);
    populate(&db, 5);
    let a = person(
        &db,
        Identifier::user_id("uA-23"),
        Update::new().set("plan", "a"),
    );
    let backup = dir.path().join("backup");
    db.backup(&backup).unwrap();
    let b = person(
        &db,
        Identifier::anonymous_id("anB-23"),
        Update::new().set("name", "B-NAME-23"),
    );
    db.resolve(
        &[
            Identifier::anonymous_id("anB-23"),
            Identifier::user_id("uA-23"),
        ],
        Update::new(),
    )
    .unwrap();
    assert_eq!(db.get(&a).unwrap().fields["name"], Value::from("B-NAME-23"));
    // A's seed, which now seals B's name.
    let sealing_seed = material(&db, &a)[1].clone();
    db.forget_fields(&b, &["name"]).unwrap();
    db.purge().unwrap();
    drop(db);
    let (restored, _) = Db::restore(&backup, dir.path().join("restored"), &k, opts()).unwrap();
    assert_eq!(restored.get(&a).unwrap().fields["plan"], Value::from("a"));
    assert_ne!(
        material(&restored, &a)[1],
        sealing_seed,
        "the key that sealed the erased name is live in the backup"
    );
}

/// Every file of the store directory that holds `id` raw, after a purge.
fn files_holding(path: &Path, id: &ProfileId) -> Vec<lethedb::forensics::ScanHit> {
    scan_dir(path, &common::encodings(id.as_bytes()))
        .unwrap()
        .hits
}

/// Found by the reference model (issue 17): a merge undone keeps its
/// record, which kept the values it had displaced — among them one whose
/// origin is another profile's raw id (B's name, displaced when C merged
/// in). Forgetting B later left that id in C's undone merge record. Undone
/// merges now drop their displaced values (restored or dropped already).
#[test]
fn an_undone_merge_record_keeps_no_id_of_a_profile_forgotten_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(24);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    populate(&db, 5);
    let ident = |n: &str| Identifier::device_id(format!("dev-{n}-24"));
    let a = person(&db, ident("a"), Update::new().set("name", "A"));
    let b = person(&db, ident("b"), Update::new().set("name", "B"));
    let mb = db
        .resolve(&[ident("a"), ident("b")], Update::new())
        .unwrap()
        .merges[0];
    person(&db, ident("c"), Update::new().set("name", "C"));
    let mc = db
        .resolve(&[ident("a"), ident("c")], Update::new())
        .unwrap()
        .merges[0];
    db.unmerge(&mc).unwrap();
    db.unmerge(&mb).unwrap();
    assert_eq!(db.get(&a).unwrap().fields["name"], Value::from("A"));
    db.forget(&b).unwrap();
    db.purge().unwrap();
    let hits = files_holding(&path, &b);
    assert!(hits.is_empty(), "{hits:?}");
}

/// Found by the reference model (issue 17): B merged into A and unmerged
/// since; forgetting A left A's raw id in the older versions of B's record
/// ("merged into A") and of B's identifiers' index entries (pointing to
/// A). The forget now names their keys for the purge. End to end only:
/// in a store this small the compaction of A's ranges rewrites B's files
/// anyway; the unit test
/// `forget_names_the_keys_a_former_member_kept_the_person_in` (forget.rs)
/// is the one that fails without the fix.
#[test]
fn forgetting_a_survivor_compacts_what_a_former_member_kept_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(25);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    populate(&db, 5);
    let ident = |n: &str| Identifier::device_id(format!("dev-{n}-25"));
    let a = person(&db, ident("a"), Update::new().set("name", "A"));
    let b = person(&db, ident("b"), Update::new().set("plan", "B"));
    let m = db
        .resolve(&[ident("a"), ident("b")], Update::new())
        .unwrap()
        .merges[0];
    db.flush().unwrap();
    db.unmerge(&m).unwrap();
    db.purge().unwrap();
    db.forget(&a).unwrap();
    db.purge().unwrap();
    let hits = files_holding(&path, &a);
    assert!(hits.is_empty(), "{hits:?}");
    assert_eq!(db.get(&b).unwrap().fields["plan"], Value::from("B"));
    assert_eq!(db.lookup(&ident("b")).unwrap(), Some(b));
}

/// Issue 17, item 6: a restore is a fork, not a silent copy. It signs
/// with a key of its own (its certificates cannot pass for the source's),
/// and even with nothing to replay it rotates away from the backup's root,
/// which it destroys in its own root key store.
#[test]
fn a_restored_store_signs_with_its_own_key_and_leaves_the_backup_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(18);
    let db = Db::open(&path, &k, opts()).unwrap();
    let ids = populate(&db, 5);
    let backup = dir.path().join("b1");
    db.backup(&backup).unwrap();
    let source_key = db.public_key().unwrap();
    let backup_root = db.backups().unwrap()[0].root_epoch.unwrap();
    drop(db);
    let to = dir.path().join("restored");
    let (restored, report) = Db::restore(&backup, &to, &k, opts()).unwrap();
    assert!(report.replayed.is_empty());
    assert_ne!(restored.public_key().unwrap(), source_key);
    let status = restored.key_tree_status().unwrap();
    assert_ne!(status.root_epoch, backup_root);
    assert!(
        !status.root_epochs_held.contains(&backup_root),
        "{status:?}"
    );
    assert!(restored
        .audit_log()
        .unwrap()
        .iter()
        .any(|e| e.kind == "signing_key_created"));
    assert_eq!(
        restored.get(&ids[1]).unwrap().fields["name"],
        Value::from("MARKER-00001-name-QXJ")
    );
    // Its certificates name its own key.
    restored.forget(&ids[2]).unwrap();
    let cert = restored.purge().unwrap().certificates.remove(0);
    let pk = restored.public_key().unwrap();
    lethedb::verify_certificate(&cert, &pk).unwrap();
    assert!(lethedb::verify_certificate(&cert, &source_key).is_err());
    drop(restored);
    Db::open(&to, &k, opts()).unwrap();
}

/// Issue 17, item 7: a suppression entry no longer re-identifies. Its key
/// is a 32-bit bucket of the keyed hash (the other 96 bits zero), its value
/// holds no erasure id (nothing leads to the ledger) and only the day; a
/// lifted entry's key leaves the files at the next purge.
#[test]
fn suppression_entries_are_buckets_without_a_link_to_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(19);
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    let ids = populate(&db, 4);
    db.forget(&ids[1]).unwrap();
    db.purge().unwrap();
    // Still suppressed: resolving the forgotten e-mail does not re-create the person.
    let out = db
        .resolve(&[Identifier::email(email(1))], Update::new())
        .unwrap();
    assert_eq!(out.profile, None);
    drop(db);
    let entries: Vec<(Vec<u8>, Vec<u8>)> = {
        let raw = common::raw(&path);
        let cf = raw.cf_handle("identities").unwrap();
        raw.iterator_cf(cf, rocksdb::IteratorMode::Start)
            .map(|r| r.unwrap())
            .filter(|(k, _)| k[0] == b's')
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    };
    assert_eq!(entries.len(), 2, "e-mail and phone");
    for (key, value) in &entries {
        assert_eq!(key.len(), 17);
        assert!(
            key[5..].iter().all(|b| *b == 0),
            "only 32 bits kept: {key:?}"
        );
        // version ‖ erasure id u64 ‖ at i64 ‖ crc32
        assert_eq!(value.len(), 1 + 8 + 8 + 4);
        assert_eq!(&value[1..9], &[0; 8], "no erasure id");
        let at = i64::from_be_bytes(value[9..17].try_into().unwrap());
        assert_eq!(at % 86_400_000_000, 0, "the day only");
    }
    let db = Db::open(&path, &k, opts().compression(false)).unwrap();
    assert!(db.unsuppress(&Identifier::email(email(1))).unwrap());
    assert_eq!(
        db.pending_erasures().unwrap().0,
        1,
        "the lifted key waits for purge"
    );
    db.purge().unwrap();
    drop(db);
    let lifted: Vec<Vec<u8>> = entries
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            let raw = common::raw(&path);
            let cf = raw.cf_handle("identities").unwrap();
            raw.get_cf(cf, k).unwrap().is_none()
        })
        .collect();
    assert_eq!(lifted.len(), 1);
    assert!(scan_dir(&path, &lifted).unwrap().hits.is_empty());
}
