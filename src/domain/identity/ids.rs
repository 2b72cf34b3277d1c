//! Identifier types and normalisation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::email::{canonical_domain, is_default_ignorable, valid_local_part};
pub(crate) use super::phone::parse_region;
use super::phone::valid_number;

/// The kind of an identifier. Custom kinds are declared in the schema
/// (`Schema::identifier_types`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// E-mail address (trimmed, lower-cased; optional Gmail folding).
    Email,
    /// Phone number (E.164).
    Phone,
    /// The customer's own user id.
    UserId,
    /// An anonymous (cookie/device-scoped) id.
    AnonymousId,
    /// A device id.
    DeviceId,
    /// A custom type declared in the schema.
    Custom(String),
}

impl IdType {
    /// The type's name: `email`, `phone`, `user_id`, `anonymous_id`,
    /// `device_id`, or the custom name.
    pub fn name(&self) -> &str {
        match self {
            IdType::Email => "email",
            IdType::Phone => "phone",
            IdType::UserId => "user_id",
            IdType::AnonymousId => "anonymous_id",
            IdType::DeviceId => "device_id",
            IdType::Custom(n) => n,
        }
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IdType {
    type Err = Error;
    /// Built-in names map to their variants; anything else is `Custom`
    /// (checked against the schema when used).
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "email" => IdType::Email,
            "phone" => IdType::Phone,
            "user_id" => IdType::UserId,
            "anonymous_id" => IdType::AnonymousId,
            "device_id" => IdType::DeviceId,
            "" => return Err(Error::InvalidInput("empty identifier type".into())),
            other => IdType::Custom(other.to_string()),
        })
    }
}

/// An identifier as given by a caller: a type and a raw value.
///
/// ```
/// use lethedb::{IdType, Identifier};
/// let id = Identifier::email(" Ada@Example.COM ");
/// assert_eq!(id.id_type, IdType::Email);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identifier {
    /// Its type.
    pub id_type: IdType,
    /// The raw value, as received.
    pub value: String,
}

impl Identifier {
    /// An identifier of any type.
    pub fn new(id_type: IdType, value: impl Into<String>) -> Self {
        Identifier {
            id_type,
            value: value.into(),
        }
    }
    /// An e-mail address.
    pub fn email(v: impl Into<String>) -> Self {
        Self::new(IdType::Email, v)
    }
    /// A phone number.
    pub fn phone(v: impl Into<String>) -> Self {
        Self::new(IdType::Phone, v)
    }
    /// A user id.
    pub fn user_id(v: impl Into<String>) -> Self {
        Self::new(IdType::UserId, v)
    }
    /// An anonymous id.
    pub fn anonymous_id(v: impl Into<String>) -> Self {
        Self::new(IdType::AnonymousId, v)
    }
    /// A device id.
    pub fn device_id(v: impl Into<String>) -> Self {
        Self::new(IdType::DeviceId, v)
    }
}

/// How strictly phone numbers are checked before they are indexed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneValidation {
    /// Only numbers that libphonenumber's metadata calls *valid* for their
    /// region (a real number range, the right length). `12345` or
    /// `+1 415 555 01000000` are refused: a junk number many people type
    /// would otherwise merge strangers into one profile. The default.
    #[default]
    Strict,
    /// Every number the parser accepts, valid or not (for stores that must
    /// keep numbers from ranges the metadata does not know yet). The E.164
    /// form of a valid number is the same in both modes.
    Lenient,
}

/// How identifiers are normalised before they are indexed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Normalization {
    /// Region (ISO 3166-1 alpha-2, e.g. `US`) assumed for phone numbers
    /// without a country code.
    pub default_region: String,
    /// Fold Gmail addresses: drop dots and `+tag` in the local part and map
    /// `googlemail.com` to `gmail.com`. Off by default.
    #[serde(default)]
    pub gmail_folding: bool,
    /// Phone-number validity check (strict by default).
    #[serde(default)]
    pub phone_validation: PhoneValidation,
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization {
            default_region: "US".into(),
            gmail_folding: false,
            phone_validation: PhoneValidation::Strict,
        }
    }
}

