//! The tagged encoding of field values (strings, numbers, lists, JSON).

use super::codec::*;
use super::profile::MAX_VALUE_BYTES;
use crate::error::{Error, Result};
use crate::types::{Timestamp, Value};

/// Maximum nesting of lists inside lists.
pub(crate) const MAX_DEPTH: usize = 32;

pub(crate) const TAG_STRING: u8 = 1;
pub(crate) const TAG_INT: u8 = 2;
pub(crate) const TAG_FLOAT: u8 = 3;
pub(crate) const TAG_BOOL: u8 = 4;
pub(crate) const TAG_TIMESTAMP: u8 = 5;
pub(crate) const TAG_LIST: u8 = 6;
pub(crate) const TAG_JSON: u8 = 7;

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

pub(crate) fn read_value(r: &mut Reader<'_>, depth: usize) -> Result<Value> {
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
