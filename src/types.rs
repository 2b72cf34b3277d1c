//! Public value types: profile ids, field values, timestamps, schema.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A 128-bit profile identifier, shown as 32 lowercase hex characters.
///
/// New ids come from the operating system's random number generator, so they
/// reveal nothing about when or where a profile was created.
///
/// ```
/// use lethedb::ProfileId;
/// let id: ProfileId = "00112233445566778899aabbccddeeff".parse()?;
/// assert_eq!(id.to_string(), "00112233445566778899aabbccddeeff");
/// assert!("not-an-id".parse::<ProfileId>().is_err());
/// Ok::<_, lethedb::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileId([u8; 16]);

impl ProfileId {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        ProfileId(bytes)
    }

    /// The raw bytes (big-endian order is the key order on disk).
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A fresh random id from the OS random number generator.
    pub fn random() -> Result<Self> {
        let mut b = [0u8; 16];
        crate::crypto::os_random(&mut b)?;
        Ok(ProfileId(b))
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

impl fmt::Debug for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProfileId({self})")
    }
}

impl FromStr for ProfileId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidProfileId {
            input: s.chars().take(64).collect(),
        };
        let bytes = crate::hex::decode(s).ok_or_else(bad)?;
        let arr: [u8; 16] = bytes.try_into().map_err(|_| bad())?;
        Ok(ProfileId(arr))
    }
}

/// A point in time with microsecond precision, counted from the Unix epoch (UTC).
///
/// ```
/// use lethedb::Timestamp;
/// let t = Timestamp::parse_rfc3339("2024-05-01T12:00:00Z")?;
/// assert_eq!(t.to_string(), "2024-05-01T12:00:00.000000Z");
/// Ok::<_, lethedb::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time such as `2024-05-01T12:00:00Z` (UTC, `Z` suffix).
    pub fn parse_rfc3339(s: &str) -> Result<Self> {
        let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
            .map_err(|e| Error::InvalidInput(format!("timestamp {s:?}: {e}")))?;
        let d = t
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::InvalidInput(format!("timestamp {s:?} is before 1970")))?;
        i64::try_from(d.as_micros())
            .map(Timestamp)
            .map_err(|_| Error::InvalidInput(format!("timestamp {s:?} is out of range")))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match u64::try_from(self.0) {
            Ok(us) => {
                let t = UNIX_EPOCH + Duration::from_micros(us);
                write!(f, "{}", humantime::format_rfc3339_micros(t))
            }
            Err(_) => write!(f, "{}us", self.0),
        }
    }
}

/// A field value.
///
/// Values convert from and to JSON ([`Value::from_json`], [`Value::to_json`]):
/// strings, integers, floats, booleans and arrays map to their own variants,
/// objects become [`Value::Json`], and timestamps print as RFC 3339 strings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// UTF-8 text.
    String(String),
    /// Signed 64-bit integer.
    Int(i64),
    /// 64-bit float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Point in time.
    Timestamp(Timestamp),
    /// Ordered list of values.
    List(Vec<Value>),
    /// Arbitrary nested JSON.
    Json(serde_json::Value),
}

/// The type of a [`Value`], used by schemas to constrain fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// [`Value::String`]
    String,
    /// [`Value::Int`]
    Int,
    /// [`Value::Float`]
    Float,
    /// [`Value::Bool`]
    Bool,
    /// [`Value::Timestamp`]
    Timestamp,
    /// [`Value::List`]
    List,
    /// [`Value::Json`]
    Json,
}

