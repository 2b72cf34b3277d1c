//! Profiles: partial updates, atomic multi-profile batches, and reads.
//!
//! A profile is one record in the `profiles` keyspace holding every field.
//! Personal and sensitive fields are sealed with AES-256-GCM under the
//! field's own key (derived from the profile keyring); the associated data
//! binds profile id, field name, key generation and format version.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use zeroize::Zeroizing;

use crate::crypto::aead;
use crate::crypto::kdf::FieldKeys;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keytree::{field_ad, Keyring};
use crate::storage::columns::{Keyrings, Profiles};
use crate::storage::records::{self, FieldEntry, ProfileRecord, RecordStatus, WrappedKey};
use crate::storage::Batch;
use crate::types::{FieldClass, ProfileId, Schema, Timestamp, Value};

/// Largest encoded value of one field, in bytes.
pub const MAX_VALUE_BYTES: usize = records::MAX_VALUE_BYTES;
/// Most fields one profile may hold.
pub const MAX_FIELDS_PER_PROFILE: usize = records::MAX_FIELDS;
/// Deepest nesting accepted inside a [`Value::Json`] (serde_json reads up to 128).
const MAX_JSON_DEPTH: usize = 100;

/// A set of changes to one profile's fields: values to set and fields to remove.
/// Fields not named are left as they are.
///
/// ```
/// use lethedb::{Schema, Update, Value};
/// let u = Update::new().set("email", "ada@example.com").remove("phone");
/// assert_eq!(u.len(), 2);
/// // JSON form: null removes a field (RFC 7396 merge-patch style).
/// let j = Update::from_json(&Schema::new(), r#"{"age": 36, "phone": null}"#)?;
/// assert_eq!(j.len(), 2);
/// Ok::<_, lethedb::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    changes: Vec<(String, Option<Value>)>,
}

impl Update {
    /// No changes.
    pub fn new() -> Self {
        Update::default()
    }

    /// Sets `name` to `value`.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.changes.push((name.into(), Some(value.into())));
        self
    }

    /// Removes `name`.
    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.changes.push((name.into(), None));
        self
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// True when there are no changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Reads a JSON object of fields. `null` removes a field; other values
    /// convert with [`Value::from_json`] under the field's declared type.
    pub fn from_json(schema: &Schema, json: &str) -> Result<Self> {
        let parsed: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::InvalidInput(format!("bad JSON: {e}")))?;
        let serde_json::Value::Object(map) = parsed else {
            return Err(Error::InvalidInput(
                "expected a JSON object of fields".into(),
            ));
        };
        let mut u = Update::new();
        for (name, v) in map {
            if v.is_null() {
                u = u.remove(name);
            } else {
                let kind = schema.spec(&name).kind;
                let value = Value::from_json(&name, v, kind)?;
                u = u.set(name, value);
            }
        }
        Ok(u)
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Update {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Update::new(), |u, (k, v)| u.set(k, v))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    /// The profile must not exist yet.
    Create,
    /// Creates the profile when missing.
    Upsert,
    /// The profile must exist.
    Modify,
}

/// Changes to several profiles, applied as one atomic write by
/// [`Db::apply`]: either every change lands or none does.
///
/// ```
/// use lethedb::{Db, MemoryKeyProvider, Options, ProfileBatch, Update};
/// let dir = tempfile::tempdir()?;
/// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
/// let mut batch = ProfileBatch::new();
/// let a = batch.create(Update::new().set("email", "a@example.com"))?;
/// let b = batch.create(Update::new().set("email", "b@example.com"))?;
/// db.apply(batch)?;
/// assert!(db.exists(&a)? && db.exists(&b)?);
/// Ok::<_, lethedb::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ProfileBatch {
    ops: Vec<(ProfileId, OpKind, Update)>,
}

impl ProfileBatch {
    /// An empty batch.
    pub fn new() -> Self {
        ProfileBatch::default()
    }

    /// Adds a new profile with a fresh random id, which is returned.
    pub fn create(&mut self, update: Update) -> Result<ProfileId> {
        let id = ProfileId::random()?;
        self.ops.push((id, OpKind::Create, update));
        Ok(id)
    }

