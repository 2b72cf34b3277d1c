//! Merge of two profiles (from resolution) and unmerge, which undoes one
//! merge record, and the merges a profile took part in.

use std::collections::HashSet;

use super::outcome::*;
use super::stored::*;
use crate::domain::audit::Event;
use crate::domain::consent::{self};
use crate::domain::profiles::{final_target, Working};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::{Merges, ProfileMerges, Profiles};
use crate::storage::records::{Blob, DisplacedField, FieldEntry, MergeRecord, RecordStatus};
use crate::storage::Batch;
use crate::types::{MergeId, ProfileId, Timestamp};

/// Merges `q` into `s` (in memory and into `batch`); returns the merge id.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the pieces are the merge's inputs"
)]
pub(super) fn merge_into(
    db: &Engine,
    s: &mut Working,
    s_ids: &mut Vec<StoredId>,
    q: Working,
    q_ids: Vec<StoredId>,
    now: Timestamp,
    reason: &str,
    cause: &[(String, [u8; 16])],
    s_states: &mut consent::States,
    batch: &mut Batch,
) -> Result<MergeId> {
    let merge_id = MergeId::random()?;
    for o in std::iter::once(q.id).chain(q.record.origins.iter().copied()) {
        if o != s.id && !s.record.origins.contains(&o) {
            s.record.origins.push(o);
        }
    }
    if s.record.origins.len() > crate::storage::records::MAX_ORIGINS {
        return Err(Error::InvalidInput(format!(
            "profile {} would absorb too many profiles",
            s.id
        )));
    }
    let ids_fid = db.registry.id(IDS_FIELD);
    let mut displaced = Vec::new();
    for entry in &q.record.fields {
        if Some(entry.field_id) == ids_fid {
            continue;
        }
        let current = s
            .record
            .fields
            .iter()
            .find(|e| e.field_id == entry.field_id)
            .cloned();
        if let Some(cur) = &current {
            // Most recent write wins; the survivor wins ties.
            if cur.written_at >= entry.written_at {
                continue;
            }
            // Kept outside the record: sealed on its own (v1 field seal).
            displaced.push(DisplacedField {
                field_id: cur.field_id,
                sealed: cur.sealed,
                origin: *s.origin_id(cur.origin).as_bytes(),
                written_at: cur.written_at.as_micros(),
                payload: s.seal_alone(db, cur)?,
            });
        }
        let (name, value) = q.open(db, entry)?;
        let class = entry.class();
        let origin = s.origin_index(&q.origin_id(entry.origin));
        let sealed = s.seal(db, &name, class, &value, origin, entry.written_at)?;
        s.record.set(sealed);
    }
    for qi in q_ids {
        if !s_ids.iter().any(|i| i.same(&qi.id_type, &qi.normalized)) {
            put_index(db, batch, &qi.id_type, &qi.normalized, s.id)?;
            s_ids.push(qi);
        }
    }
    consent::on_merge(db, s, &q, merge_id, s_states, batch)?;
    let mut frozen = q.record.clone();
    frozen.status = RecordStatus::Merged {
        into: s.id,
        merge_id,
    };
    q.put_record_into(&frozen, batch)?;
    let record = MergeRecord {
        survivor: *s.id.as_bytes(),
        merged: *q.id.as_bytes(),
        reason: reason.to_string(),
        at: now.as_micros(),
        identifiers: cause.to_vec(),
        survivor_generation: s.record.generation,
        displaced,
        undone_at: None,
    };
    record.check_size()?;
    batch.put::<Merges>(&merge_id, &record);
    batch.put::<ProfileMerges>(&(s.id, merge_id), &Blob(Vec::new()));
    batch.put::<ProfileMerges>(&(q.id, merge_id), &Blob(Vec::new()));
    s.record.updated_at = now;
    Ok(merge_id)
}

