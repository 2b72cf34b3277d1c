//! IAB Global Privacy Platform (GPP) strings: the header, the US sections
//! (`usnat`, `usca`, `usva`, `usco`, `usut`, `usct`), the legacy US
//! Privacy string (`uspv1`) and `tcfeuv2` (through the TCF decoder), and
//! the consent records they imply. A GPP string is `header~section~section…`;
//! the header is base64url (no padding) of: type int(6) = 3, version
//! int(6) = 1, and the section ids as a Fibonacci range — int(12) count,
//! then per item a bit (0 single, 1 group), a Fibonacci-coded offset from
//! the last id seen (0 for the first), and for a group a Fibonacci-coded
//! length (IAB Tech Lab, "Consent String Specification", GPP v1).

use std::collections::BTreeMap;

use super::record::{ConsentRecord, ConsentStatus, LegalBasis};
use super::tcf::records_from_tcf;
use crate::error::{Error, Result};
use crate::types::Timestamp;

pub use super::gpp_layouts::SENSITIVE_PURPOSES;
use super::gpp_layouts::{Width, LAYOUTS};

/// Most section ids one header may list (the registry has about twenty).
pub const MAX_SECTIONS: usize = 64;

/// A decoded GPP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GppHeader {
    /// GPP specification version (1).
    pub version: u8,
    /// Section ids in the order their sections follow the header
    /// (2 `tcfeuv2`, 7 `usnat`, 8 `usca`, 9 `usva`, 10 `usco`, 11 `usut`,
    /// 12 `usct`, …).
    pub section_ids: Vec<u16>,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::InvalidGppString(reason.into())
}

/// Bits of a base64url text, six per character, most significant first.
/// Errors name the section (empty for the header) and the field; nothing
/// is formatted unless one occurs.
struct Sextets {
    values: Vec<u8>,
    pos: usize,
    section: &'static str,
}

impl Sextets {
    fn new(text: &str, section: &'static str, part: &str) -> Result<Self> {
        let mut values = Vec::with_capacity(text.len());
        for (i, c) in text.bytes().enumerate() {
            match crate::domain::consent::tcf::base64url_value(c) {
                Some(v) => values.push(v),
                None => {
                    return Err(in_section(
                        section,
                        format!("{part}: character {i} is not base64url"),
                    ))
                }
            }
        }
        Ok(Sextets {
            values,
            pos: 0,
            section,
        })
    }

    fn err(&self, msg: String) -> Error {
        in_section(self.section, msg)
    }

    fn bit(&mut self, what: &str) -> Result<bool> {
        let Some(v) = self.values.get(self.pos / 6) else {
            return Err(self.err(format!("truncated: {what} at bit {}", self.pos)));
        };
        let b = (v >> (5 - self.pos % 6)) & 1;
        self.pos += 1;
        Ok(b == 1)
    }

    fn int(&mut self, n: usize, what: &str) -> Result<u64> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit(what)?);
        }
        Ok(v)
    }

    /// A Fibonacci-coded integer: bit i (from 0) stands for F(i + 2)
    /// (1, 2, 3, 5, 8, …); the code ends with the first two 1s in a row.
    fn fibonacci(&mut self, what: &str) -> Result<u64> {
        let (mut a, mut b) = (1u64, 2u64);
        let mut sum = 0u64;
        let mut prev = false;
        for _ in 0..32 {
            let bit = self.bit(what)?;
            if bit && prev {
                return Ok(sum);
            }
            if bit {
                sum += a;
            }
            prev = bit;
            (a, b) = (b, a + b);
        }
        Err(self.err(format!("{what}: Fibonacci code longer than 32 bits")))
    }
}

/// An error about `section` (`""`: the header).
fn in_section(section: &str, msg: String) -> Error {
    if section.is_empty() {
        bad(msg)
    } else {
        bad(format!("section {section}: {msg}"))
    }
}

