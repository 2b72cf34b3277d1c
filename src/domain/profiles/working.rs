//! A profile being changed in memory (`Working`): its open record and
//! keyring, origins, and the v1 per-field seal (still how merge records
//! keep displaced values and how v1 records are opened).

use parking_lot::Mutex;
use zeroize::Zeroizing;

use super::sealing::{self, check_value_len, open_entry_bytes, seal_entry, Fields, Sealed};
use super::update::*;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keytree::Keyring;
use crate::storage::columns::{Keyrings, Profiles};
use crate::storage::records::{self, FieldEntry, ProfileRecord, RecordStatus, WrappedKey};
use crate::storage::Batch;
use crate::types::{FieldClass, ProfileId, Timestamp, Value};

/// Longest chain of merge redirects followed before giving up.
pub(super) const MAX_REDIRECTS: usize = 64;

/// In-flight state of one profile: its open record (field payloads are
/// the encoded plaintext values) and unwrapped keyring.
pub(crate) struct Working {
    pub(crate) id: ProfileId,
    pub(crate) record: ProfileRecord,
    pub(crate) keyring: Keyring,
    /// The keyring wrapped under its bucket key: what the record carries.
    pub(crate) wrapped: WrappedKey,
    /// Loaded from a v1 record: the next write also deletes its keyring
    /// entry in the `keys` column family (the lazy upgrade).
    pub(crate) legacy_keyring: bool,
    /// Opened lazily (`Fields::Lazy`): field payloads are still sealed and
    /// this opens them one by one; such a copy answers, it is never written.
    pub(crate) lazy: Option<Sealed>,
    /// Consent anchors staged by this operation (purpose tag, write version
    /// of the new current record, or `None`: removed), applied when the
    /// record is sealed. `record.consents` stays as loaded: reads in the
    /// operation check stored consent records against it.
    staged_anchors: Mutex<Vec<([u8; 8], Option<u64>)>>,
}

/// An open record holds plaintext: wiped when the `Working` goes.
impl Drop for Working {
    fn drop(&mut self) {
        for f in &mut self.record.fields {
            zeroize::Zeroize::zeroize(&mut f.payload);
        }
    }
}

impl Working {
    /// Loads a profile's record and keyring and opens every field; `None`
    /// when there is no record.
    pub(crate) fn load(db: &Engine, id: &ProfileId) -> Result<Option<Working>> {
        Self::load_fields(db, id, Fields::All)
    }

    /// `load`, opening only the fields `which` names (the record's
    /// authentication is checked either way).
    pub(crate) fn load_fields(
        db: &Engine,
        id: &ProfileId,
        which: Fields,
    ) -> Result<Option<Working>> {
        let Some(stored) = db.store.get::<Profiles>(id)? else {
            return match db.erased_error(id)? {
                Some(e) => Err(e),
                None => Ok(None),
            };
        };
        sealing::v1_allowed(db, id, &stored)?;
        if let Some(e) = crate::domain::erasure::markers::erased_error(id, &stored.record) {
            return Err(e);
        }
        let (wrapped, legacy_keyring) = match &stored.seal {
            Some(seal) => (sealing::slot_key(&stored.record, &seal.keyring), false),
            None => match db.store.get::<Keyrings>(id)? {
                Some(w) => (w, true),
                // A write may have just upgraded the record (and deleted
                // its v1 keyring): read it again once.
                None if db
                    .store
                    .get::<Profiles>(id)?
                    .is_some_and(|s| s.seal.is_some()) =>
                {
                    return Self::load_fields(db, id, which);
                }
                None => {
                    return Err(Error::Decrypt {
                        profile: *id,
                        what: "keyring (missing)".into(),
                    })
                }
            },
        };
        let keyring = db.keys.open_keyring(&db.store, id, &wrapped)?;
        check_generation(id, &stored.record, &keyring)?;
        let (record, lazy) = sealing::open_record(db, id, stored, &keyring, which)?;
        Ok(Some(Working {
            id: *id,
            record,
            keyring,
            wrapped,
            legacy_keyring,
            lazy,
            staged_anchors: Mutex::new(Vec::new()),
        }))
    }

    /// A new, empty profile with a fresh keyring.
    pub(crate) fn create(db: &Engine, id: &ProfileId, now: Timestamp) -> Result<Working> {
        let (keyring, wrapped) = db.keys.new_keyring(&db.store, id)?;
        Ok(Working {
            id: *id,
            record: ProfileRecord {
                generation: keyring.generation,
                write_version: 0,
                consents: Vec::new(),
                created_at: now,
                updated_at: now,
                status: RecordStatus::Active,
                origins: Vec::new(),
                fields: Vec::new(),
            },
            keyring,
            wrapped,
            legacy_keyring: false,
            lazy: None,
            staged_anchors: Mutex::new(Vec::new()),
        })
    }

    /// The write version the next seal of this record gets: what consent
    /// records staged with it bind.
    pub(crate) fn next_write_version(&self) -> u64 {
        self.record.write_version.saturating_add(1)
    }

    /// Stages a new anchor for purpose `tag` and returns the value the
    /// current consent record written with it binds: the next write
    /// version in the high bits and this operation's count of staged
    /// anchors in the low 16, so two records of one purpose written in one
    /// batch (both in the WAL) bind different values and the superseded
    /// one cannot be put back.
    pub(crate) fn next_anchor(&self, tag: [u8; 8]) -> Result<u64> {
        let mut staged = self.staged_anchors.lock();
        let n = u64::try_from(staged.len() + 1)
            .ok()
            .filter(|n| *n <= 0xffff)
            .ok_or_else(|| {
                Error::InvalidInput("more than 65535 consent records in one operation".into())
            })?;
        let v = (self.next_write_version() << 16) | n;
        staged.push((tag, Some(v)));
        Ok(v)
    }

