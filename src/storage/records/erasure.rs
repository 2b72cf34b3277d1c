//! Erasure ledger, purge work items, suppression entries, the signing key
//! and registered backups.

use super::codec::*;
use crate::error::{Error, Result};

/// Whether an erasure covered a whole person or some fields of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum ErasureScope {
    Profile,
    Fields,
}

impl ErasureScope {
    /// The name used in certificates and backup ledgers.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ErasureScope::Profile => "profile",
            ErasureScope::Fields => "fields",
        }
    }
}

/// One erasure in the ledger (`meta` keyspace `e`). Kept forever: it makes
/// `forget` idempotent, lets `restore` replay erasures into an older backup,
/// and holds the certificate once purged. PII-free: profile ids are random,
/// field names are schema names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ErasureRecord {
    pub(crate) erasure_id: u64,
    pub(crate) scope: ErasureScope,
    /// The profile asked for (its active target), first, then merged-away
    /// ids — until the purge. Once `purged_at` is set they are replaced by
    /// their keyed tombstones (same order and count): the ids were needed
    /// to rotate their buckets and re-key backups, afterwards only their
    /// number is, and no file keeps an erased id.
    pub(crate) profiles: Vec<[u8; 16]>,
    /// Erased fields (scope `Fields`).
    pub(crate) fields: Vec<String>,
    pub(crate) subject_ref: [u8; 16],
    /// Key ids destroyed (see `docs/design.md`).
    pub(crate) key_ids: Vec<[u8; 16]>,
    pub(crate) index_entries_removed: u32,
    pub(crate) consent_records_removed: u32,
    pub(crate) suppressed: u32,
    pub(crate) requested_at: i64,
    /// Audit position of the forget entry.
    pub(crate) audit_seq: u64,
    pub(crate) purged_at: Option<i64>,
    /// The signed certificate (compact JSON) once purged.
    pub(crate) certificate: Option<Vec<u8>>,
}

pub(crate) const MAX_ERASURE_RECORD_BYTES: u64 = 16 << 20;

/// A keyed tombstone (`meta` keyspace `d`, keyed by the first 16 bytes
/// of `HMAC-SHA-256(tombstone key, "lethedb/tombstone" ‖ profile id)`):
/// the erased id reads as erased and is never provisioned again, yet no
/// file holds the id itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tombstone {
    pub(crate) erasure_id: u64,
}

bincode_record!(Tombstone, "tombstone", 64);
bincode_record!(ErasureRecord, "erasure record", MAX_ERASURE_RECORD_BYTES);

impl ErasureRecord {
    /// The erased profile ids, while the record still holds them (not
    /// yet purged); empty afterwards.
    pub(crate) fn erased_ids(&self) -> &[[u8; 16]] {
        if self.purged_at.is_some() {
            &[]
        } else {
            &self.profiles
        }
    }
}

/// Pending-purge items that are not erasures (a survivor re-keyed by
/// unmerge) are keyed with this bit set, apart from the erasure ids.
pub(crate) const REKEY_ITEM: u64 = 1 << 63;

/// A fresh key for such an item: the bit and 63 random bits (no two items,
/// written by concurrent operations or across a clock step, share a key).
pub(crate) fn rekey_item_id() -> Result<u64> {
    let mut b = [0u8; 8];
    crate::random::os_random(&mut b)?;
    Ok(REKEY_ITEM | (u64::from_be_bytes(b) & !REKEY_ITEM))
}

/// Work left for `purge`: the storage keys whose old versions must be
/// compacted away (`meta` keyspace `q`). Holds blind keys, so purge deletes
/// it and compacts the (small) `meta` column family last.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PendingPurge {
    pub(crate) requested_at: i64,
    /// (column family index in `ALL_CFS`, first key, last key) ranges.
    pub(crate) ranges: Vec<(u8, Vec<u8>, Vec<u8>)>,
}

bincode_record!(PendingPurge, "pending purge", MAX_ERASURE_RECORD_BYTES);

/// A suppressed identifier (`identities` keyspace `s`, keyed by its
/// suppression hash): later resolves that carry it are rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SuppressionEntry {
    pub(crate) erasure_id: u64,
    pub(crate) at: i64,
}

bincode_record!(SuppressionEntry, "suppression entry", 64);

/// The store's Ed25519 signing key: the secret wrapped under a
/// master-derived key, the public key in clear.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SigningKeyRecord {
    pub(crate) created_at: i64,
    pub(crate) public: [u8; 32],
    /// `nonce (12) || ciphertext (32) || tag (16)`.
    pub(crate) sealed_secret: Vec<u8>,
}

bincode_record!(SigningKeyRecord, "signing key", 256);

/// A backup location registered with the store (`meta` keyspace `b`): the
/// erasure ledger is mirrored into it at every purge.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BackupRecord {
    pub(crate) path: String,
    pub(crate) taken_at: i64,
    /// Highest erasure id contained in the backup itself.
    pub(crate) last_erasure: u64,
    /// Every erasure up to this id is purged from the backup (at creation:
    /// those purged before it was taken; then those its re-keys applied).
    pub(crate) purged_through: u64,
    /// Root epoch of the backup's own key tree (`None`: invalidated, its
    /// root destroyed because it could not be reached by a purge).
    pub(crate) root_epoch: Option<u32>,
    /// Epoch reserved by a re-key in progress (crash safety).
    pub(crate) next_root_epoch: Option<u32>,
}

bincode_record!(BackupRecord, "backup record", 1 << 16);
