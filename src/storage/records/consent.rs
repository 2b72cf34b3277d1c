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
    /// Format v2: the write version of the profile record written in the
    /// same batch (bound into the associated data; a current record must
    /// match the profile's anchor for its purpose). `None`: format v1.
    pub(crate) write_version: Option<u64>,
    /// `nonce || ciphertext || tag`.
    pub(crate) sealed: Vec<u8>,
}

impl ValueCodec for SealedConsent {
    const WHAT: &'static str = "consent record";

    /// v1: `1 ‖ generation ‖ sealed`; v2: `2 ‖ generation ‖ write version
    /// (u64) ‖ sealed`.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + self.sealed.len());
        match self.write_version {
            None => out.push(FormatVersion::V1 as u8),
            Some(_) => out.push(FormatVersion::V2 as u8),
        }
        out.extend_from_slice(&self.generation.to_be_bytes());
        if let Some(v) = self.write_version {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.sealed);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let format = check_version_upto(Self::WHAT, bytes, FormatVersion::V2)?;
        let mut r = Reader::new(Self::WHAT, bytes);
        r.u8()?;
        let generation = r.u32()?;
        let write_version = match format {
            FormatVersion::V1 => None,
            FormatVersion::V2 => Some(u64::from_be_bytes(r.array()?)),
        };
        let sealed = bytes.get(r.position()..).unwrap_or_default().to_vec();
        if sealed.len() < 28 || sealed.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::corrupt(
                Self::WHAT,
                format!("sealed part of {} bytes", sealed.len()),
            ));
        }
        Ok(SealedConsent {
            generation,
            write_version,
            sealed,
        })
    }
}

/// Consent index entry: the purpose is granted to the profile until `expires_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GrantEntry {
    pub(crate) expires_at: Option<Timestamp>,
    /// Format v2: the write version of the current consent record it
    /// stands for (the profile's anchor) and the entry MAC over (purpose
    /// tag, profile, expiry, version). `None`: format v1 (CRC only).
    pub(crate) auth: Option<(u64, [u8; 8])>,
}

impl GrantEntry {
    /// The expiry as the MAC covers it: `0` or `1 ‖ i64`.
    pub(crate) fn expiry_bytes(&self) -> Vec<u8> {
        match self.expires_at {
            None => vec![0],
            Some(t) => {
                let mut v = vec![1];
                v.extend_from_slice(&t.as_micros().to_be_bytes());
                v
            }
        }
    }
}

impl ValueCodec for GrantEntry {
    const WHAT: &'static str = "consent index entry";

    /// v1: `1 ‖ expiry ‖ crc32`; v2: `2 ‖ expiry ‖ version (u64) ‖ mac (8)`.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(26);
        match self.auth {
            None => {
                out.push(FormatVersion::V1 as u8);
                out.extend_from_slice(&self.expiry_bytes());
                push_crc(&mut out);
            }
            Some((version, mac)) => {
                out.push(FormatVersion::V2 as u8);
                out.extend_from_slice(&self.expiry_bytes());
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(&mac);
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let format = check_version_upto(Self::WHAT, bytes, FormatVersion::V2)?;
        let mut r = match format {
            FormatVersion::V1 => Reader::framed(Self::WHAT, bytes)?,
            FormatVersion::V2 => {
                let mut r = Reader::new(Self::WHAT, bytes);
                r.u8()?;
                r
            }
        };
        let expires_at = match r.u8()? {
            0 => None,
            1 => Some(Timestamp(r.i64()?)),
            other => return Err(Error::corrupt(Self::WHAT, format!("expiry flag {other}"))),
        };
        let auth = match format {
            FormatVersion::V1 => None,
            FormatVersion::V2 => Some((u64::from_be_bytes(r.array()?), r.array()?)),
        };
        r.finish()?;
        Ok(GrantEntry { expires_at, auth })
    }
}
