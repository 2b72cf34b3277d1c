//! `Db::upgrade`: rewrites what a store holds in format v1 as format v2,
//! online and resumable, a step of profiles at a time (docs/design.md,
//! "Upgrading to format v2").
//!
//! Writes are v2 already (a profile written is sealed as v2 and loses its
//! separate keyring entry; consent records and index entries are written as
//! v2), so a store upgrades lazily as it is used; `upgrade` does the rest.
//! Each step is one atomic batch under the identity lock and the key tree's
//! shared guard: a crash leaves every record in one format or the other,
//! both readable, and a rerun skips what is done.

use crate::domain::consent;
use crate::domain::index_auth::identity_entry;
use crate::domain::profiles::Working;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::{IdentityIndex, Profiles};
use crate::storage::records::RecordStatus;
use crate::storage::Batch;
use crate::types::ProfileId;

/// Progress of an upgrade (`Db::upgrade_step`, summed by `Db::upgrade`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpgradeProgress {
    /// Profile records visited.
    pub profiles: u64,
    /// Profiles rewritten (a v1 record, or v1 consent records).
    pub profiles_rewritten: u64,
    /// Identity-index entries rewritten with their MAC.
    pub index_entries_rewritten: u64,
    /// Where the next step starts (`None` with `finished`).
    pub next: Option<ProfileId>,
    /// True when nothing of format v1 is left.
    pub finished: bool,
}

/// Profiles per step.
pub(crate) const STEP: usize = 256;

/// One step: up to `max` profiles from `from` (the start when `None`); the
/// identity index is upgraded in the last step.
pub(crate) fn step(db: &Engine, from: Option<ProfileId>, max: usize) -> Result<UpgradeProgress> {
    let mut out = profiles_step(db, from, max)?;
    if out.next.is_none() {
        out.index_entries_rewritten = index_entries(db)?;
        out.finished = true;
    }
    Ok(out)
}

/// Up to `max` profiles from `from`, under the key tree's shared guard, the
/// identity lock and their stripe locks, in one batch.
fn profiles_step(db: &Engine, from: Option<ProfileId>, max: usize) -> Result<UpgradeProgress> {
    let _tree = db.keys.shared();
    let _identity = db.identity_lock.lock();
    let mut out = UpgradeProgress::default();
    let mut batch = Batch::new();
    let start = from.unwrap_or(ProfileId::from_bytes([0; 16]));
    let mut ids = Vec::new();
    for (seen, item) in db.store.range::<Profiles>(&start, None)?.enumerate() {
        let (id, stored) = item?;
        if seen == max.max(1) {
            out.next = Some(id);
            break;
        }
        // Erased records of builds before keyed tombstones carry no keys
        // and the raw id: each becomes a keyed tombstone (as a purge makes
        // them), so a store marked v2-only holds no v1 record at all — but
        // only one the ledger vouches for, and never in a store already
        // marked (there such a record was planted).
        if let RecordStatus::Erased { erasure_id } = stored.record.status {
            if stored.seal.is_none() {
                if let Some(e) = db.v1_refused(&id, "profile record") {
                    return Err(e);
                }
                if !ledger_names(db, erasure_id, &id)? {
                    return Err(Error::Integrity {
                        profile: id,
                        what: format!(
                            "erased record naming erasure {erasure_id}, which does not name it"
                        ),
                    });
                }
                batch.delete::<Profiles>(&id);
                batch.put::<crate::storage::columns::Tombstones>(
                    &db.tombstone_of(&id)?,
                    &crate::storage::records::Tombstone { erasure_id },
                );
                out.profiles_rewritten += 1;
            }
            continue;
        }
        ids.push((id, stored.seal.is_none()));
    }
    out.profiles = ids.len() as u64;
    let _stripes = db.locks.lock(ids.iter().map(|(id, _)| id));
    for (id, v1) in &ids {
        let w = Working::load(db, id)?.ok_or(Error::ProfileNotFound(*id))?;
        let consents = consent::upgrade_into(db, &w, &mut batch)?;
        if *v1 || consents {
            w.put_into(&mut batch)?;
            out.profiles_rewritten += 1;
        }
    }
    db.store.write(batch)?;
    Ok(out)
}

