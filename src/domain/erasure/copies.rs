//! Registered backup copies, as a purge sees them: each one's erasure
//! ledger file (appended at every purge) and its re-keying when a purge
//! erases someone it holds (the same erasures applied to the copy, its
//! tree rotated under a new root epoch). Taking and restoring backups is
//! in `backup.rs`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::crypto::MemoryKeyProvider;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::storage::columns::{Backups, Erasures};
use crate::storage::records::{BackupRecord, ErasureRecord, ErasureScope};
use crate::storage::{Batch, StorageConfig};
use crate::types::{ProfileId, Timestamp};

use super::forget::{forget_fields, forget_replay};

pub(super) const STORE_DIR: &str = "store";
pub(super) const INFO_FILE: &str = "BACKUP.json";
pub(super) const LEDGER_FILE: &str = "erasure-ledger.ndjson";

/// One ledger line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LedgerLine {
    pub(super) erasure_id: u64,
    pub(super) scope: String,
    pub(super) profiles: Vec<String>,
    pub(super) fields: Vec<String>,
    pub(super) requested_at: String,
    pub(super) mac: String,
}

pub(super) fn line_mac(db: &Engine, l: &LedgerLine) -> Result<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(db.ledger_key.as_ref())
        .map_err(|_| Error::Internal("HMAC key length".into()))?;
    let body = json!([l.erasure_id, l.scope, l.profiles, l.fields, l.requested_at]).to_string();
    mac.update(body.as_bytes());
    Ok(crate::hex::encode(&mac.finalize().into_bytes()))
}

pub(super) fn to_line(db: &Engine, r: &ErasureRecord) -> Result<LedgerLine> {
    let mut l = LedgerLine {
        erasure_id: r.erasure_id,
        scope: r.scope.name().into(),
        profiles: r
            .profiles
            .iter()
            .map(|p| ProfileId::from_bytes(*p).to_string())
            .collect(),
        fields: r.fields.clone(),
        requested_at: Timestamp(r.requested_at).to_string(),
        mac: String::new(),
    };
    l.mac = line_mac(db, &l)?;
    Ok(l)
}

pub(super) fn read_ledger(path: &Path) -> Result<Vec<LedgerLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io_at(path, e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::InvalidInput(format!("{} line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Appends the erasures missing from `dir`'s ledger file.
pub(super) fn append_ledger(db: &Engine, dir: &Path) -> Result<usize> {
    let path = dir.join(LEDGER_FILE);
    let have = read_ledger(&path)?
        .iter()
        .map(|l| l.erasure_id)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let mut n = 0;
    for item in db.store.entries::<Erasures>(&[])? {
        let (id, rec) = item?;
        if id <= have {
            continue;
        }
        let line = serde_json::to_string(&to_line(db, &rec)?)
            .map_err(|e| Error::Internal(format!("ledger line: {e}")))?;
        out.push_str(&line);
        out.push('\n');
        n += 1;
    }
    if n > 0 {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io_at(&path, e))?;
        f.write_all(out.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io_at(&path, e))?;
    }
    Ok(n)
}

/// Mirrors the ledger into every registered backup that is reachable;
/// returns how many backups were brought up to date.
pub(crate) fn mirror_ledger(db: &Engine) -> Result<usize> {
    let mut done = 0;
    for item in db.store.entries::<Backups>(&[])? {
        let (_, b) = item?;
        let dir = PathBuf::from(&b.path);
        if dir.join(INFO_FILE).exists() {
            append_ledger(db, &dir)?;
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
        out.referenced.insert(next);
        out.rekeyed += 1;
    }
    out.doomed.retain(|e| !out.referenced.contains(e));
    Ok(out)
}

/// Applies `held` (erasures the backup holds) to the copy at `store_dir`
/// and rotates its tree under the reserved epoch `next`.
fn rekey_copy(db: &Engine, store_dir: &Path, held: &[&ErasureRecord], next: u32) -> Result<()> {
    let mut opts = Options::new();
    opts.restoring = true;
    opts.shared_roots = true;
    let copy = Engine::open(
        store_dir,
        &MemoryKeyProvider::holding(&db.master),
        opts.root_keys(Arc::clone(db.keys.roots_arc()))
            .purge_after_erasures(0)
            .block_cache_bytes(8 << 20)
            .write_buffer_bytes(4 << 20),
    )?;
    let mut buckets = BTreeSet::new();
    for r in held {
        let ids: Vec<ProfileId> = r
            .profiles
            .iter()
            .map(|p| ProfileId::from_bytes(*p))
            .collect();
        buckets.extend(ids.iter().map(|id| copy.keys.bucket_of(id)));
        if copy.store.get::<Erasures>(&r.erasure_id)?.is_some() {
            continue;
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
    copy.keys.rotate(&copy.store, &buckets, next)?;
    copy.store.flush()?;
    Ok(())
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
