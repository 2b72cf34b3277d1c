//! Consent through a profile's life: merge policy (the more restrictive
//! state wins), unmerge, erasure and re-keying.

use super::record::*;
use super::sealed::*;
use crate::domain::profiles::Working;
use crate::engine::Engine;
use crate::error::Result;
use crate::storage::columns::{ConsentCurrent, ConsentGranted, ConsentHistory, Keyspace};
use crate::storage::records::GrantEntry;
use crate::storage::Batch;
use crate::types::{MergeId, ProfileId, Timestamp};

fn restrictiveness(r: &ConsentRecord, now: Timestamp) -> (u8, i64) {
    if !r.allows_at(now) {
        (0, 0)
    } else {
        (1, r.expires_at.map_or(i64::MAX, |t| t.as_micros()))
    }
}

/// Merge policy: per purpose, the most restrictive current state wins
/// (not granted < granted expiring sooner < granted expiring later). When
/// the survivor's state changes, the change is recorded in its history with
/// source `merge:<merge id>`. The merged profile's index entries are removed;
/// its states and history stay (frozen) for unmerge and audit.
pub(crate) fn on_merge(
    db: &Engine,
    s: &Working,
    q: &Working,
    merge_id: MergeId,
    s_states: &mut States,
    batch: &mut Batch,
) -> Result<()> {
    let now = Timestamp::now();
    let q_states = current_states(db, q)?;
    for (tag, qr) in &q_states {
        batch.delete::<ConsentGranted>(&(*tag, q.id));
        let winner = match s_states.get(tag) {
            Some(sr) if restrictiveness(sr, now) <= restrictiveness(qr, now) => continue,
            _ => qr,
        };
        let mut r = winner.clone();
        r.source = format!("merge:{merge_id}");
        r.recorded_at = Timestamp(reserve_recorded_at(db, s, 1)?);
        stage_history(db, s, &r, batch)?;
        stage_state(db, s, *tag, &r, batch)?;
        s_states.insert(*tag, r);
    }
    Ok(())
}

/// Unmerge: the restored profile's consent index entries come back from its
/// own (frozen) current states. The survivor keeps its states, including the
/// more restrictive ones the merge gave it — the safe side.
pub(crate) fn on_unmerge(db: &Engine, b: &Working, batch: &mut Batch) -> Result<()> {
    for (tag, r) in current_states(db, b)? {
        if r.status == ConsentStatus::Granted {
            batch.put::<ConsentGranted>(
                &(tag, b.id),
                &GrantEntry {
                    expires_at: r.expires_at,
                },
            );
        }
    }
    Ok(())
}

/// Key ranges holding a profile's consent records (current and history).
pub(crate) fn touched_ranges(id: &ProfileId, add: &mut dyn FnMut(&'static str, Vec<u8>, Vec<u8>)) {
    for prefix in [
        <ConsentCurrent as Keyspace>::PREFIX,
        <ConsentHistory as Keyspace>::PREFIX,
    ] {
        let mut start = vec![prefix];
        start.extend_from_slice(id.as_bytes());
        let mut end = start.clone();
        end.resize(start.len() + 12, 0xff);
        add(<ConsentCurrent as Keyspace>::CF, start, end);
    }
}

/// Erasure: deletes every consent record of `id` (current states, history,
/// index entries) into `batch`, reporting the key ranges touched; returns
/// the number of records removed.
pub(crate) fn erase_into(
    db: &Engine,
    id: &ProfileId,
    batch: &mut Batch,
    add: &mut dyn FnMut(&'static str, Vec<u8>, Vec<u8>),
) -> Result<u32> {
    let mut n = 0u32;
    for key in db.store.keys_with::<ConsentCurrent>(id.as_bytes())? {
        let key = key?;
        batch.delete::<ConsentCurrent>(&key);
        batch.delete::<ConsentGranted>(&(key.1, *id));
        let g = ConsentGranted::key(&(key.1, *id));
        add(<ConsentGranted as Keyspace>::CF, g.clone(), g);
        n += 1;
    }
    for key in db.store.keys_with::<ConsentHistory>(id.as_bytes())? {
        batch.delete::<ConsentHistory>(&key?);
        n += 1;
    }
    touched_ranges(id, add);
    Ok(n)
}

/// Re-key: re-seals every consent record of `old` under `new`'s keyring.
pub(crate) fn reseal(db: &Engine, old: &Working, new: &Working, batch: &mut Batch) -> Result<()> {
    for item in db.store.entries::<ConsentCurrent>(old.id.as_bytes())? {
        let (key, sealed) = item?;
        let r = open(db, old, b'c', &body(&key), &sealed)?;
        batch.put::<ConsentCurrent>(&key, &seal(db, new, b'c', &body(&key), &r)?);
    }
    for item in db.store.entries::<ConsentHistory>(old.id.as_bytes())? {
        let (key, sealed) = item?;
        let r = open(db, old, b'h', &body(&key), &sealed)?;
        batch.put::<ConsentHistory>(&key, &seal(db, new, b'h', &body(&key), &r)?);
    }
    Ok(())
}
