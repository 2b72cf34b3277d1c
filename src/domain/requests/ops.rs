//! Requests: open, verify, extend, complete, reject, list, and the
//! keyspaces requests and holds are stored in.
//! Every transition is one atomic write with its audit entry, under the
//! engine's `privacy_lock` (lock order: key tree, identity lock, privacy
//! lock, audit log).

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::types::Timestamp;

use super::model::*;
use crate::domain::audit::Event;
use crate::engine::Engine;
use crate::storage::columns::{Erasures, Keyspace, CF_META};
use crate::storage::records::framing::*;
use crate::storage::records::Blob;
use crate::storage::Batch;

bincode_record!(Request, "request", 1 << 20);
bincode_record!(Hold, "legal hold", 1 << 16);

macro_rules! meta_keyspace {
    ($(#[$doc:meta])* $name:ident, $prefix:expr, $key:ty, $value:ty) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl Keyspace for $name {
            const CF: &'static str = CF_META;
            const PREFIX: u8 = $prefix;
            type Key = $key;
            type Value = $value;
        }
    };
}

meta_keyspace!(
    /// Requests by id.
    Requests, b'j', u64, Request
);
meta_keyspace!(
    /// Requests not yet completed or rejected, by due time (sign-flipped
    /// big-endian micros) then id: overdue and due-soon listings are a
    /// range scan.
    RequestsDue, b'u', (u64, u64), Blob
);
meta_keyspace!(
    /// Requests by subject reference.
    RequestsBySubject, b'y', ([u8; 16], u64), Blob
);
meta_keyspace!(
    /// Erasure requests by the erasure that carried them out.
    RequestErasures, b'z', (u64, u64), Blob
);
meta_keyspace!(
    /// The deadline policy (JSON), when set.
    RequestPolicies, b'w', (), Blob
);
meta_keyspace!(
    /// Legal holds by id.
    Holds, b'l', u64, Hold
);
meta_keyspace!(
    /// Legal holds by subject reference.
    HoldsBySubject, b'o', ([u8; 16], u64), Blob
);
meta_keyspace!(
    /// Requests a hold has kept waiting, by hold then request id (release
    /// reads exactly these).
    HoldRequests, b'g', (u64, u64), Blob
);

/// Key of a time in an ordered index: big-endian with the sign bit
/// flipped, so earlier times sort first.
pub(super) fn time_key(t: Timestamp) -> u64 {
    (t.0 as u64) ^ (1 << 63)
}

pub(super) fn event(kind: &'static str, r: &Request, detail: serde_json::Value) -> Event {
    let mut d =
        json!({"request_id": r.id, "kind": r.kind.to_string(), "status": r.status.to_string()});
    if let (Some(obj), serde_json::Value::Object(extra)) = (d.as_object_mut(), detail) {
        obj.extend(extra);
    }
    Event::new(kind, Some(r.subject_ref), d)
}

/// Writes a request and keeps its due-time index: present while the
/// request is open or on hold, under its current due time.
pub(super) fn put(batch: &mut Batch, before: Option<&Request>, r: &Request) {
    if let Some(b) = before {
        batch.delete::<RequestsDue>(&(time_key(b.due_at), b.id));
        // Holds it no longer waits for no longer list it.
        for h in b.holds.iter().filter(|h| !r.holds.contains(h)) {
            batch.delete::<HoldRequests>(&(*h, b.id));
        }
    }
    if matches!(r.status, RequestStatus::Open | RequestStatus::OnHold) {
        batch.put::<RequestsDue>(&(time_key(r.due_at), r.id), &Blob(Vec::new()));
    }
    batch.put::<Requests>(&r.id, r);
}

/// The deadline policy: the one set with `set_policy`, else the default.
pub(crate) fn policy(db: &Engine) -> Result<RequestPolicy> {
    match db.store.get::<RequestPolicies>(&())? {
        None => Ok(RequestPolicy::default()),
        Some(b) => serde_json::from_slice(&b.0)
            .map_err(|e| Error::corrupt("request policy", e.to_string())),
    }
}

