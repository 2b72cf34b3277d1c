//! The consent record and its parts as the API shows them: statuses,
//! legal bases, processing flags, purpose-bound reads, the built-in
//! purposes and their order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{ProfileId, Timestamp, Value};

/// Reserved field whose key seals consent records.
pub(crate) const CONSENT_FIELD: &str = "$consent";
/// Reserved field holding the restriction / objection flags.
pub(crate) const PROCESSING_FIELD: &str = "$processing";

/// The 11 IAB TCF v2.2 purposes, the built-in marketing purposes, and the
/// sensitive-data categories of the US privacy laws (GPP sections).
pub const BUILTIN_PURPOSES: &[&str] = &[
    "tcf:1",
    "tcf:2",
    "tcf:3",
    "tcf:4",
    "tcf:5",
    "tcf:6",
    "tcf:7",
    "tcf:8",
    "tcf:9",
    "tcf:10",
    "tcf:11",
    "email_marketing",
    "sms_marketing",
    "analytics",
    "personalization",
    "ads_targeting",
    "sale_or_share",
    "sensitive:racial_or_ethnic_origin",
    "sensitive:religious_beliefs",
    "sensitive:health",
    "sensitive:sex_life_or_orientation",
    "sensitive:citizenship_or_immigration",
    "sensitive:genetic",
    "sensitive:biometric",
    "sensitive:precise_geolocation",
    "sensitive:government_id",
    "sensitive:financial_account",
    "sensitive:union_membership",
    "sensitive:communications_contents",
    "sensitive:consumer_health",
    "sensitive:crime_victim_status",
    "sensitive:national_origin",
    "sensitive:transgender_or_nonbinary",
];

/// Status of a consent record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// Given.
    Granted,
    /// Refused.
    Denied,
    /// Given earlier, taken back.
    Withdrawn,
}

/// GDPR Art. 6 legal basis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// Art. 6(1)(a).
    Consent,
    /// Art. 6(1)(b).
    Contract,
    /// Art. 6(1)(c).
    LegalObligation,
    /// Art. 6(1)(d).
    VitalInterests,
    /// Art. 6(1)(e).
    PublicTask,
    /// Art. 6(1)(f).
    LegitimateInterests,
}

macro_rules! snake_parse {
    ($t:ty, $what:expr) => {
        impl std::str::FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                serde_json::from_value(serde_json::Value::String(s.to_string()))
                    .map_err(|_| Error::InvalidInput(format!("unknown {} {s:?}", $what)))
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => Err(std::fmt::Error),
                }
            }
        }
    };
}
snake_parse!(ConsentStatus, "consent status (granted, denied, withdrawn)");
snake_parse!(
    LegalBasis,
    "legal basis (consent, contract, legal_obligation, vital_interests, public_task, legitimate_interests)"
);

/// One consent record (after ISO/IEC TS 27560 and the Kantara consent receipt).
///
/// ```
/// use lethedb::{ConsentRecord, ConsentStatus};
/// let r = ConsentRecord::new("email_marketing", ConsentStatus::Granted).source("signup-form").policy_version("2024-05");
/// assert_eq!(r.purpose, "email_marketing");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Purpose id.
    pub purpose: String,
    /// Granted, denied or withdrawn.
    pub status: ConsentStatus,
    /// Legal basis.
    pub legal_basis: LegalBasis,
    /// When the person gave or refused it.
    pub timestamp: Timestamp,
    /// Source / collection method (form, CMP, call centre, …).
    pub source: String,
    /// Notice or policy version shown.
    pub policy_version: Option<String>,
    /// Jurisdiction (e.g. `EU`, `US-CA`).
    pub jurisdiction: Option<String>,
    /// When it stops counting as granted.
    pub expires_at: Option<Timestamp>,
    /// Proof: a TC string, a receipt hash, a message id.
    pub proof: Option<String>,
    /// Who recorded it (system or operator).
    pub recorded_by: Option<String>,
    /// When lethedb stored it (set on write).
    pub recorded_at: Timestamp,
}

