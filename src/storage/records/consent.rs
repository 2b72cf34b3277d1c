//! Sealed consent records and the consent index's grant entries.

use super::codec::*;
use super::profile::MAX_PAYLOAD_BYTES;
use crate::error::{Error, Result};
use crate::types::Timestamp;

/// A consent record sealed under the profile's consent key: the current
/// state of one purpose or one history entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SealedConsent {
    /// Keyring generation of the sealing key.
    pub(crate) generation: u32,
    /// `nonce || ciphertext || tag`.
    pub(crate) sealed: Vec<u8>,
}

impl ValueCodec for SealedConsent {
    const WHAT: &'static str = "consent record";

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.sealed.len());
        out.push(FormatVersion::CURRENT as u8);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.sealed);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        check_version(Self::WHAT, bytes)?;
        let mut r = Reader::new(Self::WHAT, bytes);
        r.u8()?;
        let generation = r.u32()?;
        let sealed = bytes.get(5..).unwrap_or_default().to_vec();
        if sealed.len() < 28 || sealed.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::corrupt(
                Self::WHAT,
                format!("sealed part of {} bytes", sealed.len()),
            ));
        }
        Ok(SealedConsent { generation, sealed })
    }
}

/// Consent index entry: the purpose is granted to the profile until `expires_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GrantEntry {
    pub(crate) expires_at: Option<Timestamp>,
}

impl ValueCodec for GrantEntry {
    const WHAT: &'static str = "consent index entry";

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14);
        out.push(FormatVersion::CURRENT as u8);
        match self.expires_at {
            None => out.push(0),
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&t.as_micros().to_be_bytes());
            }
        }
        push_crc(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed(Self::WHAT, bytes)?;
        let expires_at = match r.u8()? {
            0 => None,
            1 => Some(Timestamp(r.i64()?)),
            other => return Err(Error::corrupt(Self::WHAT, format!("expiry flag {other}"))),
        };
        r.finish()?;
        Ok(GrantEntry { expires_at })
    }
}
