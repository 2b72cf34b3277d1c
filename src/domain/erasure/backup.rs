//! Backups and restore with erasure-ledger replay.
//!
//! `backup(dir)` writes `dir/store/` (a RocksDB checkpoint, marked as a
//! backup so it cannot be opened as a live store by mistake),
//! `dir/BACKUP.json` and `dir/erasure-ledger.ndjson`, and registers `dir`
//! with the store. Every purge appends the erasures made since to the
//! ledger file of every registered backup that is still reachable.
//!
//! `restore(dir, to)` copies `dir/store/` to `to`, then replays every
//! ledger line the backup does not already contain — by re-running the
//! same erasure (same erasure id) on the restored data — and purges.
//! A subject forgotten after the backup was taken therefore never comes
//! back. Ledger lines are MACed under a master-derived key, so a line
//! cannot be altered; the limits are written down in docs/design.md.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::crypto::KeyProvider;
use crate::db::Db;
use crate::domain::audit::Event;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::storage::columns::{BackupMarkers, Backups, Erasures};
use crate::storage::format::{BackupRecord, Blob, ErasureRecord, ErasureScope};
use crate::storage::{Batch, StorageConfig, Store};
use crate::types::{ProfileId, Timestamp};

const STORE_DIR: &str = "store";
const LEDGER_FILE: &str = "erasure-ledger.ndjson";
const INFO_FILE: &str = "BACKUP.json";

/// What `backup` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The backup directory.
    pub path: PathBuf,
    /// Highest erasure id contained in the backup.
    pub last_erasure: u64,
    /// When it was taken.
    pub taken_at: Timestamp,
}

/// What `restore` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// Erasures replayed from the ledger (ids).
    pub replayed: Vec<u64>,
    /// Ledger lines already contained in the backup.
    pub already_present: usize,
    /// Certificates issued by the purge that followed the replay.
    pub certificates: Vec<String>,
}

/// One ledger line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerLine {
    erasure_id: u64,
    scope: String,
    profiles: Vec<String>,
    fields: Vec<String>,
    requested_at: String,
    mac: String,
}

fn line_mac(db: &Db, l: &LedgerLine) -> Result<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(db.ledger_key.as_ref())
        .map_err(|_| Error::InvalidInput("HMAC key length".into()))?;
    let body = json!([l.erasure_id, l.scope, l.profiles, l.fields, l.requested_at]).to_string();
    mac.update(body.as_bytes());
    Ok(crate::hex::encode(&mac.finalize().into_bytes()))
}