pub use crate::error::IdentifierProblem;

pub use crate::error::MAX_IDENTIFIER_BYTES;

impl Normalization {
    /// The normalised form of `id`, or [`Error::InvalidIdentifier`] naming
    /// the type and the problem (never the input).
    ///
    /// E-mail: trimmed, lower-cased, then checked against the grammar in
    /// docs/design.md ("Identifiers and normalisation"): NFC, a dot-atom
    /// local part of at most 64 bytes, `@`, a host name of two or more
    /// labels (UTS 46, written as Punycode A-labels), 254 bytes in all, no
    /// invisible characters. Phone: parsed with the default region, checked for validity
    /// ([`PhoneValidation`]), written in E.164.
    ///
    /// ```
    /// use lethedb::{Identifier, Normalization, PhoneValidation};
    /// let n = Normalization::default();
    /// assert_eq!(n.normalize(&Identifier::phone("(415) 555-0100"))?, "+14155550100");
    /// assert_eq!(n.normalize(&Identifier::email(" Ada@Example.com "))?, "ada@example.com");
    /// assert!(n.normalize(&Identifier::phone("not a phone")).is_err());
    /// assert!(n.normalize(&Identifier::phone("12345")).is_err()); // parses, but no such number
    /// let lenient = Normalization { phone_validation: PhoneValidation::Lenient, ..n };
    /// assert!(lenient.normalize(&Identifier::phone("12345")).is_ok());
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn normalize(&self, id: &Identifier) -> Result<String> {
        self.normalize_as(id, self.phone_validation)
    }

    /// The normalised form used to *find* an identifier (`lookup`, `forget`
    /// by identifier, `unsuppress`): as [`normalize`](Self::normalize), but
    /// any phone number that parses is accepted, whatever the validation
    /// mode. A valid number has the same form either way, so nothing new is
    /// found; entries indexed under [`PhoneValidation::Lenient`] (or before
    /// strict validation existed) stay reachable for access and erasure.
    ///
    /// ```
    /// use lethedb::{Identifier, Normalization};
    /// let n = Normalization::default();
    /// assert!(n.normalize(&Identifier::phone("12345")).is_err());
    /// assert_eq!(n.normalize_for_lookup(&Identifier::phone("12345"))?, "+12345");
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn normalize_for_lookup(&self, id: &Identifier) -> Result<String> {
        self.normalize_as(id, PhoneValidation::Lenient)
    }

    /// Every form `id` may be indexed or suppressed under, to try in turn:
    /// the lookup form, then for e-mail the form of earlier builds where it
    /// differs. An error only when no form exists.
    pub(crate) fn lookup_forms(&self, id: &Identifier) -> Result<Vec<String>> {
        let now = self.normalize_for_lookup(id);
        let legacy = self.legacy_email_form(id, now.as_ref().ok().map(String::as_str));
        match (now, legacy) {
            (Ok(n), l) => Ok(std::iter::once(n).chain(l).collect()),
            (Err(_), Some(l)) => Ok(vec![l]),
            (Err(e), None) => Err(e),
        }
    }

    /// The form an e-mail address was indexed under before the grammar,
    /// NFC and UTS 46 domains (issue 15): trimmed and lower-cased, one `@`
    /// with text on both sides, no white space, the same Gmail folding.
    /// `Some` only where it differs from today's form (or today's rules
    /// refuse the address), so that lookup, suppression and unsuppression
    /// still reach entries written by earlier builds. Never used to index.
    /// `current` is today's form of `id` (`None` when today's rules refuse it).
    pub(crate) fn legacy_email_form(
        &self,
        id: &Identifier,
        current: Option<&str>,
    ) -> Option<String> {
        if id.id_type != IdType::Email
            || id.value.len() > MAX_IDENTIFIER_BYTES
            || id.value.trim().chars().any(char::is_control)
        {
            return None;
        }
        let lower = id.value.trim().to_lowercase();
        let (local, domain) = lower.rsplit_once('@')?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || lower.contains(char::is_whitespace)
        {
            return None;
        }
        let old = if self.gmail_folding && (domain == "gmail.com" || domain == "googlemail.com") {
            let local = local.split('+').next().unwrap_or(local).replace('.', "");
            if local.is_empty() {
                return None;
            }
            format!("{local}@gmail.com")
        } else {
            lower.clone()
        };
        (current != Some(old.as_str())).then_some(old)
    }

