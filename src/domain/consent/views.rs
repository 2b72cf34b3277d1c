//! Views of a profile's current consent for activation jobs: may TCF
//! vendor V process the profile for purpose P (one call), and Google
//! Consent Mode v2 signals under a configurable purpose mapping.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::gpp;
use super::operations::{consistent, current_of, flags_of};
use super::record::{ConsentRecord, ConsentStatus, LegalBasis, ProcessingFlags};
use super::sealed::current_states;
use super::tcf;
use crate::domain::profiles;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::types::{ProfileId, Timestamp};

/// The answer to "may vendor V process this profile for TCF purpose P".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendorDecision {
    /// The profile answered for (after following merges).
    pub profile_id: ProfileId,
    /// IAB Global Vendor List id.
    pub vendor: u16,
    /// TCF purpose (1–11).
    pub purpose: u8,
    /// Whether the vendor may process.
    pub allowed: bool,
    /// The basis it may process on, when allowed.
    pub basis: Option<LegalBasis>,
    /// Why, in words (never personal data).
    pub reason: String,
}

impl VendorDecision {
    /// JSON form used by the CLI.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "profile_id": self.profile_id.to_string(),
            "vendor": self.vendor,
            "purpose": format!("tcf:{}", self.purpose),
            "allowed": self.allowed,
            "basis": self.basis.map(|b| b.to_string()),
            "reason": self.reason,
        })
    }
}

/// What the TC string a consent record carries as proof says of one
/// vendor and purpose: the proof is a TC string, or a GPP string whose
/// `tcfeuv2` section is one; `None` when it is neither (or does not decode).
pub(crate) fn signals_of_proof(
    proof: &str,
    vendor: u16,
    purpose: u8,
) -> Option<tcf::VendorSignals> {
    if let Ok(h) = gpp::decode_header(proof) {
        let section = h
            .section_ids
            .iter()
            .zip(proof.trim().split('~').skip(1))
            .find(|(id, _)| **id == 2)?
            .1;
        return tcf::vendor_signals(section, vendor, purpose).ok();
    }
    tcf::vendor_signals(proof, vendor, purpose).ok()
}

/// Whether the record as the profile holds it now stops processing, and why.
fn refusal(
    flags: ProcessingFlags,
    record: Option<&ConsentRecord>,
    purpose: &str,
    now: Timestamp,
) -> Option<String> {
    if flags.restricted {
        return Some("processing restricted (GDPR Art. 18)".into());
    }
    if flags.objected {
        return Some("the person objected to processing (GDPR Art. 21)".into());
    }
    match record {
        None => Some(format!("no consent or legal basis recorded for {purpose}")),
        Some(r) if r.expired_at(now) => Some(format!("{purpose}: consent expired")),
        Some(r) if r.status != ConsentStatus::Granted => {
            Some(format!("{purpose}: consent {}", r.status))
        }
        Some(_) => None,
    }
}

/// `Db::vendor_may_process`: the profile's current `tcf:P` record must
/// allow processing (granted, not expired, no restriction or objection),
/// and the TC string it was recorded from must give vendor V a basis for P
/// ([`tcf::TcString::vendor_basis`]). A `tcf:P` record not recorded from a
/// TC string (through the API) names no vendor: not allowed.
pub(crate) fn vendor(
    db: &Engine,
    id: &ProfileId,
    vendor: u16,
    purpose: u8,
) -> Result<VendorDecision> {
    if !(1..=11).contains(&purpose) {
        return Err(Error::InvalidInput(format!(
            "TCF purpose {purpose} is not one of 1..=11"
        )));
    }
    if vendor == 0 {
        return Err(Error::InvalidInput("vendor id 0 is not a GVL id".into()));
    }
    let name = format!("tcf:{purpose}");
    let now = Timestamp::now();
    consistent(db, id, || {
        let w = profiles::load_active_fields(db, id, profiles::Fields::Lazy)?;
        let flags = flags_of(db, &w)?;
        let record = current_of(db, &w, &name)?;
        let mut d = VendorDecision {
            profile_id: w.id,
            vendor,
            purpose,
            allowed: false,
            basis: None,
            reason: String::new(),
        };
        if let Some(why) = refusal(flags, record.as_ref(), &name, now) {
            d.reason = why;
            return Ok(d);
        }
        let Some(signals) = record
            .as_ref()
            .and_then(|r| r.proof.as_deref())
            .and_then(|p| signals_of_proof(p, vendor, purpose))
        else {
            d.reason = format!("{name} was not recorded from a TC string: no vendor signals");
            return Ok(d);
        };
        d.basis = signals.basis(purpose);
        d.allowed = d.basis.is_some();
        d.reason = match d.basis {
            Some(b) => format!("purpose and vendor {b} in the TC string"),
            None if signals.forbidden() => {
                "the publisher restricts the purpose for this vendor".into()
            }
            None => format!(
                "the TC string gives vendor {vendor} neither consent nor legitimate interest for {name}"
            ),
        };
        Ok(d)
    })
}

