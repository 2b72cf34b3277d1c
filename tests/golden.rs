//! Golden compatibility fixture: a small store written by the on-disk
//! format of this build (profile records and keyrings version 1, the key
//! tree, format `/3` certificates), checked in under `tests/data/golden-1/`
//! and read field for field by every later build. The checked-in copy was
//! written by commit 74d70b9, the build before issue 16's engine refactor,
//! so it also shows that refactor kept the format. When a format changes,
//! keep this fixture (later builds must still read it) and add a new one.
//!
//! The fixture's key material is made for it and is not a secret: the
//! master key is `MASTER` below, its root versions are in
//! `golden-1/store.rootkeys`, sealed under it.
//!
//! `cargo test --release --test golden -- --ignored write_golden_store`
//! writes it again (into `tests/data/golden-1/`, which must not exist).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lethedb::{
    ConsentRecord, ConsentStatus, Db, FieldClass, FileRootKeyStore, Identifier, LegalBasis,
    MemoryKeyProvider, Options, RejectReason, Schema, Timestamp, Update, Value, ValueKind,
};

/// Made for this fixture only.
const MASTER: [u8; 32] = *b"lethedb golden fixture key 1 ...";
const TC: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-1")
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn schema() -> Schema {
    Schema::new()
        .field("plan", FieldClass::NonPersonal, Some(ValueKind::String))
        .field("diagnosis", FieldClass::Sensitive, Some(ValueKind::String))
        .allow("email", "email_marketing")
}

/// Creates the store with its schema, or opens it without one (so the
/// stored schema is what is read back).
fn open(dir: &Path, roots: &Path, create: bool) -> Db {
    let mut options = Options::new()
        .create_if_missing(create)
        .root_keys(Arc::new(FileRootKeyStore::new(roots)));
    if create {
        options = options.schema(schema());
    }
    Db::open(dir, &MemoryKeyProvider::from_bytes(MASTER), options).expect("open the golden store")
}

/// Ada's fields after everything the writer did (Cleo merged into her:
/// Cleo's `city` joins, Ada's own fields stay).
fn ada_fields() -> Vec<(&'static str, Value)> {
    vec![
        ("name", Value::from("Ada Lovelace")),
        ("email", Value::from("ada@example.com")),
        ("plan", Value::from("pro")),
        ("diagnosis", Value::from("none")),
        ("score", Value::from(36)),
        ("ratio", Value::from(0.5)),
        ("active", Value::from(true)),
        ("joined", Value::Timestamp(t("2023-04-05T06:07:08.000009Z"))),
        (
            "tags",
            Value::List(vec![Value::from("a"), Value::from("b")]),
        ),
        ("city", Value::from("Paris")),
    ]
}

