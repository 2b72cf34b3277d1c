//! Purge: makes erased key material physically absent from the store's
//! live files, then issues the certificates.
//!
//! 0. Key-tree rotation (`keytree::rotation`): fresh keys on the path of
//!    every erased profile, the tree re-wrapped under a new root and
//!    committed with a synced WAL; engine-made backups re-keyed the same
//!    way; then every root version not in use is destroyed. From here on
//!    no copy of an erased key anywhere is decryptable.
//! 1. Flush every memtable and sync the WAL: the WAL files that held the
//!    erased keys become obsolete and are deleted (WAL recycling is off).
//! 2. Forced bottommost compaction of the touched key ranges only. Ranges
//!    that fall in one last-level SST are merged into one request, so each
//!    affected file is rewritten once; the rest of the store is not touched.
//!    At the last level a deletion drops every older version of its key.
//! 3. The pending items are rewritten without their key ranges (which
//!    named blind keys and profile ids) and the ledger records take their
//!    purged form (ids replaced by keyed tombstones) in one batch, flushed,
//!    and the small `meta` column family compacted (rewriting the
//!    MANIFEST). All of 1–3 is `compaction::compact_pending`.
//! 4. Wait until no obsolete file remains; a timeout fails the purge
//!    before any certificate exists (the next purge certifies).
//! 5. One batch: pending items deleted, ledger records marked purged with
//!    their signed certificates, the purge audit entry; then the audit
//!    head and seal keys are compacted (older pairs gone), rotated info
//!    logs deleted and the ledger mirrored into registered backups.
//!
//! lethedb takes no long-lived snapshots or pinned iterators (scans are
//! short and bounded), so nothing holds old versions back.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use serde_json::json;

use super::certificate::{Certificate, CERT_FORMAT};
use super::markers::{keyring_buckets, scan_pending, Pending};
use crate::domain::audit::Event;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::{Erasures, PendingPurges, CF_META};
use crate::storage::records::PendingPurge;
use crate::storage::{Batch, SstFile};
use crate::types::{ProfileId, Timestamp};

/// Most erasure ids a purge's audit entry lists one by one.
const AUDIT_IDS: usize = 10_000;

/// What a purge did.
#[derive(Clone, Debug, Default)]
pub struct PurgeReport {
    /// Erasures purged.
    pub erasures: Vec<u64>,
    /// Signed certificates, one per erasure (one-line JSON each).
    pub certificates: Vec<String>,
    /// Compaction requests issued (merged key ranges).
    pub ranges_compacted: usize,
    /// SST files rewritten.
    pub files_rewritten: usize,
    /// Bytes of the SST files rewritten.
    pub bytes_rewritten: u64,
    /// Bytes of all live SST files before the purge.
    pub store_bytes: u64,
    /// Root epoch destroyed (the one every erased key was reachable from).
    pub root_epoch_destroyed: u32,
    /// Every root version destroyed.
    pub root_epochs_destroyed: Vec<u32>,
    /// Root epoch after the purge.
    pub root_epoch: u32,
    /// Tree keys replaced by fresh ones.
    pub keys_replaced: u64,
    /// Tree nodes re-wrapped under a new parent.
    pub nodes_rewrapped: u64,
    /// Keyrings re-wrapped under a new bucket key.
    pub keyrings_rewrapped: u64,
    /// Bytes written by the rotation batch.
    pub key_bytes_written: u64,
    /// Time of the rotation (root stored, tree re-wrapped and committed).
    pub rotation: Duration,
    /// Backups re-keyed.
    pub backups_rekeyed: u32,
    /// Backups unreachable, whose roots were destroyed.
    pub backups_invalidated: u32,
    /// Wall time of the purge.
    pub duration: Duration,
}

