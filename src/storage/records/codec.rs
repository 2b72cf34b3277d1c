//! The codec core every record kind is written with: the format version
//! byte, the CRC-32 trailer, varints and lengths, the bounded reader, and
//! the pinned bincode framing (`bincode_record!`).

use crate::error::{Error, Result};

/// Record format versions this build understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FormatVersion {
    V1 = 1,
    /// Profile records sealed once per record, authenticated consent and
    /// index entries (docs/design.md, "Record format v2").
    V2 = 2,
}

impl FormatVersion {
    /// The version of every record kind that has only one.
    pub(crate) const CURRENT: FormatVersion = FormatVersion::V1;
}

impl TryFrom<u8> for FormatVersion {
    type Error = u8;
    fn try_from(v: u8) -> std::result::Result<Self, u8> {
        match v {
            1 => Ok(FormatVersion::V1),
            2 => Ok(FormatVersion::V2),
            other => Err(other),
        }
    }
}

/// Encoding and decoding of a record kind.
pub(crate) trait ValueCodec: Sized {
    /// Record kind named in errors.
    const WHAT: &'static str;
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self>;
    /// `encode`, or the typed error when the value cannot be encoded
    /// within its record's bound (what the write path uses).
    fn try_encode(&self) -> Result<Vec<u8>> {
        Ok(self.encode())
    }
}

/// The version byte of a record kind that has only version 1.
pub(crate) fn check_version(what: &'static str, bytes: &[u8]) -> Result<FormatVersion> {
    check_version_upto(what, bytes, FormatVersion::V1)
}

/// The version byte of a record kind this build reads up to `newest`.
pub(crate) fn check_version_upto(
    what: &'static str,
    bytes: &[u8],
    newest: FormatVersion,
) -> Result<FormatVersion> {
    let first = *bytes
        .first()
        .ok_or_else(|| Error::corrupt(what, "empty record"))?;
    FormatVersion::try_from(first)
        .ok()
        .filter(|v| (*v as u8) <= newest as u8)
        .ok_or(Error::UnsupportedFormat {
            what,
            version: first,
            supported: newest as u8,
        })
}

/// Splits off and checks the trailing CRC-32.
pub(crate) fn check_crc<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a [u8]> {
    if bytes.len() < 5 {
        return Err(Error::corrupt(
            what,
            format!("record of {} bytes is too short", bytes.len()),
        ));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(Error::corrupt(
            what,
            format!("checksum mismatch (stored {stored:08x}, computed {actual:08x})"),
        ));
    }
    Ok(body)
}

pub(crate) fn push_crc(out: &mut Vec<u8>) {
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Appends `v` as an unsigned LEB128 varint (7 bits a byte, low bits first).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) {
    put_varint(out, n as u64);
}

/// Maps signed to unsigned so small magnitudes stay short (0, -1, 1, -2 → 0, 1, 2, 3).
pub(crate) fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bounds-checked reader over a record body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// A reader over a CRC-framed record: the version byte is checked and
    /// consumed, the CRC trailer checked and left out.
    pub(crate) fn framed(what: &'static str, bytes: &'a [u8]) -> Result<Self> {
        Ok(Self::framed_upto(what, bytes, FormatVersion::V1)?.0)
    }

    /// `framed` for a record kind with versions up to `newest`; returns
    /// the version read.
    pub(crate) fn framed_upto(
        what: &'static str,
        bytes: &'a [u8],
        newest: FormatVersion,
    ) -> Result<(Self, FormatVersion)> {
        let v = check_version_upto(what, bytes, newest)?;
        let mut r = Reader::new(what, check_crc(what, bytes)?);
        r.u8()?;
        Ok((r, v))
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                Error::corrupt(
                    self.what,
                    format!(
                        "needs {n} bytes at offset {}, record has {}",
                        self.pos,
                        self.buf.len()
                    ),
                )
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Reads a minimal LEB128 varint of at most 10 bytes.
    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return Err(Error::corrupt(self.what, "varint overflows 64 bits"));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(Error::corrupt(self.what, "non-minimal varint"));
                }
                return Ok(v);
            }
        }
        Err(Error::corrupt(self.what, "varint longer than 10 bytes"))
    }

    /// Reads a varint length no larger than `max`.
    pub(crate) fn len(&mut self, max: usize) -> Result<usize> {
        let v = self.varint()?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| {
                Error::corrupt(self.what, format!("length {v} exceeds the limit of {max}"))
            })
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(Error::corrupt(
                self.what,
                format!(
                    "{} trailing bytes at offset {}",
                    self.buf.len() - self.pos,
                    self.pos
                ),
            ))
        }
    }
}

/// The pinned bincode configuration for sealed and framed payloads:
/// fixed-width big-endian integers, no trailing bytes, at most `limit` bytes.
pub(crate) fn bincode_options(limit: u64) -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_big_endian()
        .reject_trailing_bytes()
        .with_limit(limit)
}

/// Implements [`ValueCodec`] for a serde type framed as
/// `version (1) || bincode body (pinned options) || crc32 (4)`.
macro_rules! bincode_record {
    ($ty:ty, $what:expr, $limit:expr) => {
        impl ValueCodec for $ty {
            const WHAT: &'static str = $what;

            fn encode(&self) -> Vec<u8> {
                // Only reached by callers other than the write path (which
                // uses `try_encode`); a value over the bound encodes to a
                // record its decoder refuses (typed), never to another value.
                self.try_encode().unwrap_or_else(|_| {
                    let mut out = vec![FormatVersion::CURRENT as u8];
                    push_crc(&mut out);
                    out
                })
            }

            fn try_encode(&self) -> Result<Vec<u8>> {
                use bincode::Options;
                let mut out = vec![FormatVersion::CURRENT as u8];
                let body =
                    bincode_options($limit)
                        .serialize(self)
                        .map_err(|e| match bincode_options(u64::MAX).serialized_size(self) {
                            Ok(bytes) if bytes > $limit => Error::RecordTooLarge {
                                what: $what,
                                bytes,
                                limit: $limit,
                            },
                            _ => Error::Internal(format!("encoding {}: {e}", $what)),
                        })?;
                out.extend_from_slice(&body);
                push_crc(&mut out);
                Ok(out)
            }

            fn decode(bytes: &[u8]) -> Result<Self> {
                use bincode::Options;
                check_version(Self::WHAT, bytes)?;
                let body = check_crc(Self::WHAT, bytes)?;
                bincode_options($limit)
                    .deserialize(&body[1..])
                    .map_err(|e| Error::corrupt(Self::WHAT, e.to_string()))
            }
        }
    };
}

pub(crate) use bincode_record;
