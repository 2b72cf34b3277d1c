//! Resolution, merge and unmerge.
//!
//! Concurrency: operations that change which profile an identifier belongs
//! to (create, attach, merge, unmerge) run under the store's identity lock
//! and then take the stripe locks of the profiles they touch. A resolve whose
//! identifiers all already belong to one profile takes only that profile's
//! stripe lock and re-checks the index under it (the fast path), so ingest
//! of known people runs in parallel.

use std::collections::BTreeSet;

use super::blind::BlindKey;
use super::ids::{IdType, Identifier};
use super::merge::merge_into;
use super::outcome::*;
use super::stored::*;
use crate::domain::audit::Event;
use crate::domain::consent::{self, ConsentRecord};
use crate::domain::index_auth::identity_target;
use crate::domain::profiles::{final_target, prepare, Prepared, Update, Working};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::IdentityIndex;
use crate::storage::records::RecordStatus;
use crate::storage::Batch;
use crate::types::{ProfileId, Timestamp};

/// One identifier of a request, normalised and keyed.
#[derive(Clone)]
struct Req {
    given: Identifier,
    normalized: String,
    rank: usize,
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
        if out
            .iter()
            .any(|r| r.given.id_type == id.id_type && r.normalized == normalized)
        {
            continue;
        }
        out.push(Req {
            rank: cfg.rules.rank(&id.id_type),
            given: id.clone(),
            normalized,
        });
    }
    Ok(out)
}

/// The profile each request identifier's entry points at, under either
/// generation's key during a blind-index rotation (one multi-get: one
/// consistent view). The keys are computed here, from the rotation state
/// of this moment — under the identity lock, the state the caller's writes
/// will be keyed by.
fn index_lookup(db: &Engine, req: &[Req]) -> Result<Vec<Option<ProfileId>>> {
    loop {
        let st = db.ids.state();
        let version = st.version();
        let mut keys: Vec<BlindKey> = Vec::with_capacity(req.len() * 2);
        let mut spans = Vec::with_capacity(req.len());
        for r in req {
            let k = st.keys(r.given.id_type.name(), &r.normalized)?;
            spans.push(keys.len()..keys.len() + k.len());
            keys.extend(k);
        }
        let found = db.store.multi_get::<IdentityIndex>(&keys)?;
        // Unchanged key state: this view is consistent with those keys.
        if db.ids.version() == version {
            let mut out = Vec::with_capacity(spans.len());
            for span in spans {
                let hit = keys[span.clone()]
                    .iter()
                    .zip(&found[span])
                    .find_map(|(k, e)| e.as_ref().map(|e| (k, e)));
                out.push(match hit {
                    Some((k, e)) => Some(identity_target(db, k, e)?),
                    None => None,
                });
            }
            return Ok(out);
        }
    }
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
    let known = index_lookup(db, req)?;
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
    let found = index_lookup(db, req)?;
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
    if index_lookup(db, req)?.iter().any(|p| *p != Some(first)) {
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
    }
    let mut events = Vec::new();
    if !consents.is_empty() {
        let mut states = consent::load_states(db, &w)?;
        consent::stage_records(db, &w, consents, origin, &mut states, &mut batch)?;
        events.push(consent::audit_event(db, &w.id, consents.len())?);
    }
    // After the consents: the record anchors the current ones staged.
    if !changes.is_empty() || w.has_staged_anchors() {
        w.put_into(&mut batch)?;
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
        .map(|r| StoredId {
            id_type: r.given.id_type.clone(),
            raw: r.given.value.clone(),
            normalized: r.normalized.clone(),
            origin: id,
        })
        .collect();
    encode_ids(db, &mut s, &ids, now)?;
    s.apply_changes(db, changes.to_vec(), 0, now)?;
    let mut events = Vec::new();
    if !consents.is_empty() {
        let mut states = consent::load_states(db, &s)?;
        consent::stage_records(db, &s, consents, 0, &mut states, &mut batch)?;
        events.push(consent::audit_event(db, &id, consents.len())?);
    }
    s.put_into(&mut batch)?;
    let _identity = db.identity_lock.lock();
    if index_lookup(db, req)?.iter().any(Option::is_some) {
        return Ok(false);
    }
    // Keyed under the lock: a blind-index rotation moves its cursor only
    // under it, so the generation chosen here is the one the entry needs.
    for r in req {
        put_index(db, &mut batch, &r.given.id_type, &r.normalized, id)?;
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
    let mut targets: Vec<ProfileId> = Vec::new();
    for p in index_lookup(db, req)?.into_iter().flatten() {
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
        .map(|r| {
            Ok((
                r.given.id_type.name().to_string(),
                db.ids.keys(r.given.id_type.name(), &r.normalized)?[0],
            ))
        })
        .collect::<Result<_>>()?;
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
            put_index(db, &mut batch, &r.given.id_type, &r.normalized, s.id)?;
            outcome.attached += 1;
        }
    }
    encode_ids(db, &mut s, &s_ids, now)?;
    let origin = s.origin_index(&origin);
    s.apply_changes(db, changes.to_vec(), origin, now)?;
    consent::stage_records(db, &s, consents, origin, &mut s_states, &mut batch)?;
    s.put_into(&mut batch)?;
    let mut events = merge_events;
    if !consents.is_empty() {
        events.push(consent::audit_event(db, &s.id, consents.len())?);
    }
    db.audit.commit(&db.store, batch, &events)?;
    outcome.profile = Some(s.id);
    Ok(Plan::Done)
}

#[cfg(test)]
mod legacy_forms {
    use super::*;
    use crate::storage::records::{IdentityEntry, SuppressionEntry};
    use crate::storage::Batch;

    /// Entries written by a build before the e-mail grammar (trimmed and
    /// lower-cased only) are still found, still suppress, and can be
    /// unsuppressed. Written here with the store's own keys, as that build
    /// wrote them.
    #[test]
    fn email_entries_of_earlier_builds_are_found_suppressed_and_unsuppressed() {
        let (_dir, handle, id) = crate::db::scratch_store();
        let db = &*handle.engine;
        // A store of that build holds format v1.
        db.v2_only
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let (indexed, suppressed) = ("josé@bücher.de", "zoë@straße.de");
        let mut batch = Batch::new();
        batch.put::<IdentityIndex>(
            &db.ids.key("email", indexed).unwrap(),
            &IdentityEntry {
                profile: id,
                mac: None,
            },
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
        let today_key = db.ids.key("email", &today).unwrap();
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
