//! Registered backup copies, as a purge sees them: each one's erasure
//! ledger file (appended at every purge) and its re-keying when a purge
//! erases someone it holds (the same erasures applied to the copy, its
//! tree rotated under a new root epoch). Taking and restoring backups is
//! in `backup.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::crypto::MemoryKeyProvider;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::storage::columns::{Backups, Erasures, PendingPurges};
use crate::storage::records::{BackupRecord, ErasureRecord, ErasureScope, PendingPurge};
use crate::storage::{Batch, StorageConfig};
use crate::types::{ProfileId, Timestamp};

use super::forget::{forget_fields, forget_replay};
pub(crate) use super::ledger::{append_lines, read_ledger, replace_ledger, LedgerLine};
pub(crate) use super::ledger::{reseal_ledger_file, staged_ledger, LedgerKeys};

pub(super) const STORE_DIR: &str = "store";
pub(super) const INFO_FILE: &str = "BACKUP.json";
pub(super) const LEDGER_FILE: &str = "erasure-ledger.ndjson";

pub(super) fn to_line(db: &Engine, r: &ErasureRecord) -> Result<LedgerLine> {
    LedgerKeys::of(db)?.line(
        r.erasure_id,
        r.scope.name(),
        r.erased_ids(),
        &r.fields,
        Timestamp(r.requested_at).to_string(),
    )
}

/// The profile ids a ledger line names (its MAC already checked).
pub(super) fn line_profiles(db: &Engine, l: &LedgerLine) -> Result<Vec<ProfileId>> {
    LedgerKeys::of(db)?.open(l)?.ok_or_else(|| {
        Error::InvalidInput(format!(
            "erasure ledger line {} does not authenticate under this store's key (altered?)",
            l.erasure_id
        ))
    })
}

/// Appends the erasures after `floor` missing from `dir`'s ledger file
/// (any such id the file lacks, so one a forget could not append is
/// filled in later). Erasures up to `floor` are in the copy itself.
pub(super) fn append_ledger(db: &Engine, dir: &Path, floor: u64) -> Result<usize> {
    let _ledgers = db.ledger_lock.lock();
    let path = dir.join(LEDGER_FILE);
    let have: BTreeSet<u64> = read_ledger(&path)?.iter().map(|l| l.erasure_id).collect();
    let mut out = String::new();
    let mut n = 0;
    for item in db.store.entries::<Erasures>(&[])? {
        let (id, rec) = item?;
        if id <= floor || have.contains(&id) {
            continue;
        }
        let line = serde_json::to_string(&to_line(db, &rec)?)
            .map_err(|e| Error::Internal(format!("ledger line: {e}")))?;
        out.push_str(&line);
        out.push('\n');
        n += 1;
    }
    if n > 0 {
        append_lines(&path, &out)?;
    }
    Ok(n)
}

