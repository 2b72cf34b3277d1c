//! Resolution, merge and unmerge.
//!
//! Concurrency: operations that change which profile an identifier belongs
//! to (create, attach, merge, unmerge) run under the store's identity lock
//! and then take the stripe locks of the profiles they touch. A resolve whose
//! identifiers all already belong to one profile takes only that profile's
//! stripe lock and re-checks the index under it (the fast path), so ingest
//! of known people runs in parallel.

use std::collections::{BTreeSet, HashSet};

use super::blind::BlindKey;
use super::ids::{IdType, Identifier};
use crate::domain::audit::Event;
use crate::domain::consent::{self, ConsentRecord};
use crate::domain::profiles::{final_target, prepare, Prepared, Update, Working};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::{IdentityIndex, Merges, ProfileMerges, Profiles};
use crate::storage::records::{
    Blob, DisplacedField, FieldEntry, IdentityEntry, MergeRecord, RecordStatus,
};
use crate::storage::Batch;
use crate::types::{FieldClass, MergeId, ProfileId, Timestamp, Value};

/// The system field holding a profile's identifiers.
pub(crate) const IDS_FIELD: &str = "$ids";

/// Why an identifier of a request was not attached.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// It could not be normalised (the text says why).
    Invalid(crate::error::IdentifierProblem),
    /// Its type is custom and not declared in the schema.
    UndeclaredType,
    /// Its normalised value is on the blocklist.
    Blocked,
    /// Attaching it would exceed the per-type limit of a profile.
    Limit,
    /// The merge it would cause exceeds the largest number of merged profiles.
    MergeLimit,
    /// It belongs to a forgotten person (suppression; see `Db::unsuppress`).
    Suppressed,
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::Invalid(why) => write!(f, "invalid: {why}"),
            RejectReason::UndeclaredType => {
                f.write_str("custom identifier type not declared in the schema")
            }
            RejectReason::Blocked => f.write_str("blocked value"),
            RejectReason::Limit => f.write_str("per-type identifier limit reached"),
            RejectReason::MergeLimit => {
                f.write_str("merge would exceed the largest number of merged profiles")
            }
            RejectReason::Suppressed => {
                f.write_str("identifier of a forgotten person (suppressed)")
            }
        }
    }
}

/// An identifier that was not attached, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The identifier as given.
    pub identifier: Identifier,
    /// Why it was rejected.
    pub reason: RejectReason,
}

/// What `Db::resolve` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolveOutcome {
    /// The profile the request resolved to; `None` when every identifier was rejected.
    pub profile: Option<ProfileId>,
    /// Whether the profile was created by this request.
    pub created: bool,
    /// Merges this request caused.
    pub merges: Vec<MergeId>,
    /// Identifiers newly attached to the profile.
    pub attached: usize,
    /// Identifiers not attached.
    pub rejected: Vec<Rejection>,
}

/// A merge record as shown to operators (PII-free).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeInfo {
    /// Merge id.
    pub merge_id: MergeId,
    /// The profile that absorbed the other (the older one).
    pub survivor: ProfileId,
    /// The profile merged away; its id now redirects to the survivor.
    pub merged: ProfileId,
    /// `shared_identifier`, `alias` or `manual`.
    pub reason: String,
    /// When it happened.
    pub at: Timestamp,
    /// Types of the identifiers that caused it.
    pub identifier_types: Vec<String>,
    /// When it was undone, if it was.
    pub undone_at: Option<Timestamp>,
}

impl MergeInfo {
    /// The merge as JSON (PII-free).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "merge_id": self.merge_id.to_string(),
            "survivor": self.survivor.to_string(),
            "merged": self.merged.to_string(),
            "reason": self.reason,
            "at": self.at.to_string(),
            "identifier_types": self.identifier_types,
            "undone_at": self.undone_at.map(|t| t.to_string()),
        })
    }
}

