//! What erasures do to requests: `forget` links the open erasure requests
//! it fulfils (`erased`), an erasure refused by a hold makes them wait
//! (`on_hold`), and the purge that issues the certificate completes them
//! with it as evidence — each in the erasure's or purge's own write.

use std::collections::HashMap;

use serde_json::json;

use super::model::*;
use super::ops::{
    certificate_digest, event, get, put, record, HoldRequests, Holds, RequestErasures,
    RequestsBySubject,
};
use crate::domain::audit::{Event, Position};
use crate::engine::Engine;
use crate::error::Result;
use crate::storage::records::Blob;
use crate::storage::Batch;
use crate::types::{ProfileId, Timestamp};

/// Open erasure requests of these subjects an erasure of `fields` (empty:
/// the whole person) fulfils.
fn fulfilled_by(db: &Engine, subjects: &[[u8; 16]], fields: &[String]) -> Result<Vec<Request>> {
    let mut out: Vec<Request> = Vec::new();
    for s in subjects {
        for key in db.store.keys_with::<RequestsBySubject>(s)? {
            let r = get(db, key?.1)?;
            let covered = fields.is_empty()
                || (!r.fields.is_empty() && r.fields.iter().all(|f| fields.contains(f)));
            if r.kind == RequestKind::Erasure
                && matches!(r.status, RequestStatus::Open | RequestStatus::OnHold)
                && r.erasure_id.is_none()
                && covered
                && !out.iter().any(|o| o.id == r.id)
            {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Called by `forget`/`forget_fields` (holding the privacy lock, inside
/// the erasure's batch): links the subjects' open erasure requests that
/// the erasure fulfils to it; they complete when its certificate is
/// issued. Returns the audit events to commit with the erasure.
pub(crate) fn link_erasure(
    db: &Engine,
    batch: &mut Batch,
    lineage: &[ProfileId],
    fields: &[String],
    erasure_id: u64,
) -> Result<Vec<Event>> {
    let subjects = lineage
        .iter()
        .map(|p| db.subject_ref(p))
        .collect::<Result<Vec<_>>>()?;
    let mut events = Vec::new();
    for before in fulfilled_by(db, &subjects, fields)? {
        let mut r = before.clone();
        r.erasure_id = Some(erasure_id);
        r.status = RequestStatus::Open;
        r.holds.clear();
        record(
            &mut r,
            Transition {
                at: Timestamp::now(),
                by: "lethedb".into(),
                action: "erased".into(),
                note: Some(format!(
                    "erasure {erasure_id}; completes when its certificate is issued"
                )),
            },
        );
        put(batch, Some(&before), &r);
        batch.put::<RequestErasures>(&(erasure_id, r.id), &Blob(Vec::new()));
        events.push(event(
            "request_erased",
            &r,
            json!({"erasure_id": erasure_id}),
        ));
    }
    Ok(events)
}

/// Called when an erasure is refused by holds: the subjects' open erasure
/// requests wait, visibly (`on_hold`, naming the holds). One write.
pub(crate) fn mark_waiting(
    db: &Engine,
    subjects: &[[u8; 16]],
    fields: &[String],
    holds: &[u64],
) -> Result<()> {
    let _privacy = db.privacy_lock.lock();
    let found: Vec<Hold> = holds
        .iter()
        .filter_map(|h| db.store.get::<Holds>(h).transpose())
        .collect::<Result<_>>()?;
    let mut batch = Batch::new();
    let mut events = Vec::new();
    for before in fulfilled_by(db, subjects, fields)? {
        // Only the holds that cover what this request asks for.
        let names: Vec<&str> = before.fields.iter().map(String::as_str).collect();
        let mine: Vec<u64> = found
            .iter()
            .filter(|h| names.is_empty() || h.covers_any(&names))
            .map(|h| h.id)
            .collect();
        if mine.is_empty() || mine.iter().all(|h| before.holds.contains(h)) {
            continue;
        }
        let mut r = before.clone();
        r.status = RequestStatus::OnHold;
        for h in &mine {
            if !r.holds.contains(h) {
                r.holds.push(*h);
                batch.put::<HoldRequests>(&(*h, r.id), &Blob(Vec::new()));
            }
        }
        record(
            &mut r,
            Transition {
                at: Timestamp::now(),
                by: "lethedb".into(),
                action: "on_hold".into(),
                note: Some(format!("erasure refused: legal hold {mine:?}")),
            },
        );
        put(&mut batch, Some(&before), &r);
        events.push(event("request_on_hold", &r, json!({"holds": r.holds})));
    }
    if !events.is_empty() {
        db.audit.commit(&db.store, batch, &events)?;
    }
    Ok(())
}

/// Erasure requests a purge completes: found before it commits (their
/// audit entries go in its batch), written with their evidence once the
/// certificates exist.
pub(crate) struct Completions {
    requests: Vec<(u64, Request)>,
}

impl Completions {
    /// The audit events, committed with the purge.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.requests
            .iter()
            .map(|(erasure_id, r)| {
                let mut done = r.clone();
                done.status = RequestStatus::Completed;
                event(
                    "request_completed",
                    &done,
                    json!({
                        "erasure_id": erasure_id,
                        "by": "certificate",
                        "verification": r.verification.to_string(),
                    }),
                )
            })
            .collect()
    }

    /// Writes each request completed, its evidence the certificate of its
    /// erasure (`certificates`: erasure id → certificate text).
    pub(crate) fn apply(
        &self,
        batch: &mut Batch,
        certificates: &HashMap<u64, String>,
        _pos: &[Position],
    ) {
        let now = Timestamp::now();
        for (erasure_id, before) in &self.requests {
            let Some(cert) = certificates.get(erasure_id) else {
                continue;
            };
            let mut r = before.clone();
            r.status = RequestStatus::Completed;
            r.evidence = Some(Evidence::ErasureCertificate {
                erasure_id: *erasure_id,
                sha256: certificate_digest(cert.as_bytes()),
            });
            record(
                &mut r,
                Transition {
                    at: now,
                    by: "lethedb".into(),
                    action: "completed".into(),
                    note: Some(format!(
                        "erasure certificate {erasure_id} issued (requester {})",
                        match before.verification {
                            Verification::Verified => "verified",
                            Verification::Failed => "verification failed",
                            Verification::Pending => "not verified",
                        }
                    )),
                },
            );
            put(batch, Some(before), &r);
        }
    }
}

/// The requests linked to `erasure_ids` and still open (the caller holds
/// the privacy lock until the purge commits).
pub(crate) fn complete_on_certificates(db: &Engine, erasure_ids: &[u64]) -> Result<Completions> {
    let mut requests = Vec::new();
    for e in erasure_ids {
        for key in db.store.keys_with::<RequestErasures>(&e.to_be_bytes())? {
            let r = get(db, key?.1)?;
            if r.status == RequestStatus::Open {
                requests.push((*e, r));
            }
        }
    }
    Ok(Completions { requests })
}