impl PurgeReport {
    /// The figures the audit entry and the summary share.
    fn figures(&self) -> serde_json::Map<String, serde_json::Value> {
        let v = json!({
            "ranges_compacted": self.ranges_compacted,
            "files_rewritten": self.files_rewritten,
            "bytes_rewritten": self.bytes_rewritten,
            "store_bytes": self.store_bytes,
            "root_epoch_destroyed": self.root_epoch_destroyed,
            "root_epochs_destroyed": self.root_epochs_destroyed,
            "root_epoch": self.root_epoch,
            "keys_replaced": self.keys_replaced,
            "nodes_rewrapped": self.nodes_rewrapped,
            "keyrings_rewrapped": self.keyrings_rewrapped,
            "backups_rekeyed": self.backups_rekeyed,
            "backups_invalidated": self.backups_invalidated,
        });
        match v {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// Figures as JSON (without the certificates).
    pub fn summary_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("erasures".into(), json!(self.erasures.len()));
        m.extend(self.figures());
        m.insert("key_bytes_written".into(), json!(self.key_bytes_written));
        m.insert(
            "rotation_seconds".into(),
            json!(self.rotation.as_secs_f64()),
        );
        m.insert("seconds".into(), json!(self.duration.as_secs_f64()));
        serde_json::Value::Object(m)
    }

    /// The purge's audit entry details: the erasure ids, then the figures.
    /// Up to `AUDIT_IDS` ids are listed; more are given as runs
    /// `[first, last]` of consecutive ids (`erasure_runs`), so one purge of
    /// any number of erasures fits an audit entry.
    fn audit_json(&self, erasures: &[u64]) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        if erasures.len() <= AUDIT_IDS {
            m.insert("erasures".into(), json!(erasures));
        } else {
            let mut runs: Vec<[u64; 2]> = Vec::new();
            for &id in erasures {
                match runs.last_mut() {
                    Some(r) if r[1].checked_add(1) == Some(id) => r[1] = id,
                    _ => runs.push([id, id]),
                }
            }
            m.insert("erasure_count".into(), json!(erasures.len()));
            m.insert("erasure_runs".into(), json!(runs));
        }
        m.extend(self.figures());
        serde_json::Value::Object(m)
    }
}

/// `Db::pending_erasures`.
pub(crate) fn pending_count(db: &Engine) -> Result<(usize, Option<Timestamp>)> {
    let p = *db.pending.lock();
    Ok((p.count, p.oldest.map(Timestamp)))
}

/// An automatic purge (at open, after an erasure, from the scheduler):
/// `maybe_purge`, whose failure never fails the caller — the erasures stay
/// pending, the error is kept for `Db::last_purge_error` and the next
/// purge retries. A store must always open and an erasure, once committed,
/// is acknowledged.
pub(crate) fn auto_purge(db: &Engine) {
    if let Err(e) = maybe_purge(db) {
        *db.purge_error.lock() = Some(e.to_string());
    }
}

/// Purges when the pending count or the age of the oldest pending erasure
/// reaches the configured limits.
pub(crate) fn maybe_purge(db: &Engine) -> Result<Option<PurgeReport>> {
    let (n, oldest) = pending_count(db)?;
    let Some(oldest) = oldest else {
        return Ok(None);
    };
    let age_us = Timestamp::now()
        .as_micros()
        .saturating_sub(oldest.as_micros());
    let deadline_us = i64::try_from(db.purge_deadline.as_micros()).unwrap_or(i64::MAX);
    let by_count = db.purge_after_erasures > 0 && n >= db.purge_after_erasures;
    if by_count || age_us >= deadline_us {
        return purge(db).map(Some);
    }
    Ok(None)
}

/// An inclusive storage-key range `[first, last]`.
fn sst_names(files: &[SstFile]) -> HashSet<String> {
    files.iter().map(|f| f.name.clone()).collect()
}