    /// Changes fields of `id`, creating the profile if it does not exist.
    pub fn upsert(&mut self, id: ProfileId, update: Update) -> &mut Self {
        self.ops.push((id, OpKind::Upsert, update));
        self
    }

    /// Removes one field of an existing profile.
    pub fn delete_field(&mut self, id: ProfileId, name: impl Into<String>) -> &mut Self {
        self.ops
            .push((id, OpKind::Modify, Update::new().remove(name)));
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A profile as read: its id, times, and the requested fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Profile id.
    pub id: ProfileId,
    /// When the profile was created.
    pub created_at: Timestamp,
    /// Last write to any field.
    pub updated_at: Timestamp,
    /// Field values by name.
    pub fields: BTreeMap<String, Value>,
}

impl Profile {
    /// `{"profile_id": "<32 hex>", "fields": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let fields = crate::types::fields_to_json(&self.fields);
        serde_json::json!({ "profile_id": self.id.to_string(), "fields": fields })
    }
}

fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_nesting(field: &str, v: &Value, depth: usize) -> Result<()> {
    let bad = |reason: &str| Error::InvalidValue {
        field: field.to_string(),
        reason: reason.to_string(),
    };
    match v {
        Value::List(_) if depth >= records::MAX_DEPTH => Err(bad("lists nested more than 32 deep")),
        Value::List(items) => items
            .iter()
            .try_for_each(|i| check_nesting(field, i, depth + 1)),
        Value::Json(j) if json_depth(j) > MAX_JSON_DEPTH => {
            Err(bad("JSON nested more than 100 deep"))
        }
        _ => Ok(()),
    }
}

/// A change validated and encoded, ready to seal.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) name: String,
    pub(crate) class: FieldClass,
    /// `None` removes the field.
    pub(crate) encoded: Option<Zeroizing<Vec<u8>>>,
}

pub(crate) fn prepare(
    schema: &Schema,
    update: Update,
    limits: &crate::options::Limits,
) -> Result<Vec<Prepared>> {
    let max = limits.max_value_bytes.min(MAX_VALUE_BYTES);
    update
        .changes
        .into_iter()
        .map(|(name, value)| {
            crate::domain::fields::validate_name(&name)?;
            if is_system_field(&name) {
                return Err(Error::InvalidFieldName {
                    name,
                    reason: "names starting with '$' are reserved",
                });
            }
            let spec = schema.spec(&name);
            let encoded = match value {
                None => None,
                Some(v) => {
                    if let Some(k) = spec.kind {
                        if v.kind() != k {
                            return Err(Error::InvalidValue {
                                field: name,
                                reason: format!("declared {k:?}, got {:?}", v.kind())
                                    .to_lowercase(),
                            });
                        }
                    }
                    check_nesting(&name, &v, 0)?;
                    let mut buf = Zeroizing::new(Vec::new());
                    records::encode_value(&v, &mut buf);
                    if buf.len() > max {
                        return Err(Error::InvalidValue {
                            field: name,
                            reason: format!("encoded value is {} bytes, limit {max}", buf.len()),
                        });
                    }
                    Some(buf)
                }
            };
            Ok(Prepared {
                name,
                class: spec.class,
                encoded,
            })
        })
        .collect()
}

/// Longest chain of merge redirects followed before giving up.
const MAX_REDIRECTS: usize = 64;

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
            (None, _) => Ok(None),
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
        // The decoder refuses a value over the format's bound; a field the
        // engine builds itself (`$ids` after many merges) is held to it here,
        // before anything is written.
        if plain.len() > records::MAX_VALUE_BYTES {
            return Err(Error::RecordTooLarge {
                what: "field value",
                bytes: plain.len() as u64,
                limit: records::MAX_VALUE_BYTES as u64,
            });
        }
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

