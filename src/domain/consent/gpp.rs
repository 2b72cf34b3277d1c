//! IAB Global Privacy Platform (GPP) strings: the header (issue 20's first
//! piece; the sections follow). A GPP string is `header~section~section…`;
//! the header is base64url (no padding) of: type int(6) = 3, version
//! int(6) = 1, and the section ids as a Fibonacci range — int(12) count,
//! then per item a bit (0 single, 1 group), a Fibonacci-coded offset from
//! the last id seen (0 for the first), and for a group a Fibonacci-coded
//! length (IAB Tech Lab, "Consent String Specification", GPP v1).

use crate::error::{Error, Result};

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
struct Sextets {
    values: Vec<u8>,
    pos: usize,
}

impl Sextets {
    fn new(text: &str, what: &str) -> Result<Self> {
        let values = text
            .bytes()
            .enumerate()
            .map(|(i, c)| {
                crate::domain::consent::tcf::base64url_value(c)
                    .ok_or_else(|| bad(format!("{what}: character {i} is not base64url")))
            })
            .collect::<Result<Vec<u8>>>()?;
        Ok(Sextets { values, pos: 0 })
    }

    fn bit(&mut self, what: &str) -> Result<bool> {
        let v = self
            .values
            .get(self.pos / 6)
            .ok_or_else(|| bad(format!("truncated: {what} at bit {}", self.pos)))?;
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
        Err(bad(format!("{what}: Fibonacci code longer than 32 bits")))
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
    let mut s = Sextets::new(header, "header")?;
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
