//! A key wrapped under its parent in the key tree.

use super::codec::*;
use crate::error::Result;

/// A 256-bit secret sealed under its parent key (AES-256-GCM).
/// The header fields are bound into the AEAD associated data by the crypto
/// layer, so they need no checksum of their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WrappedKey {
    /// Version of the key that wraps this one (root epoch for bucket keys,
    /// bucket key version for keyrings).
    pub(crate) parent_version: u32,
    /// Version of this key (generation of a keyring).
    pub(crate) version: u32,
    /// `nonce (12) || ciphertext (32) || tag (16)`.
    pub(crate) sealed: [u8; WRAPPED_LEN],
}

pub(crate) const WRAPPED_LEN: usize = 12 + 32 + 16;

impl ValueCodec for WrappedKey {
    const WHAT: &'static str = "wrapped key";

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + WRAPPED_LEN);
        out.push(FormatVersion::CURRENT as u8);
        out.extend_from_slice(&self.parent_version.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.sealed);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        check_version(Self::WHAT, bytes)?;
        let mut r = Reader::new(Self::WHAT, bytes);
        r.u8()?;
        let w = WrappedKey {
            parent_version: r.u32()?,
            version: r.u32()?,
            sealed: r.array()?,
        };
        r.finish()?;
        Ok(w)
    }
}