/// Follows merge redirects from `id` to the active profile holding its data.
/// `Ok(None)` when `id` does not exist.
pub(crate) fn final_target(db: &Engine, id: &ProfileId) -> Result<Option<ProfileId>> {
    let mut cur = *id;
    for _ in 0..MAX_REDIRECTS {
        match db.store.get::<Profiles>(&cur)? {
            None => return Ok(None),
            Some(rec) => match rec.status {
                RecordStatus::Active => return Ok(Some(cur)),
                RecordStatus::Merged { into, .. } => cur = into,
                RecordStatus::Erased { erasure_id } => {
                    return Err(Error::ProfileErased {
                        profile: cur,
                        erasure_id,
                    })
                }
            },
        }
    }
    Err(Error::corrupt(
        "profile record",
        format!("merge redirects from {id} do not end"),
    ))
}

/// Applies a batch as one atomic write. Everything is validated, encoded and
/// sealed before the commit, so an error leaves the store untouched.
///
/// Writes to a merged-away id go to the profile it was merged into, with the
/// merged-away id as their origin (so unmerge can give them back). Those
/// take the identity lock, which keeps merge chains still.
pub(crate) fn apply(db: &Engine, batch: ProfileBatch) -> Result<()> {
    let schema = db.schema_snapshot();
    let mut prepared = Vec::with_capacity(batch.ops.len());
    for (id, kind, update) in batch.ops {
        prepared.push((id, kind, prepare(&schema, update, &db.limits)?));
    }
    db.registry.ensure(
        &db.store,
        prepared.iter().flat_map(|(_, _, ch)| {
            ch.iter()
                .filter(|c| c.encoded.is_some())
                .map(|c| c.name.as_str())
        }),
    )?;
    // Fast attempt without the identity lock; it bails out on a redirect.
    if apply_attempt(db, &prepared, false, None)?.is_some() {
        return Ok(());
    }
    let _identity = db.identity_lock.lock();
    apply_attempt(db, &prepared, true, None)?.ok_or_else(|| {
        Error::corrupt(
            "profile record",
            "merge redirect changed under the identity lock",
        )
    })
}

type PreparedOp = (ProfileId, OpKind, Vec<Prepared>);

/// Sets a system field (`$…`) of an existing profile, sealed like personal data.
/// `audit` names the audit entry kind the write is logged under.
pub(crate) fn apply_system(
    db: &Engine,
    id: &ProfileId,
    name: &str,
    value: Value,
    audit: Option<&'static str>,
) -> Result<()> {
    db.registry.ensure(&db.store, [name])?;
    let mut encoded = Zeroizing::new(Vec::new());
    records::encode_value(&value, &mut encoded);
    let op = (
        *id,
        OpKind::Modify,
        vec![Prepared {
            name: name.to_string(),
            class: FieldClass::Personal,
            encoded: Some(encoded),
        }],
    );
    let ops = [op];
    if apply_attempt(db, &ops, false, audit)?.is_some() {
        return Ok(());
    }
    let _identity = db.identity_lock.lock();
    apply_attempt(db, &ops, true, audit)?.ok_or_else(|| {
        Error::corrupt(
            "profile record",
            "merge redirect changed under the identity lock",
        )
    })
}