/// `Db::set_request_policy`.
pub(crate) fn set_policy(db: &Engine, p: &RequestPolicy) -> Result<()> {
    for (key, rule) in &p.rules {
        let (j, kind) = match key.split_once(':') {
            Some((j, k)) => (j, Some(k)),
            None => (key.as_str(), None),
        };
        check_jurisdiction(j)?;
        if let Some(k) = kind {
            k.parse::<RequestKind>()?;
        }
        rule.respond_within.check()?;
        rule.extension.check()?;
    }
    let _privacy = db.privacy_lock.lock();
    let mut batch = Batch::new();
    let text = serde_json::to_vec(p).map_err(|e| Error::Internal(e.to_string()))?;
    batch.put::<RequestPolicies>(&(), &Blob(text));
    db.audit.commit(
        &db.store,
        batch,
        &[Event::new(
            "request_policy_set",
            None,
            json!({"jurisdictions": p.rules.len()}),
        )],
    )?;
    Ok(())
}

fn check_jurisdiction(j: &str) -> Result<()> {
    if j.is_empty() || j.len() > 16 || !j.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        return Err(Error::InvalidInput(
            "jurisdiction must be 1 to 16 letters, digits or '-' (EU, US-CA, …)".into(),
        ));
    }
    Ok(())
}

/// Field names of a request or hold: valid names, at most 64.
pub(super) fn check_fields(fields: &[String]) -> Result<()> {
    if fields.len() > 64 {
        return Err(Error::InvalidInput("more than 64 fields named".into()));
    }
    for f in fields {
        crate::domain::fields::validate_name(f)?;
    }
    Ok(())
}

/// The id after `last` (ids are never reused).
pub(super) fn next_id(last: Option<u64>) -> Result<u64> {
    last.unwrap_or(0)
        .checked_add(1)
        .ok_or_else(|| Error::corrupt("request or hold", "ids exhausted"))
}

/// Most transitions a request record keeps: the first (`opened`) and the
/// latest; the audit log keeps every one. Bounds the record (a request
/// verified over and over must not outgrow its format's limit and then
/// fail the erasure or purge batch it is written in).
const MAX_HISTORY: usize = 256;

/// Appends a transition, dropping the oldest after `opened` past the bound.
pub(super) fn record(r: &mut Request, t: Transition) {
    r.history.push(t);
    if r.history.len() > MAX_HISTORY {
        r.history.remove(1);
    }
}

/// Active holds on a subject that cover `fields` (empty: any hold).
pub(super) fn holding(
    db: &Engine,
    subject: &[u8; 16],
    fields: &[String],
    now: Timestamp,
) -> Result<Vec<u64>> {
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for key in db.store.keys_with::<HoldsBySubject>(subject)? {
        let (_, hold_id) = key?;
        let Some(h) = db.store.get::<Holds>(&hold_id)? else {
            continue;
        };
        if h.active_at(now) && (names.is_empty() || h.covers_any(&names)) {
            out.push(h.id);
        }
    }
    Ok(out)
}

/// `Db::open_request`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open(
    db: &Engine,
    lineage: &[[u8; 16]],
    kind: RequestKind,
    fields: Vec<String>,
    jurisdiction: &str,
    received_at: Timestamp,
    by: &str,
) -> Result<Request> {
    check_jurisdiction(jurisdiction)?;
    check_text("who opened the request", by)?;
    check_fields(&fields)?;
    if !received_at.is_valid() || received_at > Timestamp::now() {
        return Err(Error::InvalidInput(
            "received time is in the future or out of range".into(),
        ));
    }
    let subject = *lineage
        .first()
        .ok_or_else(|| Error::Internal("a request needs a subject".into()))?;
    let rule = policy(db)?.rule(jurisdiction, kind).ok_or_else(|| {
        Error::InvalidInput(format!(
            "no deadline rule for jurisdiction {jurisdiction}: add one with set_request_policy"
        ))
    })?;
    let _privacy = db.privacy_lock.lock();
    let id = next_id(db.store.last_key_with::<Requests>(&[])?)?;
    let now = Timestamp::now();
    let mut held = Vec::new();
    if kind == RequestKind::Erasure {
        for s in lineage {
            held.extend(holding(db, s, &fields, now)?);
        }
    }
    let mut r = Request {
        id,
        kind,
        subject_ref: subject,
        fields,
        jurisdiction: jurisdiction.to_string(),
        received_at,
        due_at: rule.due(received_at, false),
        rule,
        extension: None,
        verification: Verification::Pending,
        status: RequestStatus::Open,
        holds: Vec::new(),
        erasure_id: None,
        evidence: None,
        history: vec![Transition {
            at: now,
            by: by.to_string(),
            action: "opened".into(),
            note: None,
        }],
    };
    let mut events = vec![event(
        "request_opened",
        &r,
        json!({"jurisdiction": r.jurisdiction, "due_at": r.due_at.to_string()}),
    )];
    if !held.is_empty() {
        r.status = RequestStatus::OnHold;
        r.history.push(Transition {
            at: now,
            by: "lethedb".into(),
            action: "on_hold".into(),
            note: Some(format!("legal hold {held:?}")),
        });
        r.holds = held;
        events.push(event("request_on_hold", &r, json!({"holds": r.holds})));
    }
    let mut batch = Batch::new();
    for h in &r.holds {
        batch.put::<HoldRequests>(&(*h, id), &Blob(Vec::new()));
    }
    batch.put::<RequestsBySubject>(&(subject, id), &Blob(Vec::new()));
    put(&mut batch, None, &r);
    db.audit.commit(&db.store, batch, &events)?;
    Ok(r)
}