#[test]
#[ignore]
fn write_golden_store() {
    let root = fixture();
    assert!(!root.exists(), "{} exists: remove it first", root.display());
    std::fs::create_dir_all(&root).unwrap();
    let (dir, roots) = (root.join("store"), root.join("store.rootkeys"));
    let db = open(&dir, &roots, true);
    let mut ada = Update::new();
    for (k, v) in ada_fields() {
        if k != "city" {
            ada = ada.set(k, v);
        }
    }
    let a = db
        .resolve(
            &[
                Identifier::email("Ada@Example.com"),
                Identifier::phone("+44 20 7183 8750"),
                Identifier::user_id("u-ada"),
            ],
            ada,
        )
        .unwrap()
        .profile
        .unwrap();
    db.resolve(
        &[Identifier::device_id("dev-cleo")],
        Update::new().set("city", "Paris"),
    )
    .unwrap();
    let merged = db
        .resolve(
            &[
                Identifier::device_id("dev-cleo"),
                Identifier::user_id("u-ada"),
            ],
            Update::new(),
        )
        .unwrap();
    assert_eq!(merged.merges.len(), 1);
    db.record_consent(
        &a,
        ConsentRecord::new("email_marketing", ConsentStatus::Granted)
            .at(t("2024-01-01T00:00:00Z"))
            .source("signup-form"),
    )
    .unwrap();
    db.record_consent(
        &a,
        ConsentRecord::new("email_marketing", ConsentStatus::Withdrawn)
            .at(t("2024-06-01T00:00:00Z")),
    )
    .unwrap();
    db.import_tcf(&a, TC).unwrap();
    let dora = db
        .resolve(
            &[Identifier::email("dora@example.com")],
            Update::new().set("name", "Dora"),
        )
        .unwrap()
        .profile
        .unwrap();
    db.forget(&dora).unwrap();
    db.purge().unwrap();
    db.compact().unwrap();
    let public = db.public_key().unwrap();
    drop(db);
    std::fs::write(
        root.join("public_key.hex"),
        public
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
    .unwrap();
    // RocksDB's info logs name the machine and are not needed to open.
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name == "LOG" || name.starts_with("LOG.old") {
            std::fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn the_golden_store_reads_field_for_field() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, roots) = copy_fixture(tmp.path());
    let dora = legacy_tombstone(&dir);
    let db = open(&dir, &roots, false);
    assert!(matches!(
        db.get(&dora),
        Err(lethedb::Error::ProfileErased { .. })
    ));
    assert!(db.forget(&dora).unwrap().already_erased);

    // Ada, found by every identifier she and Cleo brought.
    let a = db
        .lookup(&Identifier::email(" ADA@example.com"))
        .unwrap()
        .expect("ada by e-mail");
    for id in [
        Identifier::phone("+442071838750"),
        Identifier::user_id("u-ada"),
        Identifier::device_id("dev-cleo"),
    ] {
        assert_eq!(db.lookup(&id).unwrap(), Some(a), "{id:?}");
    }
    let p = db.get(&a).unwrap();
    let want = ada_fields();
    assert_eq!(p.fields.len(), want.len(), "{:?}", p.fields);
    for (k, v) in want {
        assert_eq!(p.fields.get(k), Some(&v), "field {k}");
    }
    let mut ids: Vec<String> = db
        .identifiers(&a)
        .unwrap()
        .into_iter()
        .map(|i| format!("{}={}", i.id_type, i.value))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "device_id=dev-cleo",
            "email=Ada@Example.com",
            "phone=+44 20 7183 8750",
            "user_id=u-ada"
        ]
    );
    assert_eq!(db.merges(&a).unwrap().len(), 1);

    // Consent: current state, as-of, the TCF purposes.
    let em = db.consent(&a, "email_marketing").unwrap().unwrap();
    assert_eq!(em.status, ConsentStatus::Withdrawn);
    assert_eq!(em.timestamp, t("2024-06-01T00:00:00Z"));
    let before = db
        .consent_at(&a, "email_marketing", t("2024-03-01T00:00:00Z"))
        .unwrap()
        .unwrap();
    assert_eq!(before.status, ConsentStatus::Granted);
    assert_eq!(before.source, "signup-form");
    // The TC string by the IAB TCF v2 core-segment layout: purpose consents
    // {1, 3, 9, 10}, legitimate interests {3, 4, 5, 8, 9, 10}, CMP 21
    // version 7, vendor list 23, policy 2, publisher country KM, last
    // updated 2012-01-10T17:10:13.4Z; design.md's mapping: consent bit ->
    // granted on consent, else LI bit -> granted on legitimate interests,
    // else denied.
    let tcf: Vec<ConsentRecord> = db
        .consents(&a)
        .unwrap()
        .into_iter()
        .filter(|r| r.purpose.starts_with("tcf:"))
        .collect();
    assert_eq!(tcf.len(), 11);
    for (n, r) in (1u8..=11).zip(&tcf) {
        assert_eq!(r.purpose, format!("tcf:{n}"));
        let (status, basis) = match n {
            1 | 3 | 9 | 10 => (ConsentStatus::Granted, LegalBasis::Consent),
            4 | 5 | 8 => (ConsentStatus::Granted, LegalBasis::LegitimateInterests),
            _ => (ConsentStatus::Denied, LegalBasis::Consent),
        };
        assert_eq!((r.status, r.legal_basis), (status, basis), "tcf:{n}");
        assert_eq!(r.source, "tcf:cmp:21:7");
        assert_eq!(r.policy_version.as_deref(), Some("tcf-policy:2;gvl:23"));
        assert_eq!(r.jurisdiction.as_deref(), Some("KM"));
        assert_eq!(r.timestamp, t("2012-01-10T17:10:13.400000Z"));
        assert_eq!(r.proof.as_deref(), Some(TC));
    }
    // Ada's own history: two e-mail records and the eleven TCF ones.
    assert_eq!(db.consent_history(&a).unwrap().len(), 13);
    // The stored schema reads back as written.
    assert_eq!(db.schema(), schema());
    // A purpose-bound read honours the withdrawal.
    let r = db.get_for_purpose(&a, "email_marketing").unwrap();
    assert!(!r.fields.contains_key("email"));
    assert!(r.withheld.contains_key("email"));
    assert_eq!(r.fields.get("plan"), Some(&Value::from("pro")));

    // Dora was forgotten and purged: gone, suppressed, certified.
    assert_eq!(
        db.lookup(&Identifier::email("dora@example.com")).unwrap(),
        None
    );
    let again = db
        .resolve(&[Identifier::email("dora@example.com")], Update::new())
        .unwrap();
    assert_eq!(again.rejected[0].reason, RejectReason::Suppressed);
    let certs = db.certificates().unwrap();
    assert_eq!(certs.len(), 1);
    let pk = lethedb::parse_public_key(
        &std::fs::read_to_string(fixture().join("public_key.hex")).unwrap(),
    )
    .unwrap();
    assert_eq!(db.public_key().unwrap(), pk);
    let check = lethedb::verify_certificate(&certs[0], &pk).unwrap();
    assert_eq!(check.certificate.format, "lethedb-erasure-certificate/3");
    // The fixture predates the keyed head seal: opening it sealed the head
    // once, with reason "missing", and the keyed check passes.
    assert!(db.verify_audit().unwrap().head_sealed);
    let sealings: Vec<_> = db
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "audit_head_sealed")
        .collect();
    assert_eq!(sealings.len(), 1);
    assert_eq!(sealings[0].detail["reason"], "missing");

    // And it takes new writes.
    db.upsert(&a, Update::new().set("plan", "team")).unwrap();
    assert_eq!(db.get(&a).unwrap().fields["plan"], Value::from("team"));
}

