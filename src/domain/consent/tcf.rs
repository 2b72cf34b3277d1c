//! IAB TCF v2.2 TC string decoding (core segment).
//!
//! Layout (bits, big-endian within the base64url-decoded bytes): version 6,
//! created 36 (deciseconds), last updated 36, CMP id 12, CMP version 12,
//! consent screen 6, consent language 12 (two 6-bit letters), vendor list
//! version 12, TCF policy version 6, is service specific 1, use non-standard
//! texts 1, special feature opt-ins 12, purpose consents 24, purpose
//! legitimate interests 24, purpose one treatment 1, publisher country 12,
//! then the vendor consent section: max vendor id 16, is range encoding 1,
//! and either a bitfield of max-vendor-id bits or num entries 12 followed by
//! entries (is range 1, start 16, end 16 when a range); the vendor
//! legitimate-interest section, encoded the same way; and the publisher
//! restrictions: num 12, then per restriction purpose 6, type 2 and a
//! range section (num entries 12, entries as above).

use std::collections::BTreeSet;

use super::record::{ConsentRecord, ConsentStatus, LegalBasis};
use crate::error::{Error, Result};
use crate::types::Timestamp;

/// A decoded TC string (core segment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcString {
    /// Always 2.
    pub version: u8,
    /// When the string was first created.
    pub created: Timestamp,
    /// When it was last updated.
    pub last_updated: Timestamp,
    /// Consent management platform id.
    pub cmp_id: u16,
    /// CMP version.
    pub cmp_version: u16,
    /// Screen number in the CMP.
    pub consent_screen: u8,
    /// Two-letter language (ISO 639-1, upper case).
    pub consent_language: String,
    /// Global vendor list version.
    pub vendor_list_version: u16,
    /// TCF policy version.
    pub policy_version: u8,
    /// Consent applies to this service only.
    pub is_service_specific: bool,
    /// Non-standard texts were used.
    pub use_non_standard_texts: bool,
    /// Special features opted in (1-based).
    pub special_feature_opt_ins: BTreeSet<u8>,
    /// Purposes consented to (1-based).
    pub purpose_consents: BTreeSet<u8>,
    /// Purposes with legitimate interest established (1-based).
    pub purpose_legitimate_interests: BTreeSet<u8>,
    /// Purpose one treatment flag.
    pub purpose_one_treatment: bool,
    /// Publisher country (ISO 3166-1 alpha-2).
    pub publisher_country: String,
    /// Highest vendor id in the vendor consent section.
    pub max_vendor_id: u16,
    /// Vendors consented to.
    pub vendor_consents: BTreeSet<u16>,
    /// Vendors whose legitimate interest the user did not object to.
    pub vendor_legitimate_interests: BTreeSet<u16>,
    /// Publisher restrictions: per purpose, a restriction type for a set
    /// of vendors.
    pub publisher_restrictions: Vec<PublisherRestriction>,
}

/// A publisher restriction of a TC string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherRestriction {
    /// The purpose restricted (1-based).
    pub purpose: u8,
    /// 0 purpose flatly not allowed, 1 consent required, 2 legitimate
    /// interest required.
    pub kind: u8,
    /// The vendors it applies to.
    pub vendors: BTreeSet<u16>,
}

impl TcString {
    /// Whether vendor `vendor` may process for TCF purpose `purpose` under
    /// this string alone, and on which basis: purpose consent and vendor
    /// consent, or purpose legitimate interest and vendor legitimate
    /// interest (never for purposes 1, 3, 4, 5 and 6, which TCF v2.2 allows
    /// only on consent), after the publisher's restrictions for that
    /// vendor and purpose (type 0 forbids, 1 requires consent, 2
    /// legitimate interest).
    ///
    /// ```
    /// let tc = lethedb::tcf::decode("CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA")?;
    /// assert_eq!(tc.vendor_basis(1, 1), None);
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn vendor_basis(&self, vendor: u16, purpose: u8) -> Option<LegalBasis> {
        let p = usize::from(purpose);
        let signals = VendorSignals {
            purpose_consent: self.purpose_consents.contains(&purpose),
            purpose_li: self.purpose_legitimate_interests.contains(&purpose),
            vendor_consent: self.vendor_consents.contains(&vendor),
            vendor_li: self.vendor_legitimate_interests.contains(&vendor),
            restriction: self
                .publisher_restrictions
                .iter()
                .find(|r| r.purpose == purpose && r.vendors.contains(&vendor))
                .map(|r| r.kind),
        };
        (1..=24)
            .contains(&p)
            .then(|| signals.basis(purpose))
            .flatten()
    }
}

