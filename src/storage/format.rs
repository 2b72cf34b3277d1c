//! On-disk record formats. Byte layouts are documented in `docs/design.md`;
//! keep the two in step.
//!
//! Every record starts with a format version byte read through
//! [`FormatVersion`]; unknown versions are rejected. Records that are not
//! authenticated by an AEAD end with a CRC-32 (IEEE, `crc32fast`) of all
//! preceding bytes. All integers are big-endian.

use crate::error::{Error, Result};
use crate::types::{MergeId, ProfileId, Timestamp, Value};

/// Record format versions this build understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FormatVersion {
    V1 = 1,
}

impl FormatVersion {
    pub(crate) const CURRENT: FormatVersion = FormatVersion::V1;
}

impl TryFrom<u8> for FormatVersion {
    type Error = u8;
    fn try_from(v: u8) -> std::result::Result<Self, u8> {
        match v {
            1 => Ok(FormatVersion::V1),
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
}

fn check_version(what: &'static str, bytes: &[u8]) -> Result<FormatVersion> {
    let first = *bytes
        .first()
        .ok_or_else(|| Error::corrupt(what, "empty record"))?;
    FormatVersion::try_from(first).map_err(|version| Error::UnsupportedFormat {
        what,
        version,
        supported: FormatVersion::CURRENT as u8,
    })
}

/// Splits off and checks the trailing CRC-32.
fn check_crc<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a [u8]> {
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

fn push_crc(out: &mut Vec<u8>) {
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

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_varint(out, n as u64);
}

/// Maps signed to unsigned so small magnitudes stay short (0, -1, 1, -2 → 0, 1, 2, 3).
fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
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

// ---------------------------------------------------------------- store header

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
        check_version(Self::WHAT, bytes)?;
        let body = check_crc(Self::WHAT, bytes)?;
        let mut r = Reader::new(Self::WHAT, body);
        r.u8()?;
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

// --------------------------------------------------------------- profile record

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

const STATUS_ACTIVE: u8 = 0;
const STATUS_MERGED: u8 = 1;
const STATUS_ERASED: u8 = 2;
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

/// Largest encoded value of one field, in bytes.
pub(crate) const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most fields one profile record may hold.
pub(crate) const MAX_FIELDS: usize = 4096;
/// Largest field payload: a value plus nonce and tag.
const MAX_PAYLOAD_BYTES: usize = MAX_VALUE_BYTES + 28;

const FLAG_PLAIN: u8 = 0;
const FLAG_SEALED: u8 = 1;

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
        check_version(Self::WHAT, bytes)?;
        let body = check_crc(Self::WHAT, bytes)?;
        let mut r = Reader::new(Self::WHAT, body);
        r.u8()?;
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

// -------------------------------------------------------------- identity index

/// Blind index entry: the profile an identifier belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdentityEntry {
    pub(crate) profile: ProfileId,
}

impl ValueCodec for IdentityEntry {
    const WHAT: &'static str = "identity entry";

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21);
        out.push(FormatVersion::CURRENT as u8);
        out.extend_from_slice(self.profile.as_bytes());
        push_crc(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        check_version(Self::WHAT, bytes)?;
        let body = check_crc(Self::WHAT, bytes)?;
        let mut r = Reader::new(Self::WHAT, body);
        r.u8()?;
        let profile = ProfileId::from_bytes(r.array()?);
        r.finish()?;
        Ok(IdentityEntry { profile })
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
const MAX_MERGE_RECORD_BYTES: u64 = 64 << 20;

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
                use bincode::Options;
                let mut out = vec![FormatVersion::CURRENT as u8];
                // Serialising plain owned data to a Vec fails only over the
                // size bound, which the write path checks first
                // (`check_size`); a record that fails anyway is written
                // without a body and its decoder refuses it (typed), never
                // read as a different value.
                if let Ok(body) = bincode_options($limit).serialize(self) {
                    out.extend_from_slice(&body);
                }
                push_crc(&mut out);
                out
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

// -------------------------------------------------------------------- consents

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
        check_version(Self::WHAT, bytes)?;
        let body = check_crc(Self::WHAT, bytes)?;
        let mut r = Reader::new(Self::WHAT, body);
        r.u8()?;
        let expires_at = match r.u8()? {
            0 => None,
            1 => Some(Timestamp(r.i64()?)),
            other => return Err(Error::corrupt(Self::WHAT, format!("expiry flag {other}"))),
        };
        r.finish()?;
        Ok(GrantEntry { expires_at })
    }
}

// ------------------------------------------------------------------- erasure

/// Whether an erasure covered a whole person or some fields of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum ErasureScope {
    Profile,
    Fields,
}

