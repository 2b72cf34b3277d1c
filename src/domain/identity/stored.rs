//! The identifiers a profile holds, in its sealed system field `$ids`
//! (raw and normalised value and origin profile), and their blind-index
//! keys.

use super::ids::{IdType, Identifier};
use crate::domain::index_auth::{identity_entry, identity_target};
use crate::domain::profiles::Working;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::IdentityIndex;
use crate::types::{FieldClass, ProfileId, Timestamp, Value};

/// The system field holding a profile's identifiers.
pub(crate) const IDS_FIELD: &str = "$ids";
/// An identifier as stored in a profile's `$ids` field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredId {
    pub(crate) id_type: IdType,
    pub(crate) raw: String,
    pub(crate) normalized: String,
    pub(crate) origin: ProfileId,
}

impl StoredId {
    pub(super) fn same(&self, t: &IdType, normalized: &str) -> bool {
        &self.id_type == t && self.normalized == normalized
    }
}

/// Reads the `$ids` field of a profile.
pub(crate) fn decode_ids(db: &Engine, w: &Working) -> Result<Vec<StoredId>> {
    let Some(fid) = db.registry.id(IDS_FIELD) else {
        return Ok(Vec::new());
    };
    let Some(entry) = w.record.fields.iter().find(|e| e.field_id == fid) else {
        return Ok(Vec::new());
    };
    let (_, value) = w.open(db, entry)?;
    let bad = || {
        Error::corrupt(
            "identifier list",
            format!("malformed $ids of profile {}", w.id),
        )
    };
    let Value::List(items) = value else {
        return Err(bad());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::List(parts) => match parts.as_slice() {
                [Value::String(t), Value::String(raw), Value::String(norm), Value::Int(origin)] => {
                    Ok(StoredId {
                        id_type: t.parse().map_err(|_| bad())?,
                        raw: raw.clone(),
                        normalized: if norm.is_empty() { raw } else { norm }.clone(),
                        origin: w.origin_id(u32::try_from(*origin).map_err(|_| bad())?),
                    })
                }
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

/// Writes the `$ids` field of a profile (sealed like personal data).
pub(crate) fn encode_ids(
    db: &Engine,
    w: &mut Working,
    ids: &[StoredId],
    now: Timestamp,
) -> Result<()> {
    let value = Value::List(
        ids.iter()
            .map(|i| {
                Value::List(vec![
                    Value::String(i.id_type.name().to_string()),
                    Value::String(i.raw.clone()),
                    // Empty when equal to the raw value (the common case),
                    // which saves its bytes; no normalised value is empty.
                    Value::String(if i.normalized == i.raw {
                        String::new()
                    } else {
                        i.normalized.clone()
                    }),
                    Value::Int(i64::from(w.origin_index(&i.origin))),
                ])
            })
            .collect(),
    );
    let entry = w.seal(db, IDS_FIELD, FieldClass::Personal, &value, 0, now)?;
    w.record.set(entry);
    Ok(())
}

/// Points the index entry of an identifier at `profile`: under the key
/// the current rotation state wants for that profile, with any entry under
/// the other generation's key removed (one atomic batch).
pub(crate) fn put_index(
    db: &Engine,
    batch: &mut crate::storage::Batch,
    t: &IdType,
    normalized: &str,
    profile: ProfileId,
) -> Result<()> {
    let target = db.ids.key_for(profile.as_bytes(), t.name(), normalized)?;
    for k in db.ids.keys(t.name(), normalized)? {
        if k != target {
            batch.delete::<crate::storage::columns::IdentityIndex>(&k);
        }
    }
    batch.put::<crate::storage::columns::IdentityIndex>(
        &target,
        &identity_entry(db, &target, profile),
    );
    Ok(())
}

/// `Db::identifiers`.
pub(crate) fn identifiers_of(db: &Engine, id: &ProfileId) -> Result<Vec<Identifier>> {
    let w = crate::domain::profiles::load_active(db, id)?;
    Ok(decode_ids(db, &w)?
        .into_iter()
        .map(|i| Identifier::new(i.id_type, i.raw))
        .collect())
}

/// `Db::lookup`.
pub(crate) fn lookup(db: &Engine, id: &Identifier) -> Result<Option<ProfileId>> {
    let cfg = db.identity_snapshot();
    // An e-mail indexed or suppressed by an earlier build under its older
    // form is found by that form too (docs/design.md, "Identifiers and
    // normalisation").
    let forms = cfg.normalization.lookup_forms(id)?;
    // Index entries always name an active profile: merge and unmerge
    // re-point them, forget deletes them, each in the same batch as the
    // profile change. So one index read answers, without the record.
    // Every form under every generation's key in one multi-get: one
    // consistent view, retried if the key state moved meanwhile.
    loop {
        let st = db.ids.state();
        let version = st.version();
        if st.previous.is_none() {
            // No rotation: one key per form, read in order; the first form
            // found answers (most lookups need one read).
            let mut hit = None;
            for form in &forms {
                let key = st.current.key(id.id_type.name(), form)?;
                if let Some(e) = db.store.get::<IdentityIndex>(&key)? {
                    hit = Some(identity_target(db, &key, &e)?);
                    break;
                }
            }
            if hit.is_some() || db.ids.version() == version {
                return Ok(hit);
            }
            continue;
        }
        let mut keys = Vec::new();
        for form in &forms {
            keys.extend(st.keys(id.id_type.name(), form)?);
        }
        let found = db.store.multi_get::<IdentityIndex>(&keys)?;
        if db.ids.version() == version {
            return match keys
                .iter()
                .zip(&found)
                .find_map(|(k, e)| e.as_ref().map(|e| (k, e)))
            {
                Some((k, e)) => Ok(Some(identity_target(db, k, e)?)),
                None => Ok(None),
            };
        }
    }
}

#[cfg(test)]
mod bounds {
    use super::*;
    use crate::domain::profiles::load_active;

    fn ids(n: usize, owner: ProfileId) -> Vec<StoredId> {
        (0..n)
            .map(|i| StoredId {
                id_type: IdType::UserId,
                raw: format!("{i:05}-{}", "x".repeat(494)),
                normalized: format!("{i:05}-{}", "x".repeat(494)),
                origin: owner,
            })
            .collect()
    }

    #[test]
    fn ids_over_the_value_bound_are_refused_before_anything_is_written() {
        let (_dir, db, id) = crate::db::scratch_store();
        let e = &db.engine;
        let mut w = load_active(e, &id).unwrap();
        // 2,200 identifiers of 500 bytes encode to more than 1 MiB.
        let err = encode_ids(e, &mut w, &ids(2_200, id), Timestamp::now()).unwrap_err();
        assert!(
            matches!(err, Error::RecordTooLarge { what: "field value", bytes, limit }
                if bytes > limit && limit == 1 << 20),
            "{err:?}"
        );
        // Under the bound the list is written and reads back whole.
        let fits = ids(1_000, id);
        encode_ids(e, &mut w, &fits, Timestamp::now()).unwrap();
        assert_eq!(decode_ids(e, &w).unwrap(), fits);
    }
}