/// What a TC string says about one vendor and one purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VendorSignals {
    purpose_consent: bool,
    purpose_li: bool,
    vendor_consent: bool,
    vendor_li: bool,
    /// The first publisher restriction of the purpose naming the vendor.
    restriction: Option<u8>,
}

impl VendorSignals {
    /// The basis the vendor may process on (TCF v2.2 policy): consent on
    /// both purpose and vendor consent; legitimate interest on both LI
    /// signals, never for purposes 1 and 3–6; restriction type 0 forbids,
    /// 1 leaves only consent, 2 only legitimate interest.
    pub(crate) fn basis(self, purpose: u8) -> Option<LegalBasis> {
        let consent = self.restriction != Some(2) && self.purpose_consent && self.vendor_consent;
        let li = self.restriction != Some(1)
            && !matches!(purpose, 1 | 3..=6)
            && self.purpose_li
            && self.vendor_li;
        match self.restriction {
            Some(0) => None,
            _ if consent => Some(LegalBasis::Consent),
            _ if li => Some(LegalBasis::LegitimateInterests),
            _ => None,
        }
    }

    /// Whether a publisher restriction of type 0 names the vendor.
    pub(crate) fn forbidden(self) -> bool {
        self.restriction == Some(0)
    }
}

/// The signals of one vendor and purpose, read from a TC string without
/// building its vendor sets: a bitfield is one bit looked up, ranges are
/// compared, not expanded (the vendor query's path; `decode` answers the
/// same, see the test).
pub(crate) fn vendor_signals(s: &str, vendor: u16, purpose: u8) -> Result<VendorSignals> {
    let core = s.trim().split('.').next().unwrap_or("");
    if core.is_empty() || core.len() > 65_536 {
        return Err(bad("empty or longer than 64 KiB"));
    }
    let data = base64url(core)?;
    let mut b = Bits {
        data: &data,
        pos: 0,
        expanded: 0,
    };
    let version = b.take(6, "version")?;
    if version != 2 {
        return Err(bad(format!(
            "version {version} is not supported (expected 2)"
        )));
    }
    // created 36, last updated 36, CMP id 12, CMP version 12, screen 6,
    // language 12 (two letters, checked as `decode` does), vendor list
    // version 12, policy version 6, two flags, special features 12.
    b.skip(102, "header")?;
    b.letters("consent language")?;
    b.skip(32, "header")?;
    let p = usize::from(purpose);
    let purposes = b.take(24, "purpose consents")?;
    let purposes_li = b.take(24, "purpose legitimate interests")?;
    let bit = |v: u64| (1..=24).contains(&p) && (v >> (24 - p)) & 1 == 1;
    let mut out = VendorSignals {
        purpose_consent: bit(purposes),
        purpose_li: bit(purposes_li),
        ..VendorSignals::default()
    };
    b.skip(1, "purpose one treatment")?;
    b.letters("publisher country")?;
    out.vendor_consent = b.vendor_in(vendor, "vendor consents")?;
    out.vendor_li = b.vendor_in(vendor, "vendor legitimate interests")?;
    let restrictions = b.take(12, "publisher restrictions")?;
    for _ in 0..restrictions {
        let rp = b.take(6, "restricted purpose")?;
        let kind = b.take(2, "restriction type")? as u8;
        if kind == 3 {
            return Err(bad("publisher restriction type 3 is reserved"));
        }
        let named = b.in_ranges(vendor, "restricted vendors", u16::MAX)?;
        if named && rp == u64::from(purpose) && out.restriction.is_none() {
            out.restriction = Some(kind);
        }
    }
    Ok(out)
}

fn bad(reason: impl Into<String>) -> Error {
    Error::InvalidTcString(reason.into())
}

/// The six-bit value of a base64url (or base64) character.
pub(crate) fn base64url_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' | b'+' => Some(62),
        b'_' | b'/' => Some(63),
        _ => None,
    }
}

fn base64url(s: &str) -> Result<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for (i, c) in s.trim_end_matches('=').bytes().enumerate() {
        let v = base64url_value(c).ok_or_else(|| bad(format!("character {i} is not base64url")))?;
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Ok(out)
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// Vendor ids the string's ranges have named so far.
    expanded: usize,
}

/// Most vendor ids the ranges of one TC string may name in all (vendor
/// consents, vendor legitimate interests, publisher restrictions): a real
/// string names a few thousand; a crafted one of a few kilobytes could
/// otherwise name hundreds of millions.
const MAX_EXPANDED_IDS: usize = 1 << 18;

