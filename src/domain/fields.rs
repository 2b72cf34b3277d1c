//! Field names and the field registry (name ↔ numeric id).
//!
//! Profile records store a 4-byte field id instead of the name. Ids are
//! assigned on first use and never reused; the registry is one record in
//! `meta`. Field names are schema, not personal data.

use std::collections::HashMap;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::storage::columns::FieldNames;
use crate::storage::records::{decode_field_names, encode_field_names, Blob};
use crate::storage::{Batch, Store};

/// Most distinct field names a store registers.
pub const MAX_REGISTERED_FIELDS: usize = 65_536;

pub use crate::types::MAX_FIELD_NAME_BYTES;

pub(crate) use crate::types::validate_field_name as validate_name;

#[derive(Default)]
struct Names {
    by_name: HashMap<String, u32>,
    by_id: Vec<String>,
}

pub(crate) struct FieldRegistry {
    names: RwLock<Names>,
    write_lock: Mutex<()>,
}

impl FieldRegistry {
    pub(crate) fn load(store: &Store) -> Result<Self> {
        let by_id = match store.get::<FieldNames>(&())? {
            Some(blob) => decode_field_names(&blob.0)?,
            None => Vec::new(),
        };
        let mut by_name = HashMap::with_capacity(by_id.len());
        for (i, n) in by_id.iter().enumerate() {
            let id = u32::try_from(i)
                .map_err(|_| Error::corrupt("field registry", "too many fields"))?;
            if by_name.insert(n.clone(), id).is_some() {
                return Err(Error::corrupt("field registry", "duplicate field name"));
            }
        }
        Ok(FieldRegistry {
            names: RwLock::new(Names { by_name, by_id }),
            write_lock: Mutex::new(()),
        })
    }

    pub(crate) fn id(&self, name: &str) -> Option<u32> {
        self.names.read().by_name.get(name).copied()
    }

    pub(crate) fn name(&self, id: u32) -> Result<String> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.names.read().by_id.get(i).cloned())
            .ok_or_else(|| {
                Error::corrupt(
                    "profile record",
                    format!("field id {id} is not in the registry"),
                )
            })
    }

    /// Ids for `names`, registering unknown names first. Registration is its
    /// own atomic write: an id that ends up unused is harmless.
    pub(crate) fn ensure<'a>(
        &self,
        store: &Store,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        let missing: Vec<&str> = {
            let n = self.names.read();
            names
                .into_iter()
                .filter(|name| !n.by_name.contains_key(*name))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let _guard = self.write_lock.lock();
        let mut by_id = self.names.read().by_id.clone();
        for name in missing {
            if !by_id.iter().any(|n| n == name) {
                validate_name(name)?;
                by_id.push(name.to_string());
            }
        }
        if by_id.len() > MAX_REGISTERED_FIELDS {
            return Err(Error::InvalidInput(format!(
                "field registry is full ({MAX_REGISTERED_FIELDS} names); put data in values, not in field names"
            )));
        }
        let mut batch = Batch::new();
        batch.put::<FieldNames>(&(), &Blob(encode_field_names(&by_id)));
        store.write(batch)?;
        let mut n = self.names.write();
        for (i, name) in by_id.iter().enumerate().skip(n.by_id.len()) {
            n.by_name
                .insert(name.clone(), u32::try_from(i).unwrap_or(u32::MAX));
        }
        n.by_id = by_id;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn names() {
        assert!(validate_name("email").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name(&"x".repeat(256)).is_err());
        assert!(validate_name(&"x".repeat(255)).is_ok());
    }
}
