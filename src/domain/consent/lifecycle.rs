//! Consent through a profile's life: merge policy (the more restrictive
//! state wins), unmerge, erasure and re-keying.

use std::collections::{HashMap, HashSet};

use super::record::*;
use super::sealed::*;
use crate::domain::profiles::Working;
use crate::engine::Engine;
use crate::error::Result;
use crate::storage::columns::{ConsentCurrent, ConsentGranted, ConsentHistory, Keyspace};
use crate::storage::records::RecordStatus;
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
/// source `merge:<merge id>`, attributed to the merged side (its origin is
/// the profile the winning record came from). The merged profile's index
/// entries are removed; its states and history stay (frozen) for unmerge
/// and audit.
pub(crate) fn on_merge(
    db: &Engine,
    s: &Working,
    q: &Working,
    merge_id: MergeId,
    s_states: &mut States,
    batch: &mut Batch,
) -> Result<()> {
    let now = Timestamp::now();
    let q_states = current_with_origins(db, q)?;
    for (tag, (qr, q_origin)) in &q_states {
        batch.delete::<ConsentGranted>(&(*tag, q.id));
        if s_states
            .get(tag)
            .is_some_and(|sr| restrictiveness(sr, now) <= restrictiveness(qr, now))
        {
            continue;
        }
        let mut r = qr.clone();
        r.source = format!("merge:{merge_id}");
        r.recorded_at = Timestamp(reserve_recorded_at(db, s, 1)?);
        let origin = s.origin_index(&q.origin_id(*q_origin));
        stage_history(db, s, &r, origin, batch)?;
        stage_state(db, s, *tag, &r, origin, batch)?;
        s_states.insert(*tag, r);
    }
    Ok(())
}

/// Current states with the origin index of each.
type Attributed = HashMap<[u8; 8], (ConsentRecord, u32)>;

/// The current states a history gives, replayed in recording order: a
/// merge's record (source `merge:…`) was written because it won, so it
/// replaces; any other record replaces when its timestamp is at least the
/// current one's (later recording wins ties) — the rule of `stage_records`.
fn replay(db: &Engine, start: Attributed, entries: &[(ConsentRecord, u32)]) -> Result<Attributed> {
    let mut cur = start;
    for (r, origin) in entries {
        let tag = purpose_tag(db, &r.purpose)?;
        let replaces = r.source.starts_with("merge:")
            || cur
                .get(&tag)
                .is_none_or(|(c, _)| r.timestamp >= c.timestamp);
        if replaces {
            cur.insert(tag, (r.clone(), *origin));
        }
    }
    Ok(cur)
}

/// Writes `new` as `w`'s current states and consent index entries (all of
/// them: a restored profile's index entries were removed at merge),
/// deleting the states of tags in `old` that `new` no longer has.
fn restate(
    db: &Engine,
    w: &Working,
    old: &Attributed,
    new: &Attributed,
    batch: &mut Batch,
) -> Result<()> {
    for (tag, (r, origin)) in new {
        stage_state(db, w, *tag, r, *origin, batch)?;
    }
    for tag in old.keys().filter(|t| !new.contains_key(*t)) {
        delete_current(w, *tag, batch);
    }
    Ok(())
}

/// Unmerge of `merge_id`, which merged `b` (and `side`: b and the profiles
/// b had absorbed) into `s`. Each side ends with the consent it would have
/// had if the merge had never happened, plus the records attributable to
/// it since (docs/design.md, "Unmerge"):
/// * `s`'s history loses the records the merge copied in (source
///   `merge:<merge_id>`); records attributed to `side` since the merge move
///   to `b`'s history (re-sealed under `b`'s keys, same recording key);
/// * each side's current states are replayed from what it keeps: `s` from
///   its remaining history, `b` from its frozen states plus the moved
///   records; the consent index follows.
///
/// A profile merged into `s` after `merge_id` whose grant lost to `side`'s
/// more restrictive state at that merge is not re-offered: `s` stays on the
/// restrictive side for that purpose.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, in unmerge; the pieces are the unmerge's state"
)]
pub(crate) fn on_unmerge(
    db: &Engine,
    s: &Working,
    s_new: &Working,
    s_old_origins: &[ProfileId],
    b: &Working,
    merge_id: MergeId,
    side: &HashSet<ProfileId>,
    batch: &mut Batch,
) -> Result<()> {
    // `s` opens the stored records (its keys as they were); `s_new` is the
    // survivor re-keyed, with its new origin table (without `side`): every
    // record the survivor keeps is written again under it. The stored
    // records' origin indexes refer to the old table.
    let old_origin = |i: u32| -> ProfileId {
        usize::try_from(i)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| s_old_origins.get(i).copied())
            .unwrap_or(s.id)
    };
    let copied = format!("merge:{merge_id}");
    let mut kept = Vec::new();
    let mut moved = Vec::new();
    for (hk, r, origin) in history_entries(db, s)? {
        let from = old_origin(origin);
        if r.source == copied {
            batch.delete::<ConsentHistory>(&(s.id, hk));
        } else if side.contains(&from) {
            batch.delete::<ConsentHistory>(&(s.id, hk));
            let b_origin = b.origin_index(&from);
            put_history(db, b, hk, &r, b_origin, batch)?;
            moved.push((r, b_origin));
        } else {
            // Re-sealed under the new keys, with its index in the new table.
            let s_origin = s_new.origin_index(&from);
            put_history(db, s_new, hk, &r, s_origin, batch)?;
            kept.push((r, s_origin));
        }
    }
    let s_old = current_with_origins(db, s)?;
    let s_states = replay(db, Attributed::new(), &kept)?;
    restate(db, s_new, &s_old, &s_states, batch)?;
    let b_old = current_with_origins(db, b)?;
    let b_new = replay(db, b_old.clone(), &moved)?;
    restate(db, b, &b_old, &b_new, batch)
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
        let (r, origin) = open_with_origin(db, old, b'c', &body(&key), &sealed)?;
        restage_current(db, new, key.1, &r, origin, batch)?;
    }
    for item in db.store.entries::<ConsentHistory>(old.id.as_bytes())? {
        let (key, sealed) = item?;
        let (r, origin) = open_with_origin(db, old, b'h', &body(&key), &sealed)?;
        batch.put::<ConsentHistory>(&key, &seal(db, new, b'h', &body(&key), &r, origin)?);
    }
    Ok(())
}

