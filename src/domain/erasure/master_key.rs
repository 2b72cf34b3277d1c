//! Master-key rotation (`Db::rotate_master`, `lethedb keys rotate-master`):
//! everything the master key protects is re-wrapped under a new one,
//! without rewriting a profile. It lives beside the backups because it
//! must move them too.
//!
//! What the master key protects, and what the rotation does with it:
//! * the key check in the store header — recomputed for the new key;
//! * the roots — the tree moves to a new root epoch (sealed under the new
//!   key's root-wrap key, or generated in the device), every level-1 node
//!   re-wrapped under it; the old root is destroyed at the end, so no root
//!   sealed under the old key survives;
//! * the signing key — re-sealed;
//! * the key set (blind-index, suppression, subject-reference, tombstone
//!   keys) — re-sealed, values unchanged (their outputs are stored and
//!   cannot be recomputed); a store from before the key set gets one, with
//!   the keys it derived from the old master key;
//! * the audit head seal — the rotation's audit entry is sealed under the
//!   new key;
//! * every registered backup: its ledger file re-sealed and re-MACed, its
//!   copy moved to a new root with its key check, signing key and key set
//!   re-sealed (a backup that cannot be reached is invalidated).
//!
//! Steps and crash safety: the caller stores the new key durably first.
//! (A) one synced batch on the live store: new root, key check, signing
//! key, key set, audit entry, and a marker (`meta 'r'`); from here the
//! store opens only with the new key, and only to finish the rotation.
//! (B) backups, each idempotent (a line or copy already under the new key
//! is left as it is). (C) every root no copy uses is destroyed, the marker
//! removed with an audit entry. Running the rotation again with the same
//! two keys after a crash anywhere finishes it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::crypto::keyset::KeySet;
use crate::crypto::{kdf, KeyProvider, MasterKey, MemoryKeyProvider};
use crate::domain::audit::Event;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::storage::columns::{Backups, KeySets, MasterRotations, SigningKeys, StoreHeaders};
use crate::storage::records::Blob;
use crate::storage::Batch;

use super::certificate::reseal_signing_key;
use super::copies::{
    copy_options, reseal_ledger_file, staged_ledger, LedgerKeys, LEDGER_FILE, STORE_DIR,
};

/// What a master-key rotation did (`Db::rotate_master`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MasterRotationReport {
    /// The live store's root epoch before and after.
    pub old_root_epoch: u32,
    /// The live store's root epoch after (under the new key).
    pub new_root_epoch: u32,
    /// True when the store was already committed to the new key (a
    /// rotation interrupted after step A, finished now).
    pub resumed: bool,
    /// Backups moved to the new key.
    pub backups_moved: u32,
    /// Backups that could not be reached and were invalidated.
    pub backups_invalidated: u32,
    /// Ledger lines re-sealed in the backups' ledger files.
    pub ledger_lines_resealed: u64,
    /// Root epochs destroyed at the end (every root sealed under the old key).
    pub root_epochs_destroyed: Vec<u32>,
    /// Why each invalidated backup could not be moved.
    pub failures: Vec<String>,
    /// Wall time of the whole rotation.
    pub elapsed: Duration,
}

impl MasterRotationReport {
    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "old_root_epoch": self.old_root_epoch,
            "new_root_epoch": self.new_root_epoch,
            "resumed": self.resumed,
            "backups_moved": self.backups_moved,
            "backups_invalidated": self.backups_invalidated,
            "ledger_lines_resealed": self.ledger_lines_resealed,
            "root_epochs_destroyed": self.root_epochs_destroyed,
            "failures": self.failures,
            "elapsed_ms": self.elapsed.as_millis() as u64,
        })
    }
}

/// A crash point (feature `testkit`): fails after `step` when the options
/// ask for it; compiled to nothing otherwise.
#[cfg(feature = "testkit")]
fn crash_point(options: &Options, step: u8) -> Result<()> {
    if options.stop_master_rotation == step {
        return Err(Error::InvalidInput(format!(
            "master-key rotation stopped after step {step} (test hook)"
        )));
    }
    Ok(())
}

#[cfg(not(feature = "testkit"))]
#[inline(always)]
fn crash_point(_options: &Options, _step: u8) -> Result<()> {
    Ok(())
}

fn open_with(path: &std::path::Path, master: &MasterKey, options: &Options) -> Result<Engine> {
    let mut opts = options.clone();
    opts.create_if_missing = false;
    opts.rotating_master = true;
    Engine::open(path, &MemoryKeyProvider::holding(master), opts)
}

