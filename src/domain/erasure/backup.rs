//! Backups and restore with erasure-ledger replay.
//!
//! `backup(dir)` writes `dir/store/` (a RocksDB checkpoint, marked as a
//! backup so it cannot be opened as a live store by mistake),
//! `dir/BACKUP.json` and `dir/erasure-ledger.ndjson`, and registers `dir`
//! with the store. Every purge appends the erasures made since to the
//! ledger file of every registered backup that is still reachable.
//!
//! Every backup has a key-tree root of its own (a new epoch in the same
//! root key store; the checkpoint's level-1 nodes are re-wrapped under
//! it). A purge whose erasures the backup holds **re-keys** it: the same
//! erasures (same ids) are applied to the backup copy, its tree is rotated
//! for their buckets under a new epoch, and its old root is destroyed. So
//! the backup stays restorable for everyone else while no copy of an
//! erased subject's keys in it — or in any copy of it — can be opened. A
//! backup the purge cannot reach has its root destroyed (invalidated).
//!
//! `restore(dir, to)` copies `dir/store/` to `to`, moves it onto a root of
//! its own in its own root key store (level-1 nodes unwrapped under the
//! backup's root, re-wrapped under the new one), then replays every ledger line the
//! backup does not already contain — by re-running the same erasure (same
//! erasure id) on the restored data — and purges.
//! A subject forgotten after the backup was taken therefore never comes
//! back. Ledger lines are MACed under a master-derived key, so a line
//! cannot be altered; the limits are written down in docs/design.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use crate::crypto::KeyProvider;
use crate::domain::audit::Event;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keytree::{FileRootKeyStore, KeyHierarchy, RootKeys};
use crate::options::Options;
use crate::storage::columns::{BackupMarkers, Backups, Erasures, KeyTreeHeaders, SigningKeys};
use crate::storage::records::{BackupRecord, Blob};
use crate::storage::{Batch, Store};
use crate::types::Timestamp;

use super::copies::{append_ledger, copy_config, read_ledger, INFO_FILE, LEDGER_FILE, STORE_DIR};
use super::forget::{forget_fields, forget_replay};
use super::purge::purge;

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
    /// The ledger read was the one a master-key rotation staged
    /// (`erasure-ledger.ndjson.next`): the rotation stopped between moving
    /// the copy and swapping its ledger in.
    pub used_staged_ledger: bool,
}

fn is_nonempty_dir(dir: &Path) -> Result<bool> {
    Ok(dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::io_at(dir, e))?
            .next()
            .is_some())
}

