//! The consent operations of the API: record, current state, history,
//! point-in-time state, who consented, processing flags, and the
//! purpose-bound read.

use std::collections::BTreeMap;

use super::record::*;
use super::sealed::*;
use crate::domain::profiles::{self, final_target, is_system_field, Working};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::{ConsentCurrent, ConsentGranted, ConsentHistory, Profiles};
use crate::storage::records::RecordStatus;
use crate::storage::Batch;
use crate::types::{FieldClass, ProfileId, Timestamp, Value};

/// Runs `f` on the active profile `id` resolves to, holding its stripe lock
/// (and the identity lock when `id` was merged away); `f` fills the batch.
fn with_locked_profile<T>(
    db: &Engine,
    id: &ProfileId,
    f: impl FnOnce(&Working, &mut Batch) -> Result<(T, usize)>,
) -> Result<T> {
    // Try `id` itself under its stripe lock; if it was merged away, take the
    // identity lock (merge chains then stay still) and follow the redirect.
    let mut identity = None;
    let (_guards, w) = loop {
        let target = if identity.is_some() {
            final_target(db, id)?.ok_or(Error::ProfileNotFound(*id))?
        } else {
            *id
        };
        let guards = db.locks.lock([&target]);
        let w = Working::load(db, &target)?.ok_or(Error::ProfileNotFound(*id))?;
        if w.record.status == RecordStatus::Active {
            break (guards, w);
        }
        if identity.is_some() {
            return Err(Error::corrupt(
                "profile record",
                "redirect target is not active",
            ));
        }
        drop(guards);
        identity = Some(db.identity_lock.lock());
    };
    let mut batch = Batch::new();
    let (out, records) = f(&w, &mut batch)?;
    // The profile record anchors the current consent records written.
    if w.has_staged_anchors() {
        w.put_into(&mut batch)?;
    }
    db.audit
        .commit(&db.store, batch, &[audit_event(db, &w.id, records)?])?;
    Ok(out)
}

/// The audit entry of a consent change: that `records` records were
/// written for the subject — never which purposes or states.
pub(crate) fn audit_event(
    db: &Engine,
    id: &ProfileId,
    records: usize,
) -> Result<crate::domain::audit::Event> {
    Ok(crate::domain::audit::Event::new(
        "consent",
        Some(db.subject_ref(id)?),
        serde_json::json!({ "records": records }),
    ))
}

/// `Db::record_consents`.
/// Records consents; returns them as stored (with `recorded_at` set).
pub(crate) fn record(
    db: &Engine,
    id: &ProfileId,
    records: &[ConsentRecord],
) -> Result<Vec<ConsentRecord>> {
    with_locked_profile(db, id, |w, batch| {
        let mut states = load_states(db, w)?;
        // Recorded through a merged-away id: attributed to that profile.
        let origin = w.origin_index(id);
        let stored = stage_records(db, w, records, origin, &mut states, batch)?;
        Ok((stored, records.len()))
    })
}

/// Reads take no lock: the profile record and its consent records are two
/// reads, and a write committing between them shows an anchor and a
/// record of different writes (`Integrity`), or a record re-sealed under a
/// new key generation (`Decrypt`). Such a read is tried again, the last
/// time under the profile's stripe lock, which every writer of the profile
/// holds: a mismatch that survives that is what it says.
pub(super) fn consistent<T>(
    db: &Engine,
    id: &ProfileId,
    mut read: impl FnMut() -> Result<T>,
) -> Result<T> {
    for _ in 0..2 {
        match read() {
            Err(Error::Integrity { .. } | Error::Decrypt { .. }) => {}
            other => return other,
        }
    }
    // Writers lock the profile the id resolves to; a merge may move it
    // while we wait, so the target is checked again under its lock.
    for _ in 0..3 {
        let target = profiles::final_target(db, id)?.unwrap_or(*id);
        let _stripe = db.locks.lock([&target]);
        if profiles::final_target(db, id)?.unwrap_or(*id) == target {
            return read();
        }
    }
    read()
}

/// `Db::consents`: current states, in [`purpose_order`].
pub(crate) fn current(db: &Engine, id: &ProfileId) -> Result<Vec<ConsentRecord>> {
    consistent(db, id, || {
        let w = profiles::load_active_fields(db, id, profiles::Fields::Lazy)?;
        let mut v: Vec<ConsentRecord> = current_states(db, &w)?.into_values().collect();
        v.sort_by(|a, b| purpose_order(&a.purpose, &b.purpose));
        Ok(v)
    })
}

/// `Db::consent`: the current state of one purpose (one point read).
pub(crate) fn current_one(
    db: &Engine,
    id: &ProfileId,
    purpose: &str,
) -> Result<Option<ConsentRecord>> {
    // No field is opened: the record's tag (checked at load) authenticates
    // the consent anchors.
    consistent(db, id, || {
        current_of(
            db,
            &profiles::load_active_fields(db, id, profiles::Fields::Lazy)?,
            purpose,
        )
    })
}

