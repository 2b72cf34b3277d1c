//! Sealing and opening whole profile records: format v2 (one nonce, one
//! tag, each personal field under its own segment of one AES-256-CTR key
//! stream; see
//! `crypto::record`) and the reading of format v1 (each field its own
//! AES-256-GCM seal).

use zeroize::Zeroizing;

use crate::crypto::aead;
use crate::crypto::kdf::FieldKeys;
use crate::crypto::record::record_nonce;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keytree::{field_ad, Keyring};
use crate::storage::columns::Profiles;
use crate::storage::records::{
    self, encode_v2_body, FieldEntry, KeyringSlot, ProfileRecord, RecordSeal, StoredProfile,
    WrappedKey,
};
use crate::types::ProfileId;

/// The wrapped keyring a v2 record carries, as the key tree reads it.
pub(crate) fn slot_key(record: &ProfileRecord, slot: &KeyringSlot) -> WrappedKey {
    WrappedKey {
        parent_version: slot.parent_version,
        version: record.generation,
        sealed: slot.sealed,
    }
}

/// Seals an open record as format v2: write version + 1, a fresh nonce,
/// every sealed field encrypted under its subkey, one tag over the rest.
pub(crate) fn seal_record(
    id: &ProfileId,
    open: &ProfileRecord,
    keyring: &Keyring,
    wrapped: &WrappedKey,
) -> Result<StoredProfile> {
    if wrapped.version != open.generation || keyring.generation != open.generation {
        return Err(Error::Internal(format!(
            "profile {id}: record generation {} sealed with keyring generation {}",
            open.generation, wrapped.version
        )));
    }
    let keys = keyring.record_keys()?;
    let nonce = record_nonce()?;
    let mut rec = open.clone();
    rec.write_version = open
        .write_version
        .checked_add(1)
        .ok_or_else(|| Error::Internal(format!("profile {id}: write version exhausted")))?;
    for f in rec.fields.iter_mut().filter(|f| f.sealed) {
        keys.apply_field(&nonce, f.field_id, &mut f.payload)?;
    }
    let body = encode_v2_body(&rec, &nonce);
    let tag = keys.tag(&nonce, id.as_bytes(), &body)?;
    Ok(StoredProfile {
        record: rec,
        seal: Some(RecordSeal {
            nonce,
            tag,
            keyring: KeyringSlot {
                parent_version: wrapped.parent_version,
                sealed: wrapped.sealed,
            },
            body,
        }),
    })
}

fn auth_failed(id: &ProfileId) -> Error {
    Error::Integrity {
        profile: *id,
        what: "profile record (its tag does not authenticate: altered, spliced or moved)".into(),
    }
}

