//! Legal holds: place, release, list, and the checks `forget`,
//! `forget_fields` and retention make before erasing.

use serde_json::json;

use super::model::*;
use super::ops::{event, put, record, HoldRequests, Holds, HoldsBySubject, RequestsBySubject};
use super::ops::{holding, next_id};
use crate::domain::audit::Event;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::records::Blob;
use crate::storage::Batch;
use crate::types::ProfileId;
use crate::types::Timestamp;

/// `Db::place_hold`: one write with its audit entry; the subject's open
/// erasure requests the hold covers go `on_hold`, naming it.
pub(crate) fn place(
    db: &Engine,
    lineage: &[[u8; 16]],
    fields: Vec<String>,
    reason: &str,
    owner: &str,
    ends_at: Option<Timestamp>,
) -> Result<Hold> {
    check_text("hold reason", reason)?;
    check_text("hold owner", owner)?;
    super::ops::check_fields(&fields)?;
    let subject = *lineage
        .first()
        .ok_or_else(|| Error::Internal("a hold needs a subject".into()))?;
    let now = Timestamp::now();
    if ends_at.is_some_and(|e| !e.is_valid() || e <= now) {
        return Err(Error::InvalidInput(
            "a hold's end must be in the future".into(),
        ));
    }
    // Ordered with erasures: a forget either ran before the hold or sees it.
    let _identity = db.identity_lock.lock();
    let _privacy = db.privacy_lock.lock();
    let id = next_id(db.store.last_key_with::<Holds>(&[])?)?;
    let hold = Hold {
        id,
        subject_ref: subject,
        fields,
        reason: reason.to_string(),
        owner: owner.to_string(),
        placed_at: now,
        ends_at,
        released: None,
    };
    let mut batch = Batch::new();
    batch.put::<Holds>(&id, &hold);
    batch.put::<HoldsBySubject>(&(subject, id), &Blob(Vec::new()));
    let mut events = vec![Event::new(
        "hold_placed",
        Some(subject),
        json!({"hold_id": id, "fields": hold.fields, "ends_at": ends_at.map(|t| t.to_string())}),
    )];
    // The person's erasure requests (made through any profile now merged
    // into them) that the hold covers wait for it.
    let mut waiting = Vec::new();
    for s in lineage {
        for key in db.store.keys_with::<RequestsBySubject>(s)? {
            waiting.push(super::ops::get(db, key?.1)?);
        }
    }
    for before in waiting {
        let fields: Vec<&str> = before.fields.iter().map(String::as_str).collect();
        let covered = fields.is_empty() || hold.covers_any(&fields);
        if before.kind != RequestKind::Erasure
            || !matches!(before.status, RequestStatus::Open | RequestStatus::OnHold)
            || before.erasure_id.is_some()
            || !covered
        {
            continue;
        }
        let mut r = before.clone();
        r.status = RequestStatus::OnHold;
        r.holds.push(id);
        batch.put::<HoldRequests>(&(id, r.id), &Blob(Vec::new()));
        record(
            &mut r,
            Transition {
                at: now,
                by: owner.to_string(),
                action: "on_hold".into(),
                note: Some(format!("legal hold {id} placed")),
            },
        );
        put(&mut batch, Some(&before), &r);
        events.push(event("request_on_hold", &r, json!({"holds": r.holds})));
    }
    db.audit.commit(&db.store, batch, &events)?;
    Ok(hold)
}

/// `Db::release_hold`: audited; requests that waited only for it go back
/// to `open` (the erasure may now run).
pub(crate) fn release(db: &Engine, id: u64, by: &str) -> Result<Hold> {
    check_text("who released the hold", by)?;
    let _identity = db.identity_lock.lock();
    let _privacy = db.privacy_lock.lock();
    let mut hold = db.store.get::<Holds>(&id)?.ok_or(Error::HoldNotFound(id))?;
    if hold.released.is_some() {
        return Err(Error::InvalidInput(format!(
            "hold {id} is already released"
        )));
    }
    let now = Timestamp::now();
    hold.released = Some((now, by.to_string()));
    let mut batch = Batch::new();
    batch.put::<Holds>(&id, &hold);
    let mut events = vec![Event::new(
        "hold_released",
        Some(hold.subject_ref),
        json!({"hold_id": id}),
    )];
    for key in db.store.keys_with::<HoldRequests>(&id.to_be_bytes())? {
        let (_, request) = key?;
        batch.delete::<HoldRequests>(&(id, request));
        let before = super::ops::get(db, request)?;
        if before.status != RequestStatus::OnHold || !before.holds.contains(&id) {
            continue;
        }
        let mut r = before.clone();
        // It waits on for the other holds it named that still hold.
        let mut still = Vec::new();
        for h in r.holds.iter().filter(|h| **h != id) {
            if db.store.get::<Holds>(h)?.is_some_and(|x| x.active_at(now)) {
                still.push(*h);
            }
        }
        r.holds = still;
        if r.holds.is_empty() {
            r.status = RequestStatus::Open;
        }
        record(
            &mut r,
            Transition {
                at: now,
                by: by.to_string(),
                action: "released".into(),
                note: Some(format!("legal hold {id} released")),
            },
        );
        put(&mut batch, Some(&before), &r);
        events.push(event(
            "request_released",
            &r,
            json!({"hold_id": id, "holds": r.holds}),
        ));
    }
    db.audit.commit(&db.store, batch, &events)?;
    Ok(hold)
}

