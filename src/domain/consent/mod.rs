//! Consent: per-purpose records with history, purpose-bound reads, the
//! consent index, merge policy, and IAB TCF v2.2 import.
//!
//! Every consent record is sealed with AES-256-GCM under the profile's
//! consent key (the field key of the reserved field `$consent`), with the
//! record's storage key in the associated data. Purposes appear on disk only
//! as 64-bit keyed tags (HMAC under the blind-index root), so the consent
//! index reveals neither purposes nor statuses without the master key.
//!
//! Files: `record` (the API's types), `sealed` (records on disk and their
//! index entries), `operations` (the API's consent calls), `lifecycle`
//! (merge, unmerge, erasure, re-keying), `tcf` (the TC string decoder),
//! `gpp` (GPP strings and the records they imply), `views` (vendor
//! decisions and Consent Mode v2 signals).

pub mod gpp;
mod gpp_layouts;
mod lifecycle;
mod operations;
mod record;
mod sealed;
pub mod tcf;
mod views;

pub use record::{
    purpose_order, ConsentRecord, ConsentStatus, LegalBasis, ProcessingFlags, PurposeRead,
    BUILTIN_PURPOSES,
};

#[cfg(feature = "testkit")]
pub(crate) use lifecycle::downgrade_into;
pub(crate) use lifecycle::{
    erase_into, on_merge, on_unmerge, reseal, touched_ranges, upgrade_into,
};
pub(crate) use operations::{
    at, audit_event, current, current_one, flags, history, read_for_purpose, record, set_flags, who,
};
pub(crate) use sealed::{load_states, stage_records, States};
pub(crate) use tcf::records_from_tcf;
pub(crate) use views::{consent_mode, vendor};
pub use views::{ConsentMode, ConsentModeMapping, VendorDecision};