/// Decodes the header of a GPP string (the part before the first `~`, or
/// the whole string) and checks that as many sections follow as it lists.
///
/// ```
/// let h = lethedb::gpp::decode_header("DBACNY~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN")?;
/// assert_eq!((h.version, h.section_ids), (1, vec![2, 6]));
/// Ok::<_, lethedb::Error>(())
/// ```
pub fn decode_header(gpp: &str) -> Result<GppHeader> {
    let mut parts = gpp.split('~');
    let header = parts.next().unwrap_or_default();
    let mut s = Sextets::new(header, "", "header")?;
    let kind = s.int(6, "header type")?;
    if kind != 3 {
        return Err(bad(format!(
            "header type {kind}, expected 3 (a TC string is not a GPP string)"
        )));
    }
    let version = s.int(6, "version")?;
    if version != 1 {
        return Err(bad(format!("GPP version {version}, this build reads 1")));
    }
    let count = s.int(12, "section count")? as usize;
    let mut ids: Vec<u16> = Vec::new();
    let mut last = 0u64;
    for item in 0..count {
        let group = s.bit("section range")?;
        let start = last + s.fibonacci("section offset")?;
        let end = if group {
            start + s.fibonacci("section group length")?
        } else {
            start
        };
        if end - start + ids.len() as u64 >= MAX_SECTIONS as u64 {
            return Err(bad(format!(
                "item {item}: more than {MAX_SECTIONS} section ids"
            )));
        }
        for id in start..=end {
            ids.push(u16::try_from(id).map_err(|_| bad("section id over 65535"))?);
        }
        last = end;
    }
    let sections = parts.count();
    if sections != ids.len() {
        return Err(bad(format!(
            "the header lists {} sections, {sections} follow it",
            ids.len()
        )));
    }
    Ok(GppHeader {
        version: version as u8,
        section_ids: ids,
    })
}

/// A decoded US section (`usnat` or a state section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsSection {
    /// Section name (`usnat`, `usca`, …).
    pub name: &'static str,
    /// Section id.
    pub id: u16,
    /// Jurisdiction the section speaks for (`US`, `US-CA`, …).
    pub jurisdiction: &'static str,
    /// Section version.
    pub version: u8,
    /// Every core-segment field by its specification name; 2-bit fields
    /// are 0 not applicable, 1 opted out / no consent / notice provided,
    /// 2 did not opt out / consent / notice not provided.
    pub fields: Vec<(&'static str, Vec<u8>)>,
    /// The GPC sub-segment, when present.
    pub gpc: Option<bool>,
}

impl UsSection {
    /// The value(s) of a core-segment field, by its specification name.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn one(&self, name: &str) -> u8 {
        self.field(name)
            .and_then(|v| v.first())
            .copied()
            .unwrap_or(0)
    }
}

/// One section of a GPP string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GppSection {
    /// 2 `tcfeuv2`: an EU TC string (core segment decoded).
    TcfEuV2(Box<crate::domain::consent::tcf::TcString>),
    /// 6 `uspv1`: the legacy US Privacy string (`1YNN`): version, notice,
    /// opt-out of sale, LSPA covered (`Y`, `N` or `-`).
    UsPrivacy {
        /// Notice given.
        notice: char,
        /// Opted out of sale.
        opt_out_sale: char,
        /// Covered by the LSPA.
        lspa: char,
    },
    /// 7–12: `usnat` and the state sections.
    Us(UsSection),
    /// A section this build does not read (kept so the caller can see it).
    Unsupported(u16),
}

/// A decoded GPP string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GppString {
    /// The header.
    pub header: GppHeader,
    /// The sections, in header order.
    pub sections: Vec<GppSection>,
}

