//! Key encoding for every keyspace, in one place.
//!
//! A key is `prefix (1 byte) || fixed-size big-endian body`. Each keyspace
//! owns one prefix inside its column family, so several record kinds can
//! share a column family without colliding, and `[prefix, prefix + 1)` bounds
//! a scan of one keyspace. Parsers check prefix and length and return
//! `Result`; nothing indexes into unchecked bytes.

use crate::error::{Error, Result};
use crate::types::ProfileId;

/// Body encoding of a key type: fixed length, big-endian.
pub(crate) trait KeyCodec: Sized {
    /// Exact encoded length of the body.
    const LEN: usize;
    fn write(&self, out: &mut Vec<u8>);
    /// Reads a body of exactly `LEN` bytes.
    fn read(body: &[u8]) -> Option<Self>;
}

impl KeyCodec for () {
    const LEN: usize = 0;
    fn write(&self, _out: &mut Vec<u8>) {}
    fn read(body: &[u8]) -> Option<Self> {
        body.is_empty().then_some(())
    }
}

impl KeyCodec for u32 {
    const LEN: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn read(body: &[u8]) -> Option<Self> {
        Some(u32::from_be_bytes(body.try_into().ok()?))
    }
}

impl KeyCodec for ProfileId {
    const LEN: usize = 16;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn read(body: &[u8]) -> Option<Self> {
        Some(ProfileId::from_bytes(body.try_into().ok()?))
    }
}

/// Encodes `prefix || body`.
pub(crate) fn encode<K: KeyCodec>(prefix: u8, key: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + K::LEN);
    out.push(prefix);
    key.write(&mut out);
    out
}

/// Parses `prefix || body`, checking the prefix and the exact length.
pub(crate) fn decode<K: KeyCodec>(what: &'static str, prefix: u8, bytes: &[u8]) -> Result<K> {
    match bytes.split_first() {
        Some((&p, body)) if p == prefix && body.len() == K::LEN => {
            K::read(body).ok_or_else(|| Error::corrupt(what, "unreadable key body"))
        }
        Some((&p, body)) => Err(Error::corrupt(
            what,
            format!(
                "key prefix {p:#04x} length {} (expected prefix {prefix:#04x} length {})",
                body.len(),
                K::LEN
            ),
        )),
        None => Err(Error::corrupt(what, "empty key")),
    }
}

/// `[lower, upper)` covering every key of one prefix.
pub(crate) fn prefix_bounds(prefix: u8) -> ([u8; 1], [u8; 1]) {
    // Prefixes are below 0xff by construction (see the table in columns.rs).
    ([prefix], [prefix.saturating_add(1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_length_checks() {
        let id = ProfileId::from_bytes([0xab; 16]);
        let k = encode(b'p', &id);
        assert_eq!(k.len(), 17);
        assert_eq!(decode::<ProfileId>("t", b'p', &k).unwrap(), id);
        assert!(decode::<ProfileId>("t", b'q', &k).is_err());
        assert!(decode::<ProfileId>("t", b'p', &k[..16]).is_err());
        assert!(decode::<ProfileId>("t", b'p', &[]).is_err());
        let b = encode(b'b', &0x0102_0304u32);
        assert_eq!(b, [b'b', 1, 2, 3, 4]);
        assert_eq!(decode::<u32>("t", b'b', &b).unwrap(), 0x0102_0304);
    }

    #[test]
    fn big_endian_keeps_numeric_order() {
        assert!(encode(b'b', &1u32) < encode(b'b', &256u32));
    }
}
