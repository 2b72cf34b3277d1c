//! The bounded cache of unwrapped node keys.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::wrap::NodeKey;

pub(super) type NodeId = (u8, u32);

/// Unwrapped node keys, bounded: a full shard evicts an arbitrary entry
/// (hash order, in effect random). Upper levels are few and hot, so they
/// stay; a bucket key that was evicted costs one point read to reload.
pub(super) struct NodeCache {
    pub(super) shards: Vec<Mutex<HashMap<NodeId, NodeKey>>>,
    pub(super) per_shard: usize,
}

pub(super) const CACHE_SHARDS: usize = 16;

impl NodeCache {
    pub(super) fn new(capacity: usize) -> Self {
        NodeCache {
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            per_shard: capacity.div_ceil(CACHE_SHARDS).max(1),
        }
    }

    pub(super) fn shard(&self, id: NodeId) -> &Mutex<HashMap<NodeId, NodeKey>> {
        let h = (id.1 as usize)
            .wrapping_mul(31)
            .wrapping_add(usize::from(id.0));
        &self.shards[h % CACHE_SHARDS]
    }

    pub(super) fn get(&self, id: NodeId) -> Option<NodeKey> {
        self.shard(id).lock().get(&id).cloned()
    }

    pub(super) fn insert(&self, id: NodeId, key: NodeKey) {
        let mut s = self.shard(id).lock();
        if s.len() >= self.per_shard && !s.contains_key(&id) {
            if let Some(victim) = s.keys().next().copied() {
                s.remove(&victim);
            }
        }
        s.insert(id, key);
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