/// `Db::holds`: every hold (of one subject when given), in id order.
pub(crate) fn holds(db: &Engine, subject: Option<[u8; 16]>) -> Result<Vec<Hold>> {
    match subject {
        Some(s) => db
            .store
            .keys_with::<HoldsBySubject>(&s)?
            .map(|k| {
                let id = k?.1;
                db.store.get::<Holds>(&id)?.ok_or(Error::HoldNotFound(id))
            })
            .collect(),
        None => db
            .store
            .entries::<Holds>(&[])?
            .map(|e| e.map(|(_, h)| h))
            .collect(),
    }
}

/// The first active hold on any of `profiles` (as subjects) covering
/// `fields` (empty: the whole person), as the typed error erasures refuse
/// with — after marking the subjects' erasure requests as waiting.
fn refuse(db: &Engine, profiles: &[ProfileId], fields: &[String]) -> Result<()> {
    let now = Timestamp::now();
    let mut subjects = Vec::new();
    let mut found = Vec::new();
    for p in profiles {
        let s = db.subject_ref(p)?;
        found.extend(holding(db, &s, fields, now)?);
        subjects.push(s);
    }
    let Some(first) = found.first().copied() else {
        return Ok(());
    };
    super::links::mark_waiting(db, &subjects, fields, &found)?;
    Err(Error::LegalHold {
        hold_id: first,
        what: if fields.is_empty() {
            "the person".into()
        } else {
            format!("fields {fields:?}")
        },
    })
}

/// Refuses a whole-person erasure of `profiles` (a person's lineage) while
/// any hold on them is active.
pub(crate) fn check_profiles(db: &Engine, profiles: &[ProfileId]) -> Result<()> {
    refuse(db, profiles, &[])
}

/// Refuses erasing `fields` of `profiles` while a hold covers one of them.
pub(crate) fn check_fields(db: &Engine, profiles: &[ProfileId], fields: &[&str]) -> Result<()> {
    let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    refuse(db, profiles, &fields)
}

/// The fields of `names` no active hold on the person `id` belongs to
/// covers (none when a hold covers the whole person): what retention may
/// still erase of a held person.
pub(crate) fn unheld(db: &Engine, id: &ProfileId, names: &[String]) -> Result<Vec<String>> {
    // The lineage is read from authenticated records (keyrings opened).
    let _tree = db.keys.shared();
    let now = Timestamp::now();
    let mut held: Vec<String> = Vec::new();
    for s in lineage_subjects(db, id)? {
        for h in holding(db, &s, &[], now)? {
            let hold = db.store.get::<Holds>(&h)?.ok_or(Error::HoldNotFound(h))?;
            if hold.fields.is_empty() {
                return Ok(Vec::new());
            }
            held.extend(hold.fields);
        }
    }
    Ok(names
        .iter()
        .filter(|n| !held.contains(n))
        .cloned()
        .collect())
}

/// The subject references of the person `id` resolves to: the active
/// profile's first, then those of the profiles merged into it (an erasure
/// of the person covers them all, so a hold on any counts). Reads
/// authenticated records: the caller holds the key-tree lock.
pub(crate) fn lineage_subjects(db: &Engine, id: &ProfileId) -> Result<Vec<[u8; 16]>> {
    let target =
        crate::domain::profiles::final_target(db, id)?.ok_or(Error::ProfileNotFound(*id))?;
    let record =
        crate::domain::profiles::authenticated(db, &target)?.ok_or(Error::ProfileNotFound(*id))?;
    std::iter::once(target)
        .chain(record.record.origins)
        .map(|p| db.subject_ref(&p))
        .collect()
}
