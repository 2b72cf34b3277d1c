//! A batch holding a value over its record's bound (`Batch::put`,
//! `Store::write`).

use super::columns::Backups;
use super::records::BackupRecord;
use super::*;
use crate::error::Error;

fn backup(path: String) -> BackupRecord {
    BackupRecord {
        path,
        taken_at: 0,
        last_erasure: 0,
        purged_through: 0,
        root_epoch: Some(1),
        next_root_epoch: None,
    }
}

/// A value over its record's bound fails the whole batch with a typed
/// error; no other write of the batch lands, and no half record (only
/// version byte and CRC) is ever written.
#[test]
fn a_batch_with_a_value_over_its_bound_is_refused_whole() {
    let (_dir, db, _) = crate::db::scratch_store();
    let store = &db.engine.store;
    let mut batch = Batch::new();
    batch.put::<Backups>(&7, &backup("/small".into()));
    batch.put::<Backups>(&8, &backup("x".repeat(70_000)));
    assert!(!batch.is_empty());
    let err = store.write(batch).unwrap_err();
    assert!(
        matches!(err, Error::RecordTooLarge { what: "backup record", bytes, limit: 65_536 } if bytes > 70_000),
        "{err:?}"
    );
    assert!(store.get::<Backups>(&7).unwrap().is_none());
    assert!(store.get_raw::<Backups>(&8).unwrap().is_none());
    // Under the bound both land.
    let mut batch = Batch::new();
    batch.put::<Backups>(&7, &backup("/small".into()));
    batch.put::<Backups>(&8, &backup("y".repeat(60_000)));
    store.write(batch).unwrap();
    assert_eq!(
        store.get::<Backups>(&8).unwrap().unwrap().path.len(),
        60_000
    );
}
