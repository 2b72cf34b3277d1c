//! What resolution reports: the outcome, rejected identifiers and why,
//! and merge records as the API shows them.

use super::ids::Identifier;
use crate::types::{MergeId, ProfileId, Timestamp};

/// Why an identifier of a request was not attached.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// It could not be normalised (the text says why).
    Invalid(crate::error::IdentifierProblem),
    /// Its type is custom and not declared in the schema.
    UndeclaredType,
    /// Its normalised value is on the blocklist.
    Blocked,
    /// Attaching it would exceed the per-type limit of a profile.
    Limit,
    /// The merge it would cause exceeds the largest number of merged profiles.
    MergeLimit,
    /// It belongs to a forgotten person (suppression; see `Db::unsuppress`).
    Suppressed,
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::Invalid(why) => write!(f, "invalid: {why}"),
            RejectReason::UndeclaredType => {
                f.write_str("custom identifier type not declared in the schema")
            }
            RejectReason::Blocked => f.write_str("blocked value"),
            RejectReason::Limit => f.write_str("per-type identifier limit reached"),
            RejectReason::MergeLimit => {
                f.write_str("merge would exceed the largest number of merged profiles")
            }
            RejectReason::Suppressed => {
                f.write_str("identifier of a forgotten person (suppressed)")
            }
        }
    }
}

/// An identifier that was not attached, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The identifier as given.
    pub identifier: Identifier,
    /// Why it was rejected.
    pub reason: RejectReason,
}

/// What `Db::resolve` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolveOutcome {
    /// The profile the request resolved to; `None` when every identifier was rejected.
    pub profile: Option<ProfileId>,
    /// Whether the profile was created by this request.
    pub created: bool,
    /// Merges this request caused.
    pub merges: Vec<MergeId>,
    /// Identifiers newly attached to the profile.
    pub attached: usize,
    /// Identifiers not attached.
    pub rejected: Vec<Rejection>,
}

/// A merge record as shown to operators (PII-free).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeInfo {
    /// Merge id.
    pub merge_id: MergeId,
    /// The profile that absorbed the other (the older one).
    pub survivor: ProfileId,
    /// The profile merged away; its id now redirects to the survivor.
    pub merged: ProfileId,
    /// `shared_identifier`, `alias` or `manual`.
    pub reason: String,
    /// When it happened.
    pub at: Timestamp,
    /// Types of the identifiers that caused it.
    pub identifier_types: Vec<String>,
    /// When it was undone, if it was.
    pub undone_at: Option<Timestamp>,
}

impl MergeInfo {
    /// The merge as JSON (PII-free).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "merge_id": self.merge_id.to_string(),
            "survivor": self.survivor.to_string(),
            "merged": self.merged.to_string(),
            "reason": self.reason,
            "at": self.at.to_string(),
            "identifier_types": self.identifier_types,
            "undone_at": self.undone_at.map(|t| t.to_string()),
        })
    }
}
