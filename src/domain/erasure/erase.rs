//! The erasure operations of the public API: the erasure itself
//! (`forget.rs`), then a purge when one is due (`purge.rs`; its failure is
//! kept for `Db::last_purge_error`, never the erasure's). Ledger replay
//! calls `forget.rs` directly and never purges from inside.

use super::forget as erasure;
use super::purge::auto_purge;
use super::receipt::ErasureReceipt;
use crate::engine::Engine;
use crate::error::Result;
use crate::types::ProfileId;

/// `Db::forget`: erases a person (the profile `id` resolves to and every
/// profile merged into it), then purges if the pending count or age says
/// so. Idempotent: a second call returns the first erasure's receipt.
pub(crate) fn forget(db: &Engine, id: &ProfileId) -> Result<ErasureReceipt> {
    let receipt = erasure::forget(db, id)?;
    // A repeated forget answers with the first erasure's receipt and
    // purges nothing (as before the split).
    if !receipt.already_erased {
        to_backup_ledgers(db, receipt.erasure_id);
        auto_purge(db);
    }
    Ok(receipt)
}

/// `Db::forget_fields`: erases fields of a person by re-keying every profile
/// of the person that holds one of them (see `forget.rs`), then
/// purges when due. With an `explicit` erasure id (ledger replay) it never
/// purges.
pub(crate) fn forget_fields(
    db: &Engine,
    ids: &[ProfileId],
    names: &[&str],
    explicit: Option<u64>,
) -> Result<ErasureReceipt> {
    let receipt = erasure::forget_fields(db, ids, names, explicit)?;
    if receipt.erasure_id.is_some() && explicit.is_none() {
        to_backup_ledgers(db, receipt.erasure_id);
        auto_purge(db);
    }
    Ok(receipt)
}

/// Appends a committed erasure to the registered backups' ledgers at once
/// (a restore before the next purge must replay it). Never fails the
/// erasure: what is missed here, the next purge appends (and reports).
fn to_backup_ledgers(db: &Engine, erasure_id: Option<u64>) {
    if let Some(id) = erasure_id {
        let _ = super::copies::append_to_backups(db, id);
    }
}