/// Format v1 → v2 for one profile's consent records (`Db::upgrade`): when
/// any current record, history entry or grant entry is of format v1, all
/// are re-sealed as v2 — current records anchored in `w`'s record (the
/// caller writes it), grant entries authenticated (an active profile's
/// only: a merged profile has none). True when anything was rewritten.
pub(crate) fn upgrade_into(db: &Engine, w: &Working, batch: &mut Batch) -> Result<bool> {
    let active = w.record.status == RecordStatus::Active;
    let mut any = false;
    let mut current = Vec::new();
    for item in db.store.entries::<ConsentCurrent>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        let (r, origin) = open_with_origin(db, w, b'c', &body(&key), &sealed)?;
        any |= sealed.write_version.is_none();
        if active && r.status == ConsentStatus::Granted {
            any |= db
                .store
                .get::<ConsentGranted>(&(key.1, w.id))?
                .is_some_and(|g| g.auth.is_none());
        }
        current.push((key.1, r, origin));
    }
    let mut history = Vec::new();
    for item in db.store.entries::<ConsentHistory>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        let (r, origin) = open_with_origin(db, w, b'h', &body(&key), &sealed)?;
        any |= sealed.write_version.is_none();
        history.push((key.1, r, origin));
    }
    if !any {
        return Ok(false);
    }
    for (tag, r, origin) in &current {
        restage_current(db, w, *tag, r, *origin, batch)?;
    }
    for (hk, r, origin) in &history {
        put_history(db, w, *hk, r, *origin, batch)?;
    }
    Ok(true)
}

/// Writes an existing current record again under `w` (re-keyed or
/// upgraded): anchored anew, and for an active profile its grant entry
/// with it (which names the anchor's version). A merged-away profile has
/// no grant entries.
fn restage_current(
    db: &Engine,
    w: &Working,
    tag: [u8; 8],
    r: &ConsentRecord,
    origin: u32,
    batch: &mut Batch,
) -> Result<()> {
    if w.record.status == RecordStatus::Active {
        stage_state(db, w, tag, r, origin, batch)
    } else {
        put_current(db, w, tag, r, origin, batch).map(|_| ())
    }
}

/// Test machinery: a profile's consent records and grant entries written
/// as format v1 did (for stores of mixed formats in tests).
#[cfg(feature = "testkit")]
pub(crate) fn downgrade_into(db: &Engine, w: &Working, batch: &mut Batch) -> Result<()> {
    for item in db.store.entries::<ConsentCurrent>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        let (r, origin) = open_with_origin(db, w, b'c', &body(&key), &sealed)?;
        batch.put::<ConsentCurrent>(&key, &seal_v1(db, w, b'c', &body(&key), &r, origin)?);
        if let Some(g) = db.store.get::<ConsentGranted>(&(key.1, w.id))? {
            batch.put::<ConsentGranted>(
                &(key.1, w.id),
                &crate::storage::records::GrantEntry {
                    expires_at: g.expires_at,
                    auth: None,
                },
            );
        }
    }
    for item in db.store.entries::<ConsentHistory>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        let (r, origin) = open_with_origin(db, w, b'h', &body(&key), &sealed)?;
        batch.put::<ConsentHistory>(&key, &seal_v1(db, w, b'h', &body(&key), &r, origin)?);
    }
    Ok(())
}