/// `Db::rotate_master`.
pub(crate) fn rotate_master(
    path: &std::path::Path,
    old: &dyn KeyProvider,
    new: &dyn KeyProvider,
    options: Options,
) -> Result<MasterRotationReport> {
    let started = Instant::now();
    let m_old = old.master_key()?;
    let m_new = new.master_key()?;
    if m_old.bytes() == m_new.bytes() {
        return Err(Error::InvalidInput(
            "the new master key is the old one; generate a new key".into(),
        ));
    }
    let mut report = MasterRotationReport::default();
    match open_with(path, &m_old, &options) {
        Ok(db) if db.store.get::<MasterRotations>(&())?.is_some() => {
            // `old` is the key an unfinished rotation moved to: starting
            // another one would leave the backups (still under the key
            // that rotation started from) behind.
            return Err(Error::InvalidInput(
                "a master-key rotation of this store is unfinished and `old` is the key it moved to: finish it first, with the key it started from as the old key and the key it moved to as the new one (if the key it started from is lost, the backups still under it cannot be moved: finishing with any other old key invalidates them)".into(),
            ));
        }
        Ok(db) => {
            let (old_epoch, new_epoch) = move_store(&db, &m_old, &m_new, true)?;
            report.old_root_epoch = old_epoch;
            report.new_root_epoch = new_epoch;
            drop(db);
            crash_point(&options, 1)?;
        }
        Err(Error::WrongKey) => report.resumed = true,
        Err(e) => return Err(e),
    }
    let db = open_with(path, &m_new, &options).map_err(|e| match e {
        Error::WrongKey => {
            Error::InvalidInput("neither the old nor the new master key opens this store".into())
        }
        e => e,
    })?;
    if report.resumed {
        // A crash may have come between step A's commit and its compaction.
        compact_sealed(&db)?;
        report.new_root_epoch = db.keys.root_epoch();
        if db.store.get::<MasterRotations>(&())?.is_none() {
            // Finished earlier: nothing left to do.
            report.elapsed = started.elapsed();
            return Ok(report);
        }
    }
    move_backups(&db, &m_old, &m_new, &mut report)?;
    crash_point(&options, 2)?;
    // (C) Every root no copy uses goes: the live store's old root and the
    // backups' old roots, all sealed under the old key.
    let referenced: Vec<u32> = db
        .store
        .entries::<Backups>(&[])?
        .filter_map(|item| item.ok().and_then(|(_, b)| b.root_epoch))
        .collect();
    let current = db.keys.root_epoch();
    let doomed: Vec<u32> = db
        .keys
        .root_epochs()?
        .into_iter()
        .filter(|e| *e != current && !referenced.contains(e))
        .collect();
    db.keys.destroy_roots(&doomed)?;
    report.root_epochs_destroyed = doomed;
    crash_point(&options, 3)?;
    let mut batch = Batch::new();
    batch.delete::<MasterRotations>(&());
    db.audit.commit_with(
        &db.store,
        batch,
        &[Event::new(
            "master_key_rotation_finished",
            None,
            json!({
                "root_epoch": current,
                "root_epochs_destroyed": report.root_epochs_destroyed,
                "backups_moved": report.backups_moved,
                "backups_invalidated": report.backups_invalidated,
            }),
        )],
        true,
        |_, _| Ok(()),
    )?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// (A) for one store (the live one, with the marker; or a backup copy):
/// new root, key check, signing key, key set and an audit entry sealed
/// under the new key — one synced batch. Returns (old, new) root epochs.
fn move_store(db: &Engine, m_old: &MasterKey, m_new: &MasterKey, live: bool) -> Result<(u32, u32)> {
    let store_id = db.header.store_id;
    let old_epoch = db.keys.root_epoch();
    let new_epoch = db.keys.next_epoch()?;
    let mut batch = Batch::new();
    let wrap = kdf::derive(m_new, &store_id, kdf::LABEL_ROOT_WRAP)?;
    db.keys
        .reroot(&db.store, db.keys.roots(), new_epoch, &wrap, &mut batch)?;
    let mut header = db.header.clone();
    header.key_check = kdf::key_check_value(m_new, &store_id)?;
    batch.put::<StoreHeaders>(&(), &header);
    if let Some(rec) = reseal_signing_key(&db.store, m_old, m_new, &store_id)? {
        batch.put::<SigningKeys>(&(), &rec);
    }
    let keyset = match db.store.get::<KeySets>(&())? {
        Some(blob) => KeySet::open(m_old, &store_id, &blob.0)?,
        None => KeySet::legacy(m_old, &store_id)?,
    };
    batch.put::<KeySets>(&(), &Blob(keyset.seal(m_new, &store_id)?));
    if live {
        let mut marker = old_epoch.to_be_bytes().to_vec();
        marker.extend_from_slice(&new_epoch.to_be_bytes());
        batch.put::<MasterRotations>(&(), &Blob(marker));
    }
    db.audit.under(m_new)?.commit_with(
        &db.store,
        batch,
        &[Event::new(
            "master_key_rotated",
            None,
            json!({ "old_root_epoch": old_epoch, "new_root_epoch": new_epoch, "copy": !live }),
        )],
        true,
        |_, _| Ok(()),
    )?;
    compact_sealed(db)?;
    Ok((old_epoch, new_epoch))
}

/// The versions sealed under the old key out of the live files: every
/// memtable flushed (so the WAL holding them becomes obsolete), then the
/// records sealed under the master key — store header, key set, signing
/// key, level-1 nodes — compacted to the bottommost level. Idempotent; a
/// resumed rotation runs it again.
fn compact_sealed(db: &Engine) -> Result<()> {
    use crate::storage::columns::{Keyspace, TreeNodes, CF_KEYS, CF_META};
    db.store.flush()?;
    let unit = |ks_key: Vec<u8>| (ks_key.clone(), ks_key);
    for (cf, (from, to)) in [
        (CF_META, unit(StoreHeaders::key(&()))),
        (CF_META, unit(KeySets::key(&()))),
        (CF_KEYS, unit(SigningKeys::key(&()))),
        (
            CF_KEYS,
            (TreeNodes::key(&([1], 0)), TreeNodes::key(&([1], u32::MAX))),
        ),
    ] {
        db.store.compact_range(cf, &from, &to)?;
    }
    Ok(())
}

/// (B) every registered backup still in use: ledger re-sealed, copy moved
/// to a new root under the new key, record updated; one that cannot be
/// reached is invalidated.
fn move_backups(
    db: &Engine,
    m_old: &MasterKey,
    m_new: &MasterKey,
    report: &mut MasterRotationReport,
) -> Result<()> {
    let store_id = db.header.store_id;
    let old_keys = LedgerKeys::new(m_old, &store_id)?;
    let new_keys = LedgerKeys::new(m_new, &store_id)?;
    let backups: Vec<_> = db
        .store
        .entries::<Backups>(&[])?
        .collect::<Result<Vec<_>>>()?;
    for (n, mut rec) in backups {
        if rec.root_epoch.is_none() {
            continue;
        }
        let dir = PathBuf::from(&rec.path);
        let moved = (|| -> Result<(u32, u64)> {
            // The ledger under the new key is staged beside the old one and
            // swapped in once the copy has moved: until then, copy and
            // ledger stay under one key (restore also reads the staged
            // ledger when the live one does not authenticate).
            let ledger = dir.join(LEDGER_FILE);
            let staged = staged_ledger(&ledger);
            let lines = reseal_ledger_file(&ledger, &staged, &old_keys, &new_keys)?;
            let copy_path = dir.join(STORE_DIR);
            let opts = copy_options(db);
            let new_epoch = match open_with(&copy_path, m_old, &opts) {
                // The copy's new epoch is reserved in the shared root key
                // store: above every epoch held.
                Ok(copy) => move_store(&copy, m_old, m_new, false)?.1,
                // Moved before a crash: already on its new root (its
                // compaction may not have run).
                Err(Error::WrongKey) => {
                    let copy = open_with(&copy_path, m_new, &opts)?;
                    compact_sealed(&copy)?;
                    copy.keys.root_epoch()
                }
                Err(e) => return Err(e),
            };
            if staged.exists() {
                std::fs::rename(&staged, &ledger).map_err(|e| Error::io_at(&ledger, e))?;
                std::fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io_at(&dir, e))?;
            }
            Ok((new_epoch, lines as u64))
        })();
        let mut batch = Batch::new();
        match moved {
            Ok((new_epoch, lines)) => {
                rec.root_epoch = Some(new_epoch);
                report.backups_moved += 1;
                report.ledger_lines_resealed += lines;
            }
            Err(e) => {
                let _ = std::fs::remove_file(staged_ledger(&dir.join(LEDGER_FILE)));
                rec.root_epoch = None;
                report.backups_invalidated += 1;
                report
                    .failures
                    .push(format!("backup {n} ({}): {e}", rec.path));
            }
        }
        batch.put::<Backups>(&n, &rec);
        db.store.write_synced(batch)?;
    }
    Ok(())
}