/// Whether erasure `erasure_id`'s ledger record names profile `id` (by id
/// before its purge, by keyed tombstone after).
fn ledger_names(db: &Engine, erasure_id: u64, id: &ProfileId) -> Result<bool> {
    let Some(rec) = db
        .store
        .get::<crate::storage::columns::Erasures>(&erasure_id)?
    else {
        return Ok(false);
    };
    let tomb = db.tombstone_of(id)?;
    Ok(rec
        .profiles
        .iter()
        .any(|p| p == id.as_bytes() || *p == tomb))
}

/// Rewrites every identity-index entry of format v1 with its MAC, 4096 at
/// a time, each chunk read and written under the identity lock (which
/// every re-pointing of an entry holds) and the lock let go in between.
fn index_entries(db: &Engine) -> Result<u64> {
    let mut n = 0;
    let mut from: Option<[u8; 16]> = None;
    loop {
        let _identity = db.identity_lock.lock();
        let mut batch = Batch::new();
        let mut last = None;
        let mut seen = 0;
        let start = from.unwrap_or([0; 16]);
        for item in db.store.range::<IdentityIndex>(&start, None)? {
            let (key, e) = item?;
            if from == Some(key) {
                continue;
            }
            if seen == 4096 {
                break;
            }
            seen += 1;
            last = Some(key);
            if e.mac.is_none() {
                // In a store marked v2-only an entry without its MAC was put
                // there from outside: never bless it.
                if let Some(err) = db.v1_refused(&e.profile, "identity index entry") {
                    return Err(err);
                }
                batch.put::<IdentityIndex>(&key, &identity_entry(db, &key, e.profile));
                n += 1;
            }
        }
        db.store.write(batch)?;
        match last {
            Some(k) if seen == 4096 => from = Some(k),
            _ => return Ok(n),
        }
    }
}

/// Marks the store as holding format v2 only (after a whole upgrade pass):
/// records and entries of format v1 are refused from then on.
pub(crate) fn mark_v2_only(db: &Engine) -> Result<()> {
    let mut batch = Batch::new();
    batch.put::<crate::storage::columns::FormatMarks>(
        &(),
        &crate::storage::records::Blob(Vec::new()),
    );
    db.store.write(batch)?;
    db.v2_only.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Test machinery: rewrites profile `id` (record, keyring, consent records,
/// grant and identity entries) as format v1 did, so tests can build stores
/// of mixed formats. Not in a release library.
#[cfg(feature = "testkit")]
pub(crate) fn downgrade(db: &Engine, id: &ProfileId) -> Result<()> {
    use crate::domain::identity::stored::decode_ids;
    use crate::storage::columns::Keyrings;
    use crate::storage::records::StoredProfile;
    let _tree = db.keys.shared();
    let _identity = db.identity_lock.lock();
    let _stripe = db.locks.lock([id]);
    let w = Working::load(db, id)?.ok_or(Error::ProfileNotFound(*id))?;
    let keys = w.keyring.field_keys()?;
    let mut record = w.record.clone();
    record.write_version = 0;
    record.consents.clear();
    for f in record.fields.iter_mut() {
        let name = db.registry.name(f.field_id)?;
        f.payload = crate::domain::profiles::seal_entry(
            &keys, id, &name, f.field_id, f.sealed, &f.payload,
        )?;
    }
    let mut batch = Batch::new();
    // The store holds v1 again.
    batch.delete::<crate::storage::columns::FormatMarks>(&());
    db.v2_only
        .store(false, std::sync::atomic::Ordering::Relaxed);
    consent::downgrade_into(db, &w, &mut batch)?;
    batch.put::<Profiles>(id, &StoredProfile { record, seal: None });
    batch.put::<Keyrings>(id, &w.wrapped);
    if w.record.status == RecordStatus::Active {
        for i in decode_ids(db, &w)? {
            for key in db.ids.keys(i.id_type.name(), &i.normalized)? {
                if let Some(e) = db.store.get::<IdentityIndex>(&key)? {
                    if e.profile == *id {
                        batch.put::<IdentityIndex>(
                            &key,
                            &crate::storage::records::IdentityEntry {
                                profile: *id,
                                mac: None,
                            },
                        );
                    }
                }
            }
        }
    }
    db.store.write(batch)
}
