//! Erasure: `forget`, `forget_field`, suppression, purge and certificates,
//! retention, export, backups.
//!
//! An erasure is one atomic batch that
//! * writes the ledger record (`meta`/`e`) and the purge work item (`meta`/`q`),
//! * deletes the keyrings of the person's profiles (the profile asked for
//!   and every profile merged into it), deletes their records and writes
//!   keyed tombstones (`Tombstones`, an HMAC of each id), so reads fail
//!   and the ids are never provisioned again,
//! * deletes their blind-index entries, consent records and merge records,
//! * writes suppression entries (a separately keyed hash of each identifier),
//! * appends the audit entry.
//!
//! Field erasure re-keys instead: the profile gets a new keyring seed
//! (generation + 1), every remaining field and consent record is re-sealed
//! under it, and the old seed — the only key the erased value was sealed
//! under — is gone with the overwritten keyring.

mod backup;
pub(crate) mod certificate;
mod checkpoint;
mod compaction;
mod copies;
mod erase;
mod export;
mod forget;
mod ledger;
pub(crate) mod markers;
pub(crate) mod master_key;
mod purge;
mod receipt;
mod retention;
pub(crate) mod suppression;

pub use backup::{BackupInfo, RestoreReport};
pub use certificate::{parse_public_key, verify_certificate, Certificate, CertificateCheck};
pub use checkpoint::AuditCheckpoint;
pub use copies::RegisteredBackup;
pub use purge::PurgeReport;
pub use receipt::ErasureReceipt;
pub use retention::RetentionReport;

pub(crate) use backup::{backup, restore};
pub(crate) use certificate::check_chain_position;
pub(crate) use checkpoint::{take as take_checkpoint, verify as verify_checkpoint};
pub(crate) use copies::{registered as registered_backups, unregister as unregister_backup};
pub(crate) use erase::{forget, forget_fields};
pub(crate) use export::export;
pub(crate) use purge::{auto_purge, pending_count, purge};
pub(crate) use retention::run as run_retention;
pub(crate) use suppression::unsuppress;