/// Which purposes grant each Google Consent Mode v2 signal: a signal is
/// `granted` when every purpose of at least one of its alternatives is
/// currently granted (a `tcf:` purpose on consent, not legitimate
/// interest), no purpose it names is currently denied or
/// withdrawn (an explicit refusal wins over another route), and
/// processing is neither restricted nor objected to.
///
/// ```
/// let m = lethedb::ConsentModeMapping::default();
/// assert_eq!(m.signals["ad_storage"], vec![vec!["tcf:1".to_string()], vec!["ads_targeting".to_string()]]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentModeMapping {
    /// Signal name → alternatives, each a set of purposes all required.
    pub signals: BTreeMap<String, Vec<Vec<String>>>,
}

impl Default for ConsentModeMapping {
    /// Google's TCF mapping (ad_storage ← purpose 1; ad_user_data ←
    /// purposes 1 and 7; ad_personalization ← purposes 3 and 4), with the
    /// built-in purposes as the alternative for profiles without TCF:
    /// `ads_targeting` for storage, `ads_targeting` + `sale_or_share` for
    /// user data and personalisation (a US opt-out of sale or sharing
    /// denies both), and `analytics` (or TCF purposes 1 and 8) for
    /// analytics storage.
    fn default() -> Self {
        let alt = |sets: &[&[&str]]| -> Vec<Vec<String>> {
            sets.iter()
                .map(|s| s.iter().map(|p| p.to_string()).collect())
                .collect()
        };
        let mut signals = BTreeMap::new();
        signals.insert("ad_storage".into(), alt(&[&["tcf:1"], &["ads_targeting"]]));
        signals.insert(
            "analytics_storage".into(),
            alt(&[&["analytics"], &["tcf:1", "tcf:8"]]),
        );
        signals.insert(
            "ad_user_data".into(),
            alt(&[&["tcf:1", "tcf:7"], &["ads_targeting", "sale_or_share"]]),
        );
        signals.insert(
            "ad_personalization".into(),
            alt(&[&["tcf:3", "tcf:4"], &["ads_targeting", "sale_or_share"]]),
        );
        ConsentModeMapping { signals }
    }
}

impl ConsentModeMapping {
    /// Reads a mapping from JSON (`{"signals": {"ad_storage": [["tcf:1"]], …}}`).
    pub fn from_json(text: &str) -> Result<Self> {
        let m: ConsentModeMapping = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("consent mode mapping: {e}")))?;
        if m.signals
            .values()
            .any(|alts| alts.iter().any(Vec::is_empty))
        {
            return Err(Error::InvalidInput(
                "consent mode mapping: an alternative names no purpose".into(),
            ));
        }
        Ok(m)
    }
}

/// Consent Mode v2 signals of one profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentMode {
    /// The profile (after following merges).
    pub profile_id: ProfileId,
    /// Signal → granted.
    pub signals: BTreeMap<String, bool>,
}

impl ConsentMode {
    /// `{"ad_storage": "granted", …}`, the shape `gtag('consent', …)` and
    /// the Google Ads API's consent fields take.
    pub fn to_json(&self) -> serde_json::Value {
        self.signals
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::Value::from(if *v { "granted" } else { "denied" }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// `Db::consent_mode`.
pub(crate) fn consent_mode(
    db: &Engine,
    id: &ProfileId,
    mapping: &ConsentModeMapping,
) -> Result<ConsentMode> {
    let now = Timestamp::now();
    consistent(db, id, || {
        let w = profiles::load_active_fields(db, id, profiles::Fields::Lazy)?;
        let flags = flags_of(db, &w)?;
        let current: BTreeMap<String, ConsentRecord> = current_states(db, &w)?
            .into_values()
            .map(|r| (r.purpose.clone(), r))
            .collect();
        let blocked = flags.restricted || flags.objected;
        let signals = mapping
            .signals
            .iter()
            .map(|(signal, alts)| {
                let refused = alts.iter().flatten().any(|p| {
                    current
                        .get(p)
                        .is_some_and(|r| r.status != ConsentStatus::Granted)
                });
                // A TCF purpose counts on consent only: legitimate interest
                // never allows storage or personalisation (TCF v2.2).
                let allows = |p: &String| {
                    current.get(p).is_some_and(|r| {
                        r.allows_at(now)
                            && (!p.starts_with("tcf:") || r.legal_basis == LegalBasis::Consent)
                    })
                };
                let some_route = alts.iter().any(|set| set.iter().all(allows));
                (signal.clone(), !blocked && !refused && some_route)
            })
            .collect();
        Ok(ConsentMode {
            profile_id: w.id,
            signals,
        })
    })
}