    fn normalize_as(&self, id: &Identifier, phones: PhoneValidation) -> Result<String> {
        let bad = |reason: IdentifierProblem| Error::InvalidIdentifier {
            id_type: id.id_type.name().to_string(),
            reason,
        };
        if id.value.len() > MAX_IDENTIFIER_BYTES {
            return Err(bad(IdentifierProblem::TooLong));
        }
        let trimmed = id.value.trim();
        if trimmed.chars().any(char::is_control) {
            return Err(bad(IdentifierProblem::ControlCharacter));
        }
        if trimmed.is_empty() {
            return Err(bad(IdentifierProblem::Empty));
        }
        match id.id_type {
            IdType::Email => {
                use unicode_normalization::UnicodeNormalization as _;
                // Lower case, then Unicode NFC: a composed and a decomposed
                // `é` are one address.
                let lower: String = trimmed.to_lowercase().nfc().collect();
                if lower.chars().any(is_default_ignorable) {
                    return Err(bad(IdentifierProblem::EmailInvisibleCharacter));
                }
                let (local, domain) = lower
                    .split_once('@')
                    .ok_or_else(|| bad(IdentifierProblem::EmailNoAt))?;
                if !valid_local_part(local) {
                    return Err(bad(IdentifierProblem::EmailLocalPart));
                }
                let domain =
                    canonical_domain(domain).ok_or_else(|| bad(IdentifierProblem::EmailDomain))?;
                if local.len() + 1 + domain.len() > 254 {
                    return Err(bad(IdentifierProblem::EmailTooLong));
                }
                if self.gmail_folding && (domain == "gmail.com" || domain == "googlemail.com") {
                    // NFC again: dropping a dot can bring together two
                    // characters that compose (Hangul jamo, for one).
                    let local: String = local
                        .split('+')
                        .next()
                        .unwrap_or(local)
                        .replace('.', "")
                        .nfc()
                        .collect();
                    if local.is_empty() {
                        return Err(bad(IdentifierProblem::EmailEmptyAfterFolding));
                    }
                    return Ok(format!("{local}@gmail.com"));
                }
                Ok(format!("{local}@{domain}"))
            }
            IdType::Phone => {
                let region = parse_region(&self.default_region)?;
                let number = phonenumber::parse(Some(region), trimmed)
                    .map_err(|e| bad(IdentifierProblem::PhoneUnparseable(e.to_string())))?;
                if phones == PhoneValidation::Strict && !valid_number(&number) {
                    return Err(bad(IdentifierProblem::PhoneInvalid));
                }
                let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
                if e164.len() < 4 {
                    return Err(bad(IdentifierProblem::PhoneUnparseable(
                        "too few digits".into(),
                    )));
                }
                // The stored form must normalise to itself, or a lookup by
                // the value a profile holds would miss it. Some malformed
                // inputs format to an E.164 string that parses differently
                // (found by the normalize_identifier fuzz target).
                let again = phonenumber::parse(Some(region), &e164)
                    .map(|n| n.format().mode(phonenumber::Mode::E164).to_string());
                if again.ok().as_deref() != Some(e164.as_str()) {
                    return Err(bad(IdentifierProblem::PhoneUnstable));
                }
                Ok(e164)
            }
            _ => Ok(trimmed.to_string()),
        }
    }
}

#[cfg(test)]
#[path = "ids_tests.rs"]
mod tests;