/// `Db::unmerge`.
pub(crate) fn unmerge(db: &Engine, merge_id: &MergeId) -> Result<(ProfileId, ProfileId)> {
    let _identity = db.identity_lock.lock();
    let mut rec = db
        .store
        .get::<Merges>(merge_id)?
        .ok_or(Error::MergeNotFound(*merge_id))?;
    if rec.undone_at.is_some() {
        return Err(Error::InvalidInput(format!(
            "merge {merge_id} was already undone"
        )));
    }
    let s_id = ProfileId::from_bytes(rec.survivor);
    let b_id = ProfileId::from_bytes(rec.merged);
    if final_target(db, &s_id)? != Some(s_id) {
        return Err(Error::InvalidInput(format!(
            "profile {s_id} was itself merged later; undo that merge first (see `lethedb merges --id {s_id}`)"
        )));
    }
    let _guards = db.locks.lock([&s_id, &b_id]);
    let mut s = Working::load(db, &s_id)?.ok_or(Error::ProfileNotFound(s_id))?;
    let mut b = Working::load(db, &b_id)?.ok_or(Error::ProfileNotFound(b_id))?;
    if b.record.status
        != (RecordStatus::Merged {
            into: s_id,
            merge_id: *merge_id,
        })
    {
        return Err(Error::InvalidInput(format!(
            "profile {b_id} is not merged by {merge_id}"
        )));
    }
    let now = Timestamp::now();
    let side: HashSet<ProfileId> = std::iter::once(b_id)
        .chain(b.record.origins.iter().copied())
        .collect();
    let ids_fid = db.registry.id(IDS_FIELD);
    let s_ids = decode_ids(db, &s)?;
    let mut b_ids = decode_ids(db, &b)?;

    // Fields contributed by the merged side (at merge time or written later
    // through its ids) go back to it; the survivor gets back what they displaced.
    let mut s_keep: Vec<FieldEntry> = Vec::new();
    let mut taken: HashSet<u32> = HashSet::new();
    let s_entries = std::mem::take(&mut s.record.fields);
    let mut s_origin_of: Vec<(usize, ProfileId)> = Vec::new();
    for entry in s_entries {
        let origin = s.origin_id(entry.origin);
        if Some(entry.field_id) == ids_fid {
            continue;
        }
        if side.contains(&origin) {
            let (name, value) = s.open(db, &entry)?;
            let newer = b
                .record
                .fields
                .iter()
                .find(|e| e.field_id == entry.field_id)
                .is_none_or(|e| e.written_at <= entry.written_at);
            if newer {
                let class = entry.class();
                let sealed = b.seal(
                    db,
                    &name,
                    class,
                    &value,
                    b.origin_index(&origin),
                    entry.written_at,
                )?;
                b.record.set(sealed);
            }
            taken.insert(entry.field_id);
        } else {
            s_origin_of.push((s_keep.len(), origin));
            s_keep.push(entry);
        }
    }
    for d in &rec.displaced {
        let absent = !s_keep.iter().any(|e| e.field_id == d.field_id);
        // A displaced value that came from a profile no longer merged here
        // (a merge undone before this one) is not the survivor's to take back.
        let d_origin = ProfileId::from_bytes(d.origin);
        let still_here =
            d_origin == s_id || (s.record.origins.contains(&d_origin) && !side.contains(&d_origin));
        if !still_here {
            continue;
        }
        if absent && taken.contains(&d.field_id) && rec.survivor_generation == s.record.generation {
            s_origin_of.push((s_keep.len(), ProfileId::from_bytes(d.origin)));
            s_keep.push(s.open_alone(
                db,
                &FieldEntry {
                    field_id: d.field_id,
                    sealed: d.sealed,
                    origin: 0,
                    written_at: Timestamp(d.written_at),
                    payload: d.payload.clone(),
                },
            )?);
        }
    }
    // The survivor's origin table loses the merged side; re-index origins.
    let s_old_origins = s.record.origins.clone();
    s.record.origins.retain(|o| !side.contains(o));
    for (i, origin) in s_origin_of {
        s_keep[i].origin = s.origin_index(&origin);
    }
    s_keep.sort_by_key(|e| e.field_id);
    s.record.fields = s_keep;

    let mut batch = Batch::new();
    let mut s_ids_new = Vec::new();
    for i in s_ids {
        if side.contains(&i.origin) {
            if !b_ids.iter().any(|x| x.same(&i.id_type, &i.normalized)) {
                b_ids.push(i);
            }
        } else {
            s_ids_new.push(i);
        }
    }
    for i in &b_ids {
        put_index(db, &mut batch, &i.id_type, &i.normalized, b_id)?;
    }
    encode_ids(db, &mut s, &s_ids_new, now)?;
    encode_ids(db, &mut b, &b_ids, now)?;
    if b.record.fields.len() > crate::storage::records::MAX_FIELDS {
        return Err(Error::InvalidInput(format!(
            "unmerging would give profile {b_id} more than {} fields",
            crate::storage::records::MAX_FIELDS
        )));
    }
    s.record.updated_at = now;
    b.record.updated_at = now;
    b.record.status = RecordStatus::Active;
    // The survivor is re-keyed: its older record and keyring versions (in
    // SST files, images, backups) held the merged side's values and
    // identifiers under keys that would otherwise stay live. The old
    // versions go to the next purge, which rotates the survivor's bucket.
    let s_new = s.rekeyed(db, &[])?;
    reseal_displaced(db, &s, &s_new, &[], &side, Some(*merge_id), &mut batch)?;
    consent::on_unmerge(
        db,
        &s,
        &s_new,
        &s_old_origins,
        &b,
        *merge_id,
        &side,
        &mut batch,
    )?;
    s_new.put_into(&mut batch)?;
    let rekey = queue_rekey_purge(db, &s, now, &mut batch)?;
    b.put_into(&mut batch)?;
    rec.undone_at = Some(now.as_micros());
    // An undone merge is kept for the record, without the values it
    // displaced: they were restored or dropped above, and their origins
    // are profile ids that must not outlive those profiles' erasure
    // (found by the reference model).
    rec.displaced = Vec::new();
    rec.check_size()?;
    batch.put::<Merges>(merge_id, &rec);
    let event = Event::new(
        "unmerge",
        Some(db.subject_ref(&s_id)?),
        serde_json::json!({
            "merge_id": merge_id.to_string(),
            "restored_subject_ref": crate::hex::encode(&db.subject_ref(&b_id)?),
        }),
    );
    db.audit.commit(&db.store, batch, &[event])?;
    db.pending.lock().add(rekey);
    Ok((s_id, b_id))
}

