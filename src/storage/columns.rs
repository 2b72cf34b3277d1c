//! Column families and the typed keyspaces inside them.
//!
//! | column family | keyspace      | prefix | key body        | value          |
//! |---------------|---------------|--------|-----------------|----------------|
//! | `meta`        | `StoreHeaders`| `h`    | (none)          | `StoreHeader`  |
//! | `meta`        | `Schemas`     | `s`    | (none)          | `Blob` (JSON)  |
//! | `meta`        | `FieldNames`  | `f`    | (none)          | `Blob`         |
//! | `profiles`    | `Profiles`    | `p`    | profile id (16) | `StoredProfile` (v2: keyring inside) |
//! | `meta`        | `Tombstones`  | `d`    | keyed tombstone (16) | `Tombstone` |
//! | `keys`        | `TreeNodes`   | `n`    | level (1) ‖ index (u32) | `WrappedKey` |
//! | `meta`        | `KeyTreeHeaders` | `t` | (none)         | `KeyTreeHeader` |
//! | `keys`        | `Keyrings`    | `k`    | profile id (16) | `WrappedKey`   |
//! | `meta`        | `Configs`     | `c`    | (none)          | `Blob` (JSON)  |
//! | `meta`        | `FormatMarks` | `v`    | (none)          | `Blob` (empty: only format v2) |
//! | `identities`  | `IdentityIndex` | `i`  | blind key (16)  | `IdentityEntry`|
//! | `identities`  | `Merges`      | `m`    | merge id (16)   | `MergeRecord`  |
//! | `identities`  | `ProfileMerges` | `x`  | profile id ‖ merge id | `Blob` (empty) |
//! | `consents`    | `ConsentCurrent` | `c` | profile id ‖ purpose tag (8) | `SealedConsent` |
//! | `consents`    | `ConsentHistory` | `h` | profile id ‖ recorded at (8) ‖ random (4) | `SealedConsent` |
//! | `consents`    | `ConsentGranted` | `g` | purpose tag (8) ‖ profile id | `GrantEntry` |
//! | `meta`        | `Erasures`    | `e`    | erasure id (8)  | `ErasureRecord`|
//! | `meta`        | `PendingPurges` | `q`  | erasure id (8)  | `PendingPurge` |
//! | `meta`        | `Backups`     | `b`    | backup no. (8)  | `BackupRecord` |
//! | `keys`        | `SigningKeys` | `e`    | (none)          | `SigningKeyRecord` |
//! | `identities`  | `Suppressions`| `s`    | suppression hash (16) | `SuppressionEntry` |
//! | `meta`        | `BackupMarkers` | `m`  | (none)          | `Blob` (backup copies only) |
//! | `audit`       | `AuditLog`    | `a`    | sequence (8)    | `AuditEntry`   |
//! | `audit`       | `AuditHeads`  | `h`    | (none)          | `AuditHead`    |
//! | `audit`       | `AuditSeals`  | `m`    | (none)          | `AuditSeal`    |

use super::keys::{self, KeyCodec};
use super::records::{
    AuditEntry, AuditHead, AuditSeal, BackupRecord, Blob, ErasureRecord, GrantEntry, IdentityEntry,
    KeyTreeHeader, MergeRecord, PendingPurge, SealedConsent, SigningKeyRecord, StoreHeader,
    StoredProfile, SuppressionEntry, Tombstone, ValueCodec, WrappedKey,
};
use crate::error::Result;
use crate::types::{MergeId, ProfileId};

pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_PROFILES: &str = "profiles";
pub(crate) const CF_KEYS: &str = "keys";
pub(crate) const CF_IDENTITIES: &str = "identities";
pub(crate) const CF_CONSENTS: &str = "consents";
pub(crate) const CF_AUDIT: &str = "audit";

/// Every column family of a store, created at open.
pub(crate) const ALL_CFS: [&str; 6] = [
    CF_META,
    CF_PROFILES,
    CF_KEYS,
    CF_IDENTITIES,
    CF_CONSENTS,
    CF_AUDIT,
];

/// The index of column family `cf` in `ALL_CFS` (how pending-purge items
/// name it on disk).
pub(crate) fn cf_index(cf: &str) -> u8 {
    ALL_CFS
        .iter()
        .position(|c| *c == cf)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0)
}

/// A typed keyspace: one record kind under one prefix of one column family.
pub(crate) trait Keyspace {
    const CF: &'static str;
    const PREFIX: u8;
    type Key: KeyCodec;
    type Value: ValueCodec;

    fn key(k: &Self::Key) -> Vec<u8> {
        keys::encode(Self::PREFIX, k)
    }

    fn parse_key(bytes: &[u8]) -> Result<Self::Key> {
        keys::decode(Self::Value::WHAT, Self::PREFIX, bytes)
    }
}

