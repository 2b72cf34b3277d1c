//! Making erased data physically absent: the key ranges pending items
//! name, compacted at the last level with one request per affected file,
//! and the keyed tombstones a purged ledger record keeps instead of ids.
//! Used by purge (the live store) and by the re-key of a backup copy.

use std::collections::BTreeMap;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::{Erasures, PendingPurges, Profiles, Tombstones, ALL_CFS, CF_META};
use crate::storage::records::{PendingPurge, RecordStatus, Tombstone};
use crate::storage::{Batch, SstFile};
use crate::types::{ProfileId, Timestamp};

type KeyRange = (Vec<u8>, Vec<u8>);

/// Merges the ranges of one column family so that ranges inside the same
/// last-level file become one compaction request.
pub(super) fn plan(mut ranges: Vec<KeyRange>, files: &[&SstFile]) -> Vec<KeyRange> {
    let last_level = files.iter().map(|f| f.level).max().unwrap_or(0);
    let mut bottom: Vec<&SstFile> = files
        .iter()
        .copied()
        .filter(|f| f.level == last_level)
        .collect();
    bottom.sort_by(|a, b| a.start.cmp(&b.start));
    let file_of = |key: &[u8]| {
        bottom
            .iter()
            .position(|f| f.start.as_slice() <= key && key <= f.end.as_slice())
    };
    ranges.sort();
    let mut out: Vec<(Vec<u8>, Vec<u8>, Option<usize>)> = Vec::new();
    for (start, end) in ranges {
        let f = file_of(&start);
        if let Some(last) = out.last_mut() {
            let same_file = f.is_some() && f == last.2;
            if same_file || start <= last.1 {
                if end > last.1 {
                    last.1 = end;
                }
                continue;
            }
        }
        out.push((start, end, f));
    }
    out.into_iter().map(|(s, e, _)| (s, e)).collect()
}

/// Compacts (bottommost, forced) every key range the `pending` items name,
/// `before` being the store's live files; then, in one batch, empties the
/// items' ranges and gives the ledger records of `erasures` their purged
/// form (ids replaced by keyed tombstones, `purged_at` set; a record
/// already purged is left alone), and compacts `meta`. After this no file
/// holds an erased id, whatever happens next (a crash before the
/// certificates leaves the items pending; the next purge certifies them).
/// Returns the number of compaction requests. Used by purge, and by the
/// re-key of a backup copy (whose replayed erasures leave the same ranges
/// in the copy's files).
pub(crate) fn compact_pending(
    db: &Engine,
    pending: &[(u64, PendingPurge)],
    before: &[SstFile],
    erasures: &[u64],
) -> Result<usize> {
    legacy_tombstones(db, erasures)?;
    let mut compacted = 0;
    let mut by_cf: BTreeMap<u8, Vec<KeyRange>> = BTreeMap::new();
    for (_, p) in pending {
        for (cf, a, b) in &p.ranges {
            by_cf.entry(*cf).or_default().push((a.clone(), b.clone()));
        }
    }
    for (cf, ranges) in by_cf {
        let Some(name) = ALL_CFS.get(usize::from(cf)) else {
            return Err(Error::corrupt(
                "pending purge",
                format!("column family {cf}"),
            ));
        };
        let files: Vec<&SstFile> = before.iter().filter(|f| f.cf == *name).collect();
        for (a, b) in plan(ranges, &files) {
            db.store.compact_range(name, &a, &b)?;
            compacted += 1;
        }
    }
    // The items themselves name the key ranges they touched (profile ids,
    // blind keys), and the ledger records name the erased ids: the items
    // are emptied, the records take their purged form, and both are
    // flushed and compacted out of `meta`.
    let mut batch = Batch::new();
    let now = Timestamp::now().as_micros();
    for id in erasures {
        if let Some(mut rec) = db.store.get::<Erasures>(id)? {
            if rec.purged_at.is_none() {
                rec.profiles = tombstones(db, &rec.profiles)?;
                rec.purged_at = Some(now);
                batch.put::<Erasures>(id, &rec);
            }
        }
    }
    for (id, p) in pending {
        if !p.ranges.is_empty() {
            batch.put::<PendingPurges>(
                id,
                &PendingPurge {
                    requested_at: p.requested_at,
                    ranges: Vec::new(),
                },
            );
        }
    }
    db.store.write(batch)?;
    db.store.flush()?;
    db.store.compact_cf(CF_META)?;
    db.store.flush()?;
    Ok(compacted)
}