/// `Db::merges`.
pub(crate) fn merges_of(db: &Engine, id: &ProfileId) -> Result<Vec<MergeInfo>> {
    let mut out = Vec::new();
    for key in db.store.keys_with::<ProfileMerges>(id.as_bytes())? {
        let (_, merge_id) = key?;
        let Some(r) = db.store.get::<Merges>(&merge_id)? else {
            continue;
        };
        out.push(MergeInfo {
            merge_id,
            survivor: ProfileId::from_bytes(r.survivor),
            merged: ProfileId::from_bytes(r.merged),
            reason: r.reason,
            at: Timestamp(r.at),
            identifier_types: r.identifiers.into_iter().map(|(t, _)| t).collect(),
            undone_at: r.undone_at.map(Timestamp),
        });
    }
    out.sort_by_key(|m| m.at);
    Ok(out)
}

/// Queues the survivor's old versions (record, keyring, consent records)
/// for the next purge; returns the item's request time.
fn queue_rekey_purge(db: &Engine, s: &Working, now: Timestamp, batch: &mut Batch) -> Result<i64> {
    use crate::storage::columns::{cf_index, ConsentGranted, Keyrings, Keyspace, PendingPurges};
    let id = &s.id;
    let mut ranges = Vec::new();
    // The consent index entries the survivor had (they showed, by purpose
    // tag and expiry, grants the merged side gave it).
    for tag in consent::load_states(db, s)?.keys() {
        let key = ConsentGranted::key(&(*tag, *id));
        ranges.push((cf_index(ConsentGranted::CF), key.clone(), key));
    }
    for (name, key) in [
        (Profiles::CF, Profiles::key(id)),
        (Keyrings::CF, Keyrings::key(id)),
    ] {
        ranges.push((cf_index(name), key.clone(), key));
    }
    consent::touched_ranges(id, &mut |name, a, b| ranges.push((cf_index(name), a, b)));
    // The survivor's merge records (the undone one, and those whose
    // displaced values were re-sealed): their old versions hold displaced
    // values sealed under the old keys and the profile ids they came from.
    for key in db.store.keys_with::<ProfileMerges>(id.as_bytes())? {
        let (_, merge_id) = key?;
        let key = Merges::key(&merge_id);
        ranges.push((cf_index(Merges::CF), key.clone(), key));
    }
    let at = now.as_micros();
    batch.put::<PendingPurges>(
        &crate::storage::records::rekey_item_id()?,
        &crate::storage::records::PendingPurge {
            requested_at: at,
            ranges,
        },
    );
    Ok(at)
}

