//! The types of requests and holds as the API shows them (and as they are
//! stored, bincode under a version byte), the deadline policy, and the
//! PII check on the free text they keep.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::Timestamp;

/// What the person asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Access or portability (GDPR Art. 15 / 20, CCPA right to know);
    /// also read as `export`, `portability`, `right_to_know`.
    #[serde(alias = "export", alias = "portability", alias = "right_to_know")]
    Access,
    /// Erasure (GDPR Art. 17, CCPA delete); also `deletion`, `delete`.
    #[serde(alias = "deletion", alias = "delete")]
    Erasure,
    /// Rectification (GDPR Art. 16, CPRA correct); also `correction`.
    #[serde(alias = "correction")]
    Rectification,
    /// Restriction of processing (GDPR Art. 18); also `restrict`.
    #[serde(alias = "restrict")]
    Restriction,
    /// Objection to processing (GDPR Art. 21); also `object`.
    #[serde(alias = "object")]
    Objection,
    /// Opt-out of sale or sharing (CCPA/CPRA, US state laws); also
    /// `opt_out`, `opt_out_of_sale_or_sharing`, `do_not_sell`.
    #[serde(
        alias = "opt_out",
        alias = "opt_out_of_sale_or_sharing",
        alias = "do_not_sell"
    )]
    OptOutOfSale,
}

/// Identity verification of the requester.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Not verified yet.
    Pending,
    /// Verified.
    Verified,
    /// Could not be verified.
    Failed,
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Being worked on.
    Open,
    /// An erasure waiting for a legal hold on its subject (see `holds`).
    OnHold,
    /// Done, with evidence.
    Completed,
    /// Refused, with a reason.
    Rejected,
}

macro_rules! snake_str {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => Err(std::fmt::Error),
                }
            }
        }
        impl std::str::FromStr for $t {
            type Err = Error;
            /// Snake case, any letter case, `-` read as `_`.
            fn from_str(s: &str) -> Result<Self> {
                let name = s.trim().to_ascii_lowercase().replace('-', "_");
                serde_json::from_value(serde_json::Value::String(name)).map_err(|_| {
                    Error::InvalidInput(format!(
                        "unknown {} {:?}",
                        stringify!($t),
                        s.chars().take(32).collect::<String>()
                    ))
                })
            }
        }
    )*};
}
snake_str!(RequestKind, Verification, RequestStatus);

/// What shows a request was fulfilled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// The export bundle given to the person: SHA-256 of its bytes (hex).
    ExportBundle {
        /// Lower-case hex, 64 characters.
        sha256: String,
    },
    /// The signed erasure certificate: its erasure id and the SHA-256 of
    /// the certificate text (hex).
    ErasureCertificate {
        /// Ledger id of the erasure.
        erasure_id: u64,
        /// SHA-256 of the certificate as issued (hex).
        sha256: String,
    },
    /// What was done, in words (no personal data).
    Statement {
        /// The statement.
        text: String,
    },
}

/// One step in a request's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When.
    pub at: Timestamp,
    /// Who (operator or system name).
    pub by: String,
    /// What: `opened`, `verified`, `verification_failed`, `extended`,
    /// `on_hold`, `released`, `erased`, `completed`, `rejected`.
    pub action: String,
    /// Details (reason, hold id, erasure id).
    pub note: Option<String>,
}

/// A deadline extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// When it was granted.
    pub at: Timestamp,
    /// Who extended.
    pub by: String,
    /// The recorded reason (GDPR Art. 12(3): complexity, number of requests).
    pub reason: String,
    /// Granted after the original due time (GDPR Art. 12(3) wants the
    /// person told within the first period).
    pub late: bool,
}

/// A data-subject request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Request id, from 1.
    pub id: u64,
    /// What is asked.
    pub kind: RequestKind,
    /// The person, as a subject reference (never an identifier).
    pub subject_ref: [u8; 16],
    /// For erasure, rectification or restriction of some fields only.
    pub fields: Vec<String>,
    /// Jurisdiction whose law sets the deadline (`EU`, `US-CA`, …).
    pub jurisdiction: String,
    /// When the request was received.
    pub received_at: Timestamp,
    /// When it must be answered (received + the jurisdiction's period,
    /// plus its extension once extended).
    pub due_at: Timestamp,
    /// The deadline rule it opened under (an extension follows it, not a
    /// policy set later).
    pub rule: DeadlineRule,
    /// The extension, once granted.
    pub extension: Option<Extension>,
    /// Identity verification.
    pub verification: Verification,
    /// Where it stands.
    pub status: RequestStatus,
    /// Holds it waits for (status `on_hold`).
    pub holds: Vec<u64>,
    /// The erasure that carried it out, once `forget` ran.
    pub erasure_id: Option<u64>,
    /// What shows it was fulfilled (status `completed`).
    pub evidence: Option<Evidence>,
    /// Every transition, oldest first.
    pub history: Vec<Transition>,
}

impl Request {
    /// Whether it is still open (or on hold) after its due time.
    pub fn overdue_at(&self, now: Timestamp) -> bool {
        matches!(self.status, RequestStatus::Open | RequestStatus::OnHold) && self.due_at < now
    }

