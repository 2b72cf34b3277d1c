//! No plaintext personal data on disk: markers written into every personal
//! field never appear in any file of the store, while a non-personal marker
//! does (proving the scan can see plaintext when it is there).

mod common;

use lethedb::forensics::scan_dir;
use lethedb::{FieldClass, Options, Schema, Update, Value};

#[test]
fn personal_fields_never_reach_disk_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let k = common::key(1);
    let schema = Schema::new()
        .field("plan", FieldClass::NonPersonal, None)
        .field("diagnosis", FieldClass::Sensitive, None);
    let db = lethedb::Db::open(
        &path,
        &k,
        Options::new().create_if_missing(true).schema(schema),
    )
    .unwrap();

    let mut personal_markers = Vec::new();
    let mut plain_markers = Vec::new();
    for i in 0..300 {
        let m = |f: &str| format!("MARKER-{i:04}-{f}-XYZZY");
        let update = Update::new()
            .set("email", m("email"))
            .set("phone", m("phone"))
            .set("diagnosis", m("diagnosis"))
            .set("tags", Value::List(vec![Value::from(m("tag"))]))
            .set(
                "address",
                Value::Json(serde_json::json!({"street": m("street")})),
            )
            .set("plan", m("plan"));
        let id = db.create(update).unwrap();
        // A second write of one field leaves an older version in the WAL/SSTs too.
        db.upsert(&id, Update::new().set("email", m("email2")))
            .unwrap();
        for f in ["email", "phone", "diagnosis", "tag", "street", "email2"] {
            personal_markers.push(m(f));
        }
        plain_markers.push(m("plan"));
    }
    // Some data only in the WAL/memtable, some flushed and compacted.
    db.compact().unwrap();
    let late = db
        .create(Update::new().set("email", "MARKER-LATE-UNFLUSHED-XYZZY"))
        .unwrap();
    personal_markers.push("MARKER-LATE-UNFLUSHED-XYZZY".into());
    assert_eq!(
        db.get(&late).unwrap().fields["email"],
        Value::from("MARKER-LATE-UNFLUSHED-XYZZY")
    );
    drop(db);

    let report = scan_dir(&path, &personal_markers).unwrap();
    assert!(
        report.files >= 3 && report.bytes > 10_000,
        "scan must read the store: {report:?}"
    );
    assert!(
        report.hits.is_empty(),
        "plaintext found on disk: {:?}",
        report.hits.iter().take(5).collect::<Vec<_>>()
    );

    let control = scan_dir(&path, &plain_markers).unwrap();
    assert!(
        !control.hits.is_empty(),
        "non-personal values are stored in plaintext, so the scan must find them"
    );
}