/// Erasures committed by a build before keyed tombstones left a profile
/// record with status erased under each raw id. Before their purge
/// compacts (their pending items name those keys), each such record is
/// replaced by a keyed tombstone, so the raw id goes with the compaction.
fn legacy_tombstones(db: &Engine, erasures: &[u64]) -> Result<()> {
    let mut batch = Batch::new();
    for id in erasures {
        let Some(rec) = db.store.get::<Erasures>(id)? else {
            continue;
        };
        for p in rec.erased_ids() {
            let p = ProfileId::from_bytes(*p);
            if let Some(old) = db.store.get::<Profiles>(&p)? {
                if let RecordStatus::Erased { erasure_id } = old.record.status {
                    batch.delete::<Profiles>(&p);
                    batch.put::<Tombstones>(&db.tombstone_of(&p)?, &Tombstone { erasure_id });
                }
            }
        }
    }
    db.store.write(batch)
}

/// The keyed tombstones of `ids` (what a purged ledger record keeps).
pub(crate) fn tombstones(db: &Engine, ids: &[[u8; 16]]) -> Result<Vec<[u8; 16]>> {
    ids.iter()
        .map(|p| db.tombstone_of(&ProfileId::from_bytes(*p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An erasure committed by a build before keyed tombstones (a profile
    /// record with status erased under the raw id) and purged by this one:
    /// the purge replaces the record by a keyed tombstone before it
    /// compacts, so the raw id goes; the id still reads as erased.
    #[test]
    fn a_legacy_tombstone_is_keyed_by_the_purge() {
        let (_dir, handle, id) = crate::db::scratch_store();
        handle.forget(&id).unwrap();
        let db = &*handle.engine;
        // A store of that build holds format v1.
        db.v2_only
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let tomb = db.tombstone_of(&id).unwrap();
        let erasure_id = db
            .store
            .get::<Tombstones>(&tomb)
            .unwrap()
            .unwrap()
            .erasure_id;
        let mut batch = Batch::new();
        batch.delete::<Tombstones>(&tomb);
        batch.put::<Profiles>(
            &id,
            &crate::storage::records::StoredProfile {
                seal: None,
                record: crate::storage::records::ProfileRecord {
                    generation: 0,
                    write_version: 0,
                    consents: Vec::new(),
                    created_at: Timestamp(0),
                    updated_at: Timestamp(0),
                    status: RecordStatus::Erased { erasure_id },
                    origins: Vec::new(),
                    fields: Vec::new(),
                },
            },
        );
        db.store.write(batch).unwrap();
        assert!(matches!(
            handle.get(&id),
            Err(crate::Error::ProfileErased { .. })
        ));
        handle.purge().unwrap();
        assert!(db.store.get::<Profiles>(&id).unwrap().is_none());
        assert!(db.store.get::<Tombstones>(&tomb).unwrap().is_some());
        assert!(matches!(
            handle.get(&id),
            Err(crate::Error::ProfileErased { .. })
        ));
    }

    fn file(level: i32, start: &[u8], end: &[u8]) -> SstFile {
        SstFile {
            cf: "profiles".into(),
            name: "x.sst".into(),
            size: 1,
            level,
            start: start.to_vec(),
            end: end.to_vec(),
        }
    }

    #[test]
    fn ranges_in_one_bottom_file_become_one_request() {
        let files = [
            file(6, b"a", b"m"),
            file(6, b"n", b"z"),
            file(0, b"a", b"z"),
        ];
        let refs: Vec<&SstFile> = files.iter().collect();
        let plan = plan(
            vec![
                (b"b".to_vec(), b"b".to_vec()),
                (b"c".to_vec(), b"c".to_vec()),
                (b"p".to_vec(), b"p".to_vec()),
            ],
            &refs,
        );
        assert_eq!(
            plan,
            vec![
                (b"b".to_vec(), b"c".to_vec()),
                (b"p".to_vec(), b"p".to_vec())
            ]
        );
    }

    #[test]
    fn overlapping_ranges_merge_even_outside_files() {
        let plan = plan(
            vec![
                (b"b".to_vec(), b"d".to_vec()),
                (b"c".to_vec(), b"e".to_vec()),
                (b"x".to_vec(), b"x".to_vec()),
            ],
            &[],
        );
        assert_eq!(
            plan,
            vec![
                (b"b".to_vec(), b"e".to_vec()),
                (b"x".to_vec(), b"x".to_vec())
            ]
        );
    }
}