    /// JSON form used by the CLI.
    pub fn to_json(&self) -> serde_json::Value {
        let now = Timestamp::now();
        serde_json::json!({
            "id": self.id,
            "kind": self.kind.to_string(),
            "subject_ref": crate::hex::encode(&self.subject_ref),
            "fields": self.fields,
            "jurisdiction": self.jurisdiction,
            "received_at": self.received_at.to_string(),
            "due_at": self.due_at.to_string(),
            "rule": self.rule,
            "overdue": self.overdue_at(now),
            "extension": self.extension.as_ref().map(|e| serde_json::json!({
                "at": e.at.to_string(), "by": e.by, "reason": e.reason, "late": e.late,
            })),
            "verification": self.verification.to_string(),
            "status": self.status.to_string(),
            "holds": self.holds,
            "erasure_id": self.erasure_id,
            "evidence": self.evidence,
            "history": self.history.iter().map(|t| serde_json::json!({
                "at": t.at.to_string(), "by": t.by, "action": t.action, "note": t.note,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A length of time in a deadline rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Calendar days.
    Days(u32),
    /// Business days: Monday to Friday (UTC), public holidays not known.
    BusinessDays(u32),
    /// Calendar months (a day the target month lacks is its last day).
    Months(u32),
}

const DAY_US: i64 = 86_400_000_000;

impl Period {
    /// Whether it is zero (no extension allowed).
    pub fn is_zero(self) -> bool {
        matches!(
            self,
            Period::Days(0) | Period::BusinessDays(0) | Period::Months(0)
        )
    }

    /// At most ten years: a policy's periods are checked against it.
    pub(crate) fn check(self) -> Result<()> {
        let ok = match self {
            Period::Days(d) => d <= 3_660,
            Period::BusinessDays(d) => d <= 2_610,
            Period::Months(m) => m <= 120,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "deadline period {self:?} is longer than ten years"
            )))
        }
    }

    fn after(self, t: Timestamp) -> Timestamp {
        match self {
            Period::Days(d) => Timestamp(t.0.saturating_add(i64::from(d) * DAY_US)),
            Period::BusinessDays(n) => {
                // 1970-01-01 was a Thursday (weekday 3, Monday = 0).
                let mut day = t.0.div_euclid(DAY_US);
                let mut left = n;
                while left > 0 {
                    day += 1;
                    if (day + 3).rem_euclid(7) < 5 {
                        left -= 1;
                    }
                }
                Timestamp(day * DAY_US + t.0.rem_euclid(DAY_US))
            }
            Period::Months(m) => t.add_months(m),
        }
    }

    /// `self` then `then`, counted from `t`: periods of one unit add up
    /// before counting (received 31 January + 1 month + 2 months is 30
    /// April, not 28 April).
    fn then_after(self, then: Period, t: Timestamp) -> Timestamp {
        match (self, then) {
            (Period::Months(a), Period::Months(b)) => t.add_months(a.saturating_add(b)),
            (Period::Days(a), Period::Days(b)) => Period::Days(a.saturating_add(b)).after(t),
            _ => then.after(self.after(t)),
        }
    }
}

/// Deadline rule of one jurisdiction: the period to answer in, and the
/// one extension it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineRule {
    /// Period to answer in, from receipt.
    pub respond_within: Period,
    /// Extension allowed once, with a recorded reason.
    pub extension: Period,
}

impl DeadlineRule {
    /// GDPR Art. 12(3): one month, extendable by two further months.
    pub const GDPR: DeadlineRule = DeadlineRule {
        respond_within: Period::Months(1),
        extension: Period::Months(2),
    };
    /// CCPA/CPRA (Cal. Civ. Code 1798.130(a)(2)) and the other US state
    /// laws: 45 days, extendable once by 45 more.
    pub const CCPA: DeadlineRule = DeadlineRule {
        respond_within: Period::Days(45),
        extension: Period::Days(45),
    };
    /// CCPA regulations § 7026(f): an opt-out of sale or sharing is acted
    /// on within 15 business days, without extension.
    pub const CCPA_OPT_OUT: DeadlineRule = DeadlineRule {
        respond_within: Period::BusinessDays(15),
        extension: Period::Days(0),
    };

    /// The due time of a request received at `received`, extended or not.
    pub fn due(&self, received: Timestamp, extended: bool) -> Timestamp {
        if extended {
            self.respond_within.then_after(self.extension, received)
        } else {
            self.respond_within.after(received)
        }
    }
}

/// EU and EEA member states and the UK (UK GDPR has the same periods).
const GDPR_COUNTRIES: &[&str] = &[
    "EU", "EEA", "UK", "GB", "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE",
    "GR", "EL", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES",
    "SE", "IS", "LI", "NO",
];

/// Deadline rules by jurisdiction and, where a law sets a different
/// period for one kind of request, by `jurisdiction:kind`. A request is
/// looked up as `J:kind`, `J`, then — for `J` like `US-CA` — `US:kind`
/// and `US`; one with no rule is refused at `open` (no silent default).
///
/// ```
/// use lethedb::{DeadlineRule, Period, RequestKind, RequestPolicy};
/// let mut p = RequestPolicy::default();
/// assert_eq!(p.rule("US-CA", RequestKind::Access), Some(DeadlineRule::CCPA));
/// assert_eq!(p.rule("US-CA", RequestKind::OptOutOfSale), Some(DeadlineRule::CCPA_OPT_OUT));
/// assert_eq!(p.rule("FR", RequestKind::Erasure), Some(DeadlineRule::GDPR));
/// assert_eq!(p.rule("BR", RequestKind::Access), None);
/// p.rules.insert("BR".into(), DeadlineRule { respond_within: Period::Days(15), extension: Period::Days(0) });
/// assert!(p.rule("BR", RequestKind::Access).is_some());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPolicy {
    /// `jurisdiction` or `jurisdiction:kind` → rule.
    pub rules: BTreeMap<String, DeadlineRule>,
}

impl Default for RequestPolicy {
    /// GDPR periods for the EU, the EEA, the UK and each member state;
    /// CCPA periods for `US` (and so every `US-xx`), and 15 business days
    /// for a California opt-out of sale or sharing.
    fn default() -> Self {
        let mut rules: BTreeMap<String, DeadlineRule> = GDPR_COUNTRIES
            .iter()
            .map(|c| (c.to_string(), DeadlineRule::GDPR))
            .collect();
        rules.insert("US".into(), DeadlineRule::CCPA);
        rules.insert("US-CA:opt_out_of_sale".into(), DeadlineRule::CCPA_OPT_OUT);
        RequestPolicy { rules }
    }
}

impl RequestPolicy {
    /// The rule for a request of `kind` under `jurisdiction`.
    pub fn rule(&self, jurisdiction: &str, kind: RequestKind) -> Option<DeadlineRule> {
        let country = jurisdiction.split_once('-').map(|(c, _)| c);
        [Some(jurisdiction), country]
            .into_iter()
            .flatten()
            .flat_map(|j| [format!("{j}:{kind}"), j.to_string()])
            .find_map(|key| self.rules.get(&key).copied())
    }
}

/// A legal hold (GDPR Art. 17(3)(e), litigation holds): erasure of the
/// subject (or of some of its fields) is refused while it is active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Hold id, from 1.
    pub id: u64,
    /// The person held, as a subject reference.
    pub subject_ref: [u8; 16],
    /// Held fields; empty: the whole person.
    pub fields: Vec<String>,
    /// Why (a matter or case reference; no personal data).
    pub reason: String,
    /// Who answers for it.
    pub owner: String,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// When it lapses by itself, if ever.
    pub ends_at: Option<Timestamp>,
    /// When and by whom it was released.
    pub released: Option<(Timestamp, String)>,
}

