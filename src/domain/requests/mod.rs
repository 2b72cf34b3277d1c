//! Data-subject requests and legal holds: the records a compliance
//! operator works from. Both are PII-free — a request or hold names its
//! person by the pseudonymous subject reference (HMAC of the profile id),
//! never by an identifier — and every change is one atomic write with its
//! audit entry.
//!
//! Files: `model` (the API's types and the deadline policy), `ops`
//! (requests: open, verify, extend, complete, reject), `listing`, `links` (what
//! erasures do to requests: link, wait, complete by certificate), `holds`
//! (place, release, and the checks erasure paths make).

mod holds;
mod links;
mod listing;
mod model;
mod ops;

pub(crate) use holds::{
    check_fields, check_profiles, holds as list_holds, lineage_subjects, place, release, unheld,
};
pub(crate) use links::{complete_on_certificates, link_erasure};
pub(crate) use listing::list;
pub use listing::RequestFilter;
pub use model::{
    DeadlineRule, Evidence, Extension, Hold, Period, Request, RequestKind, RequestPolicy,
    RequestStatus, Transition, Verification,
};
pub(crate) use ops::{complete, extend, get, open, policy, reject, set_policy, verify};
