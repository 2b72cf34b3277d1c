//! The receipt an erasure returns before purge, and the ids of the keys it
//! destroyed.

use serde_json::json;

use crate::crypto::kdf;
use crate::engine::Engine;
use crate::error::Result;
use crate::storage::records::ErasureRecord;
use crate::types::{ProfileId, Timestamp};

/// What an erasure did, returned by `forget` and `forget_field` before
/// purge. The certificate follows from `purge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureReceipt {
    /// Ledger id of the erasure (`None`: there was nothing left to erase).
    pub erasure_id: Option<u64>,
    /// True when the subject (or the fields) had already been erased.
    pub already_erased: bool,
    /// Pseudonymous subject reference (hex) used in the audit log and certificate.
    pub subject_ref: String,
    /// Profile ids erased: the one asked for first, then profiles merged into it.
    pub profiles: Vec<ProfileId>,
    /// Fields erased (field erasure only).
    pub fields: Vec<String>,
    /// Ids of the keys destroyed (hex).
    pub key_ids: Vec<String>,
    /// Blind-index entries removed.
    pub index_entries_removed: u32,
    /// Consent records (current states and history) removed.
    pub consent_records_removed: u32,
    /// Identifiers put on the suppression list.
    pub suppressed: u32,
    /// When the erasure was committed.
    pub requested_at: Timestamp,
    /// Audit-log position of the erasure entry.
    pub audit_seq: u64,
}

impl ErasureReceipt {
    /// The receipt as JSON (what `lethedb forget` prints).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "erasure_id": self.erasure_id,
            "already_erased": self.already_erased,
            "subject_ref": self.subject_ref,
            "profiles": self.profiles.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "fields": self.fields,
            "key_ids_destroyed": self.key_ids,
            "index_entries_removed": self.index_entries_removed,
            "consent_records_removed": self.consent_records_removed,
            "suppressed_identifiers": self.suppressed,
            "requested_at": self.requested_at.to_string(),
            "audit_seq": self.audit_seq,
            "status": if self.erasure_id.is_some() { "pending_purge" } else { "nothing_to_erase" },
        })
    }

    pub(crate) fn from_record(r: &ErasureRecord, already: bool) -> Self {
        ErasureReceipt {
            erasure_id: Some(r.erasure_id),
            already_erased: already,
            subject_ref: crate::hex::encode(&r.subject_ref),
            profiles: r
                .erased_ids()
                .iter()
                .map(|p| ProfileId::from_bytes(*p))
                .collect(),
            fields: r.fields.clone(),
            key_ids: r.key_ids.iter().map(|k| crate::hex::encode(k)).collect(),
            index_entries_removed: r.index_entries_removed,
            consent_records_removed: r.consent_records_removed,
            suppressed: r.suppressed,
            requested_at: Timestamp(r.requested_at),
            audit_seq: r.audit_seq,
        }
    }
}

/// Id of a destroyed key, as named in receipts and certificates:
/// `HMAC-SHA-256(subject key, "lethedb/key-id" ‖ profile id ‖ generation
/// u32 BE)`, first 16 bytes — keyed like the subject reference, so holding
/// a profile id does not link a certificate to it (format /2 and /3
/// certificates issued before used an unkeyed SHA-256 and stay as issued).
pub(crate) fn key_id(db: &Engine, profile: &ProfileId, generation: u32) -> Result<[u8; 16]> {
    kdf::mac16(
        &db.subject_key,
        &[
            b"lethedb/key-id",
            profile.as_bytes(),
            &generation.to_be_bytes(),
        ],
    )
}
