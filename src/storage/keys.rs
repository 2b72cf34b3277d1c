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

macro_rules! int_codec {
    ($t:ty, $n:expr) => {
        impl KeyCodec for $t {
            const LEN: usize = $n;
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn read(body: &[u8]) -> Option<Self> {
                Some(<$t>::from_be_bytes(body.try_into().ok()?))
            }
        }
    };
}

int_codec!(u32, 4);
int_codec!(u64, 8);

macro_rules! id_codec {
    ($t:ty) => {
        impl KeyCodec for $t {
            const LEN: usize = 16;
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.as_bytes());
            }
            fn read(body: &[u8]) -> Option<Self> {
                Some(<$t>::from_bytes(body.try_into().ok()?))
            }
        }
    };
}

id_codec!(ProfileId);
id_codec!(crate::types::MergeId);

impl<const N: usize> KeyCodec for [u8; N] {
    const LEN: usize = N;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn read(body: &[u8]) -> Option<Self> {
        body.try_into().ok()
    }
}

impl<A: KeyCodec, B: KeyCodec> KeyCodec for (A, B) {
    const LEN: usize = A::LEN + B::LEN;
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        self.1.write(out);
    }
    fn read(body: &[u8]) -> Option<Self> {
        if body.len() != Self::LEN {
            return None;
        }
        let (a, b) = body.split_at(A::LEN);
        Some((A::read(a)?, B::read(b)?))
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

/// The smallest key greater than every key starting with `prefix`
/// (`None` when `prefix` is all `0xff`: no upper bound).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
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
    fn successor_bounds_prefixes() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff, 0xff]), None);
    }

    #[test]
    fn big_endian_keeps_numeric_order() {
        assert!(encode(b'b', &1u32) < encode(b'b', &256u32));
    }
}