impl Hold {
    /// Whether it holds at `now`: not released and not past its end.
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.released.is_none() && self.ends_at.is_none_or(|e| e > now)
    }

    /// Whether it covers any of `fields` (a whole-person hold covers all).
    pub(crate) fn covers_any(&self, fields: &[&str]) -> bool {
        self.fields.is_empty() || self.fields.iter().any(|f| fields.contains(&f.as_str()))
    }

    /// JSON form used by the CLI.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "subject_ref": crate::hex::encode(&self.subject_ref),
            "fields": self.fields,
            "reason": self.reason,
            "owner": self.owner,
            "placed_at": self.placed_at.to_string(),
            "ends_at": self.ends_at.map(|t| t.to_string()),
            "active": self.active_at(Timestamp::now()),
            "released_at": self.released.as_ref().map(|r| r.0.to_string()),
            "released_by": self.released.as_ref().map(|r| r.1.clone()),
        })
    }
}

/// Free text a request or hold keeps (reasons, names of operators,
/// statements): at most 512 bytes, and nothing that looks like an e-mail
/// address or a phone number — these records must stay PII-free.
pub(crate) fn check_text(what: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::InvalidInput(format!("{what} is empty")));
    }
    if text.len() > 512 {
        return Err(Error::InvalidInput(format!(
            "{what} is longer than 512 bytes"
        )));
    }
    // A run of digits (spaces, dots, dashes, brackets between them) reads
    // as a phone number from ten digits, or from eight after a `+`;
    // shorter runs are case and matter numbers. ISO dates do not count.
    static DATES: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let dates = DATES
        .get_or_init(|| regex::Regex::new(r"\d{4}-\d{2}-\d{2}").ok())
        .as_ref()
        .ok_or_else(|| Error::Internal("date pattern".into()))?;
    let undated = dates.replace_all(text, "date");
    let phone_like = undated
        .split(|c: char| !(c.is_ascii_digit() || " -+().".contains(c)))
        .any(|run| {
            let digits = run.chars().filter(char::is_ascii_digit).count();
            digits >= 10 || (digits >= 8 && run.trim_start().starts_with('+'))
        });
    if text.contains('@') || phone_like {
        return Err(Error::InvalidInput(format!(
            "{what} looks like it holds an e-mail address or phone number; \
             requests and holds keep no personal data (name the person by subject reference)"
        )));
    }
    Ok(())
}
