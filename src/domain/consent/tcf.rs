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
//! entries (is range 1, start 16, end 16 when a range).

use std::collections::BTreeSet;

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
}

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
    let max_vendor_id = b.take(16, "max vendor id")? as u16;
    let mut vendor_consents = BTreeSet::new();
    if b.flag("vendor encoding type")? {
        let entries = b.take(12, "vendor range entries")?;
        for _ in 0..entries {
            let is_range = b.flag("vendor range kind")?;
            let start = b.take(16, "vendor id")? as u16;
            let end = if is_range {
                b.take(16, "vendor range end")? as u16
            } else {
                start
            };
            if start == 0 || end < start || end > max_vendor_id {
                return Err(bad(format!(
                    "vendor range {start}-{end} outside 1..={max_vendor_id}"
                )));
            }
            vendor_consents.extend(start..=end);
        }
    } else {
        for id in 1..=max_vendor_id {
            if b.flag("vendor consent bits")? {
                vendor_consents.insert(id);
            }
        }
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
    })
}
