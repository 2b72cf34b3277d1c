//! A profile being changed in memory (`Working`): its record and keyring,
//! sealing and opening of field entries under per-field keys, origins.

use zeroize::Zeroizing;

use super::update::*;
use crate::crypto::aead;
use crate::crypto::kdf::FieldKeys;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keytree::{field_ad, Keyring};
use crate::storage::columns::{Keyrings, Profiles};
use crate::storage::records::{self, FieldEntry, ProfileRecord, RecordStatus, WrappedKey};
use crate::storage::Batch;
use crate::types::{FieldClass, ProfileId, Timestamp, Value};

/// Longest chain of merge redirects followed before giving up.
pub(super) const MAX_REDIRECTS: usize = 64;

/// In-flight state of one profile: its record and unwrapped keyring.
pub(crate) struct Working {
    pub(crate) id: ProfileId,
    pub(crate) record: ProfileRecord,
    pub(crate) keyring: Keyring,
    /// Set for a profile created in this operation: its keyring must be written.
    pub(crate) new_keyring: Option<WrappedKey>,
}

impl Working {
    /// Loads a profile's record and keyring; `None` when there is no record.
    pub(crate) fn load(db: &Engine, id: &ProfileId) -> Result<Option<Working>> {
        let (record, wrapped) = db.store.get2::<Profiles, Keyrings>(id, id)?;
        if let Some(e) = record
            .as_ref()
            .and_then(|r| crate::domain::erasure::markers::erased_error(id, r))
        {
            return Err(e);
        }
        match (record, wrapped) {
            (None, _) => match db.erased_error(id)? {
                Some(e) => Err(e),
                None => Ok(None),
            },
            (Some(_), None) => Err(Error::Decrypt {
                profile: *id,
                what: "keyring (missing)".into(),
            }),
            (Some(record), Some(w)) => {
                let keyring = db.keys.open_keyring(&db.store, id, &w)?;
                check_generation(id, &record, &keyring)?;
                Ok(Some(Working {
                    id: *id,
                    record,
                    keyring,
                    new_keyring: None,
                }))
            }
        }
    }

    /// A new, empty profile with a fresh keyring.
    pub(crate) fn create(db: &Engine, id: &ProfileId, now: Timestamp) -> Result<Working> {
        let (keyring, wrapped) = db.keys.new_keyring(&db.store, id)?;
        Ok(Working {
            id: *id,
            record: ProfileRecord {
                generation: keyring.generation,
                created_at: now,
                updated_at: now,
                status: RecordStatus::Active,
                origins: Vec::new(),
                fields: Vec::new(),
            },
            keyring,
            new_keyring: Some(wrapped),
        })
    }

    /// Origin index of `who` in this record (0: the profile itself or unknown).
    pub(crate) fn origin_index(&self, who: &ProfileId) -> u32 {
        self.record
            .origins
            .iter()
            .position(|o| o == who)
            .and_then(|i| u32::try_from(i + 1).ok())
            .unwrap_or(0)
    }

