//! Export of one subject's data (GDPR Art. 15 access, Art. 20 portability).

use serde_json::json;

use crate::domain::audit::{self, Event};
use crate::domain::{consent, identity};
use crate::engine::Engine;
use crate::error::Result;
use crate::storage::Batch;
use crate::types::{ProfileId, Timestamp};

/// `Db::export`: one JSON bundle with the profile's fields, identifiers,
/// consent states and history, merge lineage, the audit entries about the
/// subject and its data-subject requests. The export itself is audited.
pub(crate) fn export(db: &Engine, id: &ProfileId) -> Result<serde_json::Value> {
    // The caller (`Db::export`) holds the key-tree lock: the domain
    // functions are called directly, never the public API (which would take
    // the lock again).
    let profile = crate::domain::profiles::read(db, id, None)?;
    let subject = db.subject_ref(&profile.id)?;
    let identifiers: Vec<serde_json::Value> = identity::identifiers_of(db, &profile.id)?
        .into_iter()
        .map(|i| json!({ "type": i.id_type.name(), "value": i.value }))
        .collect();
    let consents: Vec<serde_json::Value> = consent::current(db, &profile.id)?
        .iter()
        .map(|c| c.to_json())
        .collect();
    let history: Vec<serde_json::Value> = consent::history(db, &profile.id)?
        .iter()
        .map(|(via, c)| json!({ "profile_id": via.to_string(), "record": c.to_json() }))
        .collect();
    let merges: Vec<serde_json::Value> = identity::merges_of(db, &profile.id)?
        .iter()
        .map(|m| m.to_json())
        .collect();
    let audit_entries: Vec<serde_json::Value> = audit::about(&db.store, &subject)?
        .iter()
        .map(|r| r.to_json())
        .collect();
    // The person's data-subject requests (their own history with the
    // controller; holds are not listed: a legal matter's details are not
    // the subject's data, and the audit entries already say one was placed).
    let filter = crate::domain::requests::RequestFilter {
        subject_ref: Some(subject),
        ..Default::default()
    };
    let requests: Vec<serde_json::Value> = crate::domain::requests::list(db, &filter)?
        .iter()
        .map(|r| r.to_json())
        .collect();
    let flags = consent::flags(db, &profile.id)?;
    let bundle = json!({
        "format": "lethedb-export/1",
        "exported_at": Timestamp::now().to_string(),
        "store_id": db.store_id(),
        "profile_id": profile.id.to_string(),
        "requested_id": id.to_string(),
        "subject_ref": crate::hex::encode(&subject),
        "created_at": profile.created_at.to_string(),
        "updated_at": profile.updated_at.to_string(),
        "fields": crate::types::fields_to_json(&profile.fields),
        "identifiers": identifiers,
        "processing_flags": serde_json::to_value(flags).unwrap_or_default(),
        "consents": consents,
        "consent_history": history,
        "merges": merges,
        "audit": audit_entries,
        "requests": requests,
    });
    db.audit.commit(
        &db.store,
        Batch::new(),
        &[Event::new("export", Some(subject), json!({}))],
    )?;
    Ok(bundle)
}
