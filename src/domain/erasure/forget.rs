//! The erasure itself, without purge: one atomic batch per erasure that
//! tombstones the person's profiles (or re-keys them without the erased
//! fields), drops their keyrings, index entries, consent and merge records,
//! and writes the ledger record and the purge work item. `erase.rs` adds
//! the purge that follows when it is due; ledger replay (restore, backup
//! re-keying) calls these directly with the erasure's original id.

use std::collections::HashSet;

use serde_json::json;

use crate::domain::audit::Event;
use crate::domain::consent;
use crate::domain::identity::stored::{decode_ids, encode_ids, StoredId};
use crate::domain::profiles::Working;
use crate::domain::requests;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::{
    cf_index, Erasures, IdentityIndex, Keyrings, Keyspace, Merges, PendingPurges, ProfileMerges,
    Profiles, Suppressions, Tombstones,
};
use crate::storage::keys::KeyCodec;
use crate::storage::records::{
    ErasureRecord, ErasureScope, PendingPurge, RecordStatus, SuppressionEntry, Tombstone,
};
use crate::storage::Batch;
use crate::types::{ProfileId, Timestamp};

use super::receipt::{key_id, ErasureReceipt};

/// Key ranges an erasure touched, for purge.
#[derive(Default)]
struct Touched {
    ranges: Vec<(u8, Vec<u8>, Vec<u8>)>,
}

impl Touched {
    fn key<K: Keyspace>(&mut self, key: &K::Key) {
        let k = K::key(key);
        self.ranges.push((cf_index(K::CF), k.clone(), k));
    }

    /// Every key of `K` whose body starts with `prefix`.
    fn prefix<K: Keyspace>(&mut self, prefix: &[u8]) {
        let mut start = vec![K::PREFIX];
        start.extend_from_slice(prefix);
        let mut end = start.clone();
        end.resize(1 + K::Key::LEN, 0xff);
        self.ranges.push((cf_index(K::CF), start, end));
    }
}

/// Everything staged for one profile's erasure.
struct Staged {
    batch: Batch,
    touched: Touched,
    index_removed: u32,
    consents_removed: u32,
    suppressed: u32,
}

/// Deletes the blind-index entries of `ids` that point at one of `owners`,
/// and writes suppression entries when asked.
fn drop_identifiers(
    db: &Engine,
    ids: &[StoredId],
    owners: &HashSet<ProfileId>,
    suppress: Option<u64>,
    st: &mut Staged,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for i in ids {
        // Both generations' keys during a blind-index rotation; the
        // identifier's suppression goes with its first (current) key.
        for (n, key) in db
            .ids
            .keys(i.id_type.name(), &i.normalized)?
            .into_iter()
            .enumerate()
        {
            if seen.insert(key) {
                keys.push((key, i, n == 0));
            }
        }
    }
    let found = db
        .store
        .multi_get::<IdentityIndex>(&keys.iter().map(|(k, _, _)| *k).collect::<Vec<_>>())?;
    let now = Timestamp::now().as_micros();
    for ((key, i, first), entry) in keys.iter().zip(found) {
        if entry.is_some_and(|e| owners.contains(&e.profile)) {
            st.batch.delete::<IdentityIndex>(key);
            st.index_removed += 1;
        }
        // Named for the purge whether or not it is there now: during a
        // blind-index rotation the person's entry may have lived under the
        // other generation's key, whose older versions must go too.
        st.touched.key::<IdentityIndex>(key);
        if suppress.is_some() && *first {
            // Bucketed and unlinked: no erasure id, the day only
            // (erasure/suppression.rs).
            let s = super::suppression::bucket(db, i.id_type.name(), &i.normalized)?;
            st.batch.put::<Suppressions>(
                &s,
                &SuppressionEntry {
                    erasure_id: 0,
                    at: now - now.rem_euclid(86_400_000_000),
                },
            );
            st.suppressed += 1;
        }
    }
    Ok(())
}