/// Waits until every `.sst` file in the directory is live and at most one
/// WAL file remains.
fn wait_for_obsolete(db: &Engine, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let live = sst_names(&db.store.live_files()?);
        let mut stray = Vec::new();
        let mut logs = 0;
        let dir = db.store.path();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io_at(dir, e))? {
            let entry = entry.map_err(|e| Error::io_at(dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".sst") && !live.contains(&name) {
                stray.push(name);
            } else if name.ends_with(".log") && name != "LOG" {
                logs += 1;
            }
        }
        if stray.is_empty() && logs <= 1 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::Internal(format!(
                "purge: obsolete files still present after {timeout:?} ({} SST files, {logs} WAL files)",
                stray.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Db::purge`.
pub(crate) fn purge(db: &Engine) -> Result<PurgeReport> {
    let _one = db.purge_lock.lock();
    let result = purge_locked(db);
    *db.purge_error.lock() = result.as_ref().err().map(ToString::to_string);
    result
}

fn purge_locked(db: &Engine) -> Result<PurgeReport> {
    let started = Instant::now();
    let pending: Vec<(u64, PendingPurge)> = db
        .store
        .entries::<PendingPurges>(&[])?
        .collect::<Result<_>>()?;
    let mut report = PurgeReport::default();
    if pending.is_empty() {
        *db.pending.lock() = Pending::default();
        return Ok(report);
    }
    let mut records = Vec::new();
    let mut buckets = BTreeSet::new();
    for (id, item) in &pending {
        if let Some(rec) = db.store.get::<Erasures>(id)? {
            for p in rec.erased_ids() {
                buckets.insert(db.keys.bucket_of(&ProfileId::from_bytes(*p)));
            }
            records.push(rec);
        }
        // Items that are not erasures (a survivor re-keyed by unmerge) name
        // the keyrings whose old versions must become undecryptable.
        buckets.extend(keyring_buckets(&db.keys, &item.ranges));
    }
    let rotation_started = Instant::now();
    let new_epoch = db.keys.next_epoch()?;
    let rot = db.keys.rotate(
        &db.store,
        &buckets,
        new_epoch,
        db.v2_only.load(std::sync::atomic::Ordering::Relaxed),
    )?;
    // The last erasure id being purged (re-key items carry a high bit and
    // are not erasures: backups' `purged_through` counts erasures only).
    let last_pending = records.iter().map(|r| r.erasure_id).max().unwrap_or(0);
    let mut doomed = vec![rot.old_epoch];
    let mut rekey = super::copies::BackupRekey::default();
    if db.owns_roots {
        rekey = super::copies::rekey_backups(db, &records, last_pending)?;
        doomed.extend(rekey.doomed.iter().copied());
        // Leftovers of an interrupted rotation or backup: roots no copy uses.
        for e in db.keys.root_epochs()? {
            if e != rot.new_epoch && !rekey.referenced.contains(&e) {
                doomed.push(e);
            }
        }
    }
    doomed.sort_unstable();
    doomed.dedup();
    db.keys.destroy_roots(&doomed)?;
    let destroyed = doomed;
    report.rotation = rotation_started.elapsed();
    report.root_epoch_destroyed = rot.old_epoch;
    report.root_epochs_destroyed = destroyed;
    report.root_epoch = rot.new_epoch;
    report.keys_replaced = rot.keys_replaced;
    report.nodes_rewrapped = rot.nodes_rewrapped;
    report.keyrings_rewrapped = rot.keyrings_rewrapped;
    report.key_bytes_written = rot.bytes_written;
    report.backups_rekeyed = rekey.rekeyed;
    report.backups_invalidated = rekey.invalidated;

    db.store.flush()?;
    let before = db.store.live_files()?;
    report.store_bytes = before.iter().map(|f| f.size).sum();
    let erasure_ids: Vec<u64> = records.iter().map(|r| r.erasure_id).collect();
    report.ranges_compacted =
        super::compaction::compact_pending(db, &pending, &before, &erasure_ids)?;
    // Only when no obsolete file is left does the purge certify: a
    // certificate never claims a purge that did not complete. A crash or a
    // timeout before that leaves the items pending (with nothing left to
    // compact); the next purge certifies them.
    let after = sst_names(&db.store.live_files()?);
    for f in &before {
        if !after.contains(&f.name) && f.cf != CF_META {
            report.files_rewritten += 1;
            report.bytes_rewritten += f.size;
        }
    }

    wait_for_obsolete(db, db.obsolete_file_wait)?;

    let purged_at = Timestamp::now();
    let signer = db
        .signer
        .as_ref()
        .ok_or_else(|| Error::Internal("store opened without its signing key".into()))?;
    let ids: Vec<u64> = pending.iter().map(|(id, _)| *id).collect();
    // The report and the audit entry name erasures; re-key items are counted.
    let rekeys = ids.len() - erasure_ids.len();
    let mut batch = Batch::new();
    for id in &ids {
        batch.delete::<PendingPurges>(id);
    }
    let mut detail = report.audit_json(&erasure_ids);
    if rekeys > 0 {
        detail["rekeys"] = json!(rekeys);
    }
    if !rekey.failures.is_empty() {
        detail["backup_failures"] = json!(rekey.failures);
    }
    let event = Event::new("purge", None, detail);
    // Erasure requests these certificates complete: their entries and
    // records go in the purge's write.
    let _privacy = db.privacy_lock.lock();
    let completions = crate::domain::requests::complete_on_certificates(db, &erasure_ids)?;
    let mut events = vec![event];
    events.extend(completions.events());
    let store_id = db.store_id();
    let public = crate::hex::encode(&signer.public_key());
    let root_destroyed_in = db
        .keys
        .roots()
        .location()
        .name_of(&db.header.store_id, report.root_epoch_destroyed);
    let bytes_rewritten = report.bytes_rewritten;
    let mut certs = Vec::new();
    let mut issued = std::collections::HashMap::new();
    db.audit
        .commit_with(&db.store, batch, &events, false, |pos, batch| {
            let (seq, hash) = pos
                .first()
                .copied()
                .ok_or_else(|| Error::corrupt("audit log", "purge entry missing"))?;
            for mut rec in records {
                let cert = Certificate {
                    format: CERT_FORMAT.into(),
                    store_id: store_id.clone(),
                    erasure_id: rec.erasure_id,
                    subject_ref: crate::hex::encode(&rec.subject_ref),
                    scope: rec.scope.name().into(),
                    fields: rec.fields.clone(),
                    profiles_erased: u32::try_from(rec.profiles.len()).unwrap_or(u32::MAX),
                    key_ids_destroyed: rec.key_ids.iter().map(|k| crate::hex::encode(k)).collect(),
                    index_entries_removed: rec.index_entries_removed,
                    consent_records_removed: rec.consent_records_removed,
                    suppressed_identifiers: rec.suppressed,
                    requested_at: Timestamp(rec.requested_at).to_string(),
                    purged_at: purged_at.to_string(),
                    root_epoch_destroyed: report.root_epoch_destroyed,
                    root_epochs_destroyed: report.root_epochs_destroyed.clone(),
                    root_epoch: report.root_epoch,
                    root_destroyed_in: Some(root_destroyed_in.clone()),
                    backups_rekeyed: report.backups_rekeyed,
                    backups_invalidated: report.backups_invalidated,
                    erasure_audit_seq: rec.audit_seq,
                    audit_seq: seq,
                    audit_head: crate::hex::encode(&hash),
                    purge_bytes_rewritten: bytes_rewritten,
                    public_key: public.clone(),
                };
                let text = signer.sign(&cert)?;
                if rec.purged_at.is_none() {
                    // (Already so on disk since the compaction step.)
                    rec.profiles = super::compaction::tombstones(db, &rec.profiles)?;
                }
                rec.purged_at = Some(purged_at.as_micros());
                rec.certificate = Some(text.clone().into_bytes());
                batch.put::<Erasures>(&rec.erasure_id, &rec);
                issued.insert(rec.erasure_id, text.clone());
                certs.push(text);
            }
            completions.apply(batch, &issued, pos);
            Ok(())
        })?;
    drop(_privacy);
    // Erasures committed while this purge ran stay pending.
    *db.pending.lock() = scan_pending(&db.store)?;
    db.store.flush()?;
    // Older versions of the audit head and its seal are what a rollback of
    // the log's tail needs (a genuine earlier pair): compacting their two
    // keys leaves only the current pair on disk.
    db.store
        .compact_range(crate::storage::columns::CF_AUDIT, b"h", b"m")?;
    db.store.remove_rotated_info_logs()?;
    super::copies::mirror_ledger(db)?;
    report.erasures = erasure_ids;
    report.certificates = certs;
    report.duration = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any number of erasures fits one audit entry (1 MiB): past
    /// `AUDIT_IDS` the ids are listed as runs.
    #[test]
    fn a_purge_of_many_erasures_has_a_small_audit_entry() {
        let r = PurgeReport::default();
        let few: Vec<u64> = (1..=3).collect();
        assert_eq!(r.audit_json(&few)["erasures"], json!([1, 2, 3]));
        let mut many: Vec<u64> = (1..=150_000).collect();
        many.push(200_000);
        let v = r.audit_json(&many);
        assert_eq!(v["erasure_count"], json!(150_001));
        assert_eq!(v["erasure_runs"], json!([[1, 150_000], [200_000, 200_000]]));
        assert!(v.to_string().len() < 1_000);
        assert_eq!(v["ranges_compacted"], json!(0));
    }
}