/// After `old` (a survivor) is re-keyed into `new`: the values its merges
/// still in force displaced (kept sealed under the survivor's keys, for
/// unmerge to restore) are re-sealed under the new keyring, except those of
/// fields in `drop` (erased) and those attributed to a profile in `leaving`
/// (a side being unmerged: its values must not stay under the survivor's
/// live keys), and their records name the new generation.
/// Without this a later unmerge could not restore them (they would be
/// sealed under a key that is gone). `skip`: a merge being undone in the
/// same batch.
pub(crate) fn reseal_displaced(
    db: &Engine,
    old: &Working,
    new: &Working,
    drop: &[u32],
    leaving: &HashSet<ProfileId>,
    skip: Option<MergeId>,
    batch: &mut Batch,
) -> Result<()> {
    for key in db.store.keys_with::<ProfileMerges>(old.id.as_bytes())? {
        let (_, merge_id) = key?;
        if Some(merge_id) == skip {
            continue;
        }
        let Some(mut rec) = db.store.get::<Merges>(&merge_id)? else {
            continue;
        };
        let in_force = rec.undone_at.is_none()
            && rec.survivor == *old.id.as_bytes()
            && rec.survivor_generation == old.record.generation;
        if !in_force {
            continue;
        }
        let mut kept = Vec::with_capacity(rec.displaced.len());
        for d in rec.displaced {
            if drop.contains(&d.field_id) || leaving.contains(&ProfileId::from_bytes(d.origin)) {
                continue;
            }
            let entry = FieldEntry {
                field_id: d.field_id,
                sealed: d.sealed,
                origin: 0,
                written_at: Timestamp(d.written_at),
                payload: d.payload,
            };
            let open = old.open_alone(db, &entry)?;
            kept.push(crate::storage::records::DisplacedField {
                field_id: d.field_id,
                sealed: d.sealed,
                origin: d.origin,
                written_at: d.written_at,
                payload: new.seal_alone(db, &open)?,
            });
        }
        rec.displaced = kept;
        rec.survivor_generation = new.record.generation;
        rec.check_size()?;
        batch.put::<Merges>(&merge_id, &rec);
    }
    Ok(())
}

/// Fields of which `s`'s merges still in force keep a displaced value.
pub(crate) fn displaced_fields(db: &Engine, s: &Working) -> Result<HashSet<u32>> {
    let mut out = HashSet::new();
    for key in db.store.keys_with::<ProfileMerges>(s.id.as_bytes())? {
        let (_, merge_id) = key?;
        if let Some(rec) = db.store.get::<Merges>(&merge_id)? {
            if rec.undone_at.is_none() && rec.survivor == *s.id.as_bytes() {
                out.extend(rec.displaced.iter().map(|d| d.field_id));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::domain::erasure::markers::pending_names;
    use crate::storage::columns::ConsentGranted;
    use crate::{ConsentRecord, ConsentStatus, Identifier, Update};

    /// Merging B (who granted a purpose) into A gives A a consent-index
    /// entry; the unmerge removes it, and its re-key item must name that
    /// key so the purge compacts its old version (an end-to-end test cannot
    /// tell: in a small store the compaction of A's other consent ranges
    /// rewrites the same file).
    #[test]
    fn the_unmerge_rekey_item_names_the_consent_index_entries_the_merge_produced() {
        let (_dir, handle, _) = crate::db::scratch_store();
        let a = handle
            .resolve(&[Identifier::user_id("uA")], Update::new())
            .unwrap()
            .profile
            .unwrap();
        let b = handle
            .resolve(&[Identifier::anonymous_id("anB")], Update::new())
            .unwrap()
            .profile
            .unwrap();
        handle
            .record_consent(
                &b,
                ConsentRecord::new("ads_targeting", ConsentStatus::Granted),
            )
            .unwrap();
        let out = handle
            .resolve(
                &[Identifier::anonymous_id("anB"), Identifier::user_id("uA")],
                Update::new(),
            )
            .unwrap();
        let db = &*handle.engine;
        let full = db.blind.key("$purpose", "ads_targeting").unwrap();
        let tag: [u8; 8] = full[..8].try_into().unwrap();
        assert!(db
            .store
            .get_raw::<ConsentGranted>(&(tag, a))
            .unwrap()
            .is_some());
        handle.unmerge(&out.merges[0]).unwrap();
        assert!(pending_names::<ConsentGranted>(&db.store, &(tag, a)));
    }
}