/// Deletes merge records and listings involving `id`.
fn drop_merges(
    db: &Engine,
    id: &ProfileId,
    owners: &HashSet<ProfileId>,
    st: &mut Staged,
) -> Result<()> {
    for key in db.store.keys_with::<ProfileMerges>(id.as_bytes())? {
        let (_, merge_id) = key?;
        if let Some(rec) = db.store.get::<Merges>(&merge_id)? {
            for party in [rec.survivor, rec.merged] {
                let party = ProfileId::from_bytes(party);
                st.batch.delete::<ProfileMerges>(&(party, merge_id));
                st.touched.key::<ProfileMerges>(&(party, merge_id));
                if !owners.contains(&party) {
                    touch_former_member(db, &party, st)?;
                }
            }
        }
        st.batch.delete::<ProfileMerges>(&(*id, merge_id));
        st.batch.delete::<Merges>(&merge_id);
        st.touched.key::<Merges>(&merge_id);
    }
    st.touched.prefix::<ProfileMerges>(id.as_bytes());
    Ok(())
}

/// `party` was merged with the person and unmerged since (it is not in
/// the lineage): older versions of its record say "merged into" a profile
/// of the person, and older versions of its identifiers' index entries
/// point into the person. Their keys join the purge's ranges, so no erased
/// profile id outlives the purge in them (found by the reference model).
fn touch_former_member(db: &Engine, party: &ProfileId, st: &mut Staged) -> Result<()> {
    st.touched.key::<Profiles>(party);
    // A profile that is gone has nothing to name; one that cannot be read
    // (damaged) must not stop this erasure: then the whole identity index
    // is named (a costlier purge, the same guarantee).
    let ids = match Working::load(db, party) {
        Ok(None) | Err(Error::ProfileErased { .. }) => return Ok(()),
        Ok(Some(w)) => decode_ids(db, &w),
        Err(e) => Err(e),
    };
    let Ok(ids) = ids else {
        st.touched.prefix::<IdentityIndex>(&[]);
        return Ok(());
    };
    for i in ids {
        for key in db.ids.keys(i.id_type.name(), &i.normalized)? {
            st.touched.key::<IdentityIndex>(&key);
        }
    }
    Ok(())
}

fn next_erasure_id(db: &Engine, explicit: Option<u64>) -> u64 {
    let mut seq = db.erasure_seq.lock();
    let id = explicit.unwrap_or(*seq + 1).max(1);
    *seq = (*seq).max(id);
    id
}

/// The people `ids` belong to: each one's active profile followed by the
/// profiles merged into it. With `strict`, a missing or erased id is an
/// error; otherwise (ledger replay) it is skipped.
fn lineage_of(db: &Engine, ids: &[ProfileId], strict: bool) -> Result<Vec<ProfileId>> {
    let mut out: Vec<ProfileId> = Vec::new();
    for id in ids {
        let target = match crate::domain::profiles::final_target(db, id) {
            Ok(Some(t)) => t,
            Ok(None) if strict => return Err(Error::ProfileNotFound(*id)),
            Err(e @ Error::ProfileErased { .. }) if strict => return Err(e),
            Ok(None) | Err(Error::ProfileErased { .. }) => continue,
            Err(e) => return Err(e),
        };
        if out.contains(&target) {
            continue;
        }
        // Which profiles an erasure covers is decided on the authenticated
        // origins.
        let rec = crate::domain::profiles::authenticated(db, &target)?
            .ok_or(Error::ProfileNotFound(target))?;
        out.push(target);
        for o in rec.record.origins {
            if !out.contains(&o) {
                out.push(o);
            }
        }
    }
    Ok(out)
}

fn new_staged() -> Staged {
    Staged {
        batch: Batch::new(),
        touched: Touched::default(),
        index_removed: 0,
        consents_removed: 0,
        suppressed: 0,
    }
}

/// Erases a person (the profile `id` resolves to and every profile merged
/// into it), without purging. Idempotent: a second call returns the first
/// erasure's receipt.
pub(crate) fn forget(db: &Engine, id: &ProfileId) -> Result<ErasureReceipt> {
    let _tree = db.keys.shared();
    let _identity = db.identity_lock.lock();
    // Authenticated: a planted "erased" record must not pass for an erasure.
    let record = match crate::domain::profiles::authenticated(db, id)? {
        Some(r) => r,
        None => match db.erased_error(id)? {
            Some(Error::ProfileErased { erasure_id, .. }) => return already(db, erasure_id),
            _ => return Err(Error::ProfileNotFound(*id)),
        },
    };
    if let RecordStatus::Erased { erasure_id } = record.record.status {
        return already(db, erasure_id);
    }
    match forget_locked(db, &[*id], true, None) {
        Err(Error::ProfileErased { erasure_id, .. }) => already(db, erasure_id),
        other => other,
    }
}

