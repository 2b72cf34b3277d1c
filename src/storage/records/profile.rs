//! The profile record: status, origins, consent anchors, every field entry
//! and (format v2) the wrapped keyring, in one record.
//!
//! Two formats are read: v1 (each field its own AES-256-GCM seal, keyring
//! in the `keys` column family, CRC-protected header) and v2 (one nonce and
//! one tag per record, keyring inside, header authenticated). Only v2 is
//! written. The crypto of both lives in `domain::profiles::sealing`; this
//! file is the byte layout (docs/design.md, "Profile record format v2").

use super::codec::*;
use super::wrapped::WRAPPED_LEN;
use crate::error::{Error, Result};
use crate::types::{MergeId, ProfileId, Timestamp};

/// One profile: every field in one record, so a read is one point lookup and
/// a partial upsert rewrites only this record.
///
/// In memory a record is either *open* (in `Working`: payloads are the
/// encoded plaintext values) or *stored* (inside a [`StoredProfile`]:
/// payloads as on disk). Only a [`StoredProfile`] can be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProfileRecord {
    /// Keyring generation the sealed fields were written under.
    pub(crate) generation: u32,
    /// Writes of this record so far (v2; 0 for a v1 record). Bound into
    /// the tag, and the anchor consent records are checked against.
    pub(crate) write_version: u64,
    /// Consent anchors: (purpose tag, write version of the current consent
    /// record of that purpose), sorted by tag (v2).
    pub(crate) consents: Vec<([u8; 8], u64)>,
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
    /// Open record: the encoded value. Stored v2: the value XORed with its
    /// key-stream segment (sealed) or as is (plain). Stored v1: `nonce ‖ ciphertext
    /// ‖ tag` (sealed) or `value ‖ nonce ‖ tag` (plain).
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
/// Largest field payload: a value plus (v1) nonce and tag.
pub(crate) const MAX_PAYLOAD_BYTES: usize = MAX_VALUE_BYTES + 28;
/// Most consent anchors (purposes) one record may hold.
pub(crate) const MAX_CONSENT_ANCHORS: usize = 4096;

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

    /// The write version of the current consent record of purpose `tag`.
    pub(crate) fn consent_anchor(&self, tag: &[u8; 8]) -> Option<u64> {
        self.consents
            .binary_search_by_key(tag, |(t, _)| *t)
            .ok()
            .map(|i| self.consents[i].1)
    }

    /// Sets (`Some`) or removes (`None`) the anchor of purpose `tag`.
    pub(crate) fn set_consent_anchor(&mut self, tag: [u8; 8], version: Option<u64>) {
        match (
            self.consents.binary_search_by_key(&tag, |(t, _)| *t),
            version,
        ) {
            (Ok(i), Some(v)) => self.consents[i].1 = v,
            (Ok(i), None) => {
                self.consents.remove(i);
            }
            (Err(i), Some(v)) => self.consents.insert(i, (tag, v)),
            (Err(_), None) => {}
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
/// only its header (unauthenticated: for listing, never for an answer).
pub(crate) fn record_is_active(bytes: &[u8]) -> Result<bool> {
    let status_at = match check_version_upto(StoredProfile::WHAT, bytes, FormatVersion::V2)? {
        FormatVersion::V1 => 21,
        FormatVersion::V2 => {
            // version, generation, then the write version varint.
            let mut r = Reader::new(StoredProfile::WHAT, bytes);
            r.bytes(5)?;
            r.varint()?;
            r.position() + 16
        }
    };
    match bytes.get(status_at) {
        Some(&STATUS_ACTIVE) => Ok(true),
        Some(&STATUS_MERGED | &STATUS_ERASED) => Ok(false),
        _ => Err(Error::corrupt(
            StoredProfile::WHAT,
            "unreadable status byte",
        )),
    }
}

/// The v2 keyring slot: the keyring seed wrapped under its bucket key.
/// Its own AEAD (associated data: profile, bucket, bucket key version,
/// generation) authenticates it, so the record tag leaves it out and a
/// purge re-wraps it without re-sealing the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyringSlot {
    pub(crate) parent_version: u32,
    pub(crate) sealed: [u8; WRAPPED_LEN],
}

/// What a v2 record adds to its fields: the nonce and tag of the record
/// seal, the authenticated bytes, and the keyring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordSeal {
    pub(crate) nonce: [u8; 16],
    pub(crate) tag: [u8; 16],
    pub(crate) keyring: KeyringSlot,
    /// The encoded record up to the tag: what the tag authenticates.
    pub(crate) body: Vec<u8>,
}