impl ConsentRecord {
    /// A record with legal basis `consent`, timestamp now, source `api`.
    pub fn new(purpose: impl Into<String>, status: ConsentStatus) -> Self {
        ConsentRecord {
            purpose: purpose.into(),
            status,
            legal_basis: LegalBasis::Consent,
            timestamp: Timestamp::now(),
            source: "api".into(),
            policy_version: None,
            jurisdiction: None,
            expires_at: None,
            proof: None,
            recorded_by: None,
            recorded_at: Timestamp(0),
        }
    }
    /// Sets the legal basis.
    pub fn legal_basis(mut self, b: LegalBasis) -> Self {
        self.legal_basis = b;
        self
    }
    /// Sets the time it was given.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.timestamp = t;
        self
    }
    /// Sets the source.
    pub fn source(mut self, s: impl Into<String>) -> Self {
        self.source = s.into();
        self
    }
    /// Sets the policy version.
    pub fn policy_version(mut self, v: impl Into<String>) -> Self {
        self.policy_version = Some(v.into());
        self
    }
    /// Sets the jurisdiction.
    pub fn jurisdiction(mut self, j: impl Into<String>) -> Self {
        self.jurisdiction = Some(j.into());
        self
    }
    /// Sets the expiry.
    pub fn expires(mut self, t: Timestamp) -> Self {
        self.expires_at = Some(t);
        self
    }
    /// Sets the proof.
    pub fn proof(mut self, p: impl Into<String>) -> Self {
        self.proof = Some(p.into());
        self
    }
    /// Sets who recorded it.
    pub fn recorded_by(mut self, who: impl Into<String>) -> Self {
        self.recorded_by = Some(who.into());
        self
    }

    /// Whether it allows processing at `at`: status granted and not expired.
    pub fn allows_at(&self, at: Timestamp) -> bool {
        self.status == ConsentStatus::Granted && self.expires_at.is_none_or(|e| e > at)
    }

    /// Whether it is expired at `at`.
    pub fn expired_at(&self, at: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= at)
    }

    /// JSON form used by the CLI; `effective` is as of now.
    pub fn to_json(&self) -> serde_json::Value {
        self.to_json_at(Timestamp::now())
    }

    /// JSON form with `effective` (`granted`, `expired`, `not_granted`) as
    /// of `at`: an as-of listing must not judge expiry by today's clock.
    pub fn to_json_at(&self, at: Timestamp) -> serde_json::Value {
        serde_json::json!({
            "purpose": self.purpose,
            "status": self.status.to_string(),
            "effective": if self.allows_at(at) { "granted" } else if self.expired_at(at) { "expired" } else { "not_granted" },
            "legal_basis": self.legal_basis.to_string(),
            "timestamp": self.timestamp.to_string(),
            "source": self.source,
            "policy_version": self.policy_version,
            "jurisdiction": self.jurisdiction,
            "expires_at": self.expires_at.map(|t| t.to_string()),
            "proof": self.proof,
            "recorded_by": self.recorded_by,
            // Null until stored: a record built in memory was never recorded.
            "recorded_at": (self.recorded_at != Timestamp(0)).then(|| self.recorded_at.to_string()),
        })
    }
}

/// Restriction (Art. 18) and objection (Art. 21) flags of a profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingFlags {
    /// Processing restricted: purpose-bound reads return nothing.
    pub restricted: bool,
    /// The person objected: purpose-bound reads return nothing.
    pub objected: bool,
}

/// Result of a purpose-bound read.
#[derive(Clone, Debug, PartialEq)]
pub struct PurposeRead {
    /// The profile read (after following merges).
    pub profile_id: ProfileId,
    /// The purpose.
    pub purpose: String,
    /// Fields the purpose may use now.
    pub fields: BTreeMap<String, Value>,
    /// Fields withheld, with the reason.
    pub withheld: BTreeMap<String, String>,
}

impl PurposeRead {
    /// JSON form used by the CLI.
    pub fn to_json(&self) -> serde_json::Value {
        let fields = crate::types::fields_to_json(&self.fields);
        serde_json::json!({
            "profile_id": self.profile_id.to_string(),
            "purpose": self.purpose,
            "fields": fields,
            "withheld": self.withheld,
        })
    }
}

/// The order lethedb lists purposes in: text compared piecewise, runs of
/// digits by their numeric value, so `tcf:2` comes before `tcf:10`. Total
/// and consistent with equality (ties of value, such as `01` and `1`, fall
/// back to byte order).
///
/// ```
/// let mut p = vec!["tcf:10", "email_marketing", "tcf:2", "tcf:1", "analytics"];
/// p.sort_by(|a, b| lethedb::purpose_order(a, b));
/// assert_eq!(p, ["analytics", "email_marketing", "tcf:1", "tcf:2", "tcf:10"]);
/// ```
pub fn purpose_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> impl Iterator<Item = &str> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some(run)
        })
    }
    let numeric = |x: &str, y: &str| {
        let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
        x.len().cmp(&y.len()).then_with(|| x.cmp(y))
    };
    let (mut ra, mut rb) = (runs(a), runs(b));
    loop {
        match (ra.next(), rb.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                let both_digits = x.starts_with(|c: char| c.is_ascii_digit())
                    && y.starts_with(|c: char| c.is_ascii_digit());
                let o = if both_digits { numeric(x, y) } else { x.cmp(y) };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
        }
    }
}