    /// Stages the removal of purpose `tag`'s anchor (its current record is
    /// deleted in the same batch).
    pub(crate) fn stage_anchor_removal(&self, tag: [u8; 8]) {
        self.staged_anchors.lock().push((tag, None));
    }

    /// Whether consent records were staged that this record must anchor.
    pub(crate) fn has_staged_anchors(&self) -> bool {
        !self.staged_anchors.lock().is_empty()
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
    /// fields in `drop`, keeping every other entry's origin and write time.
    pub(crate) fn rekeyed(&self, db: &Engine, drop: &[u32]) -> Result<Working> {
        let old = self;
        if old.lazy.is_some() {
            return Err(Error::Internal(format!(
                "profile {}: a lazily opened record cannot be re-keyed",
                old.id
            )));
        }
        let generation = old.record.generation.checked_add(1).ok_or_else(|| {
            Error::InvalidInput(format!("profile {} cannot be re-keyed again", old.id))
        })?;
        let (keyring, wrapped) = db
            .keys
            .keyring_with_generation(&db.store, &old.id, generation)?;
        let mut record = old.record.clone();
        record.generation = generation;
        record.fields.retain(|e| !drop.contains(&e.field_id));
        // `updated_at` is left alone: erasing a field is not activity of the
        // person (inactive-profile retention keeps counting).
        Ok(Working {
            id: old.id,
            record,
            keyring,
            wrapped,
            legacy_keyring: old.legacy_keyring,
            lazy: None,
            staged_anchors: Mutex::new(Vec::new()),
        })
    }

    /// Applies prepared changes (values are kept open until the record is
    /// sealed by `put_into`).
    pub(crate) fn apply_changes(
        &mut self,
        db: &Engine,
        changes: Vec<Prepared>,
        origin: u32,
        now: Timestamp,
    ) -> Result<()> {
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
            check_value_len(plain.len())?;
            self.record.set(FieldEntry {
                field_id,
                sealed: change.class.is_sealed(),
                origin,
                written_at: now,
                payload: plain.to_vec(),
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

    /// The name and value of one entry of this record (decrypted now if
    /// the record was opened lazily).
    pub(crate) fn open(&self, db: &Engine, entry: &FieldEntry) -> Result<(String, Value)> {
        let name = db.registry.name(entry.field_id)?;
        let value = self.open_named(entry, &name)?;
        Ok((name, value))
    }

    /// The value of `entry`, whose field name the caller has looked up.
    pub(crate) fn open_named(&self, entry: &FieldEntry, name: &str) -> Result<Value> {
        match &self.lazy {
            None => records::decode_value(&entry.payload),
            Some(sealed) => {
                records::decode_value(&sealed.open(&self.keyring, &self.id, name, entry)?)
            }
        }
    }

    /// An open entry holding `value` as field `name` with the given origin
    /// and write time.
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
        check_value_len(plain.len())?;
        Ok(FieldEntry {
            field_id,
            sealed: class.is_sealed(),
            origin,
            written_at,
            payload: plain.to_vec(),
        })
    }

    /// `entry` of this open record sealed on its own (AES-256-GCM under its
    /// v1 field key): how a merge record keeps a displaced value.
    pub(crate) fn seal_alone(&self, db: &Engine, entry: &FieldEntry) -> Result<Vec<u8>> {
        let name = db.registry.name(entry.field_id)?;
        seal_entry(
            &self.keyring.field_keys()?,
            &self.id,
            &name,
            entry.field_id,
            entry.sealed,
            &entry.payload,
        )
    }

    /// Opens a payload sealed by [`Self::seal_alone`] into an open entry.
    pub(crate) fn open_alone(&self, db: &Engine, entry: &FieldEntry) -> Result<FieldEntry> {
        let name = db.registry.name(entry.field_id)?;
        let plain = open_entry_bytes(&self.keyring.field_keys()?, &self.id, &name, entry)?;
        Ok(FieldEntry {
            payload: plain.to_vec(),
            ..entry.clone()
        })
    }

    /// Adds this profile's record, sealed (format v2, write version + 1),
    /// to a batch.
    pub(crate) fn put_into(&self, batch: &mut Batch) -> Result<()> {
        self.put_record_into(&self.record, batch)
    }

    /// Adds `record` (an open record of this profile, e.g. its frozen copy
    /// at a merge) sealed under this profile's keyring to a batch.
    pub(crate) fn put_record_into(&self, record: &ProfileRecord, batch: &mut Batch) -> Result<()> {
        if self.lazy.is_some() {
            return Err(Error::Internal(format!(
                "profile {}: a lazily opened record cannot be written",
                self.id
            )));
        }
        let staged = self.staged_anchors.lock();
        let stored = if staged.is_empty() {
            sealing::seal_record(&self.id, record, &self.keyring, &self.wrapped)?
        } else {
            let mut r = record.clone();
            for (tag, version) in staged.iter() {
                r.set_consent_anchor(*tag, *version);
            }
            // The decoder's bound, held on the write path: one more purpose
            // would leave a record nobody can read.
            if r.consents.len() > records::MAX_CONSENT_ANCHORS {
                return Err(Error::InvalidInput(format!(
                    "profile {} would hold current consent for more than {} purposes",
                    self.id,
                    records::MAX_CONSENT_ANCHORS
                )));
            }
            sealing::seal_record(&self.id, &r, &self.keyring, &self.wrapped)?
        };
        if self.legacy_keyring {
            batch.delete::<Keyrings>(&self.id);
        }
        batch.put::<Profiles>(&self.id, &stored);
        Ok(())
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
