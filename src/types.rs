//! Public value types: profile ids, field values, timestamps, schema.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::id::{MergeId, ProfileId};

/// Parsing from text and fresh random values for an id type of
/// `crate::id` (they return this crate's typed errors, which name the id
/// types, so they live here rather than beside the representation); `bad`
/// builds the parse error from the rejected text.
macro_rules! id128_parse {
    ($name:ident, $bad:expr) => {
        impl $name {
            /// A fresh random id from the OS random number generator.
            pub fn random() -> Result<Self> {
                let mut b = [0u8; 16];
                crate::random::os_random(&mut b)?;
                Ok($name::from_bytes(b))
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                let text: String = s.chars().take(64).collect();
                let bad = || -> Error { ($bad)(text.clone()) };
                let bytes = crate::hex::decode(s).ok_or_else(bad)?;
                Ok($name::from_bytes(bytes.try_into().map_err(|_| bad())?))
            }
        }
    };
}

id128_parse!(ProfileId, |input| Error::InvalidProfileId { input });

id128_parse!(MergeId, |input: String| Error::InvalidInput(format!(
    "invalid merge id {input:?}: expected 32 hexadecimal characters"
)));

/// A point in time with microsecond precision, counted from the Unix epoch
/// (UTC). Valid from year 0001 to 9999, so every timestamp prints as RFC 3339.
///
/// ```
/// use lethedb::Timestamp;
/// let t = Timestamp::parse_rfc3339("2024-05-01T12:00:00Z")?;
/// assert_eq!(t.to_string(), "2024-05-01T12:00:00.000000Z");
/// let old = Timestamp::parse_rfc3339("1936-07-09T01:02:03.5+01:00")?;
/// assert_eq!(old.to_string(), "1936-07-09T00:02:03.500000Z");
/// assert!(Timestamp::parse_rfc3339("2024-13-01T00:00:00Z").is_err());
/// Ok::<_, lethedb::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

impl Timestamp {
    /// Earliest valid timestamp: 0001-01-01T00:00:00Z.
    pub const MIN: Timestamp = Timestamp(-62_135_596_800_000_000);
    /// Latest valid timestamp: 9999-12-31T23:59:59.999999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

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

    /// The same time of day `n` calendar months later (UTC); a day the
    /// target month lacks is that month's last day (31 January + 1 month
    /// = 28 or 29 February), as periods in months are counted in EU law
    /// (Regulation 1182/71, Art. 3(2)(c)).
    pub fn add_months(self, n: u32) -> Timestamp {
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let time = self.0.rem_euclid(MICROS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let months = y * 12 + (m - 1) + i64::from(n);
        let (ty, tm) = (months.div_euclid(12), months.rem_euclid(12) + 1);
        let last =
            days_from_civil(ty + i64::from(tm == 12), tm % 12 + 1, 1) - days_from_civil(ty, tm, 1);
        days_from_civil(ty, tm, d.min(last))
            .checked_mul(MICROS_PER_DAY)
            .and_then(|t| t.checked_add(time))
            .map_or(Timestamp::MAX, |t| Timestamp(t.min(Timestamp::MAX.0)))
    }

    /// Whether the timestamp lies in years 0001..=9999.
    pub const fn is_valid(self) -> bool {
        self.0 >= Self::MIN.0 && self.0 <= Self::MAX.0
    }

    /// Parses RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    /// Fractions beyond microseconds are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "timestamp {:?}: {why}",
                s.chars().take(40).collect::<String>()
            ))
        };
        let b = s.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Result<i64> {
            let part = b.get(range).ok_or_else(|| bad("too short"))?;
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(bad("expected digits"));
            }
            Ok(part
                .iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
        };
        let sep = |i: usize, allowed: &[u8]| -> Result<()> {
            match b.get(i) {
                Some(c) if allowed.contains(c) => Ok(()),
                _ => Err(bad("malformed")),
            }
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        sep(4, b"-")?;
        sep(7, b"-")?;
        sep(10, b"Tt ")?;
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        sep(13, b":")?;
        sep(16, b":")?;
        let mut pos = 19;
        let mut micros = 0i64;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                if pos - start < 6 {
                    micros = micros * 10 + i64::from(b[pos] - b'0');
                }
                pos += 1;
            }
            if pos == start {
                return Err(bad("empty fraction"));
            }
            for _ in (pos - start)..6 {
                micros *= 10;
            }
        }
        let offset_minutes = match b.get(pos) {
            Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
            Some(&c @ (b'+' | b'-')) if pos + 6 == b.len() => {
                sep(pos + 3, b":")?;
                let m = num(pos + 1..pos + 3)? * 60 + num(pos + 4..pos + 6)?;
                if c == b'+' {
                    m
                } else {
                    -m
                }
            }
            _ => return Err(bad("expected Z or a ±HH:MM offset at the end")),
        };
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            _ => return Err(bad("month out of range")),
        };
        if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 || year < 1 {
            return Err(bad("date or time out of range"));
        }
        let secs =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
                - offset_minutes * 60;
        let t = Timestamp(secs * 1_000_000 + micros);
        if t.is_valid() {
            Ok(t)
        } else {
            Err(bad("outside years 0001..=9999"))
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_valid() {
            // Unreachable through the API (writes reject these); never panic.
            return write!(f, "{}us", self.0);
        }
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let rem = self.0.rem_euclid(MICROS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = rem / 1_000_000;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            rem % 1_000_000
        )
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
    /// an integer becomes a float when it is declared `float`, and any JSON
    /// becomes [`Value::Json`] when it is declared `json`.
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
            (j, Some(ValueKind::Json)) => Value::Json(j),
            (J::String(s), Some(ValueKind::Timestamp)) => Value::Timestamp(
                Timestamp::parse_rfc3339(&s)
                    .map_err(|_| bad("expected an RFC 3339 timestamp".into()))?,
            ),
            (J::Number(n), Some(ValueKind::Timestamp)) => Value::Timestamp(
                n.as_i64()
                    .map(Timestamp)
                    .filter(|t| t.is_valid())
                    .ok_or_else(|| {
                        bad("expected microseconds since the epoch within years 0001..=9999".into())
                    })?,
            ),
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

/// Field values as a JSON object.
pub(crate) fn fields_to_json(
    fields: &BTreeMap<String, Value>,
) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect()
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
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Privacy class.
    pub class: FieldClass,
    /// Declared type; `None` accepts any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ValueKind>,
    /// Purposes this field may serve (purpose-bound reads withhold it for others).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<String>,
    /// Retention: values older than this many days are erased by
    /// `Db::run_retention` (through `forget_field`, with certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
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
    /// Custom purposes accepted besides the built-in ones.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub purposes: std::collections::BTreeSet<String>,
    /// Custom identifier types accepted by `Db::resolve` besides the built-in ones.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub identifier_types: std::collections::BTreeSet<String>,
    /// Retention: profiles not updated for this many days are forgotten by
    /// `Db::run_retention`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_profile_days: Option<u32>,
}