/// Appends the ledger line of the erasure `erasure_id`, just committed, to
/// every registered backup still in use and reachable, so a restore from
/// it replays the erasure even before a purge re-keys the backup. Costs one
/// synced append per backup; the purge appends whatever this missed.
pub(crate) fn append_to_backups(db: &Engine, erasure_id: u64) -> Result<()> {
    // Under the ledger lock, which the purge's prune of a backup's ledger
    // also takes (after it has recorded the backup's new `purged_through`):
    // a line appended before the prune is pruned with the rest; after it,
    // the record is purged or the backup is past it, and nothing is
    // appended.
    let _ledgers = db.ledger_lock.lock();
    let Some(rec) = db.store.get::<Erasures>(&erasure_id)? else {
        return Ok(());
    };
    if rec.purged_at.is_some() {
        return Ok(());
    }
    let mut line = serde_json::to_string(&to_line(db, &rec)?)
        .map_err(|e| Error::Internal(format!("ledger line: {e}")))?;
    line.push('\n');
    let mut first_error = None;
    for item in db.store.entries::<Backups>(&[])? {
        let (_, b) = item?;
        let dir = PathBuf::from(&b.path);
        if b.root_epoch.is_none() || b.purged_through >= erasure_id || !dir.join(INFO_FILE).exists()
        {
            continue;
        }
        // One unwritable backup does not keep the line from the others.
        if let Err(e) = append_lines(&dir.join(LEDGER_FILE), &line) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Mirrors the ledger into every registered backup that is reachable;
/// returns how many backups were brought up to date.
pub(crate) fn mirror_ledger(db: &Engine) -> Result<usize> {
    let mut done = 0;
    for item in db.store.entries::<Backups>(&[])? {
        let (_, b) = item?;
        let dir = PathBuf::from(&b.path);
        if b.root_epoch.is_some() && dir.join(INFO_FILE).exists() {
            append_ledger(db, &dir, b.purged_through.max(b.last_erasure))?;
            done += 1;
        }
    }
    Ok(done)
}

/// Small caches and synced writes: for the short edits of a backup copy.
pub(super) fn copy_config() -> StorageConfig {
    StorageConfig::new(1 << 20, 1 << 20).synced()
}

/// What re-keying the backups did.
#[derive(Debug, Default)]
pub(crate) struct BackupRekey {
    /// Why each invalidated-on-failure backup could not be re-keyed.
    pub(crate) failures: Vec<String>,
    pub(crate) rekeyed: u32,
    pub(crate) invalidated: u32,
    /// Root epochs backups still use.
    pub(crate) referenced: BTreeSet<u32>,
    /// Their old roots, to destroy.
    pub(crate) doomed: Vec<u32>,
}

fn put_record(db: &Engine, n: u64, rec: &BackupRecord) -> Result<()> {
    let mut batch = Batch::new();
    batch.put::<Backups>(&n, rec);
    db.store.write_synced(batch)
}

/// Re-keys every registered backup that holds one of `records` (erasures
/// being purged, the last with id `last`): applies them to the copy,
/// rotates its tree under a new root, and names its old root for
/// destruction. An unreachable backup is invalidated instead.
pub(crate) fn rekey_backups(
    db: &Engine,
    records: &[ErasureRecord],
    last: u64,
) -> Result<BackupRekey> {
    let mut out = BackupRekey::default();
    let registered: Vec<(u64, BackupRecord)> =
        db.store.entries::<Backups>(&[])?.collect::<Result<_>>()?;
    for (n, mut rec) in registered {
        let Some(epoch) = rec.root_epoch else {
            continue;
        };
        let held: Vec<&ErasureRecord> = records
            .iter()
            .filter(|r| r.erasure_id > rec.purged_through)
            .collect();
        if held.is_empty() {
            out.referenced.insert(epoch);
            out.referenced.extend(rec.next_root_epoch);
            continue;
        }
        out.doomed.push(epoch);
        out.doomed.extend(rec.next_root_epoch);
        let store_dir = PathBuf::from(&rec.path).join(STORE_DIR);
        if !crate::storage::is_store_dir(&store_dir) {
            rec.root_epoch = None;
            rec.next_root_epoch = None;
            put_record(db, n, &rec)?;
            out.invalidated += 1;
            continue;
        }
        let next = db.keys.next_epoch()?;
        rec.next_root_epoch = Some(next);
        put_record(db, n, &rec)?;
        if let Err(e) = rekey_copy(db, &store_dir, &held, next) {
            out.failures.push(format!("backup {n}: {e}"));
            // A backup that exists but cannot be re-keyed (read-only mount,
            // permissions, full disk, damage) is invalidated like an
            // unreachable one — its roots destroyed with the old live root,
            // counted in the certificate — never a reason to stop erasing.
            out.doomed.push(next);
            rec.root_epoch = None;
            rec.next_root_epoch = None;
            put_record(db, n, &rec)?;
            out.invalidated += 1;
            continue;
        }
        rec.root_epoch = Some(next);
        rec.next_root_epoch = None;
        rec.purged_through = rec.purged_through.max(last);
        put_record(db, n, &rec)?;
        if let Err(e) = prune_ledger(db, &PathBuf::from(&rec.path), rec.purged_through) {
            out.failures
                .push(format!("backup {n}: pruning its ledger: {e}"));
        }
        out.referenced.insert(next);
        out.rekeyed += 1;
    }
    out.doomed.retain(|e| !out.referenced.contains(e));
    Ok(out)
}

/// Applies `held` (erasures the backup holds) to the copy at `store_dir`
/// and rotates its tree under the reserved epoch `next`.
/// How the engine opens one of its backup copies: as a copy being
/// restored (the backup marker allowed), sharing the live store's root key
/// store (it destroys none), no automatic purge, the store's compression,
/// small caches.
pub(crate) fn copy_options(db: &Engine) -> Options {
    let mut opts = Options::new();
    opts.restoring = true;
    opts.shared_roots = true;
    Options {
        root_keys: Some(db.keys.roots().clone()),
        ..opts
    }
    .purge_after_erasures(0)
    .compression(db.compression)
    .block_cache_bytes(8 << 20)
    .write_buffer_bytes(4 << 20)
}

fn rekey_copy(db: &Engine, store_dir: &Path, held: &[&ErasureRecord], next: u32) -> Result<()> {
    let copy = Engine::open(
        store_dir,
        &MemoryKeyProvider::holding(&db.master),
        copy_options(db),
    )?;
    let mut buckets = BTreeSet::new();
    for r in held {
        let ids: Vec<ProfileId> = r
            .erased_ids()
            .iter()
            .map(|p| ProfileId::from_bytes(*p))
            .collect();
        buckets.extend(ids.iter().map(|id| copy.keys.bucket_of(id)));
        if copy.store.get::<Erasures>(&r.erasure_id)?.is_some() {
            continue;
        }
        if ids.is_empty() {
            // A purged record no longer names its profiles: it cannot be
            // applied to a copy that lacks it (the backup is invalidated).
            return Err(Error::corrupt(
                "erasure record",
                format!(
                    "erasure {} is purged and names no profiles, but the backup lacks it",
                    r.erasure_id
                ),
            ));
        }
        match r.scope {
            ErasureScope::Profile => {
                forget_replay(&copy, &ids, r.erasure_id)?;
            }
            ErasureScope::Fields => {
                let names: Vec<&str> = r.fields.iter().map(String::as_str).collect();
                forget_fields(&copy, &ids, &names, Some(r.erasure_id))?;
            }
        }
    }
    // Keyrings the copy's own pending items name (a survivor re-keyed by an
    // unmerge before the backup was taken): their old versions in the copy
    // may hold a merged side's data, so their buckets rotate too.
    buckets.extend(super::markers::pending_keyring_buckets(
        &copy.store,
        &copy.keys,
    )?);
    copy.keys.rotate(
        &copy.store,
        &buckets,
        next,
        copy.v2_only.load(std::sync::atomic::Ordering::Relaxed),
    )?;
    // The replayed erasures left their old versions (keyrings, blind keys,
    // records) in the copy's files, like a purge's: compact them away too,
    // or an image of the backup directory would still hold them.
    copy.store.flush()?;
    let pending: Vec<(u64, PendingPurge)> = copy
        .store
        .entries::<PendingPurges>(&[])?
        .collect::<Result<_>>()?;
    let before = copy.store.live_files()?;
    let held_ids: Vec<u64> = held.iter().map(|r| r.erasure_id).collect();
    super::compaction::compact_pending(&copy, &pending, &before, &held_ids)?;
    Ok(())
}

/// Rewrites the ledger file of the backup in `dir` without the lines of
/// erasures up to `through`, which the copy now holds itself: their (sealed)
/// ids are not needed any more. Written to a temporary file, synced and
/// renamed over the old one.
fn prune_ledger(db: &Engine, dir: &Path, through: u64) -> Result<()> {
    let _ledgers = db.ledger_lock.lock();
    let path = dir.join(LEDGER_FILE);
    let mut keep = String::new();
    for l in read_ledger(&path)? {
        if l.erasure_id > through {
            keep.push_str(
                &serde_json::to_string(&l)
                    .map_err(|e| Error::Internal(format!("ledger line: {e}")))?,
            );
            keep.push('\n');
        }
    }
    replace_ledger(&path, &keep)
}

/// A backup registered with the store (`Db::backups`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredBackup {
    /// Registration number (what `Db::unregister_backup` takes).
    pub number: u64,
    /// The backup directory.
    pub path: PathBuf,
    /// When it was taken.
    pub taken_at: Timestamp,
    /// Highest erasure id the backup itself contains.
    pub last_erasure: u64,
    /// Every erasure up to this id is purged from the backup.
    pub purged_through: u64,
    /// Root epoch of the backup's own key tree; `None`: invalidated (its
    /// root destroyed — the copy can no longer be decrypted).
    pub root_epoch: Option<u32>,
}

/// `Db::backups`: every registered backup, in registration order.
pub(crate) fn registered(db: &Engine) -> Result<Vec<RegisteredBackup>> {
    db.store
        .entries::<Backups>(&[])?
        .map(|item| {
            let (number, r) = item?;
            Ok(RegisteredBackup {
                number,
                path: PathBuf::from(r.path),
                taken_at: Timestamp(r.taken_at),
                last_erasure: r.last_erasure,
                purged_through: r.purged_through,
                root_epoch: r.root_epoch,
            })
        })
        .collect()
}

/// `Db::unregister_backup`: a backup that is no longer re-keyed by purges
/// must not stay decryptable (it would keep every subject erased after it
/// readable), so its roots are destroyed, then its registration removed,
/// in one audited step under the purge lock.
pub(crate) fn unregister(db: &Engine, number: u64) -> Result<RegisteredBackup> {
    let _purge = db.purge_lock.lock();
    let rec = db
        .store
        .get::<Backups>(&number)?
        .ok_or_else(|| Error::InvalidInput(format!("no registered backup {number}")))?;
    let info = registered(db)?
        .into_iter()
        .find(|b| b.number == number)
        .ok_or_else(|| Error::InvalidInput(format!("no registered backup {number}")))?;
    let roots: Vec<u32> = rec
        .root_epoch
        .into_iter()
        .chain(rec.next_root_epoch)
        .collect();
    db.keys.destroy_roots(&roots)?;
    let mut batch = Batch::new();
    batch.delete::<Backups>(&number);
    db.audit.commit_with(
        &db.store,
        batch,
        &[crate::domain::audit::Event::new(
            "backup_unregister",
            None,
            serde_json::json!({ "backup": number, "roots_destroyed": roots }),
        )],
        true,
        |_, _| Ok(()),
    )?;
    Ok(info)
}