impl Bits<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<u64> {
        if self.pos + n > self.data.len() * 8 {
            return Err(bad(format!(
                "truncated: {what} needs {n} bits at bit {}",
                self.pos
            )));
        }
        let mut v = 0u64;
        for _ in 0..n {
            let bit = (self.data[self.pos / 8] >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u64::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }

    fn flag(&mut self, what: &str) -> Result<bool> {
        Ok(self.take(1, what)? == 1)
    }

    fn set(&mut self, n: usize, what: &str) -> Result<BTreeSet<u8>> {
        let mut out = BTreeSet::new();
        for i in 1..=n {
            if self.flag(what)? {
                out.insert(i as u8);
            }
        }
        Ok(out)
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<()> {
        if self.pos + n > self.data.len() * 8 {
            return Err(bad(format!(
                "truncated: {what} needs {n} bits at bit {}",
                self.pos
            )));
        }
        self.pos += n;
        Ok(())
    }

    /// Whether a vendor section names `vendor`: one bit of a bitfield, or
    /// a comparison per range.
    fn vendor_in(&mut self, vendor: u16, what: &str) -> Result<bool> {
        let max = self.take(16, what)? as u16;
        if self.flag(what)? {
            return self.in_ranges(vendor, what, max);
        }
        let start = self.pos;
        self.skip(usize::from(max), what)?;
        if vendor == 0 || vendor > max {
            return Ok(false);
        }
        let at = start + usize::from(vendor) - 1;
        Ok((self.data[at / 8] >> (7 - at % 8)) & 1 == 1)
    }

    /// Whether a range section names `vendor` (compared, not expanded).
    fn in_ranges(&mut self, vendor: u16, what: &str, max: u16) -> Result<bool> {
        let mut found = false;
        self.each_range(what, max, |start, end| {
            found |= (start..=end).contains(&vendor)
        })?;
        Ok(found)
    }

    /// A vendor section: max vendor id, then a bitfield or ranges.
    fn vendors(&mut self, what: &str) -> Result<(u16, BTreeSet<u16>)> {
        let max = self.take(16, what)? as u16;
        if self.flag(what)? {
            Ok((max, self.ranges(what, max)?))
        } else {
            let mut out = BTreeSet::new();
            for id in 1..=max {
                if self.flag(what)? {
                    out.insert(id);
                }
            }
            Ok((max, out))
        }
    }

    /// The ids a range section names, as a set.
    fn ranges(&mut self, what: &str, max: u16) -> Result<BTreeSet<u16>> {
        let mut out = BTreeSet::new();
        self.each_range(what, max, |start, end| out.extend(start..=end))?;
        Ok(out)
    }

    /// Num entries (12 bits), then per entry: is range 1, start 16, end 16
    /// when a range; every range within `1..=max`, and all of a string's
    /// ranges together naming at most `MAX_EXPANDED_IDS` ids.
    fn each_range(&mut self, what: &str, max: u16, mut f: impl FnMut(u16, u16)) -> Result<()> {
        let entries = self.take(12, what)?;
        for _ in 0..entries {
            let is_range = self.flag(what)?;
            let start = self.take(16, what)? as u16;
            let end = if is_range {
                self.take(16, what)? as u16
            } else {
                start
            };
            if start == 0 || end < start || end > max {
                return Err(bad(format!(
                    "{what}: range {start}-{end} outside 1..={max}"
                )));
            }
            self.expanded += usize::from(end - start) + 1;
            if self.expanded > MAX_EXPANDED_IDS {
                return Err(bad(format!(
                    "{what}: the ranges name more than {MAX_EXPANDED_IDS} vendor ids"
                )));
            }
            f(start, end);
        }
        Ok(())
    }

    fn letters(&mut self, what: &str) -> Result<String> {
        let a = self.take(6, what)?;
        let b = self.take(6, what)?;
        if a > 25 || b > 25 {
            return Err(bad(format!("{what} is not two letters")));
        }
        Ok([a, b].iter().map(|&x| char::from(b'A' + x as u8)).collect())
    }
}

/// Decodes a TC string. Only the core segment (before the first `.`) is read.
///
/// ```
/// let tc = lethedb::tcf::decode("COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA")?;
/// assert_eq!((tc.cmp_id, tc.vendor_list_version), (3, 48));
/// assert!(tc.vendor_consents.contains(&626));
/// Ok::<_, lethedb::Error>(())
/// ```
pub fn decode(s: &str) -> Result<TcString> {
    let core = s.trim().split('.').next().unwrap_or("");
    if core.is_empty() {
        return Err(bad("empty"));
    }
    if core.len() > 65_536 {
        return Err(bad("longer than 64 KiB"));
    }
    let data = base64url(core)?;
    let mut b = Bits {
        data: &data,
        pos: 0,
        expanded: 0,
    };
    let version = b.take(6, "version")? as u8;
    if version != 2 {
        return Err(bad(format!(
            "version {version} is not supported (expected 2)"
        )));
    }
    let ts = |d: u64| Timestamp(i64::try_from(d).unwrap_or(i64::MAX / 100_000) * 100_000);
    let created = ts(b.take(36, "created")?);
    let last_updated = ts(b.take(36, "last updated")?);
    let cmp_id = b.take(12, "CMP id")? as u16;
    let cmp_version = b.take(12, "CMP version")? as u16;
    let consent_screen = b.take(6, "consent screen")? as u8;
    let consent_language = b.letters("consent language")?;
    let vendor_list_version = b.take(12, "vendor list version")? as u16;
    let policy_version = b.take(6, "policy version")? as u8;
    let is_service_specific = b.flag("is service specific")?;
    let use_non_standard_texts = b.flag("use non-standard texts")?;
    let special_feature_opt_ins = b.set(12, "special features")?;
    let purpose_consents = b.set(24, "purpose consents")?;
    let purpose_legitimate_interests = b.set(24, "purpose legitimate interests")?;
    let purpose_one_treatment = b.flag("purpose one treatment")?;
    let publisher_country = b.letters("publisher country")?;
    let (max_vendor_id, vendor_consents) = b.vendors("vendor consents")?;
    let (_, vendor_legitimate_interests) = b.vendors("vendor legitimate interests")?;
    let restrictions = b.take(12, "publisher restrictions")?;
    let mut publisher_restrictions = Vec::new();
    for _ in 0..restrictions {
        let purpose = b.take(6, "restricted purpose")? as u8;
        let kind = b.take(2, "restriction type")? as u8;
        if kind == 3 {
            return Err(bad("publisher restriction type 3 is reserved"));
        }
        let vendors = b.ranges("restricted vendors", u16::MAX)?;
        publisher_restrictions.push(PublisherRestriction {
            purpose,
            kind,
            vendors,
        });
    }
    Ok(TcString {
        version,
        created,
        last_updated,
        cmp_id,
        cmp_version,
        consent_screen,
        consent_language,
        vendor_list_version,
        policy_version,
        is_service_specific,
        use_non_standard_texts,
        special_feature_opt_ins,
        purpose_consents,
        purpose_legitimate_interests,
        purpose_one_treatment,
        publisher_country,
        max_vendor_id,
        vendor_consents,
        vendor_legitimate_interests,
        publisher_restrictions,
    })
}

/// Consent records a TC string implies: one per TCF purpose 1–11 — granted
/// on consent if its consent bit is set, else granted on legitimate interests
/// if that bit is set, else denied — with the TC string as proof.
pub(crate) fn records_from_tcf(tc: &TcString, text: &str) -> Vec<ConsentRecord> {
    (1u8..=11)
        .map(|p| {
            let (status, basis) = if tc.purpose_consents.contains(&p) {
                (ConsentStatus::Granted, LegalBasis::Consent)
            } else if tc.purpose_legitimate_interests.contains(&p) {
                (ConsentStatus::Granted, LegalBasis::LegitimateInterests)
            } else {
                (ConsentStatus::Denied, LegalBasis::Consent)
            };
            let mut r = ConsentRecord::new(format!("tcf:{p}"), status)
                .legal_basis(basis)
                .at(tc.last_updated)
                .source(format!("tcf:cmp:{}:{}", tc.cmp_id, tc.cmp_version))
                .policy_version(format!(
                    "tcf-policy:{};gvl:{}",
                    tc.policy_version, tc.vendor_list_version
                ))
                .proof(text.trim());
            r.jurisdiction = Some(tc.publisher_country.clone());
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendor query's reader answers as the full decoder does, for
    /// every vendor and purpose of published strings (a bitfield one and a
    /// range-encoded one) and around their edges.
    #[test]
    fn vendor_signals_agree_with_the_decoder() {
        for s in [
            "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA",
            "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA",
        ] {
            let tc = decode(s).unwrap();
            for vendor in 0..=700u16 {
                for purpose in 0..=25u8 {
                    let fast = vendor_signals(s, vendor, purpose).unwrap();
                    let want = if (1..=24).contains(&purpose) {
                        tc.vendor_basis(vendor, purpose)
                    } else {
                        None
                    };
                    assert_eq!(fast.basis(purpose), want, "{vendor} {purpose}");
                }
            }
        }
        assert!(vendor_signals("COyfVVoOyfVVoADACHENAw", 1, 1).is_err());
    }
}