/// A profile record as stored: v1 (no seal; keyring elsewhere) or v2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredProfile {
    pub(crate) record: ProfileRecord,
    /// `None`: format v1.
    pub(crate) seal: Option<RecordSeal>,
}

impl StoredProfile {
    #[cfg(test)]
    pub(crate) fn format(&self) -> FormatVersion {
        if self.seal.is_some() {
            FormatVersion::V2
        } else {
            FormatVersion::V1
        }
    }
}

/// Encodes the authenticated body of a v2 record whose field payloads are
/// already encrypted.
pub(crate) fn encode_v2_body(rec: &ProfileRecord, nonce: &[u8; 16]) -> Vec<u8> {
    let payload: usize = rec.fields.iter().map(|f| 8 + f.payload.len()).sum();
    let mut out = Vec::with_capacity(64 + 16 * rec.origins.len() + payload);
    out.push(FormatVersion::V2 as u8);
    out.extend_from_slice(&rec.generation.to_be_bytes());
    put_varint(&mut out, rec.write_version);
    put_header_tail(&mut out, rec);
    put_len(&mut out, rec.consents.len());
    for (tag, v) in &rec.consents {
        out.extend_from_slice(tag);
        put_varint(&mut out, *v);
    }
    out.extend_from_slice(nonce);
    put_fields(&mut out, rec, true);
    out
}

/// Times, status and origins (shared by v1 and v2).
fn put_header_tail(out: &mut Vec<u8>, rec: &ProfileRecord) {
    out.extend_from_slice(&rec.created_at.as_micros().to_be_bytes());
    out.extend_from_slice(&rec.updated_at.as_micros().to_be_bytes());
    match rec.status {
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
    put_len(out, rec.origins.len());
    for o in &rec.origins {
        out.extend_from_slice(o.as_bytes());
    }
}

/// Field count (v1: u16, v2: varint) and entries.
fn put_fields(out: &mut Vec<u8>, rec: &ProfileRecord, v2: bool) {
    if v2 {
        put_len(out, rec.fields.len());
    } else {
        // Bounded on the write path (MAX_FIELDS).
        out.extend_from_slice(
            &u16::try_from(rec.fields.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
    }
    for f in &rec.fields {
        put_varint(out, u64::from(f.field_id));
        out.push(if f.sealed { FLAG_SEALED } else { FLAG_PLAIN });
        put_varint(out, u64::from(f.origin));
        let age = rec
            .updated_at
            .as_micros()
            .wrapping_sub(f.written_at.as_micros());
        put_varint(out, zigzag(age));
        put_len(out, f.payload.len());
        out.extend_from_slice(&f.payload);
    }
}

impl ProfileRecord {
    /// Format v1 (what builds before format v2 wrote): for reading old
    /// stores in tests and for nothing else.
    pub(crate) fn encode_v1(&self) -> Vec<u8> {
        let mut out = vec![FormatVersion::V1 as u8];
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_header_tail(&mut out, self);
        put_fields(&mut out, self, false);
        push_crc(&mut out);
        out
    }

    #[cfg(any(test, feature = "testkit"))]
    /// The v2 body layout with no seal, keyring or consent anchors, values
    /// in the clear: the plaintext baseline of the benches.
    pub(crate) fn encode_clear(&self) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_varint(&mut out, self.write_version);
        put_header_tail(&mut out, self);
        put_fields(&mut out, self, true);
        push_crc(&mut out);
        out
    }

    #[cfg(any(test, feature = "testkit"))]
    /// Decodes [`Self::encode_clear`].
    pub(crate) fn decode_clear(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "plaintext profile record";
        if bytes.first() != Some(&0) {
            return Err(Error::corrupt(WHAT, "not a plaintext record"));
        }
        let mut r = Reader::new(WHAT, check_crc(WHAT, bytes)?);
        r.u8()?;
        let generation = r.u32()?;
        let write_version = r.varint()?;
        let mut rec = decode_header_tail(&mut r, generation, write_version)?;
        decode_fields(&mut r, &mut rec, true)?;
        r.finish()?;
        Ok(rec)
    }
}

fn decode_header_tail(
    r: &mut Reader<'_>,
    generation: u32,
    write_version: u64,
) -> Result<ProfileRecord> {
    let what = StoredProfile::WHAT;
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
        other => return Err(Error::corrupt(what, format!("unknown status {other}"))),
    };
    let n_origins = r.len(MAX_ORIGINS)?;
    let mut origins = Vec::with_capacity(n_origins);
    for _ in 0..n_origins {
        origins.push(ProfileId::from_bytes(r.array()?));
    }
    Ok(ProfileRecord {
        generation,
        write_version,
        consents: Vec::new(),
        created_at,
        updated_at,
        status,
        origins,
        fields: Vec::new(),
    })
}

fn decode_fields(r: &mut Reader<'_>, rec: &mut ProfileRecord, v2: bool) -> Result<()> {
    let what = StoredProfile::WHAT;
    let count = if v2 {
        r.len(MAX_FIELDS)?
    } else {
        usize::from(r.u16()?)
    };
    if count > MAX_FIELDS {
        return Err(Error::corrupt(
            what,
            format!("{count} fields exceed the limit of {MAX_FIELDS}"),
        ));
    }
    let mut fields: Vec<FieldEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        let field_id = u32::try_from(r.varint()?)
            .map_err(|_| Error::corrupt(what, "field id exceeds 32 bits"))?;
        if fields.last().is_some_and(|prev| prev.field_id >= field_id) {
            return Err(Error::corrupt(what, "field ids out of order"));
        }
        let sealed = match r.u8()? {
            FLAG_PLAIN => false,
            FLAG_SEALED => true,
            other => return Err(Error::corrupt(what, format!("unknown field flag {other}"))),
        };
        let origin = u32::try_from(r.varint()?)
            .ok()
            .filter(|&o| o as usize <= rec.origins.len())
            .ok_or_else(|| Error::corrupt(what, "field origin out of range"))?;
        let age = unzigzag(r.varint()?);
        let written_at = Timestamp(rec.updated_at.as_micros().wrapping_sub(age));
        let len = r.len(if v2 {
            MAX_VALUE_BYTES
        } else {
            MAX_PAYLOAD_BYTES
        })?;
        fields.push(FieldEntry {
            field_id,
            sealed,
            origin,
            written_at,
            payload: r.bytes(len)?.to_vec(),
        });
    }
    rec.fields = fields;
    Ok(())
}