/// Decodes a whole GPP string: the header and every section this build
/// reads; any malformed supported section is an error naming it.
///
/// ```
/// use lethedb::gpp::{decode, GppSection};
/// // usca: every notice given, every opt-out taken (IAB test data).
/// let g = decode("DBABBg~BVVVVVVY")?;
/// let GppSection::Us(ca) = &g.sections[0] else { panic!() };
/// assert_eq!((ca.name, ca.field("SaleOptOut")), ("usca", Some(&[1u8][..])));
/// Ok::<_, lethedb::Error>(())
/// ```
pub fn decode(gpp: &str) -> Result<GppString> {
    let gpp = gpp.trim();
    if gpp.len() > MAX_LEN {
        return Err(bad(format!("longer than {MAX_LEN} bytes")));
    }
    let header = decode_header(gpp)?;
    let sections = header
        .section_ids
        .iter()
        .zip(gpp.split('~').skip(1))
        .map(|(&id, text)| decode_section(id, text))
        .collect::<Result<Vec<_>>>()?;
    Ok(GppString { header, sections })
}

/// Longest GPP string accepted (a consent record's proof holds it).
pub const MAX_LEN: usize = 4096;

fn decode_section(id: u16, text: &str) -> Result<GppSection> {
    match id {
        2 => crate::domain::consent::tcf::decode(text)
            .map(|t| GppSection::TcfEuV2(Box::new(t)))
            .map_err(|e| bad(format!("section tcfeuv2: {e}"))),
        6 => decode_usp(text),
        7..=12 => decode_us(id, text).map(GppSection::Us),
        other => Ok(GppSection::Unsupported(other)),
    }
}

fn decode_usp(text: &str) -> Result<GppSection> {
    let c: Vec<char> = text.chars().collect();
    let flag = |i: usize| {
        c.get(i)
            .copied()
            .filter(|x| matches!(x, 'Y' | 'N' | '-'))
            .ok_or_else(|| bad(format!("section uspv1: character {i} is not Y, N or -")))
    };
    if c.len() != 4 || c[0] != '1' {
        return Err(bad(
            "section uspv1: not a version-1 US Privacy string of 4 characters",
        ));
    }
    Ok(GppSection::UsPrivacy {
        notice: flag(1)?,
        opt_out_sale: flag(2)?,
        lspa: flag(3)?,
    })
}

fn decode_us(id: u16, text: &str) -> Result<UsSection> {
    let mut segments = text.split('.');
    let core = segments.next().unwrap_or_default();
    let section_name = LAYOUTS
        .iter()
        .find(|l| l.id == id)
        .map(|l| l.name)
        .unwrap_or("us");
    let what = |f: &str| format!("section {section_name}: {f}");
    let mut s = Sextets::new(core, section_name, "core")?;
    let version = s.int(6, "Version")?;
    // usnat: the layout follows the length, not the Version field (IAB's
    // encoders write Version 1 with the 16-category layout): 60 or 66 bits
    // (10 or 11 characters) are the 12-category layout, anything else the
    // 16-category one — as the IAB Java and JS libraries decode it.
    let layout_version = match (id, core.len()) {
        (7, 10 | 11) => 1,
        (7, _) => 2,
        _ => version,
    };
    if id == 7 && !(1..=2).contains(&version) {
        return Err(bad(what(&format!("version {version} is not supported"))));
    }
    let layout = LAYOUTS
        .iter()
        .find(|l| l.id == id && l.version == layout_version)
        .ok_or_else(|| bad(what(&format!("version {version} is not supported"))))?;
    let mut fields = Vec::with_capacity(layout.fields.len());
    fields.push(("Version", vec![version as u8]));
    for (name, width) in &layout.fields[1..] {
        let values = match width {
            Width::Int(n) => vec![s.int(*n, name)? as u8],
            Width::List(n) => (0..*n)
                .map(|_| s.int(2, name).map(|v| v as u8))
                .collect::<Result<Vec<u8>>>()?,
        };
        if matches!(width, Width::List(_) | Width::Int(2)) && values.contains(&3) {
            return Err(bad(what(&format!("{name} holds the reserved value 3"))));
        }
        fields.push((*name, values));
    }
    let mut gpc = None;
    for seg in segments {
        let mut t = Sextets::new(seg, section_name, "sub-segment")?;
        match t.int(2, "SubsectionType")? {
            1 if layout.gpc => gpc = Some(t.bit("Gpc")?),
            // Sub-segment types this section does not define are skipped.
            _ => {}
        }
    }
    Ok(UsSection {
        name: layout.name,
        id,
        jurisdiction: layout.jurisdiction,
        version: version as u8,
        fields,
        gpc,
    })
}