/// Dora: her tombstone is of the form before keyed tombstones, a profile
/// record with status 02 (offset 21) under her raw id — the only one.
fn legacy_tombstone(dir: &Path) -> lethedb::ProfileId {
    let raw = common::raw(dir);
    let cf = raw.cf_handle("profiles").unwrap();
    let tombs: Vec<[u8; 16]> = raw
        .iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|kv| kv.unwrap())
        .filter(|(k, v)| k[0] == b'p' && v.get(21) == Some(&2))
        .map(|(k, _)| k[1..17].try_into().unwrap())
        .collect();
    assert_eq!(tombs.len(), 1);
    lethedb::ProfileId::from_bytes(tombs[0])
}

/// A copy of the fixture (store and root file) under `tmp`: its paths.
fn copy_fixture(tmp: &Path) -> (PathBuf, PathBuf) {
    let (dir, roots) = (tmp.join("store"), tmp.join("store.rootkeys"));
    common::copy_dir(&fixture().join("store"), &dir);
    std::fs::copy(fixture().join("store.rootkeys"), &roots).unwrap();
    (dir, roots)
}

/// What the golden store answers, as one comparable string.
fn golden_answers(db: &Db) -> String {
    let a = db
        .lookup(&Identifier::email("ada@example.com"))
        .unwrap()
        .expect("ada by e-mail");
    format!(
        "{:?}\n{:?}\n{:?}\n{}\n{:?}\n{:?}\n{:?}",
        db.get(&a).unwrap().fields,
        db.consents(&a).unwrap(),
        db.consent_at(&a, "email_marketing", t("2024-03-01T00:00:00Z"))
            .unwrap(),
        db.consent_history(&a).unwrap().len(),
        db.get_for_purpose(&a, "email_marketing").unwrap(),
        db.identifiers(&a).unwrap(),
        db.consented_profiles("email_marketing").unwrap(),
    )
}

/// The store written by an older build (format v1) upgrades to format v2
/// with `upgrade`: every answer is the same, no v1 profile record is left
/// (the erased one of the older form becomes a keyed tombstone: Dora still
/// reads as erased), and a second run has nothing to do.
#[test]
fn the_golden_store_upgrades_to_format_v2() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, roots) = copy_fixture(tmp.path());
    let dora = legacy_tombstone(&dir);
    let db = open(&dir, &roots, false);
    let before = golden_answers(&db);
    let done = db.upgrade(|_| {}).unwrap();
    assert!(done.finished && done.profiles_rewritten >= 2, "{done:?}");
    assert!(done.index_entries_rewritten >= 4, "{done:?}");
    assert_eq!(golden_answers(&db), before);
    assert_eq!(db.upgrade(|_| {}).unwrap().profiles_rewritten, 0);
    drop(db);
    let raw = common::raw(&dir);
    let cf = raw.cf_handle("profiles").unwrap();
    let v1_live = raw
        .iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|kv| kv.unwrap())
        .filter(|(k, v)| k[0] == b'p' && v[0] == 1)
        .count();
    assert_eq!(v1_live, 0, "no v1 record left, the erased one included");
    drop(raw);
    let db = open(&dir, &roots, false);
    assert_eq!(golden_answers(&db), before, "after a reopen");
    assert!(matches!(
        db.get(&dora),
        Err(lethedb::Error::ProfileErased { .. })
    ));
    assert!(db.forget(&dora).unwrap().already_erased);
}