impl ValueCodec for StoredProfile {
    const WHAT: &'static str = "profile record";

    /// Only tests write format v1 (to build stores of older builds): in a
    /// release library an unsealed record is refused before the batch.
    fn try_encode(&self) -> Result<Vec<u8>> {
        if self.seal.is_none() && !cfg!(any(test, feature = "testkit")) {
            return Err(Error::Internal(
                "a profile record of format v1 is never written".into(),
            ));
        }
        Ok(self.encode())
    }

    /// v2: body ‖ tag ‖ keyring ‖ crc32; v1: the v1 layout.
    fn encode(&self) -> Vec<u8> {
        match &self.seal {
            None => self.record.encode_v1(),
            Some(s) => {
                let mut out = Vec::with_capacity(s.body.len() + 16 + 4 + WRAPPED_LEN + 4);
                out.extend_from_slice(&s.body);
                out.extend_from_slice(&s.tag);
                out.extend_from_slice(&s.keyring.parent_version.to_be_bytes());
                out.extend_from_slice(&s.keyring.sealed);
                push_crc(&mut out);
                out
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut r, version) = Reader::framed_upto(Self::WHAT, bytes, FormatVersion::V2)?;
        let generation = r.u32()?;
        match version {
            FormatVersion::V1 => {
                let mut record = decode_header_tail(&mut r, generation, 0)?;
                decode_fields(&mut r, &mut record, false)?;
                r.finish()?;
                Ok(StoredProfile { record, seal: None })
            }
            FormatVersion::V2 => {
                let write_version = r.varint()?;
                let mut record = decode_header_tail(&mut r, generation, write_version)?;
                if matches!(record.status, RecordStatus::Erased { .. }) {
                    return Err(Error::corrupt(Self::WHAT, "a v2 record cannot be erased"));
                }
                let n = r.len(MAX_CONSENT_ANCHORS)?;
                let mut consents: Vec<([u8; 8], u64)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let tag: [u8; 8] = r.array()?;
                    if consents.last().is_some_and(|(prev, _)| *prev >= tag) {
                        return Err(Error::corrupt(Self::WHAT, "consent anchors out of order"));
                    }
                    consents.push((tag, r.varint()?));
                }
                record.consents = consents;
                let nonce: [u8; 16] = r.array()?;
                decode_fields(&mut r, &mut record, true)?;
                let body_len = r.position();
                let tag: [u8; 16] = r.array()?;
                let keyring = KeyringSlot {
                    parent_version: r.u32()?,
                    sealed: r.array()?,
                };
                r.finish()?;
                Ok(StoredProfile {
                    record,
                    seal: Some(RecordSeal {
                        nonce,
                        tag,
                        keyring,
                        body: bytes[..body_len].to_vec(),
                    }),
                })
            }
        }
    }
}
