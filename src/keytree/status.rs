//! The key tree's status report (`Db::key_tree_status`, `lethedb keys status`).

use crate::error::Result;
use crate::storage::columns::TreeNodes;
use crate::storage::Store;

use super::tree::KeyHierarchy;

/// Shape and state of the key tree (`Db::key_tree_status`, `lethedb keys status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTreeStatus {
    /// Children per inner node (a power of two).
    pub fanout: u32,
    /// Levels of keys between the root and the keyrings.
    pub depth: u8,
    /// Bucket keys the shape allows (`fanout^depth`).
    pub buckets: u64,
    /// Epoch of the current root.
    pub root_epoch: u32,
    /// Every root version the root key store holds (the current one, those
    /// of registered backups, leftovers a purge will destroy).
    pub root_epochs_held: Vec<u32>,
    /// Where the roots live.
    pub root_key_store: String,
    /// Where the roots live, structured.
    pub root_location: super::location::RootLocation,
    /// The file or device object holding the current root.
    pub root_object: String,
    /// True when the roots sit in a file on the store directory's file
    /// system: a copy of that volume (snapshot, file-level backup of the
    /// parent directory) then carries roots a purge destroyed, and the
    /// erasure guarantee covers only a copy of the store directory alone.
    pub root_co_located: bool,
    /// Generation of the identifier-index (blind-index) key.
    pub blind_index_generation: u32,
    /// A blind-index rotation is under way.
    pub blind_index_rotating: bool,
    /// Stored nodes per level (level 1 first; the last level are buckets).
    pub nodes_per_level: Vec<u64>,
    /// Unwrapped keys in the cache, and its bound.
    pub cached_keys: usize,
    /// Bound of the key cache.
    pub cache_capacity: usize,
    /// Erasures waiting for the purge that rotates the tree.
    pub pending_purges: usize,
    /// Registered backups: path and root epoch (`None`: invalidated).
    pub backups: Vec<(String, Option<u32>)>,
}

impl KeyTreeStatus {
    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "fanout": self.fanout,
            "depth": self.depth,
            "buckets": self.buckets,
            "root_epoch": self.root_epoch,
            "root_epochs_held": self.root_epochs_held,
            "root_key_store": self.root_key_store,
            "root_location": self.root_location.to_json(),
            "root_object": self.root_object,
            "root_co_located": self.root_co_located,
            "blind_index_generation": self.blind_index_generation,
            "blind_index_rotating": self.blind_index_rotating,
            "nodes_per_level": self.nodes_per_level,
            "cached_keys": self.cached_keys,
            "cache_capacity": self.cache_capacity,
            "pending_purges": self.pending_purges,
            "backups": self.backups.iter().map(|(p, e)| serde_json::json!({"path": p, "root_epoch": e})).collect::<Vec<_>>(),
        })
    }
}

impl KeyHierarchy {
    /// Tree shape, epochs and node counts (scans the node records); the
    /// caller fills in pending purges and backups.
    pub(crate) fn status(&self, store: &Store) -> Result<KeyTreeStatus> {
        let mut nodes_per_level = vec![0u64; usize::from(self.shape.depth)];
        for item in store.range::<TreeNodes>(&([1], 0), None)? {
            let ((l, _), _) = item?;
            if let Some(n) = nodes_per_level.get_mut(usize::from(l[0]).wrapping_sub(1)) {
                *n += 1;
            }
        }
        Ok(KeyTreeStatus {
            fanout: 1u32 << self.shape.fanout_bits,
            depth: self.shape.depth,
            buckets: 1u64 << self.shape.bucket_bits(),
            root_epoch: self.root_epoch(),
            root_epochs_held: self.root_epochs()?,
            root_key_store: self.roots.describe(),
            root_location: self.roots.location(),
            root_object: self
                .roots
                .location()
                .name_of(&self.store_id, self.root_epoch()),
            root_co_located: false,
            blind_index_generation: 0,
            blind_index_rotating: false,
            nodes_per_level,
            cached_keys: self.cache.len(),
            cache_capacity: self.cache_capacity,
            pending_purges: 0,
            backups: Vec::new(),
        })
    }
}