impl Value {
    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::String(_) => ValueKind::String,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Bool(_) => ValueKind::Bool,
            Value::Timestamp(_) => ValueKind::Timestamp,
            Value::List(_) => ValueKind::List,
            Value::Json(_) => ValueKind::Json,
        }
    }

    /// Converts JSON to a value. `kind` is the declared type, if any: a string
    /// or integer becomes a timestamp when the field is declared `timestamp`,
    /// and an integer becomes a float when it is declared `float`.
    /// JSON `null` is rejected here; [`crate::Update::from_json`] reads it as "delete".
    pub fn from_json(
        field: &str,
        json: serde_json::Value,
        kind: Option<ValueKind>,
    ) -> Result<Value> {
        use serde_json::Value as J;
        let bad = |reason: String| Error::InvalidValue {
            field: field.to_string(),
            reason,
        };
        let v = match (json, kind) {
            (J::Null, _) => return Err(bad("null is not a value".into())),
            (J::String(s), Some(ValueKind::Timestamp)) => Value::Timestamp(
                Timestamp::parse_rfc3339(&s)
                    .map_err(|_| bad("expected an RFC 3339 timestamp".into()))?,
            ),
            (J::Number(n), Some(ValueKind::Timestamp)) => Value::Timestamp(Timestamp(
                n.as_i64()
                    .ok_or_else(|| bad("expected microseconds since the epoch".into()))?,
            )),
            (J::Number(n), Some(ValueKind::Float)) => Value::Float(
                n.as_f64()
                    .ok_or_else(|| bad("number is not representable as f64".into()))?,
            ),
            (J::String(s), _) => Value::String(s),
            (J::Bool(b), _) => Value::Bool(b),
            (J::Number(n), _) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(
                    n.as_f64()
                        .ok_or_else(|| bad("number out of range".into()))?,
                ),
            },
            (J::Array(items), _) => Value::List(
                items
                    .into_iter()
                    .map(|item| match item {
                        J::Object(_) | J::Null => Ok(Value::Json(item)),
                        other => Value::from_json(field, other, None),
                    })
                    .collect::<Result<_>>()?,
            ),
            (obj @ J::Object(_), _) => Value::Json(obj),
        };
        if let Some(k) = kind {
            if v.kind() != k {
                return Err(bad(
                    format!("expected {k:?}, got {:?}", v.kind()).to_lowercase()
                ));
            }
        }
        Ok(v)
    }

    /// Converts the value to JSON.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::String(s) => J::String(s.clone()),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Bool(b) => J::Bool(*b),
            Value::Timestamp(t) => J::String(t.to_string()),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Json(j) => j.clone(),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Timestamp> for Value {
    fn from(t: Timestamp) -> Self {
        Value::Timestamp(t)
    }
}

/// How a field is classified for privacy purposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldClass {
    /// Personal data (GDPR Art. 4(1)): sealed under the field's own key. The default.
    #[default]
    Personal,
    /// Special-category data (GDPR Art. 9): sealed like personal data.
    Sensitive,
    /// Not personal data: stored without encryption, protected by a checksum.
    NonPersonal,
}

impl FieldClass {
    /// Whether values of this class are sealed with an AEAD.
    pub const fn is_sealed(self) -> bool {
        !matches!(self, FieldClass::NonPersonal)
    }
}

/// Declaration of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Privacy class.
    pub class: FieldClass,
    /// Declared type; `None` accepts any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ValueKind>,
}

/// Declares fields and classifies them. Fields not declared are `personal`
/// and untyped, so forgetting to declare a field never leaves it unencrypted.
///
/// ```
/// use lethedb::{FieldClass, Schema, ValueKind};
/// let schema = Schema::new()
///     .field("email", FieldClass::Personal, Some(ValueKind::String))
///     .field("plan", FieldClass::NonPersonal, None);
/// assert_eq!(schema.class_of("plan"), FieldClass::NonPersonal);
/// assert_eq!(schema.class_of("anything_else"), FieldClass::Personal);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Field name to declaration.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
}

impl Schema {
    /// An empty schema: every field is personal.
    pub fn new() -> Self {
        Schema::default()
    }

    /// Adds or replaces a field declaration.
    pub fn field(
        mut self,
        name: impl Into<String>,
        class: FieldClass,
        kind: Option<ValueKind>,
    ) -> Self {
        self.fields.insert(name.into(), FieldSpec { class, kind });
        self
    }

    /// The declaration of `name` (the default for undeclared fields).
    pub fn spec(&self, name: &str) -> FieldSpec {
        self.fields.get(name).copied().unwrap_or_default()
    }

    /// The class of `name`.
    pub fn class_of(&self, name: &str) -> FieldClass {
        self.spec(name).class
    }

    /// Parses a schema from JSON: `{"fields":{"email":{"class":"personal","kind":"string"}}}`.
    pub fn from_json(text: &str) -> Result<Self> {
        let s: Schema =
            serde_json::from_str(text).map_err(|e| Error::InvalidInput(format!("schema: {e}")))?;
        for name in s.fields.keys() {
            crate::domain::fields::validate_name(name)?;
        }
        Ok(s)
    }
}