/// The current record of `purpose` of a loaded profile, checked against
/// the profile record's anchor (a missing one must be absent there too).
pub(super) fn current_of(db: &Engine, w: &Working, purpose: &str) -> Result<Option<ConsentRecord>> {
    let key = (w.id, purpose_tag(db, purpose)?);
    match db.store.get::<ConsentCurrent>(&key)? {
        Some(s) => Ok(Some(open(db, w, b'c', &body(&key), &s)?)),
        None => {
            check_absent(w, &key.1)?;
            Ok(None)
        }
    }
}

fn own_history(db: &Engine, w: &Working) -> Result<Vec<ConsentRecord>> {
    let mut out = Vec::new();
    for item in db.store.entries::<ConsentHistory>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        out.push(open(db, w, b'h', &body(&key), &sealed)?);
    }
    Ok(out)
}

/// `Db::consent_history`: the profile's own history and that of every
/// profile merged into it, each entry with the profile it was recorded for.
pub(crate) fn history(db: &Engine, id: &ProfileId) -> Result<Vec<(ProfileId, ConsentRecord)>> {
    consistent(db, id, || history_once(db, id))
}

fn history_once(db: &Engine, id: &ProfileId) -> Result<Vec<(ProfileId, ConsentRecord)>> {
    let w = profiles::load_active_fields(db, id, profiles::Fields::Lazy)?;
    let mut out: Vec<(ProfileId, ConsentRecord)> = own_history(db, &w)?
        .into_iter()
        .map(|r| (w.id, r))
        .collect();
    for o in &w.record.origins {
        if let Some(m) = Working::load_fields(db, o, profiles::Fields::Lazy)? {
            out.extend(own_history(db, &m)?.into_iter().map(|r| (m.id, r)));
        }
    }
    out.sort_by_key(|(_, r)| r.recorded_at);
    Ok(out)
}

/// `Db::consent_at`: the state at `at` per the profile's own history — the
/// record with the latest timestamp not after `at` (later recording wins ties).
pub(crate) fn at(
    db: &Engine,
    id: &ProfileId,
    purpose: &str,
    at: Timestamp,
) -> Result<Option<ConsentRecord>> {
    consistent(db, id, || {
        let w = profiles::load_active_fields(db, id, profiles::Fields::Lazy)?;
        Ok(own_history(db, &w)?
            .into_iter()
            .filter(|r| r.purpose == purpose && r.timestamp <= at)
            .max_by_key(|r| (r.timestamp, r.recorded_at)))
    })
}

/// `Db::consented_profiles`: profiles with `purpose` granted and not expired now.
pub(crate) fn who(db: &Engine, purpose: &str) -> Result<Vec<ProfileId>> {
    let tag = purpose_tag(db, purpose)?;
    let now = Timestamp::now();
    let mut listed: Vec<(ProfileId, Option<u64>)> = Vec::new();
    for item in db.store.entries::<ConsentGranted>(&tag)? {
        let ((_, id), g) = item?;
        // Forged or altered entries fail here.
        let version = crate::domain::index_auth::check_grant(db, &tag, &id, &g)?;
        if g.expires_at.is_none_or(|e| e > now) {
            listed.push((id, version));
        }
    }
    // An entry put back after its grant was withdrawn authenticates; what
    // stops it is the profile's anchor for the purpose, which must still be
    // the version the entry stands for.
    let mut out = Vec::with_capacity(listed.len());
    for chunk in listed.chunks(256) {
        let ids: Vec<ProfileId> = chunk.iter().map(|(id, _)| *id).collect();
        let records = db.store.multi_get::<Profiles>(&ids)?;
        for ((id, version), stored) in chunk.iter().zip(records) {
            if grant_is_current(db, &tag, id, *version, stored)? {
                out.push(*id);
                continue;
            }
            // A write may have committed between the two reads: read the
            // entry and the profile again, then decide.
            if recheck_grant(db, &tag, id, now)? {
                out.push(*id);
            }
        }
    }
    Ok(out)
}

/// Whether a grant entry standing for anchor `version` is the current
/// grant of the profile as stored in `stored`.
fn grant_is_current(
    db: &Engine,
    tag: &[u8; 8],
    id: &ProfileId,
    version: Option<u64>,
    stored: Option<crate::storage::records::StoredProfile>,
) -> Result<bool> {
    Ok(match stored {
        Some(stored) => {
            profiles::check_record(db, id, &stored)?;
            stored.record.status == RecordStatus::Active
                && stored.record.consent_anchor(tag) == version
        }
        None => false,
    })
}