/// `Db::request`.
pub(crate) fn get(db: &Engine, id: u64) -> Result<Request> {
    let r = db
        .store
        .get::<Requests>(&id)?
        .ok_or(Error::RequestNotFound(id))?;
    current(db, r, Timestamp::now())
}

/// A request as it stands at `now`: one waiting only for holds that have
/// since lapsed (their end passed) is open again.
pub(super) fn current(db: &Engine, mut r: Request, now: Timestamp) -> Result<Request> {
    if r.status == RequestStatus::OnHold {
        let mut active = Vec::new();
        for h in &r.holds {
            if db.store.get::<Holds>(h)?.is_some_and(|x| x.active_at(now)) {
                active.push(*h);
            }
        }
        if active.is_empty() {
            r.status = RequestStatus::Open;
            let note = Some(format!("legal hold {:?} ended", r.holds));
            record(
                &mut r,
                Transition {
                    at: now,
                    by: "lethedb".into(),
                    action: "hold_lapsed".into(),
                    note,
                },
            );
        }
        r.holds = active;
    }
    Ok(r)
}

/// Loads request `id` under the privacy lock, lets `f` change it (and
/// name the transition), and writes it with its audit entry.
fn transition(
    db: &Engine,
    id: u64,
    by: &str,
    f: impl FnOnce(&mut Request) -> Result<(&'static str, Option<String>)>,
) -> Result<Request> {
    check_text("who made the change", by)?;
    let _privacy = db.privacy_lock.lock();
    let before = get(db, id)?;
    let mut r = before.clone();
    let (action, note) = f(&mut r)?;
    record(
        &mut r,
        Transition {
            at: Timestamp::now(),
            by: by.to_string(),
            action: action.into(),
            note: note.clone(),
        },
    );
    let mut batch = Batch::new();
    put(&mut batch, Some(&before), &r);
    let kind: &'static str = match action {
        "verified" | "verification_failed" => "request_verified",
        "extended" => "request_extended",
        "completed" => "request_completed",
        _ => "request_rejected",
    };
    db.audit.commit(
        &db.store,
        batch,
        &[event(
            kind,
            &r,
            json!({"action": action, "due_at": r.due_at.to_string(), "note": note}),
        )],
    )?;
    Ok(r)
}

fn state_error(r: &Request, action: &'static str) -> Error {
    Error::RequestState {
        request: r.id,
        status: r.status.to_string(),
        action,
    }
}

fn must_be_open(r: &Request, action: &'static str, on_hold_too: bool) -> Result<()> {
    match r.status {
        RequestStatus::Open => Ok(()),
        RequestStatus::OnHold if on_hold_too => Ok(()),
        _ => Err(state_error(r, action)),
    }
}

/// `Db::verify_request`.
pub(crate) fn verify(db: &Engine, id: u64, by: &str, verified: bool) -> Result<Request> {
    transition(db, id, by, |r| {
        must_be_open(r, "verify", true)?;
        r.verification = if verified {
            Verification::Verified
        } else {
            Verification::Failed
        };
        Ok((
            if verified {
                "verified"
            } else {
                "verification_failed"
            },
            None,
        ))
    })
}

