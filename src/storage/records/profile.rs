//! The profile record: status, origins and every field entry in one record.

use super::codec::*;
use crate::error::{Error, Result};
use crate::types::{MergeId, ProfileId, Timestamp};

/// One profile: every field in one record, so a read is one point lookup and
/// a partial upsert rewrites only this record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProfileRecord {
    /// Keyring generation the sealed fields were written under.
    pub(crate) generation: u32,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) status: RecordStatus,
    /// Other profiles whose data this record holds (merged into it). Origin
    /// index 0 is the profile itself, index `i >= 1` is `origins[i - 1]`.
    pub(crate) origins: Vec<ProfileId>,
    /// Sorted by `field_id`, unique.
    pub(crate) fields: Vec<FieldEntry>,
}

/// Whether a profile is live or was merged into another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordStatus {
    Active,
    /// Merged away: reads and writes follow `into`; the record's own fields
    /// are the frozen pre-merge state, kept for unmerge.
    Merged {
        into: ProfileId,
        merge_id: MergeId,
    },
    /// Erased: a tombstone with no fields and no keyring. The id is never
    /// provisioned again.
    Erased {
        erasure_id: u64,
    },
}

pub(crate) const STATUS_ACTIVE: u8 = 0;
pub(crate) const STATUS_MERGED: u8 = 1;
pub(crate) const STATUS_ERASED: u8 = 2;
/// Most origins one record may list.
pub(crate) const MAX_ORIGINS: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldEntry {
    pub(crate) field_id: u32,
    pub(crate) sealed: bool,
    /// Index into the record's origins: which profile contributed the value.
    pub(crate) origin: u32,
    pub(crate) written_at: Timestamp,
    /// Sealed: `nonce || ciphertext || tag` of the encoded value.
    /// Plain: the encoded value.
    pub(crate) payload: Vec<u8>,
}

impl FieldEntry {
    /// The class that re-seals this entry with the protection it has: the
    /// record keeps only whether a field is sealed, and every sealed class
    /// seals the same way.
    pub(crate) fn class(&self) -> crate::types::FieldClass {
        if self.sealed {
            crate::types::FieldClass::Personal
        } else {
            crate::types::FieldClass::NonPersonal
        }
    }
}

/// Largest encoded value of one field, in bytes.
pub(crate) const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most fields one profile record may hold.
pub(crate) const MAX_FIELDS: usize = 4096;
/// Largest field payload: a value plus nonce and tag.
pub(crate) const MAX_PAYLOAD_BYTES: usize = MAX_VALUE_BYTES + 28;

pub(crate) const FLAG_PLAIN: u8 = 0;
pub(crate) const FLAG_SEALED: u8 = 1;

impl ProfileRecord {
    /// Inserts or replaces the entry for its field id, keeping the order.
    pub(crate) fn set(&mut self, entry: FieldEntry) {
        match self
            .fields
            .binary_search_by_key(&entry.field_id, |f| f.field_id)
        {
            Ok(i) => self.fields[i] = entry,
            Err(i) => self.fields.insert(i, entry),
        }
    }

    /// Removes a field; true if it was present.
    pub(crate) fn remove(&mut self, field_id: u32) -> bool {
        match self.fields.binary_search_by_key(&field_id, |f| f.field_id) {
            Ok(i) => {
                self.fields.remove(i);
                true
            }
            Err(_) => false,
        }
    }
}

/// Whether an encoded profile record is active (not merged away), reading
/// only its header.
pub(crate) fn record_is_active(bytes: &[u8]) -> Result<bool> {
    check_version(ProfileRecord::WHAT, bytes)?;
    match bytes.get(21) {
        Some(&STATUS_ACTIVE) => Ok(true),
        Some(&STATUS_MERGED | &STATUS_ERASED) => Ok(false),
        _ => Err(Error::corrupt(
            ProfileRecord::WHAT,
            "unreadable status byte",
        )),
    }
}

impl ValueCodec for ProfileRecord {
    const WHAT: &'static str = "profile record";