impl ErasureScope {
    /// The name used in certificates and backup ledgers.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ErasureScope::Profile => "profile",
            ErasureScope::Fields => "fields",
        }
    }
}

/// One erasure in the ledger (`meta` keyspace `e`). Kept forever: it makes
/// `forget` idempotent, lets `restore` replay erasures into an older backup,
/// and holds the certificate once purged. PII-free: profile ids are random,
/// field names are schema names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ErasureRecord {
    pub(crate) erasure_id: u64,
    pub(crate) scope: ErasureScope,
    /// The profile asked for (its active target), first, then merged-away ids.
    pub(crate) profiles: Vec<[u8; 16]>,
    /// Erased fields (scope `Fields`).
    pub(crate) fields: Vec<String>,
    pub(crate) subject_ref: [u8; 16],
    /// Key ids destroyed (see `docs/design.md`).
    pub(crate) key_ids: Vec<[u8; 16]>,
    pub(crate) index_entries_removed: u32,
    pub(crate) consent_records_removed: u32,
    pub(crate) suppressed: u32,
    pub(crate) requested_at: i64,
    /// Audit position of the forget entry.
    pub(crate) audit_seq: u64,
    pub(crate) purged_at: Option<i64>,
    /// The signed certificate (compact JSON) once purged.
    pub(crate) certificate: Option<Vec<u8>>,
}

const MAX_ERASURE_RECORD_BYTES: u64 = 16 << 20;
bincode_record!(ErasureRecord, "erasure record", MAX_ERASURE_RECORD_BYTES);

/// Work left for `purge`: the storage keys whose old versions must be
/// compacted away (`meta` keyspace `q`). Holds blind keys, so purge deletes
/// it and compacts the (small) `meta` column family last.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PendingPurge {
    pub(crate) requested_at: i64,
    /// (column family index in `ALL_CFS`, first key, last key) ranges.
    pub(crate) ranges: Vec<(u8, Vec<u8>, Vec<u8>)>,
}

bincode_record!(PendingPurge, "pending purge", MAX_ERASURE_RECORD_BYTES);

/// A suppressed identifier (`identities` keyspace `s`, keyed by its
/// suppression hash): later resolves that carry it are rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SuppressionEntry {
    pub(crate) erasure_id: u64,
    pub(crate) at: i64,
}

bincode_record!(SuppressionEntry, "suppression entry", 64);

/// The store's Ed25519 signing key: the secret wrapped under a
/// master-derived key, the public key in clear.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SigningKeyRecord {
    pub(crate) created_at: i64,
    pub(crate) public: [u8; 32],
    /// `nonce (12) || ciphertext (32) || tag (16)`.
    pub(crate) sealed_secret: Vec<u8>,
}

bincode_record!(SigningKeyRecord, "signing key", 256);

/// A backup location registered with the store (`meta` keyspace `b`): the
/// erasure ledger is mirrored into it at every purge.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BackupRecord {
    pub(crate) path: String,
    pub(crate) taken_at: i64,
    /// Highest erasure id contained in the backup itself.
    pub(crate) last_erasure: u64,
    /// Every erasure up to this id is purged from the backup (at creation:
    /// those purged before it was taken; then those its re-keys applied).
    pub(crate) purged_through: u64,
    /// Root epoch of the backup's own key tree (`None`: invalidated, its
    /// root destroyed because it could not be reached by a purge).
    pub(crate) root_epoch: Option<u32>,
    /// Epoch reserved by a re-key in progress (crash safety).
    pub(crate) next_root_epoch: Option<u32>,
}

bincode_record!(BackupRecord, "backup record", 1 << 16);

// ---------------------------------------------------------------------- audit

/// One audit-log entry (`audit` keyspace `a`, keyed by sequence number).
/// The entry hash is `SHA-256("lethedb/audit/v1" || encoded entry)`, and
/// each entry names the hash of the one before it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuditEntry {
    pub(crate) seq: u64,
    pub(crate) at: i64,
    pub(crate) kind: String,
    /// Pseudonymous subject reference, when the entry is about one person.
    pub(crate) subject: Option<[u8; 16]>,
    /// PII-free details (JSON text).
    pub(crate) detail: String,
    pub(crate) prev: [u8; 32],
}