/// A grant entry that did not match its profile, read again (a few times:
/// writes go on): `true` when it is the current grant now, `false` when it
/// is gone or expired, the integrity error when it stays a stale entry.
fn recheck_grant(db: &Engine, tag: &[u8; 8], id: &ProfileId, now: Timestamp) -> Result<bool> {
    // Under the listed profile's stripe lock, which every writer of its
    // consent holds: what is read now is what the last write left.
    let _stripe = db.locks.lock([id]);
    {
        let Some(g) = db.store.get::<ConsentGranted>(&(*tag, *id))? else {
            return Ok(false);
        };
        let version = crate::domain::index_auth::check_grant(db, tag, id, &g)?;
        if g.expires_at.is_some_and(|e| e <= now) {
            return Ok(false);
        }
        if grant_is_current(db, tag, id, version, db.store.get::<Profiles>(id)?)? {
            return Ok(true);
        }
    }
    Err(Error::Integrity {
        profile: *id,
        what: "consent index entry (not the profile's current grant)".into(),
    })
}

/// Reads the restriction / objection flags of a loaded profile.
pub(super) fn flags_of(db: &Engine, w: &Working) -> Result<ProcessingFlags> {
    let Some(fid) = db.registry.id(PROCESSING_FIELD) else {
        return Ok(ProcessingFlags::default());
    };
    match w.record.fields.iter().find(|e| e.field_id == fid) {
        None => Ok(ProcessingFlags::default()),
        Some(e) => match w.open(db, e)?.1 {
            Value::Json(j) => serde_json::from_value(j)
                .map_err(|e| Error::corrupt("processing flags", e.to_string())),
            _ => Err(Error::corrupt("processing flags", "not a JSON object")),
        },
    }
}

/// `Db::processing_flags`.
pub(crate) fn flags(db: &Engine, id: &ProfileId) -> Result<ProcessingFlags> {
    flags_of(
        db,
        &profiles::load_active_fields(db, id, profiles::Fields::Lazy)?,
    )
}

/// `Db::set_processing_flags`.
pub(crate) fn set_flags(db: &Engine, id: &ProfileId, flags: ProcessingFlags) -> Result<()> {
    let json = serde_json::to_value(flags).map_err(|e| Error::Internal(e.to_string()))?;
    profiles::apply_system(
        db,
        id,
        PROCESSING_FIELD,
        Value::Json(json),
        Some("processing_flags"),
    )
}

/// `Db::get_for_purpose`.
pub(crate) fn read_for_purpose(db: &Engine, id: &ProfileId, purpose: &str) -> Result<PurposeRead> {
    if !is_known_purpose(db, purpose) {
        return Err(Error::UnknownPurpose(purpose.chars().take(64).collect()));
    }
    consistent(db, id, || read_for_purpose_once(db, id, purpose))
}

fn read_for_purpose_once(db: &Engine, id: &ProfileId, purpose: &str) -> Result<PurposeRead> {
    // Lazy: only the fields the purpose may see are decrypted.
    let w = profiles::load_active_fields(db, id, profiles::Fields::Lazy)?;
    let schema = db.schema_snapshot();
    let flags = flags_of(db, &w)?;
    let state = current_of(db, &w, purpose)?;
    let now = Timestamp::now();
    let mut out = PurposeRead {
        profile_id: w.id,
        purpose: purpose.to_string(),
        fields: BTreeMap::new(),
        withheld: BTreeMap::new(),
    };
    for entry in &w.record.fields {
        let name = db.registry.name(entry.field_id)?;
        if is_system_field(&name) {
            continue;
        }
        let spec = schema.spec(&name);
        let refusal: Option<String> = if flags.restricted {
            Some("processing restricted (GDPR Art. 18)".into())
        } else if flags.objected {
            Some("the person objected to processing (GDPR Art. 21)".into())
        } else if spec.class == FieldClass::NonPersonal {
            None
        } else if !spec.purposes.iter().any(|p| p == purpose) {
            Some(format!("field is not declared for purpose {purpose}"))
        } else {
            match &state {
                None => Some("no consent or legal basis recorded for the purpose".into()),
                Some(s) if s.expired_at(now) => Some("consent expired".into()),
                Some(s) if s.status != ConsentStatus::Granted => {
                    Some(format!("consent {}", s.status))
                }
                Some(s)
                    if spec.class == FieldClass::Sensitive
                        && s.legal_basis != LegalBasis::Consent =>
                {
                    Some(format!(
                        "special-category data needs explicit consent, basis is {}",
                        s.legal_basis
                    ))
                }
                Some(_) => None,
            }
        };
        match refusal {
            Some(why) => {
                out.withheld.insert(name, why);
            }
            None => {
                let value = w.open_named(entry, &name)?;
                out.fields.insert(name, value);
            }
        }
    }
    Ok(out)
}