/// Ledger replay: erases the people `ids` belong to under `erasure_id`,
/// skipping ids that are missing or already erased.
pub(crate) fn forget_replay(
    db: &Engine,
    ids: &[ProfileId],
    erasure_id: u64,
) -> Result<ErasureReceipt> {
    let _identity = db.identity_lock.lock();
    forget_locked(db, ids, false, Some(erasure_id))
}

fn already(db: &Engine, erasure_id: u64) -> Result<ErasureReceipt> {
    let rec = db.store.get::<Erasures>(&erasure_id)?.ok_or_else(|| {
        Error::corrupt(
            "erasure record",
            format!("tombstone names erasure {erasure_id}, which is not in the ledger"),
        )
    })?;
    Ok(ErasureReceipt::from_record(&rec, true))
}

fn nothing(subject: [u8; 16], fields: Vec<String>) -> ErasureReceipt {
    ErasureReceipt {
        erasure_id: None,
        already_erased: true,
        subject_ref: crate::hex::encode(&subject),
        profiles: Vec::new(),
        fields,
        key_ids: Vec::new(),
        index_entries_removed: 0,
        consent_records_removed: 0,
        suppressed: 0,
        requested_at: Timestamp::now(),
        audit_seq: 0,
    }
}

fn forget_locked(
    db: &Engine,
    ids: &[ProfileId],
    strict: bool,
    explicit: Option<u64>,
) -> Result<ErasureReceipt> {
    let lineage = lineage_of(db, ids, strict)?;
    let Some(first) = lineage.first().copied() else {
        return Ok(nothing([0; 16], Vec::new()));
    };
    // A legal hold on anyone of the lineage refuses the erasure (ledger
    // replay re-applies erasures already made and is not asked).
    if explicit.is_none() {
        requests::check_profiles(db, &lineage)?;
    }
    let owners: HashSet<ProfileId> = lineage.iter().copied().collect();
    let _guards = db.locks.lock(&lineage);
    let erasure_id = next_erasure_id(db, explicit);
    let now = Timestamp::now();
    let mut st = new_staged();
    let mut all_ids: Vec<StoredId> = Vec::new();
    let mut key_ids = Vec::new();
    let mut erased = Vec::new();
    for p in &lineage {
        // Merged-away profiles keep their frozen record and keyring.
        let Some(w) = Working::load(db, p)? else {
            continue;
        };
        all_ids.extend(decode_ids(db, &w)?);
        key_ids.push(key_id(db, p, w.record.generation)?);
        st.batch.delete::<Keyrings>(p);
        st.touched.key::<Keyrings>(p);
        // The record goes; a keyed tombstone (no id in it) answers for it.
        st.batch.delete::<Profiles>(p);
        st.batch
            .put::<Tombstones>(&db.tombstone_of(p)?, &Tombstone { erasure_id });
        st.touched.key::<Profiles>(p);
        st.consents_removed += consent::erase_into(db, p, &mut st.batch, &mut |cf, a, b| {
            st.touched.ranges.push((cf_index(cf), a, b))
        })?;
        drop_merges(db, p, &owners, &mut st)?;
        erased.push(*p.as_bytes());
    }
    let suppress = db.suppress_forgotten.then_some(erasure_id);
    drop_identifiers(db, &all_ids, &owners, suppress, &mut st)?;
    if st.suppressed > 0 {
        db.suppression_active
            .store(true, std::sync::atomic::Ordering::Release);
    }
    let mut rec = ErasureRecord {
        erasure_id,
        scope: ErasureScope::Profile,
        profiles: erased,
        fields: Vec::new(),
        subject_ref: db.subject_ref(&first)?,
        key_ids,
        index_entries_removed: st.index_removed,
        consent_records_removed: st.consents_removed,
        suppressed: st.suppressed,
        requested_at: now.as_micros(),
        audit_seq: 0,
        purged_at: None,
        certificate: None,
    };
    commit_erasure(db, st, &mut rec, "forget", (&lineage, &[]))?;
    Ok(ErasureReceipt::from_record(&rec, false))
}