    /// The profile an origin index stands for.
    pub(crate) fn origin_id(&self, origin: u32) -> ProfileId {
        usize::try_from(origin)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.record.origins.get(i).copied())
            .unwrap_or(self.id)
    }

    /// A copy of `old` under a fresh keyring (generation + 1) without the
    /// fields in `drop`: every other entry is opened and re-sealed, keeping its
    /// origin and write time.
    pub(crate) fn rekeyed(&self, db: &Engine, drop: &[u32]) -> Result<Working> {
        let old = self;
        let generation = old.record.generation.checked_add(1).ok_or_else(|| {
            Error::InvalidInput(format!("profile {} cannot be re-keyed again", old.id))
        })?;
        let (keyring, wrapped) = db
            .keys
            .keyring_with_generation(&db.store, &old.id, generation)?;
        let mut record = old.record.clone();
        record.generation = generation;
        record.fields.clear();
        let mut new = Working {
            id: old.id,
            record,
            keyring,
            new_keyring: Some(wrapped),
        };
        for entry in &old.record.fields {
            if drop.contains(&entry.field_id) {
                continue;
            }
            let (name, value) = old.open(db, entry)?;
            let class = entry.class();
            let sealed = new.seal(db, &name, class, &value, entry.origin, entry.written_at)?;
            new.record.set(sealed);
        }
        // `updated_at` is left alone: erasing a field is not activity of the
        // person (inactive-profile retention keeps counting).
        Ok(new)
    }

    /// Applies prepared changes, sealing new values under this profile's keys.
    pub(crate) fn apply_changes(
        &mut self,
        db: &Engine,
        changes: Vec<Prepared>,
        origin: u32,
        now: Timestamp,
    ) -> Result<()> {
        let keys = self.keyring.field_keys()?;
        for change in changes {
            let Some(plain) = change.encoded else {
                if let Some(fid) = db.registry.id(&change.name) {
                    self.record.remove(fid);
                }
                continue;
            };
            let field_id = db
                .registry
                .id(&change.name)
                .ok_or_else(|| Error::corrupt("field registry", "field was not registered"))?;
            let sealed = change.class.is_sealed();
            let payload = seal_entry(&keys, &self.id, &change.name, field_id, sealed, &plain)?;
            self.record.set(FieldEntry {
                field_id,
                sealed,
                origin,
                written_at: now,
                payload,
            });
        }
        if self.record.fields.len() > MAX_FIELDS_PER_PROFILE {
            return Err(Error::InvalidInput(format!(
                "profile {} would hold more than {MAX_FIELDS_PER_PROFILE} fields",
                self.id
            )));
        }
        let bytes: usize = self.record.fields.iter().map(|f| f.payload.len()).sum();
        if bytes > db.limits.max_profile_bytes {
            return Err(Error::InvalidInput(format!(
                "profile {} would hold {bytes} bytes of fields, limit {} (max_profile_bytes)",
                self.id, db.limits.max_profile_bytes
            )));
        }
        self.record.updated_at = now;
        Ok(())
    }

    /// Opens one entry of this record.
    pub(crate) fn open(&self, db: &Engine, entry: &FieldEntry) -> Result<(String, Value)> {
        let name = db.registry.name(entry.field_id)?;
        let value = open_entry(&self.keyring.field_keys()?, &self.id, &name, entry)?;
        Ok((name, value))
    }

    /// Seals `value` as field `name` with the given origin and write time.
    pub(crate) fn seal(
        &self,
        db: &Engine,
        name: &str,
        class: FieldClass,
        value: &Value,
        origin: u32,
        written_at: Timestamp,
    ) -> Result<FieldEntry> {
        db.registry.ensure(&db.store, [name])?;
        let field_id = db
            .registry
            .id(name)
            .ok_or_else(|| Error::corrupt("field registry", "field was not registered"))?;
        let mut plain = Zeroizing::new(Vec::new());
        records::encode_value(value, &mut plain);
        let sealed = class.is_sealed();
        Ok(FieldEntry {
            field_id,
            sealed,
            origin,
            written_at,
            payload: seal_entry(
                &self.keyring.field_keys()?,
                &self.id,
                name,
                field_id,
                sealed,
                &plain,
            )?,
        })
    }

    /// Adds this profile's writes to a batch.
    pub(crate) fn put_into(&self, batch: &mut Batch) {
        if let Some(wrapped) = &self.new_keyring {
            batch.put::<Keyrings>(&self.id, wrapped);
        }
        batch.put::<Profiles>(&self.id, &self.record);
    }
}

/// Builds a field entry's payload. Sealed: `nonce ‖ ciphertext ‖ tag` of the
/// encoded value. Plain: `value ‖ nonce ‖ tag`, where the tag authenticates
/// the value (it is AES-GCM over an empty plaintext with the value in the
/// associated data). Either way the entry is bound to profile, field,
/// generation and its sealed/plain flag, so no entry can be moved, relabelled
/// or altered without an error.
pub(super) fn seal_entry(
    keys: &FieldKeys,
    id: &ProfileId,
    name: &str,
    field_id: u32,
    sealed: bool,
    plain: &[u8],
) -> Result<Vec<u8>> {
    // The decoder refuses a value over the format's bound; every sealing
    // path (user writes, system fields, `$ids` after many merges) is held
    // to it here, before anything is written.
    if plain.len() > records::MAX_VALUE_BYTES {
        return Err(Error::RecordTooLarge {
            what: "field value",
            bytes: plain.len() as u64,
            limit: records::MAX_VALUE_BYTES as u64,
        });
    }
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

/// Authenticates (and for sealed entries decrypts) one entry and decodes its value.
pub(super) fn open_entry(
    keys: &FieldKeys,
    id: &ProfileId,
    name: &str,
    entry: &FieldEntry,
) -> Result<Value> {
    let key = keys.key(entry.field_id)?;
    let mut ad = field_ad(id, keys.generation(), name, entry.sealed);
    let fail = || Error::Decrypt {
        profile: *id,
        what: format!("field {name:?}"),
    };
    if entry.sealed {
        let plain = aead::open(&key, &ad, &entry.payload).ok_or_else(fail)?;
        records::decode_value(&plain)
    } else {
        let split = entry
            .payload
            .len()
            .checked_sub(aead::OVERHEAD)
            .ok_or_else(fail)?;
        let (value, tag) = entry.payload.split_at(split);
        ad.extend_from_slice(value);
        aead::open(&key, &ad, tag).ok_or_else(fail)?;
        records::decode_value(value)
    }
}

pub(super) fn check_generation(
    id: &ProfileId,
    record: &ProfileRecord,
    keyring: &Keyring,
) -> Result<()> {
    if record.generation == keyring.generation {
        Ok(())
    } else {
        Err(Error::corrupt(
            "profile record",
            format!(
                "profile {id} was written under key generation {}, keyring is at {}",
                record.generation, keyring.generation
            ),
        ))
    }
}
