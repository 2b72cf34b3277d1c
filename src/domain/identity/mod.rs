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
pub(crate) mod engine;
pub(crate) mod ids;
pub(crate) mod rules;

pub use config::IdentityConfig;
pub use engine::{MergeInfo, RejectReason, Rejection, ResolveOutcome};
pub use ids::{
    IdType, Identifier, IdentifierProblem, Normalization, PhoneValidation, MAX_IDENTIFIER_BYTES,
};
pub use rules::{MergeRules, DEFAULT_BLOCKLIST};
