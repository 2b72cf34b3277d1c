//! The single write path: one atomic batch per logical operation, with
//! retry when a concurrent change moved a profile.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use zeroize::Zeroizing;

use super::read::*;
use super::update::*;
use super::working::*;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::records::{self, RecordStatus};
use crate::storage::Batch;
use crate::types::{FieldClass, ProfileId, Timestamp, Value};

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

pub(super) type PreparedOp = (ProfileId, OpKind, Vec<Prepared>);

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
pub(super) fn apply_attempt(
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
        working[id].put_into(&mut out)?;
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
