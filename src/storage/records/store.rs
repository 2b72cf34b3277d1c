//! Store-level records: the store header (magic, id, key check), the
//! key-tree header, opaque blobs (schema, identity settings) and the
//! field registry.

use super::codec::*;
use crate::error::{Error, Result};
use crate::types::Timestamp;

/// Magic bytes of the store header (the format marker).
pub(crate) const STORE_MAGIC: &[u8; 8] = b"LETHEDB\0";

/// Whether `bytes` carry the store format marker at offset 1.
pub(crate) fn has_store_magic(bytes: &[u8]) -> bool {
    bytes.get(1..9) == Some(&STORE_MAGIC[..])
}

/// The store header in `meta`: format marker, store id, key check value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoreHeader {
    pub(crate) store_id: [u8; 16],
    pub(crate) bucket_bits: u8,
    pub(crate) key_check: [u8; 32],
    pub(crate) created_at: Timestamp,
}

impl ValueCodec for StoreHeader {
    const WHAT: &'static str = "store header";

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(70);
        out.push(FormatVersion::CURRENT as u8);
        out.extend_from_slice(STORE_MAGIC);
        out.extend_from_slice(&self.store_id);
        out.push(self.bucket_bits);
        out.extend_from_slice(&self.key_check);
        out.extend_from_slice(&self.created_at.as_micros().to_be_bytes());
        push_crc(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        if !has_store_magic(bytes) {
            return Err(Error::corrupt(Self::WHAT, "format marker missing"));
        }
        check_version(Self::WHAT, bytes)?;
        let body = check_crc(Self::WHAT, bytes)?;
        let mut r = Reader::new(Self::WHAT, body);
        r.bytes(9)?;
        let h = StoreHeader {
            store_id: r.array()?,
            bucket_bits: r.u8()?,
            key_check: r.array()?,
            created_at: Timestamp(r.i64()?),
        };
        r.finish()?;
        Ok(h)
    }
}

// ------------------------------------------------------------- key tree header

/// Shape and current root epoch of the key tree (`meta 't'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyTreeHeader {
    /// log2 of the fan-out of every inner node.
    pub(crate) fanout_bits: u8,
    /// Levels of keys between the root and the keyrings (the last is the bucket level).
    pub(crate) depth: u8,
    /// Epoch of the root key version the level-1 nodes are wrapped under.
    pub(crate) root_epoch: u32,
}

impl ValueCodec for KeyTreeHeader {
    const WHAT: &'static str = "key tree header";

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11);
        out.push(FormatVersion::CURRENT as u8);
        out.push(self.fanout_bits);
        out.push(self.depth);
        out.extend_from_slice(&self.root_epoch.to_be_bytes());
        push_crc(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed(Self::WHAT, bytes)?;
        let h = KeyTreeHeader {
            fanout_bits: r.u8()?,
            depth: r.u8()?,
            root_epoch: r.u32()?,
        };
        r.finish()?;
        Ok(h)
    }
}

// ------------------------------------------------------------ checksummed blob

/// A versioned, checksummed byte payload (schema JSON, field registry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Blob(pub(crate) Vec<u8>);

impl ValueCodec for Blob {
    const WHAT: &'static str = "meta record";

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 5);
        out.push(FormatVersion::CURRENT as u8);
        out.extend_from_slice(&self.0);
        push_crc(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        check_version(Self::WHAT, bytes)?;
        let body = check_crc(Self::WHAT, bytes)?;
        Ok(Blob(body[1..].to_vec()))
    }
}

/// Field registry payload: `count u32 || (len u16 || utf-8 name)*`; the id of
/// a field is its index.
pub(crate) fn encode_field_names(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u32::try_from(names.len()).unwrap_or(u32::MAX).to_be_bytes());
    for n in names {
        // Names are validated to at most 255 bytes before registration.
        out.extend_from_slice(&u16::try_from(n.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(n.as_bytes());
    }
    out
}

pub(crate) fn decode_field_names(bytes: &[u8]) -> Result<Vec<String>> {
    const WHAT: &str = "field registry";
    let mut r = Reader::new(WHAT, bytes);
    let count = r.u32()?;
    let mut names = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(bytes.len() / 2));
    for _ in 0..count {
        let len = usize::from(r.u16()?);
        let s = std::str::from_utf8(r.bytes(len)?)
            .map_err(|_| Error::corrupt(WHAT, "field name is not UTF-8"))?;
        names.push(s.to_string());
    }
    r.finish()?;
    Ok(names)
}

// ------------------------------------------------------------------ wrapped key
