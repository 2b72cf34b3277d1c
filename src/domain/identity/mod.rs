//! Identity: identifier types and normalisation, the blind index,
//! resolution (create / attach / merge), merge records and unmerge.
//!
//! Identifiers live in two places, both without plaintext on disk:
//! * the blind index (`identities` CF, `'i'` ‖ 128-bit HMAC) → profile id;
//! * the profile itself, in the sealed system field `$ids`, with the raw
//!   and normalised value and the origin profile, so export and erasure
//!   cover them and index keys can be recomputed.

pub(crate) mod blind;
pub(crate) mod config;
mod email;
pub(crate) mod ids;
mod merge;
mod outcome;
mod phone;
mod resolve;
pub(crate) mod rotation;
pub(crate) mod rules;
pub(crate) mod stored;

pub use config::IdentityConfig;
pub use outcome::{MergeInfo, RejectReason, Rejection, ResolveOutcome};

pub use ids::{
    IdType, Identifier, IdentifierProblem, Normalization, PhoneValidation, MAX_IDENTIFIER_BYTES,
};
pub(crate) use merge::{displaced_fields, merges_of, reseal_displaced, unmerge};
pub(crate) use resolve::resolve;
pub use rules::{MergeRules, DEFAULT_BLOCKLIST};
pub(crate) use stored::identifiers_of;
pub(crate) use stored::lookup;
