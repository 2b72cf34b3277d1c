//! # lethedb
//!
//! An embedded database for customer profiles and consent records in which
//! every personal field is encrypted under its own key, so that erasing a
//! person is provable: destroy the keys and every copy of the data — in the
//! WAL, SST files, backups or a stolen disk image — is unreadable.
//!
//! ```
//! use lethedb::{Db, FieldClass, MemoryKeyProvider, Options, Schema, Update, Value};
//!
//! let dir = tempfile::tempdir()?;
//! let keys = MemoryKeyProvider::generate()?; // production: FileKeyProvider or your KMS
//! let schema = Schema::new().field("plan", FieldClass::NonPersonal, None);
//! let db = Db::open(dir.path(), &keys, Options::new().create_if_missing(true).schema(schema))?;
//!
//! let id = db.create(Update::new().set("email", "ada@example.com").set("plan", "pro"))?;
//! db.upsert(&id, Update::new().set("phone", "+442071838750"))?;
//! db.delete_field(&id, "plan")?;
//!
//! let profile = db.get_fields(&id, &["email", "phone"])?;
//! assert_eq!(profile.fields["phone"], Value::from("+442071838750"));
//! assert!(db.get(&id)?.fields.get("plan").is_none());
//! Ok::<_, lethedb::Error>(())
//! ```
//!
//! ## Layers
//! Lowest first. Files import one another without cycles (checked by
//! `tests/module_graph.rs`); the engine owns the domain's state-holding
//! pieces (audit log, registry, locks, blind index, signer, erasure
//! markers), which never take the engine. `docs/design.md` draws the tree.
//! * leaves — ids, errors, values and schema, OS randomness; [`Options`].
//! * `storage` — one RocksDB instance, a column family per data kind, typed
//!   keyspaces, key encoding, `records/` (one codec per record kind over
//!   one codec core), batches and the single atomic write path.
//! * `crypto` — master key providers, HKDF subkeys, AES-256-GCM sealing.
//! * `keytree` — root → inner nodes → bucket keys → profile keyrings →
//!   field keys: wrapping, the key cache, rotation at purge, root key stores.
//! * `engine` — one struct owning store, key tree, field registry, locks,
//!   audit, signer and configuration.
//! * `domain` — `profiles/` (the write path and reads), `consent/`,
//!   `identity/` (normalisation, blind index, resolve, merge, unmerge),
//!   `erasure/` (forget, suppression, purge, certificates, retention,
//!   export, backups) and the hash-chained audit log; every function takes
//!   the engine.
//! * interfaces — [`Db`] (a facade over the engine), the `lethedb` CLI
//!   (feature `cli`), benches and fuzz targets.
//!
//! On-disk formats are described byte by byte in `docs/design.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod crypto;
mod db;
mod db_privacy;
mod domain;
mod engine;
mod error;
#[cfg(feature = "demo")]
pub mod forensics;
mod hex;
mod id;
pub mod ingest;
mod keytree;
mod options;
mod random;
mod storage;
#[cfg(feature = "demo")]
pub mod synth;
mod types;

#[doc(hidden)]
#[cfg(feature = "testkit")]
pub mod bench_support;
#[doc(hidden)]
#[cfg(feature = "testkit")]
pub mod fuzz_support;

pub use crypto::{EnvKeyProvider, FileKeyProvider, KeyProvider, MasterKey, MemoryKeyProvider};
pub use db::{
    verify_audit_log, verify_audit_log_with_checkpoint, verify_certificate_in_store, Db,
    OpenReport, StoreStats,
};
pub use db_privacy::{NewHold, NewRequest};
pub use domain::audit::{AuditRecord, AuditReport};
pub use domain::consent::{gpp, tcf};
pub use domain::consent::{
    purpose_order, ConsentMode, ConsentModeMapping, ConsentRecord, ConsentStatus, LegalBasis,
    ProcessingFlags, PurposeRead, VendorDecision, BUILTIN_PURPOSES,
};
pub use domain::erasure::master_key::MasterRotationReport;
pub use domain::erasure::{
    parse_public_key, verify_certificate, AuditCheckpoint, BackupInfo, Certificate,
    CertificateCheck, ErasureReceipt, PurgeReport, RegisteredBackup, RestoreReport,
    RetentionReport,
};
pub use domain::fields::MAX_FIELD_NAME_BYTES;
pub use domain::identity::rotation::BlindIndexRotation;
pub use domain::identity::{
    IdType, Identifier, IdentifierProblem, IdentityConfig, MergeInfo, MergeRules, Normalization,
    PhoneValidation, RejectReason, Rejection, ResolveOutcome, DEFAULT_BLOCKLIST,
    MAX_IDENTIFIER_BYTES,
};
pub use domain::profiles::{
    Profile, ProfileBatch, Update, MAX_FIELDS_PER_PROFILE, MAX_VALUE_BYTES,
};
pub use domain::requests::{
    DeadlineRule, Evidence, Extension, Hold, Period, Request, RequestFilter, RequestKind,
    RequestPolicy, RequestStatus, Transition, Verification,
};
pub use domain::upgrade::UpgradeProgress;
pub use error::{Error, Result, StorageErrorKind};
pub use keytree::{
    FileRootKeyStore, KeyTreeStatus, MemoryRootKeyStore, PinSource, Pkcs11Config,
    Pkcs11RootKeyStore, RootKeyDevice, RootKeyStore, RootKeys, RootLocation, RotationStep,
};
pub use options::{Limits, Options};
pub use storage::{ColumnStats, MemoryUsage};
pub use types::{FieldClass, FieldSpec, MergeId, ProfileId, Schema, Timestamp, Value, ValueKind};

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn db_is_send_and_sync() {
        assert_send_sync::<crate::Db>();
    }
}

/// Compiles and runs the Rust examples in README.md as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