fn to_line(db: &Db, r: &ErasureRecord) -> Result<LedgerLine> {
    let mut l = LedgerLine {
        erasure_id: r.erasure_id,
        scope: match r.scope {
            ErasureScope::Profile => "profile".into(),
            ErasureScope::Fields => "fields".into(),
        },
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

fn read_ledger(path: &Path) -> Result<Vec<LedgerLine>> {
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
fn append_ledger(db: &Db, dir: &Path) -> Result<usize> {
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
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
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
pub(crate) fn mirror_ledger(db: &Db) -> Result<usize> {
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

fn is_nonempty_dir(dir: &Path) -> Result<bool> {
    Ok(dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::io_at(dir, e))?
            .next()
            .is_some())
}

/// `Db::backup`.
pub(crate) fn backup(db: &Db, dir: &Path) -> Result<BackupInfo> {
    if is_nonempty_dir(dir)? {
        return Err(Error::InvalidInput(format!(
            "backup directory {} exists and is not empty",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io_at(dir, e))?;
    let dir = dir.canonicalize().map_err(|e| Error::io_at(dir, e))?;
    // Erasures stay still while the checkpoint is taken.
    let _identity = db.identity_lock.lock();
    let last_erasure = db.store.last::<Erasures>()?.map_or(0, |(id, _)| id);
    let store_dir = dir.join(STORE_DIR);
    db.store.checkpoint(&store_dir)?;
    {
        let cfg = StorageConfig {
            block_cache_bytes: 1 << 20,
            write_buffer_bytes: 1 << 20,
            sync_writes: true,
            compression: true,
        };
        let copy = Store::open(&store_dir, &cfg, false)?;
        let mut batch = Batch::new();
        batch.put::<BackupMarkers>(&(), &Blob(b"backup".to_vec()));
        copy.write(batch)?;
        copy.flush()?;
    }
    let taken_at = Timestamp::now();
    let info = json!({
        "format": "lethedb-backup/1",
        "store_id": db.store_id(),
        "taken_at": taken_at.to_string(),
        "last_erasure": last_erasure,
    });
    let info_path = dir.join(INFO_FILE);
    std::fs::write(&info_path, format!("{info:#}\n")).map_err(|e| Error::io_at(&info_path, e))?;
    append_ledger(db, &dir)?;
    let number = db.store.last::<Backups>()?.map_or(1, |(n, _)| n + 1);
    let mut batch = Batch::new();
    batch.put::<Backups>(
        &number,
        &BackupRecord {
            path: dir.to_string_lossy().to_string(),
            taken_at: taken_at.as_micros(),
            last_erasure,
        },
    );
    db.audit.commit(
        &db.store,
        batch,
        &[Event::new(
            "backup",
            None,
            json!({ "backup": number, "last_erasure": last_erasure }),
        )],
    )?;
    Ok(BackupInfo {
        path: dir,
        last_erasure,
        taken_at,
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io_at(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io_at(from, e))? {
        let entry = entry.map_err(|e| Error::io_at(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if entry
            .file_type()
            .map_err(|e| Error::io_at(&src, e))?
            .is_dir()
        {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| Error::io_at(&src, e))?;
        }
    }
    Ok(())
}

/// `Db::restore`.
pub(crate) fn restore(
    from: &Path,
    to: &Path,
    keys: &dyn KeyProvider,
    options: Options,
) -> Result<(Db, RestoreReport)> {
    let src = from.join(STORE_DIR);
    if !from.join(INFO_FILE).exists() || !src.join("CURRENT").exists() {
        return Err(Error::InvalidInput(format!(
            "{} is not a lethedb backup (no {INFO_FILE} and {STORE_DIR}/)",
            from.display()
        )));
    }
    if is_nonempty_dir(to)? {
        return Err(Error::StoreExists {
            path: to.to_path_buf(),
        });
    }
    let ledger = read_ledger(&from.join(LEDGER_FILE))?;
    copy_dir(&src, to)?;
    let mut opts = options;
    opts.restoring = true;
    opts.create_if_missing = false;
    let db = Db::open(to, keys, opts)?;
    let mut report = RestoreReport {
        replayed: Vec::new(),
        already_present: 0,
        certificates: Vec::new(),
    };
    let mut lines = ledger;
    lines.sort_by_key(|l| l.erasure_id);
    for l in &lines {
        if line_mac(&db, l)? != l.mac {
            return Err(Error::InvalidInput(format!(
                "erasure ledger line {} does not authenticate under this store's key (altered?)",
                l.erasure_id
            )));
        }
        if db.store.get::<Erasures>(&l.erasure_id)?.is_some() {
            report.already_present += 1;
            continue;
        }
        let ids = l
            .profiles
            .iter()
            .map(|p| p.parse::<ProfileId>())
            .collect::<Result<Vec<_>>>()?;
        let r = if l.scope == "profile" {
            super::forget_replay(&db, &ids, l.erasure_id)?
        } else {
            let names: Vec<&str> = l.fields.iter().map(String::as_str).collect();
            super::forget_fields(&db, &ids, &names, Some(l.erasure_id))?
        };
        let replayed = r.erasure_id == Some(l.erasure_id);
        if replayed {
            report.replayed.push(l.erasure_id);
        }
    }
    let mut batch = Batch::new();
    batch.delete::<BackupMarkers>(&());
    db.audit.commit(
        &db.store,
        batch,
        &[Event::new(
            "restore",
            None,
            json!({ "replayed": report.replayed, "already_present": report.already_present }),
        )],
    )?;
    report.certificates = super::purge(&db)?.certificates;
    Ok((db, report))
}

/// Whether a store directory is marked as a backup.
pub(crate) fn is_backup(store: &Store) -> Result<bool> {
    Ok(store.get::<BackupMarkers>(&())?.is_some())
}