impl Schema {
    /// An empty schema: every field is personal.
    pub fn new() -> Self {
        Schema::default()
    }

    /// Sets a retention period for a field (see [`FieldSpec::retention_days`]).
    ///
    /// ```
    /// use lethedb::Schema;
    /// let s = Schema::new().retention("last_ip", 30).inactive_profile_days(730);
    /// assert_eq!(s.spec("last_ip").retention_days, Some(30));
    /// ```
    pub fn retention(mut self, name: impl Into<String>, days: u32) -> Self {
        self.fields.entry(name.into()).or_default().retention_days = Some(days);
        self
    }

    /// Forget profiles not updated for `days` days (see [`Schema::inactive_profile_days`](Schema#structfield.inactive_profile_days)).
    pub fn inactive_profile_days(mut self, days: u32) -> Self {
        self.inactive_profile_days = Some(days);
        self
    }

    /// Adds or replaces a field declaration.
    pub fn field(
        mut self,
        name: impl Into<String>,
        class: FieldClass,
        kind: Option<ValueKind>,
    ) -> Self {
        let spec = self.fields.entry(name.into()).or_default();
        spec.class = class;
        spec.kind = kind;
        self
    }

    /// Lets `field` serve `purpose` in purpose-bound reads.
    pub fn allow(mut self, field: impl Into<String>, purpose: impl Into<String>) -> Self {
        self.fields
            .entry(field.into())
            .or_default()
            .purposes
            .push(purpose.into());
        self
    }

    /// Declares a custom purpose.
    pub fn purpose(mut self, name: impl Into<String>) -> Self {
        self.purposes.insert(name.into());
        self
    }

    /// Declares a custom identifier type (for example `crm_id`).
    pub fn identifier_type(mut self, name: impl Into<String>) -> Self {
        self.identifier_types.insert(name.into());
        self
    }

    /// The declaration of `name` (the default for undeclared fields).
    pub fn spec(&self, name: &str) -> FieldSpec {
        self.fields.get(name).cloned().unwrap_or_default()
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
            validate_field_name(name)?;
        }
        Ok(s)
    }
}

/// Longest accepted field name, in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 255;

/// Checks a field name: 1 to 255 bytes, no control characters.
pub(crate) fn validate_field_name(name: &str) -> Result<()> {
    let bad = |reason| Error::InvalidFieldName {
        name: name.chars().take(64).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_FIELD_NAME_BYTES {
        return Err(bad("longer than 255 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    Ok(())
}
