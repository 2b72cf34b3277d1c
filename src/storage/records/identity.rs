//! Identity records: blind-index entries and merge records.

use super::codec::*;
use crate::error::{Error, Result};
use crate::types::ProfileId;

/// Blind index entry: the profile an identifier belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdentityEntry {
    pub(crate) profile: ProfileId,
    /// Format v2: the entry MAC over (blind key, profile). `None`: format
    /// v1 (CRC only), written before format v2.
    pub(crate) mac: Option<[u8; 8]>,
}

impl ValueCodec for IdentityEntry {
    const WHAT: &'static str = "identity entry";

    /// v1: `1 ‖ profile ‖ crc32`; v2: `2 ‖ profile ‖ mac (8)`.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25);
        match self.mac {
            None => {
                out.push(FormatVersion::V1 as u8);
                out.extend_from_slice(self.profile.as_bytes());
                push_crc(&mut out);
            }
            Some(mac) => {
                out.push(FormatVersion::V2 as u8);
                out.extend_from_slice(self.profile.as_bytes());
                out.extend_from_slice(&mac);
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        match check_version_upto(Self::WHAT, bytes, FormatVersion::V2)? {
            FormatVersion::V1 => {
                let mut r = Reader::framed(Self::WHAT, bytes)?;
                let profile = ProfileId::from_bytes(r.array()?);
                r.finish()?;
                Ok(IdentityEntry { profile, mac: None })
            }
            FormatVersion::V2 => {
                let mut r = Reader::new(Self::WHAT, bytes);
                r.u8()?;
                let profile = ProfileId::from_bytes(r.array()?);
                let mac = r.array()?;
                r.finish()?;
                Ok(IdentityEntry {
                    profile,
                    mac: Some(mac),
                })
            }
        }
    }
}

// ---------------------------------------------------------------- merge record

/// A field value of the survivor that lost to the merged profile's newer
/// value, kept (still sealed under the survivor's keyring) so unmerge can
/// restore it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct DisplacedField {
    pub(crate) field_id: u32,
    pub(crate) sealed: bool,
    pub(crate) origin: [u8; 16],
    pub(crate) written_at: i64,
    pub(crate) payload: Vec<u8>,
}

/// One merge. PII-free: identifiers appear only as blind index keys.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct MergeRecord {
    pub(crate) survivor: [u8; 16],
    pub(crate) merged: [u8; 16],
    /// `shared_identifier`, `alias` or `manual`.
    pub(crate) reason: String,
    pub(crate) at: i64,
    /// (type, blind key) of the identifiers that caused the merge.
    pub(crate) identifiers: Vec<(String, [u8; 16])>,
    /// Keyring generation of the survivor the displaced payloads are sealed under.
    pub(crate) survivor_generation: u32,
    pub(crate) displaced: Vec<DisplacedField>,
    pub(crate) undone_at: Option<i64>,
}

/// Largest merge record accepted when decoding.
pub(crate) const MAX_MERGE_RECORD_BYTES: u64 = 64 << 20;

bincode_record!(MergeRecord, "merge record", MAX_MERGE_RECORD_BYTES);

impl MergeRecord {
    /// The write path's bound: a merge record its decoder would refuse is
    /// refused before anything is written.
    pub(crate) fn check_size(&self) -> Result<()> {
        use bincode::Options;
        let bytes = bincode_options(u64::MAX)
            .serialized_size(self)
            .map_err(|e| Error::Internal(format!("merge record size: {e}")))?;
        if bytes > MAX_MERGE_RECORD_BYTES {
            return Err(Error::RecordTooLarge {
                what: "merge record",
                bytes,
                limit: MAX_MERGE_RECORD_BYTES,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod merge_record_bounds {
    use super::*;

    fn record(reason_bytes: usize) -> MergeRecord {
        MergeRecord {
            survivor: [1; 16],
            merged: [2; 16],
            reason: "x".repeat(reason_bytes),
            at: 7,
            identifiers: vec![("email".into(), [3; 16])],
            survivor_generation: 1,
            displaced: Vec::new(),
            undone_at: None,
        }
    }

    /// What the write path accepts, the decoder reads back; what the
    /// decoder would refuse, the write path refuses first (typed).
    #[test]
    fn the_write_path_enforces_the_decoders_bound() {
        let small = record(10);
        small.check_size().unwrap();
        assert_eq!(MergeRecord::decode(&small.encode()).unwrap(), small);
        let big = record(MAX_MERGE_RECORD_BYTES as usize);
        assert!(matches!(
            big.check_size(),
            Err(Error::RecordTooLarge {
                what: "merge record",
                limit: MAX_MERGE_RECORD_BYTES,
                ..
            })
        ));
        // Had it been written anyway, reading it is a typed error, never a
        // different value.
        assert!(MergeRecord::decode(&big.encode()).is_err());
    }
}