/// A v1 record is read only in a store that may hold v1 (not created by
/// or upgraded to format v2). `upgrade` turns the erased records of older
/// builds into keyed tombstones before it marks the store, so a v2-only
/// store has no v1 record of any status.
pub(crate) fn v1_allowed(db: &Engine, id: &ProfileId, stored: &StoredProfile) -> Result<()> {
    if stored.seal.is_some() {
        return Ok(());
    }
    match db.v1_refused(id, "profile record") {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// Opens a stored record: checks the tag (v2), then decrypts every field
/// (`Fields::All`: returns the open record and `None`) or none
/// (`Fields::Lazy`: the record as stored and what opens its fields later).
pub(crate) fn open_record(
    db: &Engine,
    id: &ProfileId,
    stored: StoredProfile,
    keyring: &Keyring,
    which: Fields,
) -> Result<(ProfileRecord, Option<Sealed>)> {
    v1_allowed(db, id, &stored)?;
    let StoredProfile { mut record, seal } = stored;
    let sealed = match seal {
        Some(seal) => {
            let keys = keyring.record_keys()?;
            if !keys.verify(&seal.nonce, id.as_bytes(), &seal.body, &seal.tag) {
                return Err(auth_failed(id));
            }
            Sealed::V2 { nonce: seal.nonce }
        }
        None => Sealed::V1(keyring.field_keys()?),
    };
    if which == Fields::Lazy {
        return Ok((record, Some(sealed)));
    }
    for f in record.fields.iter_mut() {
        let name = match sealed {
            Sealed::V2 { .. } => String::new(),
            Sealed::V1(_) => db.registry.name(f.field_id)?,
        };
        f.payload = sealed.open(keyring, id, &name, f)?.to_vec();
    }
    Ok((record, None))
}

/// A profile record with its header authenticated (v2: the tag checked
/// under the profile's keys; v1 records have only their CRC). Field
/// payloads stay as stored. For code that decides on status, origins,
/// times or consent anchors without reading fields.
pub(crate) fn authenticated(db: &Engine, id: &ProfileId) -> Result<Option<StoredProfile>> {
    let Some(stored) = db.store.get::<Profiles>(id)? else {
        return Ok(None);
    };
    check(db, id, &stored)?;
    Ok(Some(stored))
}

/// Checks a stored record's tag (v2); v1 records pass on their CRC.
pub(crate) fn check(db: &Engine, id: &ProfileId, stored: &StoredProfile) -> Result<()> {
    v1_allowed(db, id, stored)?;
    let Some(seal) = &stored.seal else {
        return Ok(());
    };
    let keyring = db
        .keys
        .open_keyring(&db.store, id, &slot_key(&stored.record, &seal.keyring))?;
    if keyring
        .record_keys()?
        .verify(&seal.nonce, id.as_bytes(), &seal.body, &seal.tag)
    {
        Ok(())
    } else {
        Err(auth_failed(id))
    }
}

/// How a load opens a record's fields.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fields {
    /// Every field decrypted at load (the write path).
    All,
    /// None at load: each is decrypted when asked for (`Working::open`),
    /// so a read decrypts only the fields it returns. The record's tag is
    /// checked at load either way.
    Lazy,
}

/// A lazily opened record: what `Working::open` needs to decrypt a field.
pub(crate) enum Sealed {
    /// v2: the record nonce (the keys are the keyring's).
    V2 { nonce: [u8; 16] },
    /// v1: the per-field keys.
    V1(FieldKeys),
}

impl Sealed {
    /// The encoded value of `entry` (still sealed) of profile `id`.
    pub(crate) fn open(
        &self,
        keyring: &Keyring,
        id: &ProfileId,
        name: &str,
        entry: &FieldEntry,
    ) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Sealed::V2 { nonce } => {
                let keys = keyring.record_keys()?;
                let mut buf = Zeroizing::new(entry.payload.clone());
                if entry.sealed {
                    keys.apply_field(nonce, entry.field_id, &mut buf)?;
                }
                Ok(buf)
            }
            Sealed::V1(keys) => open_entry_bytes(keys, id, name, entry),
        }
    }
}

/// Builds a field entry's payload. Sealed: `nonce ‖ ciphertext ‖ tag` of the
/// encoded value. Plain: `value ‖ nonce ‖ tag`, where the tag authenticates
/// the value (it is AES-GCM over an empty plaintext with the value in the
/// associated data). Either way the entry is bound to profile, field,
/// generation and its sealed/plain flag, so no entry can be moved, relabelled
/// or altered without an error.
pub(crate) fn seal_entry(
    keys: &FieldKeys,
    id: &ProfileId,
    name: &str,
    field_id: u32,
    sealed: bool,
    plain: &[u8],
) -> Result<Vec<u8>> {
    check_value_len(plain.len())?;
    let key = keys.key(field_id)?;
    let mut ad = field_ad(id, keys.generation(), name, sealed);
    let mut out = Vec::with_capacity(plain.len() + aead::OVERHEAD);
    if sealed {
        aead::seal_into(&key, &ad, plain, &mut out)?;
    } else {
        ad.extend_from_slice(plain);
        out.extend_from_slice(plain);
        aead::seal_into(&key, &ad, &[], &mut out)?;
    }
    Ok(out)
}

/// Authenticates (and for sealed entries decrypts) one v1 entry and
/// returns its encoded value.
pub(super) fn open_entry_bytes(
    keys: &FieldKeys,
    id: &ProfileId,
    name: &str,
    entry: &FieldEntry,
) -> Result<Zeroizing<Vec<u8>>> {
    let key = keys.key(entry.field_id)?;
    let mut ad = field_ad(id, keys.generation(), name, entry.sealed);
    let fail = || Error::Decrypt {
        profile: *id,
        what: format!("field {name:?}"),
    };
    if entry.sealed {
        aead::open(&key, &ad, &entry.payload).ok_or_else(fail)
    } else {
        let split = entry
            .payload
            .len()
            .checked_sub(aead::OVERHEAD)
            .ok_or_else(fail)?;
        let (value, tag) = entry.payload.split_at(split);
        ad.extend_from_slice(value);
        aead::open(&key, &ad, tag).ok_or_else(fail)?;
        Ok(Zeroizing::new(value.to_vec()))
    }
}

pub(super) fn check_value_len(len: usize) -> Result<()> {
    // The decoder refuses a value over the format's bound; every sealing
    // path (user writes, system fields, `$ids` after many merges) is held
    // to it here, before anything is written.
    if len > records::MAX_VALUE_BYTES {
        return Err(Error::RecordTooLarge {
            what: "field value",
            bytes: len as u64,
            limit: records::MAX_VALUE_BYTES as u64,
        });
    }
    Ok(())
}