/// An identifier as stored in a profile's `$ids` field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredId {
    pub(crate) id_type: IdType,
    pub(crate) raw: String,
    pub(crate) normalized: String,
    pub(crate) origin: ProfileId,
}

impl StoredId {
    fn same(&self, t: &IdType, normalized: &str) -> bool {
        &self.id_type == t && self.normalized == normalized
    }
}

/// One identifier of a request, normalised and keyed.
#[derive(Clone)]
struct Req {
    given: Identifier,
    normalized: String,
    key: BlindKey,
    rank: usize,
}

/// Reads the `$ids` field of a profile.
pub(crate) fn decode_ids(db: &Engine, w: &Working) -> Result<Vec<StoredId>> {
    let Some(fid) = db.registry.id(IDS_FIELD) else {
        return Ok(Vec::new());
    };
    let Some(entry) = w.record.fields.iter().find(|e| e.field_id == fid) else {
        return Ok(Vec::new());
    };
    let (_, value) = w.open(db, entry)?;
    let bad = || {
        Error::corrupt(
            "identifier list",
            format!("malformed $ids of profile {}", w.id),
        )
    };
    let Value::List(items) = value else {
        return Err(bad());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::List(parts) => match parts.as_slice() {
                [Value::String(t), Value::String(raw), Value::String(norm), Value::Int(origin)] => {
                    Ok(StoredId {
                        id_type: t.parse().map_err(|_| bad())?,
                        raw: raw.clone(),
                        normalized: if norm.is_empty() { raw } else { norm }.clone(),
                        origin: w.origin_id(u32::try_from(*origin).map_err(|_| bad())?),
                    })
                }
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

/// Writes the `$ids` field of a profile (sealed like personal data).
pub(crate) fn encode_ids(
    db: &Engine,
    w: &mut Working,
    ids: &[StoredId],
    now: Timestamp,
) -> Result<()> {
    let value = Value::List(
        ids.iter()
            .map(|i| {
                Value::List(vec![
                    Value::String(i.id_type.name().to_string()),
                    Value::String(i.raw.clone()),
                    // Empty when equal to the raw value (the common case),
                    // which saves its bytes; no normalised value is empty.
                    Value::String(if i.normalized == i.raw {
                        String::new()
                    } else {
                        i.normalized.clone()
                    }),
                    Value::Int(i64::from(w.origin_index(&i.origin))),
                ])
            })
            .collect(),
    );
    let entry = w.seal(db, IDS_FIELD, FieldClass::Personal, &value, 0, now)?;
    w.record.set(entry);
    Ok(())
}

fn blind_key(db: &Engine, t: &IdType, normalized: &str) -> Result<BlindKey> {
    db.blind.key(t.name(), normalized)
}

/// Normalises, checks and keys the request's identifiers.
fn normalise_request(
    db: &Engine,
    identifiers: &[Identifier],
    rejected: &mut Vec<Rejection>,
) -> Result<Vec<Req>> {
    let cfg = db.identity_snapshot();
    let schema = db.schema_snapshot();
    let mut out: Vec<Req> = Vec::new();
    for id in identifiers {
        let reject = |reason| Rejection {
            identifier: id.clone(),
            reason,
        };
        if let IdType::Custom(name) = &id.id_type {
            if !schema.identifier_types.contains(name) {
                rejected.push(reject(RejectReason::UndeclaredType));
                continue;
            }
        }
        let normalized = match cfg.normalization.normalize(id) {
            Ok(n) => n,
            Err(Error::InvalidIdentifier { reason, .. }) => {
                rejected.push(reject(RejectReason::Invalid(reason)));
                continue;
            }
            Err(e) => return Err(e),
        };
        if cfg.rules.is_blocked(&normalized) {
            rejected.push(reject(RejectReason::Blocked));
            continue;
        }
        let key = blind_key(db, &id.id_type, &normalized)?;
        if out.iter().any(|r| r.key == key) {
            continue;
        }
        out.push(Req {
            rank: cfg.rules.rank(&id.id_type),
            given: id.clone(),
            normalized,
            key,
        });
    }
    Ok(out)
}

fn index_lookup(db: &Engine, keys: &[BlindKey]) -> Result<Vec<Option<ProfileId>>> {
    db.store
        .multi_get::<IdentityIndex>(keys)
        .map(|v| v.into_iter().map(|e| e.map(|e| e.profile)).collect())
}

/// Origin to attribute a request's writes to: the one origin of all the
/// request's identifiers the profile already had, else the profile itself.
fn attribution(w: &Working, ids: &[StoredId], req: &[Req]) -> ProfileId {
    let origins: BTreeSet<ProfileId> = req
        .iter()
        .filter_map(|r| ids.iter().find(|s| s.same(&r.given.id_type, &r.normalized)))
        .map(|s| s.origin)
        .collect();
    match origins.len() {
        1 => origins.into_iter().next().unwrap_or(w.id),
        _ => w.id,
    }
}

/// `Db::resolve`.
pub(crate) fn resolve(
    db: &Engine,
    identifiers: &[Identifier],
    update: Update,
    consents: &[ConsentRecord],
    reason: &str,
) -> Result<ResolveOutcome> {
    let changes = prepare(&db.schema_snapshot(), update, &db.limits)?;
    db.registry.ensure(
        &db.store,
        changes
            .iter()
            .filter(|c| c.encoded.is_some())
            .map(|c| c.name.as_str())
            .chain([IDS_FIELD]),
    )?;
    let mut outcome = ResolveOutcome::default();
    let mut req = normalise_request(db, identifiers, &mut outcome.rejected)?;
    drop_suppressed(db, &mut req, &mut outcome.rejected)?;
    if req.is_empty() {
        return Ok(outcome);
    }
    match try_fast(db, &req, &changes, consents)? {
        Fast::Done(profile) => {
            outcome.profile = Some(profile);
            return Ok(outcome);
        }
        Fast::AllUnknown => {
            if try_create(db, &req, &changes, consents, &mut outcome)? {
                return Ok(outcome);
            }
        }
        Fast::Other => {}
    }
    let _identity = db.identity_lock.lock();
    loop {
        if req.is_empty() {
            return Ok(outcome);
        }
        match resolve_locked(db, &req, &changes, consents, reason, &mut outcome)? {
            Plan::Done => return Ok(outcome),
            Plan::Drop(why) => {
                // Drop the lowest-priority identifier (the last among equals) and retry.
                let worst = req
                    .iter()
                    .enumerate()
                    .max_by_key(|(i, r)| (r.rank, *i))
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let r = req.remove(worst);
                outcome.rejected.push(Rejection {
                    identifier: r.given,
                    reason: why,
                });
            }
        }
    }
}

/// Rejects identifiers of forgotten people that no profile holds any more.
fn drop_suppressed(db: &Engine, req: &mut Vec<Req>, rejected: &mut Vec<Rejection>) -> Result<()> {
    if !crate::domain::erasure::suppression::suppression_in_force(db) {
        return Ok(());
    }
    // Today's form, and for e-mail the form an earlier build suppressed it
    // under, when that differs.
    let cfg = db.identity_snapshot();
    let legacy: Vec<Option<String>> = req
        .iter()
        .map(|r| {
            cfg.normalization
                .legacy_email_form(&r.given, Some(r.normalized.as_str()))
        })
        .collect();
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(req.len());
    let mut owner = Vec::with_capacity(req.len());
    for (i, r) in req.iter().enumerate() {
        pairs.push((r.given.id_type.name(), r.normalized.as_str()));
        owner.push(i);
        if let Some(old) = &legacy[i] {
            pairs.push((r.given.id_type.name(), old.as_str()));
            owner.push(i);
        }
    }
    let mut hits = vec![false; req.len()];
    for (hit, i) in crate::domain::erasure::suppression::suppressed(db, &pairs)?
        .into_iter()
        .zip(owner)
    {
        hits[i] |= hit;
    }
    if !hits.contains(&true) {
        return Ok(());
    }
    let keys: Vec<BlindKey> = req.iter().map(|r| r.key).collect();
    let known = index_lookup(db, &keys)?;
    let mut i = 0;
    req.retain(|r| {
        let drop = hits[i] && known[i].is_none();
        i += 1;
        if drop {
            rejected.push(Rejection {
                identifier: r.given.clone(),
                reason: RejectReason::Suppressed,
            });
        }
        !drop
    });
    db.suppression_hits.fetch_add(
        rejected
            .iter()
            .filter(|r| r.reason == RejectReason::Suppressed)
            .count() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(())
}

/// What the lock-free first look at the index found.
enum Fast {
    /// Every identifier belonged to one profile; the write is done.
    Done(ProfileId),
    /// No identifier is known: a new person.
    AllUnknown,
    /// Anything else: attach or merge under the identity lock.
    Other,
}

/// Attach-free resolve: every identifier already belongs to one profile.
fn try_fast(
    db: &Engine,
    req: &[Req],
    changes: &[Prepared],
    consents: &[ConsentRecord],
) -> Result<Fast> {
    let keys: Vec<BlindKey> = req.iter().map(|r| r.key).collect();
    let found = index_lookup(db, &keys)?;
    if found.iter().all(Option::is_none) {
        return Ok(Fast::AllUnknown);
    }
    let Some(Some(first)) = found.first().copied() else {
        return Ok(Fast::Other);
    };
    if found.iter().any(|p| *p != Some(first)) {
        return Ok(Fast::Other);
    }
    let _guard = db.locks.lock([&first]);
    // Re-check under the lock: merges and unmerges hold this lock to move identifiers.
    if index_lookup(db, &keys)?.iter().any(|p| *p != Some(first)) {
        return Ok(Fast::Other);
    }
    let Some(mut w) = Working::load(db, &first)? else {
        return Ok(Fast::Other);
    };
    if w.record.status != RecordStatus::Active {
        return Ok(Fast::Other);
    }
    if changes.is_empty() && consents.is_empty() {
        return Ok(Fast::Done(first));
    }
    // Attribution only matters for a profile that absorbed others.
    let origin = if w.record.origins.is_empty() {
        0
    } else {
        let ids = decode_ids(db, &w)?;
        w.origin_index(&attribution(&w, &ids, req))
    };
    let mut batch = Batch::new();
    if !changes.is_empty() {
        w.apply_changes(db, changes.to_vec(), origin, Timestamp::now())?;
        w.put_into(&mut batch);
    }
    let mut events = Vec::new();
    if !consents.is_empty() {
        let mut states = consent::load_states(db, &w)?;
        consent::stage_records(db, &w, consents, &mut states, &mut batch)?;
        events.push(consent::audit_event(db, &w.id, consents.len())?);
    }
    db.audit.commit(&db.store, batch, &events)?;
    Ok(Fast::Done(first))
}

/// A new person (no identifier known when the index was read): the
/// profile, keyring, sealed fields and index entries are all prepared
/// before taking the identity lock, so concurrent creations encrypt in
/// parallel; under the lock the index is read again and the batch is
/// committed only if still no identifier is known. Returns false (nothing
/// written) when that check fails or a limit needs the full path.
fn try_create(
    db: &Engine,
    req: &[Req],
    changes: &[Prepared],
    consents: &[ConsentRecord],
    outcome: &mut ResolveOutcome,
) -> Result<bool> {
    if db
        .identity_snapshot()
        .rules
        .over_limit(req.iter().map(|r| &r.given.id_type))
    {
        return Ok(false);
    }
    let now = Timestamp::now();
    let id = ProfileId::random()?;
    let mut s = Working::create(db, &id, now)?;
    let mut batch = Batch::new();
    let ids: Vec<StoredId> = req
        .iter()
        .map(|r| {
            batch.put::<IdentityIndex>(&r.key, &IdentityEntry { profile: id });
            StoredId {
                id_type: r.given.id_type.clone(),
                raw: r.given.value.clone(),
                normalized: r.normalized.clone(),
                origin: id,
            }
        })
        .collect();
    encode_ids(db, &mut s, &ids, now)?;
    s.apply_changes(db, changes.to_vec(), 0, now)?;
    let mut events = Vec::new();
    if !consents.is_empty() {
        let mut states = consent::load_states(db, &s)?;
        consent::stage_records(db, &s, consents, &mut states, &mut batch)?;
        events.push(consent::audit_event(db, &id, consents.len())?);
    }
    s.put_into(&mut batch);
    let keys: Vec<BlindKey> = req.iter().map(|r| r.key).collect();
    let _identity = db.identity_lock.lock();
    if index_lookup(db, &keys)?.iter().any(Option::is_some) {
        return Ok(false);
    }
    db.audit.commit(&db.store, batch, &events)?;
    outcome.created = true;
    outcome.attached += req.len();
    outcome.profile = Some(id);
    Ok(true)
}

enum Plan {
    Done,
    Drop(RejectReason),
}

fn resolve_locked(
    db: &Engine,
    req: &[Req],
    changes: &[Prepared],
    consents: &[ConsentRecord],
    reason: &str,
    outcome: &mut ResolveOutcome,
) -> Result<Plan> {
    let cfg = db.identity_snapshot();
    let rules = &cfg.rules;
    let keys: Vec<BlindKey> = req.iter().map(|r| r.key).collect();
    let mut targets: Vec<ProfileId> = Vec::new();
    for p in index_lookup(db, &keys)?.into_iter().flatten() {
        if let Some(t) = final_target(db, &p)? {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    let _guards = db.locks.lock(&targets);
    let mut profiles: Vec<(Working, Vec<StoredId>)> = Vec::new();
    for t in &targets {
        if let Some(w) = Working::load(db, t)? {
            let ids = decode_ids(db, &w)?;
            profiles.push((w, ids));
        }
    }
    profiles.sort_by_key(|(w, _)| (w.record.created_at, w.id));

    // Check limits on the combined result before writing anything.
    let mut combined: Vec<(IdType, String)> = Vec::new();
    for (_, ids) in &profiles {
        for i in ids {
            if !combined.iter().any(|(t, n)| i.same(t, n)) {
                combined.push((i.id_type.clone(), i.normalized.clone()));
            }
        }
    }
    for r in req {
        if !combined
            .iter()
            .any(|(t, n)| t == &r.given.id_type && n == &r.normalized)
        {
            combined.push((r.given.id_type.clone(), r.normalized.clone()));
        }
    }
    if rules.over_limit(combined.iter().map(|(t, _)| t)) {
        return Ok(Plan::Drop(RejectReason::Limit));
    }
    let merged_count: usize = profiles
        .iter()
        .map(|(w, _)| 1 + w.record.origins.len())
        .sum();
    if profiles.len() > 1 && merged_count > rules.max_merged_profiles {
        return Ok(Plan::Drop(RejectReason::MergeLimit));
    }

    let now = Timestamp::now();
    let mut batch = Batch::new();
    let mut rest = profiles.into_iter();
    let (mut s, mut s_ids) = match rest.next() {
        Some(first) => first,
        None => {
            let id = ProfileId::random()?;
            outcome.created = true;
            (Working::create(db, &id, now)?, Vec::new())
        }
    };
    let cause: Vec<(String, [u8; 16])> = req
        .iter()
        .map(|r| (r.given.id_type.name().to_string(), r.key))
        .collect();
    // States as staged so far: several merges and the request's own
    // records must each see the previous ones.
    let mut s_states = consent::load_states(db, &s)?;
    let mut merge_events = Vec::new();
    for (q, q_ids) in rest {
        let q_id = q.id;
        let merge_id = merge_into(
            db,
            &mut s,
            &mut s_ids,
            q,
            q_ids,
            now,
            reason,
            &cause,
            &mut s_states,
            &mut batch,
        )?;
        outcome.merges.push(merge_id);
        merge_events.push(Event::new(
            "merge",
            Some(db.subject_ref(&s.id)?),
            serde_json::json!({
                "merge_id": merge_id.to_string(),
                "merged_subject_ref": crate::hex::encode(&db.subject_ref(&q_id)?),
                "reason": reason,
            }),
        ));
    }
    if s.record.fields.len() > crate::storage::records::MAX_FIELDS {
        // Nothing is written: the batch is dropped and the request retried without its weakest identifier.
        return Ok(Plan::Drop(RejectReason::MergeLimit));
    }
    let origin = attribution(&s, &s_ids, req);
    for r in req {
        if !s_ids
            .iter()
            .any(|i| i.same(&r.given.id_type, &r.normalized))
        {
            s_ids.push(StoredId {
                id_type: r.given.id_type.clone(),
                raw: r.given.value.clone(),
                normalized: r.normalized.clone(),
                origin,
            });
            batch.put::<IdentityIndex>(&r.key, &IdentityEntry { profile: s.id });
            outcome.attached += 1;
        }
    }
    encode_ids(db, &mut s, &s_ids, now)?;
    let origin = s.origin_index(&origin);
    s.apply_changes(db, changes.to_vec(), origin, now)?;
    consent::stage_records(db, &s, consents, &mut s_states, &mut batch)?;
    s.put_into(&mut batch);
    let mut events = merge_events;
    if !consents.is_empty() {
        events.push(consent::audit_event(db, &s.id, consents.len())?);
    }
    db.audit.commit(&db.store, batch, &events)?;
    outcome.profile = Some(s.id);
    Ok(Plan::Done)
}

/// Merges `q` into `s` (in memory and into `batch`); returns the merge id.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the pieces are the merge's inputs"
)]
fn merge_into(
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
            displaced.push(DisplacedField {
                field_id: cur.field_id,
                sealed: cur.sealed,
                origin: *s.origin_id(cur.origin).as_bytes(),
                written_at: cur.written_at.as_micros(),
                payload: cur.payload.clone(),
            });
        }
        let (name, value) = q.open(db, entry)?;
        let class = if entry.sealed {
            FieldClass::Personal
        } else {
            FieldClass::NonPersonal
        };
        let origin = s.origin_index(&q.origin_id(entry.origin));
        let sealed = s.seal(db, &name, class, &value, origin, entry.written_at)?;
        s.record.set(sealed);
    }
    for qi in q_ids {
        if !s_ids.iter().any(|i| i.same(&qi.id_type, &qi.normalized)) {
            let key = blind_key(db, &qi.id_type, &qi.normalized)?;
            batch.put::<IdentityIndex>(&key, &IdentityEntry { profile: s.id });
            s_ids.push(qi);
        }
    }
    consent::on_merge(db, s, &q, merge_id, s_states, batch)?;
    let mut frozen = q.record.clone();
    frozen.status = RecordStatus::Merged {
        into: s.id,
        merge_id,
    };
    batch.put::<Profiles>(&q.id, &frozen);
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
        .ok_or_else(|| Error::InvalidInput(format!("no merge {merge_id}")))?;
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
                let class = if entry.sealed {
                    FieldClass::Personal
                } else {
                    FieldClass::NonPersonal
                };
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
            s_keep.push(FieldEntry {
                field_id: d.field_id,
                sealed: d.sealed,
                origin: 0,
                written_at: Timestamp(d.written_at),
                payload: d.payload.clone(),
            });
        }
    }
    // The survivor's origin table loses the merged side; re-index origins.
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
        let key = blind_key(db, &i.id_type, &i.normalized)?;
        batch.put::<IdentityIndex>(&key, &IdentityEntry { profile: b_id });
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
    consent::on_unmerge(db, &b, &mut batch)?;
    s.put_into(&mut batch);
    b.put_into(&mut batch);
    rec.undone_at = Some(now.as_micros());
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
    Ok((s_id, b_id))
}

