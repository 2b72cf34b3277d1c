//! Blind-index rotation (`Db::rotate_blind_index`, `lethedb keys
//! rotate-blind-index`): a new random identifier-index key, every entry
//! re-keyed under it, online.
//!
//! Start (one audited batch): the key set gets a new identity key
//! (generation + 1), keeps the old one as `previous`, and a cursor at the
//! lowest profile id. Each step (one batch, under the key-tree shared lock
//! and the identity lock, so no identifier moves meanwhile): the next
//! profiles in id order from the cursor — each active one's identifiers
//! are read and every entry under the previous key that points at it is
//! replaced by one under the new key — and the cursor moves past them.
//! While it runs, an entry pointing at a profile below the cursor is under
//! the new key, any other under the previous one: writers key entries by
//! that rule (under the identity lock), lookups and deletions try both. The
//! last step drops the previous key from the key set (audited) and
//! compacts the identity index, so no entry under the old key remains in
//! the live files. A crash loses at most the step in flight: the cursor
//! and the entries it covers commit together; calling again resumes.

use std::sync::Arc;

use serde_json::json;

use crate::crypto::keyset::KeySet;
use crate::crypto::random_key;
use crate::domain::audit::Event;
use crate::domain::profiles::{Fields, Working};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::{IdentityIndex, KeySets, Profiles};
use crate::storage::records::{Blob, RecordStatus};
use crate::storage::Batch;
use crate::types::ProfileId;

use super::blind::{BlindIndex, IdentityKeyState};
use super::stored::decode_ids;

/// Progress of a blind-index rotation (`Db::rotate_blind_index_step`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlindIndexRotation {
    /// Generation of the identifier-index key being rotated to.
    pub generation: u32,
    /// Profiles visited by this call.
    pub profiles: u64,
    /// Index entries moved to the new key by this call.
    pub entries_moved: u64,
    /// True when the rotation is complete (the old key is gone).
    pub finished: bool,
}

fn key_set(db: &Engine) -> Result<KeySet> {
    match db.store.get::<KeySets>(&())? {
        Some(blob) => KeySet::open(&db.master, &db.header.store_id, &blob.0),
        None => KeySet::legacy(&db.master, &db.header.store_id),
    }
}

fn state_of(ks: &KeySet) -> Result<IdentityKeyState> {
    Ok(IdentityKeyState {
        current: Arc::new(BlindIndex::new(&ks.identity)?),
        generation: ks.identity_generation,
        previous: match &ks.previous_identity {
            Some(k) => Some(Arc::new(BlindIndex::new(k)?)),
            None => None,
        },
        cursor: ks.cursor,
    })
}

/// Starts a rotation, or does nothing when one is under way; returns the
/// generation rotated to.
pub(crate) fn start(db: &Engine) -> Result<u32> {
    let _identity = db.identity_lock.lock();
    let st = db.ids.state();
    if st.previous.is_some() {
        return Ok(st.generation);
    }
    let mut ks = key_set(db)?;
    let old = std::mem::replace(&mut ks.identity, random_key()?);
    ks.previous_identity = Some(old);
    ks.identity_generation = ks
        .identity_generation
        .checked_add(1)
        .ok_or_else(|| Error::corrupt("key set", "identity generation exhausted"))?;
    ks.cursor = Some([0; 16]);
    let mut batch = Batch::new();
    batch.put::<KeySets>(&(), &Blob(ks.seal(&db.master, &db.header.store_id)?));
    db.audit.commit_with(
        &db.store,
        batch,
        &[Event::new(
            "blind_index_rotation_started",
            None,
            json!({ "generation": ks.identity_generation }),
        )],
        true,
        |_, _| Ok(()),
    )?;
    db.ids.set(state_of(&ks)?);
    Ok(ks.identity_generation)
}

/// Re-keys the next `max_profiles` profiles' entries (see the module
/// documentation); finishes the rotation after the last one.
pub(crate) fn step(db: &Engine, max_profiles: usize) -> Result<BlindIndexRotation> {
    let _tree = db.keys.shared();
    let _identity = db.identity_lock.lock();
    let st = db.ids.state();
    let mut out = BlindIndexRotation {
        generation: st.generation,
        ..BlindIndexRotation::default()
    };
    let (Some(previous), Some(cursor)) = (st.previous.clone(), st.cursor) else {
        out.finished = true;
        return Ok(out);
    };
    let mut batch = Batch::new();
    let mut next = None;
    for item in db
        .store
        .range::<Profiles>(&ProfileId::from_bytes(cursor), None)?
    {
        let (id, rec) = item?;
        if out.profiles == max_profiles.max(1) as u64 {
            next = Some(*id.as_bytes());
            break;
        }
        out.profiles += 1;
        if rec.record.status != RecordStatus::Active {
            continue;
        }
        let _stripe = db.locks.lock([&id]);
        let w = match Working::load_fields(db, &id, Fields::Lazy) {
            Ok(Some(w)) => w,
            Ok(None) | Err(Error::ProfileErased { .. }) => continue,
            Err(e) => return Err(e),
        };
        for i in decode_ids(db, &w)? {
            let old = previous.key(i.id_type.name(), &i.normalized)?;
            if let Some(e) = db.store.get::<IdentityIndex>(&old)? {
                if e.profile == id {
                    batch.delete::<IdentityIndex>(&old);
                    let new = st.current.key(i.id_type.name(), &i.normalized)?;
                    batch.put::<IdentityIndex>(
                        &new,
                        &crate::domain::index_auth::identity_entry(db, &new, id),
                    );
                    out.entries_moved += 1;
                }
            }
        }
    }
    let mut ks = key_set(db)?;
    let mut events = Vec::new();
    match next {
        Some(c) => ks.cursor = Some(c),
        None => {
            ks.cursor = None;
            ks.previous_identity = None;
            out.finished = true;
            events.push(Event::new(
                "blind_index_rotation_finished",
                None,
                json!({ "generation": ks.identity_generation }),
            ));
        }
    }
    batch.put::<KeySets>(&(), &Blob(ks.seal(&db.master, &db.header.store_id)?));
    db.audit
        .commit_with(&db.store, batch, &events, out.finished, |_, _| Ok(()))?;
    db.ids.set(state_of(&ks)?);
    Ok(out)
}

/// After the last step, without the locks: older versions of the entries
/// and of the key set (holding the old key) out of the live files.
pub(crate) fn compact_after(db: &Engine) -> Result<()> {
    db.store
        .compact_cf(crate::storage::columns::CF_IDENTITIES)?;
    db.store.compact_cf(crate::storage::columns::CF_META)
}
