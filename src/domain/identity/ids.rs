//! Identifier types and normalisation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

pub(crate) fn parse_region(region: &str) -> Result<phonenumber::country::Id> {
    region.trim().to_ascii_uppercase().parse().map_err(|_| {
        Error::InvalidInput(format!(
            "unknown region {region:?}: expected an ISO 3166-1 alpha-2 code such as US"
        ))
    })
}

/// `atext` of RFC 5322 §3.2.3, widened by RFC 6531 to every non-ASCII
/// character that is not white space or a control character.
/// Not accepted even so: format characters that are not default-ignorable
/// (Arabic number signs, Egyptian hieroglyph controls, interlinear
/// annotation), private-use and non-characters, and look-alikes of `@`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii()
            && !c.is_whitespace()
            && !c.is_control()
            && !matches!(c as u32,
                0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2 | 0x110BD
                | 0x110CD | 0x13430..=0x1343F | 0xFFF9..=0xFFFB
                | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFDD0..=0xFDEF
                | 0xFFFE..=0xFFFF | 0xFF20 | 0xFE6B))
}

/// A dot-atom local part (no quoted strings), 1 to 64 bytes; no atom
/// starts with a combining mark (it would combine with the character before
/// the dot once Gmail folding drops the dot).
fn valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            atom.chars().all(is_atext)
                && atom
                    .chars()
                    .next()
                    .is_some_and(|c| !unicode_normalization::char::is_combining_mark(c))
        })
}

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties
/// 15.1): characters that render as nothing — zero-width spaces and
/// joiners, soft hyphen, bidi controls, variation selectors, tags.
fn is_default_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// The domain in its canonical ASCII form: UTS 46 processing (IDNA 2008,
/// STD3 rules, hyphen checks, DNS lengths) maps an internationalised name
/// to Punycode A-labels, so `bücher.de`, `BÜCHER.de` and `xn--bcher-kva.de`
/// are one domain. Then: two or more labels, the last not all digits (no
/// IP address). `None` when it is not a host name.
fn canonical_domain(domain: &str) -> Option<String> {
    if domain.ends_with('.') {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let host = ascii.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    host.then_some(ascii)
}

/// libphonenumber's validity check, exactly: the `phonenumber` port's
/// `is_valid` only requires a type's pattern to match at the *start* of the
/// national number and the length to be one the region allows, so a valid
/// 9-digit Dutch mobile padded with two digits (11 is an allowed Dutch
/// length) passes it. libphonenumber requires the whole number to match
/// (`matchesEntirely`). This runs the same descriptors anchored at both
/// ends: the general description and one type description (premium rate,
/// toll free, shared cost, VoIP, personal, pager, UAN, voicemail, fixed
/// line, mobile) must match the whole national number at an allowed length,
/// in some region of the number's country code.
fn valid_number(number: &phonenumber::PhoneNumber) -> bool {
    use phonenumber::metadata::{Descriptor, DATABASE};
    if !phonenumber::is_valid(number) {
        return false;
    }
    let national = number.national().to_string();
    let whole = |d: &Descriptor| {
        (d.possible_length().is_empty() || d.possible_length().contains(&(national.len() as u16)))
            && matches_entirely(d.national_number().as_str(), &national)
    };
    let Some(regions) = DATABASE.by_code(&number.code().value()) else {
        return false;
    };
    regions.into_iter().any(|meta| {
        let d = meta.descriptors();
        whole(d.general())
            && [
                d.premium_rate(),
                d.toll_free(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
                d.fixed_line(),
                d.mobile(),
            ]
            .into_iter()
            .flatten()
            .any(whole)
    })
}

/// Whether `pattern` (a libphonenumber metadata pattern, white space
/// insignificant) matches all of `text`. Compiled patterns are cached: the
/// metadata holds a bounded set of them.
fn matches_entirely(pattern: &str, text: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock};
    type Cache = parking_lot::RwLock<HashMap<String, Option<Arc<regex::Regex>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let cached = cache.read().get(pattern).cloned();
    let compiled = match cached {
        Some(c) => c,
        None => {
            let c = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .ignore_whitespace(true)
                .build()
                .ok()
                .map(Arc::new);
            cache.write().insert(pattern.to_string(), c.clone());
            c
        }
    };
    // A pattern that does not compile matches nothing (refuse, never guess).
    compiled.is_some_and(|re| re.is_match(text))
}

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
mod tests {
    use super::*;

    fn strict(region: &str) -> Normalization {
        Normalization {
            default_region: region.into(),
            ..Normalization::default()
        }
    }

    fn lenient(region: &str) -> Normalization {
        Normalization {
            phone_validation: PhoneValidation::Lenient,
            ..strict(region)
        }
    }

    fn problem(r: Result<String>) -> IdentifierProblem {
        match r {
            Err(Error::InvalidIdentifier { reason, .. }) => reason,
            other => panic!("expected InvalidIdentifier, got {other:?}"),
        }
    }

    /// (default region, input, E.164), written out by hand; most are
    /// libphonenumber's example numbers for their region and type.
    const VALID_PHONES: &[(&str, &str, &str)] = &[
        ("US", "(201) 555-0123", "+12015550123"),
        ("US", "+1 (415) 555-0100", "+14155550100"),
        ("US", "415-555-0100", "+14155550100"),
        ("US", " (415) 555 0100 ", "+14155550100"),
        ("US", "+44 20 7183 8750", "+442071838750"),
        ("GB", "020 7183 8750", "+442071838750"),
        ("GB", "07400 123456", "+447400123456"),
        ("DE", "030 123456", "+4930123456"),
        ("DE", "+49 1512 3456789", "+4915123456789"),
        ("FR", "01 23 45 67 89", "+33123456789"),
        ("FR", "06 12 34 56 78", "+33612345678"),
        ("IN", "081234 56789", "+918123456789"),
        ("JP", "03-1234-5678", "+81312345678"),
        ("BR", "(11) 96123-4567", "+5511961234567"),
        ("AU", "0412 345 678", "+61412345678"),
        ("NL", "06 12345678", "+31612345678"),
        ("NL", "+31 6 5043 6083", "+31650436083"),
    ];

    /// Parse, but libphonenumber calls them invalid: strict refuses them,
    /// lenient keeps them.
    const PARSEABLE_INVALID_PHONES: &[(&str, &str)] = &[
        ("US", "12345"),
        ("US", "+1 415 555 01000000"),
        ("US", "(123) 456-7890"),
        ("US", "555-0100"),
        ("GB", "020 7183 875"),
        // The `phonenumber` port's own `is_valid` accepts these two: a
        // valid prefix padded to another allowed length (see valid_number).
        ("NL", "+31 6 5043 6083 07"),
        ("BR", "+55 46 7585 13893"),
    ];

    /// Refused in both modes.
    const UNPARSEABLE_PHONES: &[(&str, &str)] = &[
        ("US", "call me maybe"),
        ("US", "12"),
        ("US", "+"),
        ("GB", "+999 1234 5678"),
        ("US", "+1 415 555 0100 2222 3333 4444 5555"),
        // All zeros: no national number is left after the leading zeros.
        ("US", "0000000000"),
        ("DE", "+49 0000 000000"),
        ("AU", "0000 000 000"),
    ];

    #[test]
    fn valid_phones_normalise_in_both_modes() {
        for (region, input, e164) in VALID_PHONES {
            for n in [strict(region), lenient(region)] {
                assert_eq!(
                    n.normalize(&Identifier::phone(*input)).ok().as_deref(),
                    Some(*e164),
                    "{region} {input} ({:?})",
                    n.phone_validation
                );
            }
        }
    }

    #[test]
    fn invalid_phones_are_refused_when_strict_and_kept_when_lenient() {
        for (region, input) in PARSEABLE_INVALID_PHONES {
            let r = strict(region).normalize(&Identifier::phone(*input));
            assert_eq!(
                problem(r),
                IdentifierProblem::PhoneInvalid,
                "{region} {input}"
            );
            let kept = lenient(region).normalize(&Identifier::phone(*input));
            let kept = kept.unwrap_or_else(|e| panic!("lenient {region} {input}: {e}"));
            assert!(kept.starts_with('+'), "{kept}");
        }
        for (region, input) in UNPARSEABLE_PHONES {
            for n in [strict(region), lenient(region)] {
                let r = n.normalize(&Identifier::phone(*input));
                assert!(
                    matches!(problem(r), IdentifierProblem::PhoneUnparseable(_)),
                    "{region} {input}"
                );
            }
        }
    }

    #[test]
    fn errors_never_echo_the_value() {
        let n = Normalization::default();
        let inputs = [
            Identifier::phone("12345"),
            Identifier::phone("call me maybe"),
            Identifier::email("secret.person@@example.com"),
            Identifier::email("secret.person-at-example.com"),
            Identifier::user_id(format!("secretuser{}", "x".repeat(600))),
        ];
        for id in inputs {
            let err = n.normalize(&id).expect_err("must be refused");
            let text = format!("{err} {err:?}");
            for needle in ["12345", "call me", "secret"] {
                assert!(!text.contains(needle), "{text}");
            }
        }
    }

    #[test]
    fn phone_without_a_stable_form_is_rejected() {
        // Found by the normalize_identifier fuzz target: this input used to
        // normalise to +40100909759, which itself normalises to +4000909759.
        // Strict mode refuses it earlier as invalid; lenient must still
        // refuse it as unstable.
        let r = lenient("US").normalize(&Identifier::phone("+4*0 1 1100909759"));
        assert_eq!(problem(r), IdentifierProblem::PhoneUnstable);
        let r = strict("US").normalize(&Identifier::phone("+4*0 1 1100909759"));
        assert!(r.is_err());
    }

    #[test]
    fn email_grammar() {
        let n = Normalization::default();
        let valid = [
            ("ada@example.com", "ada@example.com"),
            (" Ada@Example.COM", "ada@example.com"),
            ("ADA@EXAMPLE.COM \t", "ada@example.com"),
            (
                "Ada.Lovelace+tag@Example.co.uk",
                "ada.lovelace+tag@example.co.uk",
            ),
            ("o'brien@example.ie", "o'brien@example.ie"),
            (
                "x_y-z{1}@sub-domain.example.com",
                "x_y-z{1}@sub-domain.example.com",
            ),
            ("José@Bücher.de", "josé@xn--bcher-kva.de"),
            ("jose\u{301}@BÜCHER.DE", "josé@xn--bcher-kva.de"),
            ("a@xn--bcher-kva.de", "a@xn--bcher-kva.de"),
            ("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
            ("ada@ｅｘａｍｐｌｅ.com", "ada@example.com"),
            ("a@b.io", "a@b.io"),
        ];
        for (input, want) in valid {
            assert_eq!(
                n.normalize(&Identifier::email(input)).ok().as_deref(),
                Some(want),
                "{input}"
            );
        }
        use IdentifierProblem::*;
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_label = format!("a@{}.com", "b".repeat(64));
        let long_domain = format!("a@{}.com", vec!["c".repeat(60); 5].join("."));
        let long_total = format!(
            "{}@{}.com",
            "a".repeat(64),
            vec!["c".repeat(63); 3].join(".")
        );
        let invalid: Vec<(&str, IdentifierProblem)> = vec![
            ("no-at-sign", EmailNoAt),
            ("", Empty),
            ("@example.com", EmailLocalPart),
            ("ada@", EmailDomain),
            ("a..b@example.com", EmailLocalPart),
            (".ada@example.com", EmailLocalPart),
            ("ada.@example.com", EmailLocalPart),
            ("\"ada\"@example.com", EmailLocalPart),
            ("a b@example.com", EmailLocalPart),
            ("a(b)@example.com", EmailLocalPart),
            ("a@b@example.com", EmailDomain),
            ("ada@localhost", EmailDomain),
            ("ada@example..com", EmailDomain),
            ("ada@-example.com", EmailDomain),
            ("ada@example-.com", EmailDomain),
            ("ada@example.com.", EmailDomain),
            ("ada@[192.168.0.1]", EmailDomain),
            ("ada@1.2.3.4", EmailDomain),
            ("ada@exa mple.com", EmailDomain),
            ("ada@exa_mple.com", EmailDomain),
            (&long_local, EmailLocalPart),
            (&long_label, EmailDomain),
            (&long_domain, EmailDomain),
            (&long_total, EmailTooLong),
            ("ada\u{200b}@example.com", EmailInvisibleCharacter),
            ("a\u{ad}da@example.com", EmailInvisibleCharacter),
            ("ada@exa\u{202e}mple.com", EmailInvisibleCharacter),
            ("ada@ab--cd.com", EmailDomain),
            ("ada\u{ff20}x@example.com", EmailLocalPart),
            ("ada\u{e000}@example.com", EmailLocalPart),
            ("ada\u{600}@example.com", EmailLocalPart),
        ];
        for (input, want) in invalid {
            let r = n.normalize(&Identifier::email(input));
            assert_eq!(problem(r), want, "{input:?}");
        }
    }

    #[test]
    fn gmail_folding() {
        let n = Normalization::default();
        assert_eq!(
            n.normalize(&Identifier::email("A.Da+x@gmail.com")).unwrap(),
            "a.da+x@gmail.com"
        );
        let g = Normalization {
            gmail_folding: true,
            ..Normalization::default()
        };
        assert_eq!(
            g.normalize(&Identifier::email("A.Da+x@googlemail.com"))
                .unwrap(),
            "ada@gmail.com"
        );
        assert_eq!(
            g.normalize(&Identifier::email("a.da+x@example.com"))
                .unwrap(),
            "a.da+x@example.com"
        );
        assert_eq!(
            problem(g.normalize(&Identifier::email("+x@gmail.com"))),
            IdentifierProblem::EmailEmptyAfterFolding
        );
    }

    #[test]
    fn gmail_folding_stays_idempotent_when_dropping_a_dot_composes() {
        let g = Normalization {
            gmail_folding: true,
            ..Normalization::default()
        };
        // Two Hangul jamo separated by a dot compose once it is dropped.
        let once = g
            .normalize(&Identifier::email("\u{1100}.\u{1161}@gmail.com"))
            .unwrap();
        assert_eq!(once, "\u{AC00}@gmail.com");
        assert_eq!(
            g.normalize(&Identifier::email(once.as_str())).unwrap(),
            once
        );
        // An atom may not start with a combining mark.
        for input in ["e.\u{301}x@gmail.com", "\u{301}a@example.com"] {
            assert_eq!(
                problem(g.normalize(&Identifier::email(input))),
                IdentifierProblem::EmailLocalPart,
                "{input:?}"
            );
        }
    }

    #[test]
    fn legacy_email_forms_where_today_differs() {
        let n = Normalization::default();
        let legacy = |s: &str| {
            let id = Identifier::email(s);
            let now = n.normalize(&id).ok();
            n.legacy_email_form(&id, now.as_deref())
        };
        assert_eq!(legacy(" Ada@Example.com"), None);
        assert_eq!(legacy("José@Bücher.de").as_deref(), Some("josé@bücher.de"));
        assert_eq!(legacy("ada@localhost").as_deref(), Some("ada@localhost"));
        assert_eq!(legacy("a b@example.com"), None, "refused then too");
        assert_eq!(legacy("no-at-sign"), None);
        assert_eq!(
            n.lookup_forms(&Identifier::email("ada@localhost")).unwrap(),
            ["ada@localhost"]
        );
        assert_eq!(
            n.lookup_forms(&Identifier::email("José@Bücher.de"))
                .unwrap(),
            ["josé@xn--bcher-kva.de", "josé@bücher.de"]
        );
        assert!(n.lookup_forms(&Identifier::email("no-at-sign")).is_err());
    }

    #[test]
    fn ids_are_trimmed_and_non_empty() {
        let n = Normalization::default();
        assert_eq!(n.normalize(&Identifier::user_id("  u-1 ")).unwrap(), "u-1");
        assert_eq!(
            problem(n.normalize(&Identifier::device_id("   "))),
            IdentifierProblem::Empty
        );
        assert_eq!(
            problem(n.normalize(&Identifier::user_id("x".repeat(600)))),
            IdentifierProblem::TooLong
        );
    }

    #[test]
    fn configs_written_before_phone_validation_existed_read_as_strict() {
        let old = r#"{"default_region":"GB","gmail_folding":false}"#;
        let n: Normalization = serde_json::from_str(old).unwrap();
        assert_eq!(n.phone_validation, PhoneValidation::Strict);
        let lenient: Normalization =
            serde_json::from_str(r#"{"default_region":"GB","phone_validation":"lenient"}"#)
                .unwrap();
        assert_eq!(lenient.phone_validation, PhoneValidation::Lenient);
    }

    /// Normalisation is idempotent for random text drawn from the
    /// characters that stress it: case pairs whose lower case differs in
    /// length (`İ`, `ẞ`), combining marks (NFC), full-width and other
    /// UTS 46 mappings, invisible characters, Punycode prefixes, dots, `@`,
    /// `+`, digits and phone punctuation. Seeded, so a failure repeats.
    #[test]
    fn normalisation_is_idempotent_on_random_text() {
        use rand::{Rng, SeedableRng};
        const ALPHABET: &[&str] = &[
            "a",
            "B",
            "z",
            "é",
            "e\u{301}",
            "İ",
            "ẞ",
            "ß",
            "Σ",
            "ς",
            "\u{301}",
            "\u{308}",
            "ｅ",
            "Ａ",
            "１",
            "。",
            ".",
            "..",
            "@",
            "+",
            "-",
            "_",
            "xn--",
            "xn--bcher-kva",
            "例",
            "ü",
            "\u{200b}",
            "\u{ad}",
            " ",
            "0",
            "1",
            "4",
            "7",
            "9",
            "(",
            ")",
            "+1",
            "+44",
            "+49",
            "+31",
            "*",
            "#",
            "ext",
            "x",
            "gmail.com",
            "googlemail.com",
            ".com",
            ".de",
            "ǅ",
            "ﬁ",
            "\u{130}",
            "\u{1E9E}",
            "\u{212A}",
            "\u{FF0E}",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let types = [IdType::Email, IdType::Phone, IdType::UserId];
        let mut normalised = 0;
        for i in 0..60_000 {
            let n = Normalization {
                default_region: ["US", "GB", "DE", "NL"][i % 4].into(),
                gmail_folding: i % 3 == 0,
                phone_validation: if i % 5 == 0 {
                    PhoneValidation::Lenient
                } else {
                    PhoneValidation::Strict
                },
            };
            let len = rng.gen_range(1..12);
            let text: String = (0..len)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
                .collect();
            let id_type = types[i % types.len()].clone();
            let Ok(once) = n.normalize(&Identifier::new(id_type.clone(), text.as_str())) else {
                continue;
            };
            normalised += 1;
            let twice = n.normalize(&Identifier::new(id_type.clone(), once.as_str()));
            assert_eq!(twice.as_ref().ok(), Some(&once), "{id_type}: {text:?}");
            let found = n.normalize_for_lookup(&Identifier::new(id_type.clone(), once.as_str()));
            assert_eq!(
                found.as_ref().ok(),
                Some(&once),
                "lookup {id_type}: {text:?}"
            );
        }
        assert!(normalised > 5_000, "only {normalised} inputs normalised");
    }

    /// A number that normalises in strict mode normalises to the same
    /// E.164 form in lenient mode and for lookup (valid numbers have one
    /// form whatever the mode).
    #[test]
    fn valid_numbers_have_one_form_in_every_mode() {
        for (region, input, e164) in VALID_PHONES {
            let id = Identifier::phone(*input);
            assert_eq!(strict(region).normalize_for_lookup(&id).unwrap(), *e164);
            assert_eq!(lenient(region).normalize(&id).unwrap(), *e164);
        }
    }
}