/// Builds and commits the batch while holding the profiles' stripe locks;
/// `None` (nothing written) if a merged-away id is met without the identity lock.
fn apply_attempt(
    db: &Engine,
    prepared: &[PreparedOp],
    identity_held: bool,
    audit: Option<&'static str>,
) -> Result<Option<()>> {
    let mut targets: HashMap<ProfileId, ProfileId> = HashMap::new();
    for (id, _, _) in prepared {
        let target = if identity_held {
            final_target(db, id)?.unwrap_or(*id)
        } else {
            *id
        };
        targets.insert(*id, target);
    }
    let _guards = db.locks.lock(targets.values());
    let now = Timestamp::now();
    let mut working: HashMap<ProfileId, Working> = HashMap::new();
    let mut order: Vec<ProfileId> = Vec::new();
    for (id, kind, changes) in prepared {
        let target = targets.get(id).copied().unwrap_or(*id);
        let w = match working.entry(target) {
            Entry::Occupied(_) if *kind == OpKind::Create => {
                return Err(Error::InvalidInput(format!(
                    "profile {id} created twice in one batch"
                )))
            }
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                let w = match (Working::load(db, &target)?, kind) {
                    (Some(_), OpKind::Create) => {
                        return Err(Error::InvalidInput(format!("profile {id} already exists")))
                    }
                    (Some(w), _) if w.record.status != RecordStatus::Active => {
                        if identity_held {
                            return Err(Error::corrupt(
                                "profile record",
                                "redirect target is not active",
                            ));
                        }
                        return Ok(None);
                    }
                    (Some(w), _) => w,
                    (None, OpKind::Modify) => return Err(Error::ProfileNotFound(*id)),
                    (None, _) => Working::create(db, &target, now)?,
                };
                order.push(target);
                slot.insert(w)
            }
        };
        let origin = w.origin_index(id);
        w.apply_changes(db, changes.clone(), origin, now)?;
    }
    let mut out = Batch::new();
    for id in &order {
        working[id].put_into(&mut out);
    }
    match audit {
        None => db.store.write(out)?,
        Some(kind) => {
            let events = order
                .iter()
                .map(|id| {
                    Ok(crate::domain::audit::Event::new(
                        kind,
                        Some(db.subject_ref(id)?),
                        serde_json::json!({}),
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            db.audit.commit(&db.store, out, &events)?;
        }
    }
    Ok(Some(()))
}

/// Builds a field entry's payload. Sealed: `nonce ‖ ciphertext ‖ tag` of the
/// encoded value. Plain: `value ‖ nonce ‖ tag`, where the tag authenticates
/// the value (it is AES-GCM over an empty plaintext with the value in the
/// associated data). Either way the entry is bound to profile, field,
/// generation and its sealed/plain flag, so no entry can be moved, relabelled
/// or altered without an error.
fn seal_entry(
    keys: &FieldKeys,
    id: &ProfileId,
    name: &str,
    field_id: u32,
    sealed: bool,
    plain: &[u8],
) -> Result<Vec<u8>> {
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
fn open_entry(keys: &FieldKeys, id: &ProfileId, name: &str, entry: &FieldEntry) -> Result<Value> {
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

fn check_generation(id: &ProfileId, record: &ProfileRecord, keyring: &Keyring) -> Result<()> {
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

/// Reads a profile, following merge redirects; `names` selects fields
/// (`None`: all). Unknown names are skipped; system fields (`$…`) are never returned.
pub(crate) fn read(db: &Engine, id: &ProfileId, names: Option<&[&str]>) -> Result<Profile> {
    let w = load_active(db, id)?;
    let wanted: Option<Vec<u32>> =
        names.map(|ns| ns.iter().filter_map(|n| db.registry.id(n)).collect());
    let keys = w.keyring.field_keys()?;
    let mut fields = BTreeMap::new();
    for entry in &w.record.fields {
        if wanted
            .as_ref()
            .is_some_and(|wl| !wl.contains(&entry.field_id))
        {
            continue;
        }
        let name = db.registry.name(entry.field_id)?;
        if is_system_field(&name) {
            continue;
        }
        let value = open_entry(&keys, &w.id, &name, entry)?;
        fields.insert(name, value);
    }
    Ok(Profile {
        id: w.id,
        created_at: w.record.created_at,
        updated_at: w.record.updated_at,
        fields,
    })
}

/// Loads the active profile `id` resolves to (following redirects). Reads
/// take no locks; a generation mismatch (possible only during a concurrent
/// re-key) and a redirect that moved under us are retried.
pub(crate) fn load_active(db: &Engine, id: &ProfileId) -> Result<Working> {
    let mut last = None;
    for _ in 0..3 {
        // The common case: `id` itself is active, one MultiGet.
        let first = match Working::load(db, id) {
            Ok(Some(w)) => w,
            Ok(None) => return Err(Error::ProfileNotFound(*id)),
            Err(e @ Error::Corrupt { .. }) => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        if first.record.status == RecordStatus::Active {
            return Ok(first);
        }
        let target = final_target(db, id)?.ok_or(Error::ProfileNotFound(*id))?;
        match Working::load(db, &target) {
            Ok(Some(w)) if w.record.status == RecordStatus::Active => return Ok(w),
            Ok(_) => {}
            Err(e @ Error::Corrupt { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(Error::ProfileNotFound(*id)))
}

/// Names starting with `$` are reserved for lethedb's own fields.
pub(crate) fn is_system_field(name: &str) -> bool {
    name.starts_with('$')
}
