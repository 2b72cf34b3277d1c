//! The identity settings of a store (normalisation and merge rules), kept
//! in their own file so the options and the engine can name them without
//! depending on resolution.

use serde::{Deserialize, Serialize};

use super::ids::Normalization;
use super::rules::MergeRules;

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
