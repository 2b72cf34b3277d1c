//! Identity: identifier types and normalisation, the blind index,
//! resolution (create / attach / merge), merge records and unmerge.
//!
//! Identifiers live in two places, both without plaintext on disk:
//! * the blind index (`identities` CF, `'i'` ‖ 128-bit HMAC) → profile id;
//! * the profile itself, in the sealed system field `$ids`, with the raw
//!   and normalised value and the origin profile, so export and erasure
//!   cover them and index keys can be recomputed.

pub(crate) mod blind;
pub(crate) mod engine;
pub(crate) mod ids;
pub(crate) mod rules;

use serde::{Deserialize, Serialize};

pub use engine::{MergeInfo, RejectReason, Rejection, ResolveOutcome};
pub use ids::{
    IdType, Identifier, IdentifierProblem, Normalization, PhoneValidation, MAX_IDENTIFIER_BYTES,
};
pub use rules::{MergeRules, DEFAULT_BLOCKLIST};

/// Identity settings of a store, persisted in `meta`.
///
/// ```
/// use lethedb::{IdentityConfig, MergeRules, Normalization};
/// let cfg = IdentityConfig {
///     normalization: Normalization { default_region: "GB".into(), gmail_folding: true, ..Normalization::default() },
///     rules: MergeRules::default().block_pattern("*@mailinator.com"),
/// };
/// # let _ = cfg;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityConfig {
    /// How identifiers are normalised.
    #[serde(default)]
    pub normalization: Normalization,
    /// Merge rules.
    #[serde(default)]
    pub rules: MergeRules,
}