    fn encode(&self) -> Vec<u8> {
        let payload: usize = self.fields.iter().map(|f| 8 + f.payload.len()).sum();
        let mut out = Vec::with_capacity(27 + payload);
        out.push(FormatVersion::CURRENT as u8);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.created_at.as_micros().to_be_bytes());
        out.extend_from_slice(&self.updated_at.as_micros().to_be_bytes());
        match self.status {
            RecordStatus::Active => out.push(STATUS_ACTIVE),
            RecordStatus::Erased { erasure_id } => {
                out.push(STATUS_ERASED);
                out.extend_from_slice(&erasure_id.to_be_bytes());
            }
            RecordStatus::Merged { into, merge_id } => {
                out.push(STATUS_MERGED);
                out.extend_from_slice(into.as_bytes());
                out.extend_from_slice(merge_id.as_bytes());
            }
        }
        put_len(&mut out, self.origins.len());
        for o in &self.origins {
            out.extend_from_slice(o.as_bytes());
        }
        // Field count and lengths are bounded on the write path (MAX_FIELDS, MAX_VALUE_BYTES).
        out.extend_from_slice(
            &u16::try_from(self.fields.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        for f in &self.fields {
            put_varint(&mut out, u64::from(f.field_id));
            out.push(if f.sealed { FLAG_SEALED } else { FLAG_PLAIN });
            put_varint(&mut out, u64::from(f.origin));
            let age = self
                .updated_at
                .as_micros()
                .wrapping_sub(f.written_at.as_micros());
            put_varint(&mut out, zigzag(age));
            put_len(&mut out, f.payload.len());
            out.extend_from_slice(&f.payload);
        }
        push_crc(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed(Self::WHAT, bytes)?;
        let generation = r.u32()?;
        let created_at = Timestamp(r.i64()?);
        let updated_at = Timestamp(r.i64()?);
        let status = match r.u8()? {
            STATUS_ACTIVE => RecordStatus::Active,
            STATUS_MERGED => RecordStatus::Merged {
                into: ProfileId::from_bytes(r.array()?),
                merge_id: MergeId::from_bytes(r.array()?),
            },
            STATUS_ERASED => RecordStatus::Erased {
                erasure_id: u64::from_be_bytes(r.array()?),
            },
            other => {
                return Err(Error::corrupt(
                    Self::WHAT,
                    format!("unknown status {other}"),
                ))
            }
        };
        let n_origins = r.len(MAX_ORIGINS)?;
        let mut origins = Vec::with_capacity(n_origins);
        for _ in 0..n_origins {
            origins.push(ProfileId::from_bytes(r.array()?));
        }
        let count = r.u16()?;
        if usize::from(count) > MAX_FIELDS {
            return Err(Error::corrupt(
                Self::WHAT,
                format!("{count} fields exceed the limit of {MAX_FIELDS}"),
            ));
        }
        let mut fields: Vec<FieldEntry> = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let field_id = u32::try_from(r.varint()?)
                .map_err(|_| Error::corrupt(Self::WHAT, "field id exceeds 32 bits"))?;
            if fields.last().is_some_and(|prev| prev.field_id >= field_id) {
                return Err(Error::corrupt(Self::WHAT, "field ids out of order"));
            }
            let sealed = match r.u8()? {
                FLAG_PLAIN => false,
                FLAG_SEALED => true,
                other => {
                    return Err(Error::corrupt(
                        Self::WHAT,
                        format!("unknown field flag {other}"),
                    ))
                }
            };
            let origin = u32::try_from(r.varint()?)
                .ok()
                .filter(|&o| o as usize <= origins.len())
                .ok_or_else(|| Error::corrupt(Self::WHAT, "field origin out of range"))?;
            let age = unzigzag(r.varint()?);
            let written_at = Timestamp(updated_at.as_micros().wrapping_sub(age));
            let len = r.len(MAX_PAYLOAD_BYTES)?;
            fields.push(FieldEntry {
                field_id,
                sealed,
                origin,
                written_at,
                payload: r.bytes(len)?.to_vec(),
            });
        }
        r.finish()?;
        Ok(ProfileRecord {
            generation,
            created_at,
            updated_at,
            status,
            origins,
            fields,
        })
    }
}