/// What one section says about one purpose: opted out (or no consent),
/// or not opted out (or consent).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Say {
    Allows,
    Refuses,
}

fn say(v: u8) -> Option<Say> {
    match v {
        1 => Some(Say::Refuses),
        2 => Some(Say::Allows),
        _ => None,
    }
}

/// (purpose, verdict, opt-in, section) of every statement a GPP string
/// makes, in section order.
fn statements(g: &GppString) -> Vec<(&'static str, Say, bool, String, &'static str)> {
    let mut out = Vec::new();
    for section in &g.sections {
        match section {
            GppSection::Us(u) => {
                let layout = LAYOUTS.iter().find(|l| {
                    l.id == u.id
                        && u.field("SensitiveDataProcessing").map(<[u8]>::len)
                            == l.fields.iter().find_map(|(n, w)| match w {
                                Width::List(k) if *n == "SensitiveDataProcessing" => Some(*k),
                                _ => None,
                            })
                });
                let Some(layout) = layout else { continue };
                let sale = say(u.one("SaleOptOut"));
                let sharing = say(u.one("SharingOptOut"));
                let ads = say(u.one("TargetedAdvertisingOptOut"));
                let gpc = (u.gpc == Some(true)).then_some(Say::Refuses);
                let source = format!("gpp:{}", u.name);
                let mut push = |p: &'static str, s: Option<Say>, opt_in: bool, from: &str| {
                    if let Some(s) = s {
                        out.push((p, s, opt_in, from.to_string(), u.jurisdiction));
                    }
                };
                // Sale and sharing are one purpose; CPRA "sharing" is
                // cross-context behavioural advertising, so a sharing
                // opt-out also refuses targeted advertising. The GPC
                // sub-segment refuses both, as source `gpc` (first: the
                // first refusal of a purpose names it).
                push("sale_or_share", gpc, false, "gpc");
                push("ads_targeting", gpc, false, "gpc");
                for s in [sale, sharing] {
                    push("sale_or_share", s, false, &source);
                }
                for s in [ads, sharing.filter(|s| *s == Say::Refuses)] {
                    push("ads_targeting", s, false, &source);
                }
                let values = u.field("SensitiveDataProcessing").unwrap_or_default();
                for (v, purposes) in values.iter().zip(layout.sensitive) {
                    for p in *purposes {
                        push(p, say(*v), layout.sensitive_opt_in, &source);
                    }
                }
            }
            GppSection::UsPrivacy { opt_out_sale, .. } => {
                let s = match opt_out_sale {
                    'Y' => Some(Say::Refuses),
                    'N' => Some(Say::Allows),
                    _ => None,
                };
                if let Some(s) = s {
                    out.push(("sale_or_share", s, false, "gpp:uspv1".into(), "US-CA"));
                }
            }
            _ => {}
        }
    }
    out
}

