//! One logical operation's writes, committed whole or not at all.

use super::columns::Keyspace;
use super::records::ValueCodec;
use crate::error::Error;

/// One logical operation's writes. Committed whole by [`Store::write`] or not at all.
#[derive(Default)]
pub(crate) struct Batch {
    pub(super) ops: Vec<Op>,
    /// The first value that could not be encoded: the batch is refused
    /// whole by `Store::write` (nothing of it is written).
    pub(super) error: Option<Error>,
}

/// One write of a batch: a put, or a delete when `value` is `None`.
pub(super) struct Op {
    pub(super) cf: &'static str,
    pub(super) key: Vec<u8>,
    pub(super) value: Option<Vec<u8>>,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Batch::default()
    }

    /// Stages a put. A value that cannot be encoded (over its record's
    /// bound) is not staged; the batch then carries the error and
    /// `Store::write` refuses all of it.
    pub(crate) fn put<K: Keyspace>(&mut self, key: &K::Key, value: &K::Value) {
        match value.try_encode() {
            Ok(v) => self.ops.push(Op {
                cf: K::CF,
                key: K::key(key),
                value: Some(v),
            }),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    pub(crate) fn delete<K: Keyspace>(&mut self, key: &K::Key) {
        self.ops.push(Op {
            cf: K::CF,
            key: K::key(key),
            value: None,
        });
    }

    /// Bytes of keys and values in the batch.
    pub(crate) fn bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|o| o.key.len() + o.value.as_ref().map_or(0, Vec::len))
            .sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.error.is_none()
    }
}
