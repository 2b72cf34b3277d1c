//! Audit-log entries and the audit head.

use super::codec::*;
use crate::error::{Error, Result};

/// One audit-log entry (`audit` keyspace `a`, keyed by sequence number).
/// The entry hash is `SHA-256("lethedb/audit/v1" || encoded entry)`, and
/// each entry names the hash of the one before it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuditEntry {
    pub(crate) seq: u64,
    pub(crate) at: i64,
    pub(crate) kind: String,
    /// Pseudonymous subject reference, when the entry is about one person.
    pub(crate) subject: Option<[u8; 16]>,
    /// PII-free details (JSON text).
    pub(crate) detail: String,
    pub(crate) prev: [u8; 32],
}

bincode_record!(AuditEntry, "audit entry", 1 << 20);

/// The head of the audit chain (`audit` keyspace `h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuditHead {
    /// Sequence number of the last entry (0: empty log).
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
}

bincode_record!(AuditHead, "audit head", 64);

/// The keyed seal of the audit head (`audit` keyspace `m`): HMAC-SHA-256,
/// under a master-derived key, of the head it was written with. Without
/// the master key a rewritten head cannot be given a matching seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuditSeal {
    /// Sequence number of the head it seals (also inside the MAC).
    pub(crate) seq: u64,
    pub(crate) mac: [u8; 32],
}

bincode_record!(AuditSeal, "audit head seal", 64);