/// Consent records a GPP string implies, one per purpose, with the string
/// as proof: a purpose any section refuses is `denied` (the first refusal
/// gives source — `gpp:<section>`, or `gpc` for a GPC sub-segment — and
/// jurisdiction), else `granted` — legal basis
/// `consent` where the law is opt-in (sensitive data in `usnat`, VA, CO, CT),
/// `legitimate_interests` where it is opt-out ("did not opt out" is not
/// consent). `tcfeuv2` adds the TCF records (`tcf:1`…`tcf:11`). Sections
/// that say nothing (value 0, "not applicable") add nothing.
pub(crate) fn records_from_gpp(g: &GppString, text: &str, at: Timestamp) -> Vec<ConsentRecord> {
    let mut out: Vec<ConsentRecord> = Vec::new();
    for s in &g.sections {
        if let GppSection::TcfEuV2(tc) = s {
            out.extend(records_from_tcf(tc, text));
        }
    }
    let mut decided: BTreeMap<&'static str, (Say, bool, String, &'static str)> = BTreeMap::new();
    for (p, s, opt_in, source, j) in statements(g) {
        match decided.get(p) {
            Some(e) if !(s == Say::Refuses && e.0 == Say::Allows) => {}
            _ => {
                decided.insert(p, (s, opt_in, source, j));
            }
        }
    }
    for (p, (s, opt_in, source, j)) in decided {
        let (status, basis) = match (s, opt_in) {
            (Say::Refuses, _) => (ConsentStatus::Denied, LegalBasis::Consent),
            (Say::Allows, true) => (ConsentStatus::Granted, LegalBasis::Consent),
            (Say::Allows, false) => (ConsentStatus::Granted, LegalBasis::LegitimateInterests),
        };
        out.push(
            ConsentRecord::new(p, status)
                .legal_basis(basis)
                .at(at)
                .source(source)
                .jurisdiction(j)
                .proof(text.trim()),
        );
    }
    out
}

/// Records of a Global Privacy Control signal: opt-out of sale and
/// sharing (`sale_or_share` and `ads_targeting` denied, source `gpc`).
fn records_from_gpc(at: Timestamp) -> Vec<ConsentRecord> {
    ["ads_targeting", "sale_or_share"]
        .into_iter()
        .map(|p| {
            ConsentRecord::new(p, ConsentStatus::Denied)
                .at(at)
                .source("gpc")
                .proof("Sec-GPC: 1")
        })
        .collect()
}

/// The records one collection of US signals implies: a GPP string (when
/// given, decoded; a bad one is an error) and a GPC signal (when `gpc`),
/// one record per purpose — GPC's refusal replaces what the GPP string
/// says of the same purpose (GPC is the opt-out the law says to honour).
/// A GPP string with no section this build maps gives no record.
pub(crate) fn signal_records(
    gpp: Option<&str>,
    gpc: bool,
    at: Timestamp,
) -> Result<Vec<ConsentRecord>> {
    let mut out = match gpp {
        Some(text) => {
            let decoded = decode(text)?;
            records_from_gpp(&decoded, text, at)
        }
        None => Vec::new(),
    };
    if gpc {
        let from_gpc = records_from_gpc(at);
        out.retain(|r| !from_gpc.iter().any(|g| g.purpose == r.purpose));
        out.extend(from_gpc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three header examples of the specification (bit strings given
    /// there): EU TCF v2; EU TCF v2 and US Privacy; Canadian TCF and US
    /// Privacy as one group.
    #[test]
    fn the_specification_examples_decode() {
        for (header, ids) in [
            ("DBABM", vec![2u16]),
            ("DBACNY", vec![2, 6]),
            ("DBABjw", vec![5, 6]),
        ] {
            let text = std::iter::once(header.to_string())
                .chain(ids.iter().map(|i| format!("s{i}")))
                .collect::<Vec<_>>()
                .join("~");
            let h = decode_header(&text).unwrap();
            assert_eq!((h.version, h.section_ids), (1, ids), "{header}");
        }
    }

    #[test]
    fn malformed_strings_are_typed_errors_naming_the_problem() {
        let cases = [
            (
                "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA",
                "header type 2",
            ),
            ("DBABM", "lists 1 sections, 0 follow"),
            ("DBACNY~only-one", "lists 2 sections, 1 follow"),
            ("DB", "truncated"),
            ("DBA!M~x", "character 3 is not base64url"),
            ("DCABM~x", "GPP version 2"),
            ("DBABVVVVVVVV~x", "Fibonacci code longer"),
            ("DBABAAAA~x", "truncated"),
        ];
        for (input, want) in cases {
            match decode_header(input) {
                Err(Error::InvalidGppString(why)) => {
                    assert!(why.contains(want), "{input}: {why}")
                }
                other => panic!("{input}: {other:?}"),
            }
        }
    }
}