/// Commits an erasure with its ledger record and audit entry, and links
/// the erasure requests it fulfils (`link`: lineage and erased fields) —
/// replayed erasures too (a restored store's requests complete).
fn commit_erasure(
    db: &Engine,
    mut st: Staged,
    rec: &mut ErasureRecord,
    kind: &'static str,
    link: (&[ProfileId], &[String]),
) -> Result<()> {
    let event = Event::new(
        kind,
        Some(rec.subject_ref),
        json!({
            "erasure_id": rec.erasure_id,
            "profiles": rec.profiles.len(),
            "fields": rec.fields,
            "key_ids_destroyed": rec.key_ids.iter().map(|k| crate::hex::encode(k)).collect::<Vec<_>>(),
            "index_entries_removed": rec.index_entries_removed,
            "consent_records_removed": rec.consent_records_removed,
            "suppressed_identifiers": rec.suppressed,
        }),
    );
    let pending = PendingPurge {
        requested_at: rec.requested_at,
        ranges: st.touched.ranges,
    };
    let mut events = vec![event];
    // Requests the erasure fulfils are linked in its write (privacy lock
    // held until it commits).
    let _privacy = db.privacy_lock.lock();
    let linked = requests::link_erasure(db, &mut st.batch, link.0, link.1, rec.erasure_id)?;
    events.extend(linked);
    let mut out = rec.clone();
    db.audit
        .commit_with(&db.store, st.batch, &events, true, |pos, batch| {
            out.audit_seq = pos.first().map(|p| p.0).unwrap_or(0);
            batch.put::<Erasures>(&out.erasure_id, &out);
            batch.put::<PendingPurges>(&out.erasure_id, &pending);
            Ok(())
        })?;
    db.pending.lock().add(rec.requested_at);
    *rec = out;
    Ok(())
}

/// Erases fields of a person, without purging, by re-keying every profile
/// of the person that holds one of them. A field named like an identifier
/// type (`email`, `phone`, ...) also takes that type's identifiers out of
/// the profile and the blind index (without suppressing them).
pub(crate) fn forget_fields(
    db: &Engine,
    ids: &[ProfileId],
    names: &[&str],
    explicit: Option<u64>,
) -> Result<ErasureReceipt> {
    if names.is_empty() {
        return Err(Error::InvalidInput("no field named to forget".into()));
    }
    for n in names {
        crate::domain::fields::validate_name(n)?;
        if crate::domain::profiles::is_system_field(n) {
            return Err(Error::InvalidFieldName {
                name: (*n).to_string(),
                reason: "names starting with '$' are reserved",
            });
        }
    }
    let _tree = db.keys.shared();
    let _identity = db.identity_lock.lock();
    forget_fields_locked(db, ids, names, explicit)
}

fn forget_fields_locked(
    db: &Engine,
    ids: &[ProfileId],
    names: &[&str],
    explicit: Option<u64>,
) -> Result<ErasureReceipt> {
    let lineage = lineage_of(db, ids, explicit.is_none())?;
    let field_names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
    let Some(first) = lineage.first().copied() else {
        return Ok(nothing([0; 16], field_names));
    };
    if explicit.is_none() {
        requests::check_fields(db, &lineage, names)?;
    }
    let owners: HashSet<ProfileId> = lineage.iter().copied().collect();
    let _guards = db.locks.lock(&lineage);
    let field_ids: Vec<u32> = names.iter().filter_map(|n| db.registry.id(n)).collect();
    let now = Timestamp::now();
    let subject = db.subject_ref(&first)?;
    let mut st = new_staged();
    let mut key_ids = Vec::new();
    let mut profiles = Vec::new();
    for p in &lineage {
        let Some(old) = Working::load(db, p)? else {
            continue;
        };
        let stored_ids = decode_ids(db, &old)?;
        let (dropped_ids, kept_ids): (Vec<StoredId>, Vec<StoredId>) = stored_ids
            .into_iter()
            .partition(|i| names.contains(&i.id_type.name()));
        // The field counts where the profile holds it, or where a merge
        // still in force keeps a value of it that the merge displaced.
        let has_field = old
            .record
            .fields
            .iter()
            .any(|e| field_ids.contains(&e.field_id))
            || crate::domain::identity::displaced_fields(db, &old)?
                .iter()
                .any(|f| field_ids.contains(f));
        // A replay (backup re-key, restore) re-keys every profile the
        // original erasure re-keyed, held field or not: in the copy's
        // timeline the profile may not hold it, yet in the original its
        // keys sealed the erased value, and those keys must not stay live
        // in the copy (found by the reference model).
        let replayed = explicit.is_some() && ids.contains(p);
        if !has_field && dropped_ids.is_empty() && !replayed {
            continue;
        }
        let mut new = old.rekeyed(db, &field_ids)?;
        if !dropped_ids.is_empty() {
            encode_ids(db, &mut new, &kept_ids, old.record.updated_at)?;
            drop_identifiers(db, &dropped_ids, &owners, None, &mut st)?;
        }
        consent::reseal(db, &old, &new, &mut st.batch)?;
        crate::domain::identity::reseal_displaced(
            db,
            &old,
            &new,
            &field_ids,
            &HashSet::new(),
            None,
            &mut st.batch,
        )?;
        new.put_into(&mut st.batch)?;
        key_ids.push(key_id(db, p, old.record.generation)?);
        st.touched.key::<Keyrings>(p);
        st.touched.key::<Profiles>(p);
        consent::touched_ranges(p, &mut |cf, a, b| {
            st.touched.ranges.push((cf_index(cf), a, b))
        });
        profiles.push(*p.as_bytes());
    }
    if profiles.is_empty() {
        return Ok(nothing(subject, field_names));
    }
    let erasure_id = next_erasure_id(db, explicit);
    let mut rec = ErasureRecord {
        erasure_id,
        scope: ErasureScope::Fields,
        profiles,
        fields: field_names,
        subject_ref: subject,
        key_ids,
        index_entries_removed: st.index_removed,
        consent_records_removed: 0,
        suppressed: 0,
        requested_at: now.as_micros(),
        audit_seq: 0,
        purged_at: None,
        certificate: None,
    };
    let fields = rec.fields.clone();
    commit_erasure(db, st, &mut rec, "forget_fields", (&lineage, &fields))?;
    Ok(ErasureReceipt::from_record(&rec, false))
}

