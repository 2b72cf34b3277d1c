//! What a write asks for: updates, multi-profile batches, the profile a
//! read returns, and their validation against the schema and limits.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::storage::records::{self};
use crate::types::{FieldClass, ProfileId, Schema, Timestamp, Value};

/// Largest encoded value of one field, in bytes.
pub const MAX_VALUE_BYTES: usize = records::MAX_VALUE_BYTES;
/// Most fields one profile may hold.
pub const MAX_FIELDS_PER_PROFILE: usize = records::MAX_FIELDS;
/// Deepest nesting accepted inside a [`Value::Json`] (serde_json reads up to 128).
pub(super) const MAX_JSON_DEPTH: usize = 100;

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
pub(super) enum OpKind {
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
    pub(super) ops: Vec<(ProfileId, OpKind, Update)>,
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

pub(super) fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

pub(super) fn check_nesting(field: &str, v: &Value, depth: usize) -> Result<()> {
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

/// Names starting with `$` are reserved for lethedb's own fields.
pub(crate) fn is_system_field(name: &str) -> bool {
    name.starts_with('$')
}
