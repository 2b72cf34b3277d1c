//! Reads: following merge redirects to the active profile, and opening
//! the fields a caller asked for.

use std::collections::BTreeMap;

use super::sealing::Fields;
use super::update::*;
use super::working::*;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::records::RecordStatus;
use crate::types::ProfileId;

/// Follows merge redirects from `id` to the active profile holding its data.
/// `Ok(None)` when `id` does not exist.
pub(crate) fn final_target(db: &Engine, id: &ProfileId) -> Result<Option<ProfileId>> {
    let mut cur = *id;
    for _ in 0..MAX_REDIRECTS {
        match super::sealing::authenticated(db, &cur)? {
            None => {
                return match db.erased_error(&cur)? {
                    Some(e) => Err(e),
                    None => Ok(None),
                }
            }
            Some(rec) => match rec.record.status {
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

/// Reads a profile, following merge redirects; `names` selects fields
/// (`None`: all). Unknown names are skipped; system fields (`$…`) are never returned.
pub(crate) fn read(db: &Engine, id: &ProfileId, names: Option<&[&str]>) -> Result<Profile> {
    let wanted: Option<Vec<u32>> =
        names.map(|ns| ns.iter().filter_map(|n| db.registry.id(n)).collect());
    // Lazy: only the fields returned are decrypted.
    let w = load_active_fields(db, id, Fields::Lazy)?;
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
        let value = w.open_named(entry, &name)?;
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
    load_active_fields(db, id, Fields::All)
}

/// `load_active`, opening only the fields `which` names.
pub(crate) fn load_active_fields(db: &Engine, id: &ProfileId, which: Fields) -> Result<Working> {
    let mut last = None;
    for _ in 0..3 {
        // The common case: `id` itself is active, one point read.
        let first = match Working::load_fields(db, id, which) {
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
        match Working::load_fields(db, &target, which) {
            Ok(Some(w)) if w.record.status == RecordStatus::Active => return Ok(w),
            Ok(_) => {}
            Err(e @ Error::Corrupt { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(Error::ProfileNotFound(*id)))
}