#[cfg(test)]
mod tests {
    use crate::domain::erasure::markers::pending_names;
    use crate::storage::columns::{IdentityIndex, Profiles};
    use crate::{Identifier, Update};

    /// B merged into A and unmerged since: forgetting A names, for the
    /// purge, B's record key (older versions say "merged into A") and B's
    /// identifiers' index keys (older versions point to A). End-to-end
    /// tests cannot tell in a small store, where the compaction of A's
    /// ranges rewrites the files B's keys are in anyway.
    #[test]
    fn forget_names_the_keys_a_former_member_kept_the_person_in() {
        let (_dir, handle, _) = crate::db::scratch_store();
        let ident = |n: &str| Identifier::device_id(format!("dev-{n}"));
        let a = handle
            .resolve(&[ident("a")], Update::new().set("name", "A"))
            .unwrap()
            .profile
            .unwrap();
        let b = handle
            .resolve(&[ident("b")], Update::new().set("plan", "B"))
            .unwrap()
            .profile
            .unwrap();
        let m = handle
            .resolve(&[ident("a"), ident("b")], Update::new())
            .unwrap()
            .merges[0];
        handle.unmerge(&m).unwrap();
        handle.purge().unwrap();
        handle.forget(&a).unwrap();
        let db = &*handle.engine;
        assert!(pending_names::<Profiles>(&db.store, &b));
        let blind = db.ids.key("device_id", "dev-b").unwrap();
        assert!(pending_names::<IdentityIndex>(&db.store, &blind));
    }

    /// During a blind-index rotation a person's entry may have lived under
    /// either generation's key; forget names both for the purge, so older
    /// versions under the key it was moved from are compacted away too.
    #[test]
    fn forget_during_a_blind_index_rotation_names_both_generations_keys() {
        let (_dir, handle, _) = crate::db::scratch_store();
        let p = handle
            .resolve(&[Identifier::device_id("dev-r")], Update::new())
            .unwrap()
            .profile
            .unwrap();
        crate::domain::identity::rotation::start(&handle.engine).unwrap();
        let db = &*handle.engine;
        let keys = db.ids.keys("device_id", "dev-r").unwrap();
        assert_eq!(keys.len(), 2);
        // Move the entry to the new key by hand, as a step would, keeping
        // the rotation open (cursor past the profile).
        let mut st = db.ids.state();
        st.cursor = Some([0xff; 16]);
        db.ids.set(st);
        let mut batch = crate::storage::Batch::new();
        batch.delete::<IdentityIndex>(&keys[1]);
        batch.put::<IdentityIndex>(
            &keys[0],
            &crate::storage::records::IdentityEntry {
                profile: p,
                mac: None,
            },
        );
        db.store.write(batch).unwrap();
        handle.forget(&p).unwrap();
        for k in &keys {
            assert!(pending_names::<IdentityIndex>(&db.store, k), "{k:?}");
        }
        assert_eq!(
            handle.lookup(&Identifier::device_id("dev-r")).unwrap(),
            None
        );
    }
}