/// `Db::extend_request`: once, with a reason, by the jurisdiction's
/// extension period counted from receipt.
pub(crate) fn extend(db: &Engine, id: u64, by: &str, reason: &str) -> Result<Request> {
    check_text("extension reason", reason)?;
    transition(db, id, by, |r| {
        must_be_open(r, "extend", true)?;
        if r.extension.is_some() {
            return Err(state_error(r, "extend a second time"));
        }
        // GDPR Art. 12(3) wants the person told of an extension within the
        // first period: one granted after the due time is recorded, and
        // marked late (the record must say what happened, not refuse it).
        let late = Timestamp::now() > r.due_at;
        // The rule the request opened under, whatever the policy is now.
        let rule = r.rule;
        if rule.extension.is_zero() {
            return Err(Error::InvalidInput(format!(
                "jurisdiction {} allows no extension",
                r.jurisdiction
            )));
        }
        r.due_at = rule.due(r.received_at, true);
        r.extension = Some(Extension {
            at: Timestamp::now(),
            by: by.to_string(),
            reason: reason.to_string(),
            late,
        });
        let note = if late {
            format!("{reason} (late: after the original due time)")
        } else {
            reason.to_string()
        };
        Ok(("extended", Some(note)))
    })
}

fn sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// SHA-256 (hex) of a certificate as issued.
pub(super) fn certificate_digest(text: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(text))
}

/// `Db::complete_request`: an open, verified request (opt-outs of sale
/// need no verification: CCPA regs § 7026) with evidence of its kind — an
/// erasure certificate in the ledger (digest checked) for erasure, an
/// export bundle digest or a statement for access, a statement otherwise.
pub(crate) fn complete(db: &Engine, id: u64, by: &str, evidence: Evidence) -> Result<Request> {
    if let Evidence::Statement { text } = &evidence {
        check_text("statement", text)?;
    }
    let ledger = match &evidence {
        Evidence::ErasureCertificate { erasure_id, .. } => db.store.get::<Erasures>(erasure_id)?,
        _ => None,
    };
    transition(db, id, by, |r| {
        must_be_open(r, "complete", false)?;
        if r.verification != Verification::Verified && r.kind != RequestKind::OptOutOfSale {
            return Err(state_error(r, "complete before the requester is verified"));
        }
        match (&evidence, r.kind) {
            (Evidence::ErasureCertificate { erasure_id, sha256 }, RequestKind::Erasure) => {
                let cert = ledger
                    .as_ref()
                    .and_then(|e| e.certificate.as_deref())
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "erasure {erasure_id} has no certificate yet (purge first)"
                        ))
                    })?;
                if certificate_digest(cert) != *sha256 {
                    return Err(Error::InvalidInput(format!(
                        "the digest is not that of erasure {erasure_id}'s certificate"
                    )));
                }
                // The erasure must be this request's: the one it was linked
                // to, or one of the same subject covering what it asks.
                let e = ledger.as_ref().ok_or_else(|| {
                    Error::InvalidInput(format!("erasure {erasure_id} is not in the ledger"))
                })?;
                let same = r.erasure_id == Some(*erasure_id)
                    || (r.erasure_id.is_none() && e.subject_ref == r.subject_ref);
                let covers = e.scope == crate::storage::records::ErasureScope::Profile
                    || (!r.fields.is_empty() && r.fields.iter().all(|f| e.fields.contains(f)));
                if !same || !covers {
                    return Err(Error::InvalidInput(format!(
                        "erasure {erasure_id} is not this request's (another person, or not the fields asked for)"
                    )));
                }
            }
            (Evidence::ExportBundle { sha256 }, RequestKind::Access) if sha256_hex(sha256) => {}
            (Evidence::ExportBundle { .. }, RequestKind::Access) => {
                return Err(Error::InvalidInput(
                    "export digest must be 64 lower-case hex characters".into(),
                ))
            }
            (Evidence::Statement { .. }, k) if k != RequestKind::Erasure => {}
            (_, k) => {
                return Err(Error::InvalidInput(format!(
                    "a {k} request is completed with {}",
                    match k {
                        RequestKind::Erasure => "its erasure certificate",
                        RequestKind::Access => "the export bundle's digest or a statement",
                        _ => "a statement",
                    }
                )))
            }
        }
        r.status = RequestStatus::Completed;
        r.holds.clear();
        r.evidence = Some(evidence.clone());
        Ok(("completed", None))
    })
}

/// `Db::reject_request`.
pub(crate) fn reject(db: &Engine, id: u64, by: &str, reason: &str) -> Result<Request> {
    check_text("rejection reason", reason)?;
    transition(db, id, by, |r| {
        must_be_open(r, "reject", true)?;
        r.status = RequestStatus::Rejected;
        r.holds.clear();
        Ok(("rejected", Some(reason.to_string())))
    })
}