bincode_record!(AuditEntry, "audit entry", 1 << 20);

/// The head of the audit chain (`audit` keyspace `h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuditHead {
    /// Sequence number of the last entry (0: empty log).
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
}

bincode_record!(AuditHead, "audit head", 64);

// ----------------------------------------------------------------- value codec

/// Maximum nesting of lists inside lists.
pub(crate) const MAX_DEPTH: usize = 32;

const TAG_STRING: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_FLOAT: u8 = 3;
const TAG_BOOL: u8 = 4;
const TAG_TIMESTAMP: u8 = 5;
const TAG_LIST: u8 = 6;
const TAG_JSON: u8 = 7;

/// Encodes a value: `tag (1) || body`. See docs/design.md for each tag.
pub(crate) fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => {
            out.push(TAG_STRING);
            put_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Int(i) => {
            out.push(TAG_INT);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Float(f) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Bool(b) => {
            out.push(TAG_BOOL);
            out.push(u8::from(*b));
        }
        Value::Timestamp(t) => {
            out.push(TAG_TIMESTAMP);
            out.extend_from_slice(&t.as_micros().to_be_bytes());
        }
        Value::List(items) => {
            out.push(TAG_LIST);
            put_len(out, items.len());
            for item in items {
                encode_value(item, out);
            }
        }
        Value::Json(j) => {
            out.push(TAG_JSON);
            let text = j.to_string();
            put_len(out, text.len());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Decodes exactly one value filling all of `bytes`.
pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value> {
    let mut r = Reader::new("field value", bytes);
    let v = read_value(&mut r, 0)?;
    r.finish()?;
    Ok(v)
}

fn read_value(r: &mut Reader<'_>, depth: usize) -> Result<Value> {
    const WHAT: &str = "field value";
    Ok(match r.u8()? {
        TAG_STRING => {
            let n = r.len(MAX_VALUE_BYTES)?;
            let s = std::str::from_utf8(r.bytes(n)?)
                .map_err(|_| Error::corrupt(WHAT, "string is not UTF-8"))?;
            Value::String(s.to_string())
        }
        TAG_INT => Value::Int(r.i64()?),
        TAG_FLOAT => Value::Float(f64::from_bits(u64::from_be_bytes(r.array()?))),
        TAG_BOOL => match r.u8()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            other => return Err(Error::corrupt(WHAT, format!("bool byte {other}"))),
        },
        TAG_TIMESTAMP => Value::Timestamp(Timestamp(r.i64()?)),
        TAG_LIST => {
            if depth >= MAX_DEPTH {
                return Err(Error::corrupt(WHAT, "lists nested too deeply"));
            }
            let n = r.len(MAX_VALUE_BYTES)?;
            // Every item takes at least 2 bytes, so a huge count fails on
            // the first missing item instead of allocating.
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(read_value(r, depth + 1)?);
            }
            Value::List(items)
        }
        TAG_JSON => {
            let n = r.len(MAX_VALUE_BYTES)?;
            let j = serde_json::from_slice(r.bytes(n)?)
                .map_err(|e| Error::corrupt(WHAT, format!("json: {e}")))?;
            Value::Json(j)
        }
        other => return Err(Error::corrupt(WHAT, format!("unknown value tag {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_record() -> ProfileRecord {
        ProfileRecord {
            generation: 3,
            created_at: Timestamp(10),
            updated_at: Timestamp(20),
            status: RecordStatus::Active,
            origins: vec![ProfileId::from_bytes([4; 16])],
            fields: vec![
                FieldEntry {
                    field_id: 0,
                    sealed: true,
                    origin: 1,
                    written_at: Timestamp(11),
                    payload: vec![1; 40],
                },
                FieldEntry {
                    field_id: 5,
                    sealed: false,
                    origin: 0,
                    written_at: Timestamp(12),
                    payload: vec![2, 0, 0, 0, 0, 0, 0, 0, 7],
                },
            ],
        }
    }

    #[test]
    fn profile_record_round_trip_and_every_flip_detected() {
        let rec = sample_record();
        let bytes = rec.encode();
        assert_eq!(
            bytes.len(),
            1 + 4 + 8 + 8 + 1 + (1 + 16) + 2 + (5 + 40) + (5 + 9) + 4
        );
        assert_eq!(ProfileRecord::decode(&bytes).unwrap(), rec);
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                assert!(
                    ProfileRecord::decode(&b).is_err(),
                    "flip {bit:#x} at {i} went undetected"
                );
            }
        }
        for cut in 0..bytes.len() {
            assert!(ProfileRecord::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn merged_status_round_trips() {
        let mut rec = sample_record();
        rec.status = RecordStatus::Merged {
            into: ProfileId::from_bytes([8; 16]),
            merge_id: MergeId::from_bytes([9; 16]),
        };
        assert_eq!(ProfileRecord::decode(&rec.encode()).unwrap(), rec);
        rec.fields[0].origin = 2;
        assert!(
            ProfileRecord::decode(&rec.encode()).is_err(),
            "origin beyond the table"
        );
    }

    #[test]
    fn unknown_version_is_typed() {
        let mut bytes = sample_record().encode();
        bytes[0] = 9;
        assert!(matches!(
            ProfileRecord::decode(&bytes),
            Err(Error::UnsupportedFormat { version: 9, .. })
        ));
        let w = WrappedKey {
            parent_version: 1,
            version: 1,
            sealed: [0; WRAPPED_LEN],
        };
        let mut b = w.encode();
        assert_eq!(WrappedKey::decode(&b).unwrap(), w);
        b[0] = 0;
        assert!(matches!(
            WrappedKey::decode(&b),
            Err(Error::UnsupportedFormat { version: 0, .. })
        ));
    }

    #[test]
    fn key_tree_header_round_trip() {
        let h = KeyTreeHeader {
            fanout_bits: 8,
            depth: 3,
            root_epoch: 77,
        };
        let b = h.encode();
        assert_eq!(b.len(), 11);
        assert_eq!(KeyTreeHeader::decode(&b).unwrap(), h);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(KeyTreeHeader::decode(&c).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn header_round_trip() {
        let h = StoreHeader {
            store_id: [5; 16],
            bucket_bits: 16,
            key_check: [6; 32],
            created_at: Timestamp(99),
        };
        let b = h.encode();
        assert_eq!(b.len(), 70);
        assert_eq!(StoreHeader::decode(&b).unwrap(), h);
        let mut v2 = b.clone();
        v2[0] = 2;
        assert!(matches!(
            StoreHeader::decode(&v2),
            Err(Error::UnsupportedFormat { .. })
        ));
        let mut nomagic = b;
        nomagic[3] = b'X';
        assert!(matches!(
            StoreHeader::decode(&nomagic),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn values_round_trip() {
        let v = Value::List(vec![
            Value::String("ä".into()),
            Value::Int(-5),
            Value::Float(1.5),
            Value::Bool(true),
            Value::Timestamp(Timestamp(123)),
            Value::Json(serde_json::json!({"a":[1,2]})),
            Value::List(vec![]),
        ]);
        let mut out = Vec::new();
        encode_value(&v, &mut out);
        assert_eq!(decode_value(&out).unwrap(), v);
        out.push(0);
        assert!(
            decode_value(&out).is_err(),
            "trailing byte must be rejected"
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowing() {
        let mut bytes = Vec::new();
        for _ in 0..10_000 {
            bytes.extend_from_slice(&[TAG_LIST, 1]);
        }
        assert!(decode_value(&bytes).is_err());
    }

    #[test]
    fn varints_are_minimal_and_bounded() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new("t", &out);
            assert_eq!(r.varint().unwrap(), v);
            r.finish().unwrap();
        }
        assert!(
            Reader::new("t", &[0x80, 0x00]).varint().is_err(),
            "non-minimal"
        );
        assert!(Reader::new("t", &[0xff; 11]).varint().is_err(), "too long");
        assert!(Reader::new(
            "t",
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]
        )
        .varint()
        .is_err());
        for i in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(i)), i);
        }
        assert_eq!(zigzag(-1), 1);
    }

    #[test]
    fn field_names_round_trip() {
        let names = vec!["email".to_string(), "x".to_string()];
        assert_eq!(
            decode_field_names(&encode_field_names(&names)).unwrap(),
            names
        );
        assert!(decode_field_names(&[0, 0, 0, 9]).is_err());
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