macro_rules! keyspace {
    ($(#[$doc:meta])* $name:ident, $cf:expr, $prefix:expr, $key:ty, $value:ty) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl Keyspace for $name {
            const CF: &'static str = $cf;
            const PREFIX: u8 = $prefix;
            type Key = $key;
            type Value = $value;
        }
    };
}

keyspace!(
    /// The store header: format marker, store id, key check value.
    StoreHeaders, CF_META, b'h', (), StoreHeader
);
keyspace!(
    /// The persisted schema (JSON).
    Schemas, CF_META, b's', (), Blob
);
keyspace!(
    /// Field registry: field names in id order.
    FieldNames, CF_META, b'f', (), Blob
);
keyspace!(
    /// The key set (blind-index, suppression, subject-reference and
    /// tombstone keys), sealed under a master-derived key.
    KeySets, CF_META, b'k', (), Blob
);
keyspace!(
    /// Present when the store holds only record format v2 (created by a
    /// build with format v2, or upgraded): records and entries of format
    /// v1 are then refused, not read.
    FormatMarks, CF_META, b'v', (), Blob
);
keyspace!(
    /// A master-key rotation committed but not finished (backups to move,
    /// old roots to destroy).
    MasterRotations, CF_META, b'r', (), Blob
);
keyspace!(
    /// One record per profile.
    Profiles, CF_PROFILES, b'p', ProfileId, StoredProfile
);
keyspace!(
    /// Keyed tombstones of erased profile ids.
    Tombstones, CF_META, b'd', [u8; 16], Tombstone
);
keyspace!(
    /// Inner nodes of the key tree, wrapped under their parent (level 1:
    /// under the root of the current epoch). The last level are the buckets.
    TreeNodes, CF_KEYS, b'n', ([u8; 1], u32), WrappedKey
);
keyspace!(
    /// Shape and root epoch of the key tree.
    KeyTreeHeaders, CF_META, b't', (), KeyTreeHeader
);
keyspace!(
    /// Per-profile keyring seeds, wrapped under their bucket key.
    Keyrings, CF_KEYS, b'k', ProfileId, WrappedKey
);
keyspace!(
    /// Identity configuration: normalisation and merge rules (JSON).
    Configs, CF_META, b'c', (), Blob
);
keyspace!(
    /// Blind identity index: HMAC of a normalised identifier to its profile.
    IdentityIndex, CF_IDENTITIES, b'i', [u8; 16], IdentityEntry
);
keyspace!(
    /// Merge records by merge id.
    Merges, CF_IDENTITIES, b'm', MergeId, MergeRecord
);
keyspace!(
    /// Merges a profile took part in (as survivor or merged), for listing.
    ProfileMerges, CF_IDENTITIES, b'x', (ProfileId, MergeId), Blob
);
keyspace!(
    /// Current consent state per (profile, purpose): one point read.
    ConsentCurrent, CF_CONSENTS, b'c', (ProfileId, [u8; 8]), SealedConsent
);
keyspace!(
    /// Append-only consent history per profile, in recording order.
    ConsentHistory, CF_CONSENTS, b'h', (ProfileId, [u8; 12]), SealedConsent
);
keyspace!(
    /// Consent index: profiles with a purpose currently granted.
    ConsentGranted, CF_CONSENTS, b'g', ([u8; 8], ProfileId), GrantEntry
);
keyspace!(
    /// The erasure ledger: one record per `forget`/`forget_field`.
    Erasures, CF_META, b'e', u64, ErasureRecord
);
keyspace!(
    /// Erasures not yet purged, with the key ranges purge must compact.
    PendingPurges, CF_META, b'q', u64, PendingPurge
);
keyspace!(
    /// Backup locations that receive the erasure ledger.
    Backups, CF_META, b'b', u64, BackupRecord
);
keyspace!(
    /// The store's certificate signing key.
    SigningKeys, CF_KEYS, b'e', (), SigningKeyRecord
);
keyspace!(
    /// Suppressed identifiers of forgotten people.
    Suppressions, CF_IDENTITIES, b's', [u8; 16], SuppressionEntry
);
keyspace!(
    /// The hash-chained audit log.
    AuditLog, CF_AUDIT, b'a', u64, AuditEntry
);
keyspace!(
    /// Head (last sequence number and hash) of the audit log.
    AuditHeads, CF_AUDIT, b'h', (), AuditHead
);
keyspace!(
    /// Keyed seal of the audit head.
    AuditSeals, CF_AUDIT, b'm', (), AuditSeal
);
keyspace!(
    /// Present only in a backup copy: such a directory opens only through `restore`.
    BackupMarkers, CF_META, b'm', (), Blob
);
