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
use crate::crypto::hierarchy::{field_ad, Keyring};
use crate::crypto::kdf::FieldKeys;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::storage::columns::{Keyrings, Profiles};
use crate::storage::format::{self, FieldEntry, ProfileRecord, WrappedKey};
use crate::storage::Batch;
use crate::types::{FieldClass, ProfileId, Schema, Timestamp, Value};

/// Largest encoded value of one field, in bytes.
pub const MAX_VALUE_BYTES: usize = format::MAX_VALUE_BYTES;
/// Most fields one profile may hold.
pub const MAX_FIELDS_PER_PROFILE: usize = format::MAX_FIELDS;
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
        let fields: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
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
        Value::List(_) if depth >= format::MAX_DEPTH => Err(bad("lists nested more than 32 deep")),
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
struct Prepared {
    name: String,
    class: FieldClass,
    /// `None` removes the field.
    encoded: Option<Zeroizing<Vec<u8>>>,
}

fn prepare(schema: &Schema, update: Update) -> Result<Vec<Prepared>> {
    update
        .changes
        .into_iter()
        .map(|(name, value)| {
            crate::domain::fields::validate_name(&name)?;
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
                    format::encode_value(&v, &mut buf);
                    if buf.len() > MAX_VALUE_BYTES {
                        return Err(Error::InvalidValue {
                            field: name,
                            reason: format!(
                                "encoded value is {} bytes, limit {MAX_VALUE_BYTES}",
                                buf.len()
                            ),
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

/// In-flight state of one profile during [`apply`].
struct Working {
    record: ProfileRecord,
    keyring: Keyring,
    new_keyring: Option<WrappedKey>,
}

/// Applies a batch as one atomic write. Everything is validated, encoded and
/// sealed before the commit, so an error leaves the store untouched.
pub(crate) fn apply(db: &Db, batch: ProfileBatch) -> Result<()> {
    let schema = db.schema_snapshot();
    let mut prepared = Vec::with_capacity(batch.ops.len());
    for (id, kind, update) in batch.ops {
        prepared.push((id, kind, prepare(&schema, update)?));
    }
    db.registry.ensure(
        &db.store,
        prepared.iter().flat_map(|(_, _, ch)| {
            ch.iter()
                .filter(|c| c.encoded.is_some())
                .map(|c| c.name.as_str())
        }),
    )?;

    let _guards = db.locks.lock(prepared.iter().map(|(id, _, _)| id));
    let now = Timestamp::now();
    let mut working: HashMap<ProfileId, Working> = HashMap::new();
    let mut order: Vec<ProfileId> = Vec::new();

    for (id, kind, changes) in prepared {
        let w = match working.entry(id) {
            Entry::Occupied(_) if kind == OpKind::Create => {
                return Err(Error::InvalidInput(format!(
                    "profile {id} created twice in one batch"
                )))
            }
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                order.push(id);
                slot.insert(load_working(db, &id, kind, now)?)
            }
        };
        let keys = w.keyring.field_keys()?;
        for change in changes {
            let Some(plain) = change.encoded else {
                if let Some(fid) = db.registry.id(&change.name) {
                    w.record.remove(fid);
                }
                continue;
            };
            let field_id = db
                .registry
                .id(&change.name)
                .ok_or_else(|| Error::corrupt("field registry", "field was not registered"))?;
            let sealed = change.class.is_sealed();
            let payload = seal_entry(&keys, &id, &change.name, field_id, sealed, &plain)?;
            w.record.set(FieldEntry {
                field_id,
                sealed,
                written_at: now,
                payload,
            });
        }
        if w.record.fields.len() > MAX_FIELDS_PER_PROFILE {
            return Err(Error::InvalidInput(format!(
                "profile {id} would hold more than {MAX_FIELDS_PER_PROFILE} fields"
            )));
        }
        w.record.updated_at = now;
    }

    let mut out = Batch::new();
    for id in &order {
        let w = &working[id];
        if let Some(wrapped) = &w.new_keyring {
            out.put::<Keyrings>(id, wrapped);
        }
        out.put::<Profiles>(id, &w.record);
    }
    db.store.write(out)
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
        format::decode_value(&plain)
    } else {
        let split = entry
            .payload
            .len()
            .checked_sub(aead::OVERHEAD)
            .ok_or_else(fail)?;
        let (value, tag) = entry.payload.split_at(split);
        ad.extend_from_slice(value);
        aead::open(&key, &ad, tag).ok_or_else(fail)?;
        format::decode_value(value)
    }
}

/// Loads (or, for a new profile, starts) the state of one profile for a batch.
fn load_working(db: &Db, id: &ProfileId, kind: OpKind, now: Timestamp) -> Result<Working> {
    let (record, wrapped) = db.store.get2::<Profiles, Keyrings>(id, id)?;
    let w = match (record, wrapped) {
        (Some(record), Some(w)) => {
            let keyring = db.keys.open_keyring(&db.store, id, &w)?;
            check_generation(id, &record, &keyring)?;
            if kind == OpKind::Create {
                return Err(Error::InvalidInput(format!("profile {id} already exists")));
            }
            Working {
                record,
                keyring,
                new_keyring: None,
            }
        }
        (Some(_), None) => {
            return Err(Error::Decrypt {
                profile: *id,
                what: "keyring (missing)".into(),
            })
        }
        (None, _) if kind == OpKind::Modify => return Err(Error::ProfileNotFound(*id)),
        (None, _) => {
            let (keyring, wrapped) = db.keys.new_keyring(&db.store, id)?;
            Working {
                record: ProfileRecord {
                    generation: keyring.generation,
                    created_at: now,
                    updated_at: now,
                    fields: Vec::new(),
                },
                keyring,
                new_keyring: Some(wrapped),
            }
        }
    };
    Ok(w)
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

/// Reads a profile; `names` selects fields (`None`: all). Unknown names are skipped.
pub(crate) fn read(db: &Db, id: &ProfileId, names: Option<&[&str]>) -> Result<Profile> {
    // Record and keyring are read in one MultiGet; a generation mismatch can
    // only come from a concurrent re-key, so it is retried before it is an error.
    let mut attempt = 0;
    let (record, keyring) = loop {
        let (record, wrapped) = db.store.get2::<Profiles, Keyrings>(id, id)?;
        let record = record.ok_or(Error::ProfileNotFound(*id))?;
        let wrapped = wrapped.ok_or_else(|| Error::Decrypt {
            profile: *id,
            what: "keyring (missing)".into(),
        })?;
        let keyring = db.keys.open_keyring(&db.store, id, &wrapped)?;
        match check_generation(id, &record, &keyring) {
            Ok(()) => break (record, keyring),
            Err(e) if attempt >= 2 => return Err(e),
            Err(_) => attempt += 1,
        }
    };
    let keys = keyring.field_keys()?;
    let wanted: Option<Vec<u32>> =
        names.map(|ns| ns.iter().filter_map(|n| db.registry.id(n)).collect());
    let mut fields = BTreeMap::new();
    for entry in &record.fields {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&entry.field_id))
        {
            continue;
        }
        let name = db.registry.name(entry.field_id)?;
        let value = open_entry(&keys, id, &name, entry)?;
        fields.insert(name, value);
    }
    Ok(Profile {
        id: *id,
        created_at: record.created_at,
        updated_at: record.updated_at,
        fields,
    })
}
