//! Format versions and store detection.

mod common;

use common::*;
use lethedb::{Db, Error, Options, Update};

#[test]
fn unknown_record_version_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let db = create(dir.path(), &key(1));
        db.create(Update::new().set("email", "a@example.com"))
            .unwrap()
    };
    {
        let raw = raw(dir.path());
        let mut rec = raw_get(&raw, "profiles", &profile_key(&id));
        assert_eq!(rec[0], 2, "current profile record version");
        rec[0] = 3;
        raw_put(&raw, "profiles", &profile_key(&id), &rec);
    }
    let db = reopen(dir.path(), &key(1));
    assert!(matches!(
        db.get(&id),
        Err(Error::UnsupportedFormat {
            version: 3,
            supported: 2,
            ..
        })
    ));
}

#[test]
fn unknown_store_version_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(create(dir.path(), &key(1)));
    {
        let raw = raw(dir.path());
        let mut h = raw_get(&raw, "meta", b"h");
        assert_eq!(&h[1..9], b"LETHEDB\0", "format marker");
        h[0] = 7;
        raw_put(&raw, "meta", b"h", &h);
    }
    assert!(matches!(
        Db::open(dir.path(), &key(1), Options::new()),
        Err(Error::UnsupportedFormat { version: 7, .. })
    ));
}

#[test]
fn missing_and_foreign_stores_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing");
    assert!(matches!(
        Db::open(&missing, &key(1), Options::new()),
        Err(Error::StoreNotFound { .. })
    ));
    assert!(!missing.exists(), "opening must not create anything");

    let foreign = dir.path().join("foreign");
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, &foreign).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    assert!(matches!(
        Db::open(&foreign, &key(1), Options::new()),
        Err(Error::NotAStore { .. })
    ));

    // Column families present but no header: also not a store.
    let headless = dir.path().join("headless");
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        rocksdb::DB::open_cf(&o, &headless, CFS).unwrap();
    }
    assert!(matches!(
        Db::open(&headless, &key(1), Options::new()),
        Err(Error::NotAStore { .. })
    ));
}
