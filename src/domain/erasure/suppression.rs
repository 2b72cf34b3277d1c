//! The suppression list: a separately keyed hash of each forgotten
//! identifier, so resolution does not re-create the person from the next
//! event that names them. Checked by identity resolution, written by
//! `forget`, lifted by `unsuppress`.

use serde_json::json;

use crate::domain::audit::Event;
use crate::domain::identity::ids::Identifier;
use crate::engine::Engine;
use crate::error::Result;
use crate::storage::columns::Suppressions;
use crate::storage::Batch;

/// `Db::unsuppress`: lifts the suppression of one identifier.
pub(crate) fn unsuppress(db: &Engine, identifier: &Identifier) -> Result<bool> {
    let cfg = db.identity_snapshot();
    // An e-mail indexed or suppressed by an earlier build under its older
    // form is found by that form too (docs/design.md, "Identifiers and
    // normalisation").
    let forms = cfg.normalization.lookup_forms(identifier)?;
    let mut batch = Batch::new();
    for form in forms {
        let key = db.suppression.key(identifier.id_type.name(), &form)?;
        if db.store.get::<Suppressions>(&key)?.is_some() {
            batch.delete::<Suppressions>(&key);
        }
    }
    if batch.is_empty() {
        return Ok(false);
    }
    db.audit.commit(
        &db.store,
        batch,
        &[Event::new(
            "unsuppress",
            None,
            json!({ "identifier_type": identifier.id_type.name() }),
        )],
    )?;
    Ok(true)
}

/// Which of `keys` (type, normalised value) are suppressed.
/// Whether resolve must check suppression at all: suppression is on and
/// some entry exists.
pub(crate) fn suppression_in_force(db: &Engine) -> bool {
    db.suppress_forgotten
        && db
            .suppression_active
            .load(std::sync::atomic::Ordering::Acquire)
}

pub(crate) fn suppressed(db: &Engine, ids: &[(&str, &str)]) -> Result<Vec<bool>> {
    if !suppression_in_force(db) {
        return Ok(vec![false; ids.len()]);
    }
    let keys = ids
        .iter()
        .map(|(t, n)| db.suppression.key(t, n))
        .collect::<Result<Vec<_>>>()?;
    Ok(db
        .store
        .multi_get::<Suppressions>(&keys)?
        .into_iter()
        .map(|e| e.is_some())
        .collect())
}