/// `Db::backup`.
pub(crate) fn backup(db: &Engine, dir: &Path) -> Result<BackupInfo> {
    if is_nonempty_dir(dir)? {
        return Err(Error::InvalidInput(format!(
            "backup directory {} exists and is not empty",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io_at(dir, e))?;
    let dir = dir.canonicalize().map_err(|e| Error::io_at(dir, e))?;
    // Backup and purge exclude each other: a purge's sweep of unused roots
    // must never see a backup root that is stored but not yet registered.
    let _purge = db.purge_lock.lock();
    let _tree = db.keys.shared();
    // Erasures stay still while the checkpoint is taken.
    let _identity = db.identity_lock.lock();
    let last_erasure = db.store.last::<Erasures>()?.map_or(0, |(id, _)| id);
    let first_pending = db
        .store
        .entries::<crate::storage::columns::PendingPurges>(&[])?
        .next()
        .transpose()?
        .map(|(id, _)| id)
        .filter(|id| id & crate::storage::records::REKEY_ITEM == 0);
    let purged_through = first_pending.map_or(last_erasure, |p| p.saturating_sub(1));
    let store_dir = dir.join(STORE_DIR);
    db.store.checkpoint(&store_dir)?;
    let root_epoch = {
        let copy = Store::open(&store_dir, &copy_config(), false)?;
        let mut batch = Batch::new();
        batch.put::<BackupMarkers>(&(), &Blob(b"backup".to_vec()));
        // A copy never re-keys other backups: its registry starts empty.
        for item in copy.entries::<Backups>(&[])? {
            let (n, _) = item?;
            batch.delete::<Backups>(&n);
        }
        copy.write(batch)?;
        let epoch = db.keys.root_copy(&copy)?;
        copy.flush()?;
        epoch
    };
    let taken_at = Timestamp::now();
    let info = json!({
        "format": "lethedb-backup/1",
        "store_id": db.store_id(),
        "taken_at": taken_at.to_string(),
        "last_erasure": last_erasure,
        "root_epoch": root_epoch,
        "root_keys": db.keys.roots().describe(),
        "root_location": db.keys.roots().location().to_json(),
        "root_object": db.keys.roots().location().name_of(&db.header.store_id, root_epoch),
    });
    let info_path = dir.join(INFO_FILE);
    std::fs::write(&info_path, format!("{info:#}\n")).map_err(|e| Error::io_at(&info_path, e))?;
    // The copy holds every erasure up to `last_erasure` itself: its ledger
    // starts after them.
    append_ledger(db, &dir, last_erasure)?;
    let number = db.store.last::<Backups>()?.map_or(1, |(n, _)| n + 1);
    let mut batch = Batch::new();
    batch.put::<Backups>(
        &number,
        &BackupRecord {
            path: dir.to_string_lossy().to_string(),
            taken_at: taken_at.as_micros(),
            last_erasure,
            purged_through,
            root_epoch: Some(root_epoch),
            next_root_epoch: None,
        },
    );
    db.audit.commit(
        &db.store,
        batch,
        &[Event::new(
            "backup",
            None,
            json!({ "backup": number, "last_erasure": last_erasure, "root_epoch": root_epoch }),
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
) -> Result<(Engine, RestoreReport)> {
    let src = from.join(STORE_DIR);
    if !from.join(INFO_FILE).exists() || !crate::storage::is_store_dir(&src) {
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
    let source_roots = match &options.backup_root_keys {
        Some(r) => r.clone(),
        None => recorded_root_keys(from)?,
    };
    let target_roots: RootKeys = match &options.root_keys {
        Some(r) => r.clone(),
        // A backup whose roots are in a device is not restored onto roots
        // in a file beside the store unless asked for.
        None if source_roots.is_device() => {
            return Err(Error::InvalidInput(
                "the backup's roots are in a device: name the restored store's own root key store (Options::root_keys / root_key_device, --root-keys)".into(),
            ))
        }
        None => RootKeys::Sealed(Arc::new(FileRootKeyStore::beside(to))),
    };
    crate::engine::check_co_location(to, &target_roots, options.refuse_co_located_roots)?;
    copy_dir(&src, to)?;
    // Checks that need the copy run on it; one that fails removes it, so
    // nothing is left behind and the restore can be retried.
    let moved = (|| -> Result<()> {
        let copy = Store::open(to, &copy_config(), false)?;
        let header = copy
            .get_raw::<crate::storage::columns::StoreHeaders>(&())?
            .ok_or_else(|| Error::corrupt("store header", "missing in the backup"))
            .and_then(|b| <crate::storage::records::StoreHeader as crate::storage::records::ValueCodec>::decode(&b))?;
        let master = keys.master_key()?;
        if !crate::crypto::kdf::key_check_matches(&master, &header.store_id, &header.key_check)? {
            return Err(Error::WrongKey);
        }
        let tree = copy
            .get::<KeyTreeHeaders>(&())?
            .ok_or_else(|| Error::corrupt("key tree header", "missing in the backup"))?;
        let epoch = tree.root_epoch;
        if !source_roots.epochs(&header.store_id)?.contains(&epoch) {
            return Err(Error::RootKey {
                epoch,
                reason: format!(
                    "the backup's root is not held by {}: a purge destroyed it (the backup was unreachable when erasures it held were purged) or this is not the store's root key store",
                    source_roots.describe()
                ),
            });
        }
        crate::keytree::require_empty(&target_roots, &header.store_id, "a restored store")?;
        // A restored store is a fork of its source: it signs with a key of
        // its own (created at open, audited), so its certificates can never
        // be taken for the source's; and it gets a root of its own in its
        // own root key store — the backup's root is never copied, so the
        // restored store shares no root with the backup.
        let mut batch = Batch::new();
        batch.delete::<SigningKeys>(&());
        copy.write_synced(batch)?;
        let source = KeyHierarchy::open(&master, &header.store_id, &tree, source_roots, 1 << 12)?;
        let next = epoch
            .checked_add(1)
            .ok_or_else(|| Error::corrupt("key tree header", "root epoch exhausted"))?;
        if let Err(e) = source.root_copy_into(&copy, &target_roots, next) {
            // The root may have been created before the batch failed: the
            // target's namespace was empty, so nothing else is destroyed.
            let _ = target_roots.destroy(&header.store_id, &[next]);
            return Err(e);
        }
        Ok(())
    })();
    if let Err(e) = moved {
        let _ = std::fs::remove_dir_all(to);
        return Err(e);
    }
    let mut opts = options;
    opts.restoring = true;
    opts.create_if_missing = false;
    opts.root_keys = Some(target_roots);
    let db = Engine::open(to, keys, opts)?;
    let mut report = RestoreReport {
        replayed: Vec::new(),
        already_present: 0,
        certificates: Vec::new(),
        used_staged_ledger: false,
    };
    // A master-key rotation interrupted between moving this copy and
    // swapping in its re-sealed ledger leaves that ledger staged beside
    // the old one: use it when the old one does not authenticate.
    // The ledger keys are derived once for every line checked below.
    let ledger_keys = super::copies::LedgerKeys::of(&db)?;
    let verifies = |ls: &[super::copies::LedgerLine]| -> Result<bool> {
        for l in ls {
            if ledger_keys.mac(l)? != l.mac {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let mut lines = ledger;
    let mut used_staged_ledger = false;
    if !verifies(&lines)? {
        let staged = read_ledger(&super::copies::staged_ledger(&from.join(LEDGER_FILE)))?;
        if !staged.is_empty() && verifies(&staged)? {
            lines = staged;
            used_staged_ledger = true;
        }
    }
    report.used_staged_ledger = used_staged_ledger;
    lines.sort_by_key(|l| l.erasure_id);
    for l in &lines {
        if ledger_keys.mac(l)? != l.mac {
            return Err(Error::InvalidInput(format!(
                "erasure ledger line {} does not authenticate under this store's key (altered?)",
                l.erasure_id
            )));
        }
        if db.store.get::<Erasures>(&l.erasure_id)?.is_some() {
            report.already_present += 1;
            continue;
        }
        let ids = super::copies::line_profiles(&db, l)?;
        let r = if l.scope == "profile" {
            forget_replay(&db, &ids, l.erasure_id)?
        } else {
            let names: Vec<&str> = l.fields.iter().map(String::as_str).collect();
            forget_fields(&db, &ids, &names, Some(l.erasure_id))?
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
    report.certificates = purge(&db)?.certificates;
    Ok((db, report))
}

/// The root key store `BACKUP.json` names (file stores only).
fn recorded_root_keys(from: &Path) -> Result<RootKeys> {
    let info_path = from.join(INFO_FILE);
    let text = std::fs::read_to_string(&info_path).map_err(|e| Error::io_at(&info_path, e))?;
    let info: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", info_path.display())))?;
    match info["root_keys"].as_str().and_then(|s| s.strip_prefix("file ")) {
        Some(path) => Ok(RootKeys::Sealed(Arc::new(FileRootKeyStore::new(path)))),
        None => Err(Error::InvalidInput(format!(
            "{} names no root key file; pass the root key store holding the backup's root (Options::backup_root_keys, --backup-root-keys)",
            info_path.display()
        ))),
    }
}