/// `Db::lookup`.
pub(crate) fn lookup(db: &Engine, id: &Identifier) -> Result<Option<ProfileId>> {
    let cfg = db.identity_snapshot();
    // An e-mail indexed or suppressed by an earlier build under its older
    // form is found by that form too (docs/design.md, "Identifiers and
    // normalisation").
    let forms = cfg.normalization.lookup_forms(id)?;
    // Index entries always name an active profile: merge and unmerge
    // re-point them, forget deletes them, each in the same batch as the
    // profile change. So one index read answers, without the record.
    for form in forms {
        let key = blind_key(db, &id.id_type, &form)?;
        if let Some(e) = db.store.get::<IdentityIndex>(&key)? {
            return Ok(Some(e.profile));
        }
    }
    Ok(None)
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

/// `Db::identifiers`.
pub(crate) fn identifiers_of(db: &Engine, id: &ProfileId) -> Result<Vec<Identifier>> {
    let w = crate::domain::profiles::load_active(db, id)?;
    Ok(decode_ids(db, &w)?
        .into_iter()
        .map(|i| Identifier::new(i.id_type, i.raw))
        .collect())
}

#[cfg(test)]
mod legacy_forms {
    use super::*;
    use crate::storage::records::SuppressionEntry;
    use crate::storage::Batch;

    /// Entries written by a build before the e-mail grammar (trimmed and
    /// lower-cased only) are still found, still suppress, and can be
    /// unsuppressed. Written here with the store's own keys, as that build
    /// wrote them.
    #[test]
    fn email_entries_of_earlier_builds_are_found_suppressed_and_unsuppressed() {
        let (_dir, handle, id) = crate::db::scratch_store();
        let db = &*handle.engine;
        let (indexed, suppressed) = ("josé@bücher.de", "zoë@straße.de");
        let mut batch = Batch::new();
        batch.put::<IdentityIndex>(
            &db.blind.key("email", indexed).unwrap(),
            &IdentityEntry { profile: id },
        );
        batch.put::<crate::storage::columns::Suppressions>(
            &db.suppression.key("email", suppressed).unwrap(),
            &SuppressionEntry {
                erasure_id: 1,
                at: 0,
            },
        );
        db.store.write(batch).unwrap();
        db.suppression_active
            .store(true, std::sync::atomic::Ordering::Release);

        // Today's form has no entry; the lookup finds the old one.
        let today = crate::Normalization::default()
            .normalize(&Identifier::email("José@BÜCHER.de"))
            .unwrap();
        assert_eq!(today, "josé@xn--bcher-kva.de");
        let today_key = db.blind.key("email", &today).unwrap();
        assert!(db.store.get::<IdentityIndex>(&today_key).unwrap().is_none());
        assert_eq!(
            handle
                .lookup(&Identifier::email(" José@Bücher.de "))
                .unwrap(),
            Some(id)
        );
        // The forgotten address stays suppressed.
        let again = handle
            .resolve(&[Identifier::email("Zoë@Straße.de")], Update::new())
            .unwrap();
        assert!(again.profile.is_none());
        assert_eq!(again.rejected[0].reason, RejectReason::Suppressed);
        // ... until unsuppressed by any spelling.
        assert!(handle
            .unsuppress(&Identifier::email("ZOË@straße.de"))
            .unwrap());
        let again = handle
            .resolve(&[Identifier::email("Zoë@Straße.de")], Update::new())
            .unwrap();
        assert!(again.profile.is_some());
    }
}
