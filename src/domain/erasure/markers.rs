//! What the store records about erasures that layers below erasure read:
//! tombstones (the erased-profile error), whether suppression entries
//! exist, the purge work queue and the backup marker. Plain reads of the
//! store; nothing here takes the engine, so the engine and the write path
//! can use it without depending on the erasure operations. Also the
//! buckets of the keyrings pending items name (purge and backup re-keying
//! both rotate them).

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::keytree::KeyHierarchy;
use crate::storage::columns::{
    cf_index, BackupMarkers, Keyrings, Keyspace, PendingPurges, Suppressions,
};
use crate::storage::records::{ProfileRecord, RecordStatus};
use crate::storage::Store;
use crate::types::ProfileId;

/// The erased-profile error for `id`, if its record is a tombstone.
pub(crate) fn erased_error(id: &ProfileId, record: &ProfileRecord) -> Option<Error> {
    match record.status {
        RecordStatus::Erased { erasure_id } => Some(Error::ProfileErased {
            profile: *id,
            erasure_id,
        }),
        _ => None,
    }
}

/// Whether any suppression entry exists (read at open).
pub(crate) fn any_suppressed(store: &crate::storage::Store) -> Result<bool> {
    Ok(store.keys_with::<Suppressions>(&[])?.next().is_some())
}

/// Number of erasures waiting for purge and the request time of the oldest
/// (scanned from the store; used at open).
pub(crate) fn scan_pending(store: &crate::storage::Store) -> Result<Pending> {
    let mut p = Pending::default();
    for item in store.entries::<PendingPurges>(&[])? {
        let (_, item) = item?;
        p.add(item.requested_at);
    }
    Ok(p)
}

/// Erasures waiting for purge, kept in memory beside the `meta 'q'` items.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pending {
    pub(crate) count: usize,
    pub(crate) oldest: Option<i64>,
}

impl Pending {
    pub(crate) fn add(&mut self, requested_at: i64) {
        self.count += 1;
        self.oldest = Some(self.oldest.map_or(requested_at, |o| o.min(requested_at)));
    }
}

/// Whether a store directory is marked as a backup.
pub(crate) fn is_backup(store: &Store) -> Result<bool> {
    Ok(store.get::<BackupMarkers>(&())?.is_some())
}

/// Buckets of the keyrings `ranges` name (the keyring keys of pending
/// items).
pub(crate) fn keyring_buckets<'a>(
    keys: &'a KeyHierarchy,
    ranges: &'a [(u8, Vec<u8>, Vec<u8>)],
) -> impl Iterator<Item = u32> + 'a {
    let keys_cf = cf_index(Keyrings::CF);
    ranges
        .iter()
        .filter(move |(cf, start, _)| {
            *cf == keys_cf && start.len() == 17 && start[0] == Keyrings::PREFIX
        })
        .map(move |(_, start, _)| {
            let mut id = [0u8; 16];
            id.copy_from_slice(&start[1..]);
            keys.bucket_of(&ProfileId::from_bytes(id))
        })
}

/// The buckets of every keyring a pending item of `db` names.
pub(crate) fn pending_keyring_buckets(store: &Store, keys: &KeyHierarchy) -> Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for item in store.entries::<PendingPurges>(&[])? {
        let (_, p) = item?;
        out.extend(keyring_buckets(keys, &p.ranges));
    }
    Ok(out)
}

/// For tests: whether a pending purge item names the key `key` of
/// keyspace `K` (its column family and a range holding it).
#[cfg(test)]
pub(crate) fn pending_names<K: crate::storage::columns::Keyspace>(
    store: &Store,
    key: &K::Key,
) -> bool {
    let key = K::key(key);
    store
        .entries::<PendingPurges>(&[])
        .expect("pending items")
        .flat_map(|i| i.expect("pending item").1.ranges)
        .any(|(cf, x, y)| cf == cf_index(K::CF) && x <= key && key <= y)
}
