//! The key tree itself: its root, the node cache, and the keyring
//! operations of the write and read paths (create, re-key, open). Rotation
//! is in `rotation.rs`, status in `status.rs`.

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
#[cfg(feature = "testkit")]
use std::sync::atomic::AtomicU8;

use super::custody::RootKeys;
use crate::crypto::kdf::{self};
use crate::crypto::{random_key, MasterKey, SecretKey};
use crate::error::{Error, Result};
use crate::storage::columns::TreeNodes;
use crate::storage::records::{KeyTreeHeader, WrappedKey};
use crate::storage::{Batch, Store};
use crate::types::ProfileId;

use super::cache::*;
use super::shape::*;
use super::wrap::*;

pub(crate) struct KeyHierarchy {
    pub(super) shape: Shape,
    pub(super) store_id: [u8; 16],
    pub(super) root_wrap: SecretKey,
    pub(super) roots: RootKeys,
    pub(super) root: RwLock<Kek>,
    pub(super) cache: NodeCache,
    pub(super) cache_capacity: usize,
    pub(super) create_lock: Mutex<()>,
    /// Shared by every operation that reads or writes keyrings; exclusive
    /// while a rotation swaps the tree.
    pub(super) epoch_lock: RwLock<()>,
    #[cfg(feature = "testkit")]
    pub(super) crash_at: AtomicU8,
}

impl KeyHierarchy {
    /// Stores the first root version of a new store and returns its header.
    /// Refuses a root key store that already holds versions: they belong
    /// to another store (or to a creation that crashed; remove them).
    pub(crate) fn init_root(
        master: &MasterKey,
        store_id: &[u8; 16],
        shape: Shape,
        roots: &RootKeys,
    ) -> Result<KeyTreeHeader> {
        shape.check()?;
        require_empty(roots, store_id, "a new store")?;
        let wrap_key = kdf::derive(master, store_id, kdf::LABEL_ROOT_WRAP)?;
        store_new_root(&wrap_key, store_id, roots, 1)?;
        Ok(KeyTreeHeader {
            fanout_bits: shape.fanout_bits,
            depth: shape.depth,
            root_epoch: 1,
        })
    }

    /// Opens the tree named by `header` with its root from `roots`.
    pub(crate) fn open(
        master: &MasterKey,
        store_id: &[u8; 16],
        header: &KeyTreeHeader,
        roots: RootKeys,
        cache_capacity: usize,
    ) -> Result<Self> {
        let shape = Shape {
            fanout_bits: header.fanout_bits,
            depth: header.depth,
        }
        .check()
        .map_err(|e| Error::corrupt("key tree header", e.to_string()))?;
        let root_wrap = kdf::derive(master, store_id, kdf::LABEL_ROOT_WRAP)?;
        let epoch = header.root_epoch;
        let root = load_root(&root_wrap, store_id, &roots, epoch)?;
        Ok(KeyHierarchy {
            shape,
            store_id: *store_id,
            root_wrap,
            roots,
            root: RwLock::new(root),
            cache: NodeCache::new(cache_capacity),
            cache_capacity,
            create_lock: Mutex::new(()),
            epoch_lock: RwLock::new(()),
            #[cfg(feature = "testkit")]
            crash_at: AtomicU8::new(0),
        })
    }

    pub(crate) fn roots(&self) -> &RootKeys {
        &self.roots
    }

    /// Epochs the root key store holds for this store.
    pub(crate) fn root_epochs(&self) -> Result<Vec<u32>> {
        self.roots.epochs(&self.store_id)
    }

    pub(crate) fn root_epoch(&self) -> u32 {
        self.root.read().version()
    }

    /// Held by every operation that reads or writes keyrings, so that a
    /// rotation never interleaves with one. Recursive: an operation may
    /// call another.
    pub(crate) fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.epoch_lock.read_recursive()
    }

    pub(crate) fn bucket_of(&self, id: &ProfileId) -> u32 {
        self.shape.bucket_of(id)
    }

    pub(super) fn parent_key(&self, store: &Store, level: u8, index: u32) -> Result<Kek> {
        if level == 1 {
            return Ok(self.root.read().clone());
        }
        let p = self.shape.parent_index(index);
        self.node_key(store, level - 1, p)?
            .map(Kek::Key)
            .ok_or_else(|| {
                Error::corrupt(
                    "key tree",
                    format!("node ({level}, {index}) has no parent ({}, {p})", level - 1),
                )
            })
    }

    /// The unwrapped key of node `(level, index)`, from the cache or the
    /// store (loading its ancestors as needed); `None` if it does not exist.
    pub(super) fn node_key(&self, store: &Store, level: u8, index: u32) -> Result<Option<NodeKey>> {
        if let Some(k) = self.cache.get((level, index)) {
            return Ok(Some(k));
        }
        let Some(w) = store.get::<TreeNodes>(&([level], index))? else {
            return Ok(None);
        };
        let parent = self.parent_key(store, level, index)?;
        let key = unwrap_node(&parent, level, index, &w)?;
        let k = NodeKey {
            version: w.version,
            key,
        };
        self.cache.insert((level, index), k.clone());
        Ok(Some(k))
    }

    /// Returns the bucket key, creating it (and any missing ancestor) if
    /// the bucket has none yet. Creation is its own atomic batch (nodes
    /// without keyrings are harmless); the mutex makes sure one node never
    /// gets two keys.
    pub(super) fn bucket_key_or_create(&self, store: &Store, bucket: u32) -> Result<NodeKey> {
        let depth = self.shape.depth;
        if let Some(k) = self.node_key(store, depth, bucket)? {
            return Ok(k);
        }
        let _guard = self.create_lock.lock();
        if let Some(k) = self.node_key(store, depth, bucket)? {
            return Ok(k);
        }
        let mut batch = Batch::new();
        let mut created = Vec::new();
        let mut parent = self.root.read().clone();
        let mut last = None;
        for level in 1..=depth {
            let index = bucket >> (u32::from(self.shape.fanout_bits) * u32::from(depth - level));
            if let Some(k) = self.node_key(store, level, index)? {
                parent = Kek::Key(k.clone());
                last = Some(k);
                continue;
            }
            let k = NodeKey {
                version: 1,
                key: random_key()?,
            };
            let w = parent.wrap(&node_ad(level, index, parent.version(), 1), &k.key, 1)?;
            batch.put::<TreeNodes>(&([level], index), &w);
            created.push(((level, index), k.clone()));
            parent = Kek::Key(k.clone());
            last = Some(k);
        }
        store.write(batch)?;
        for (id, k) in created {
            self.cache.insert(id, k);
        }
        last.ok_or_else(|| Error::corrupt("key tree header", "depth 0"))
    }

    /// A fresh keyring for `id` (generation 1) and its wrapped form, which
    /// the caller puts into its own batch.
    pub(crate) fn new_keyring(
        &self,
        store: &Store,
        id: &ProfileId,
    ) -> Result<(Keyring, WrappedKey)> {
        self.keyring_with_generation(store, id, 1)
    }

    pub(crate) fn keyring_with_generation(
        &self,
        store: &Store,
        id: &ProfileId,
        generation: u32,
    ) -> Result<(Keyring, WrappedKey)> {
        let bucket = self.bucket_of(id);
        let bk = self.bucket_key_or_create(store, bucket)?;
        let seed = random_key()?;
        let w = wrap(
            &bk.key,
            &keyring_ad(id, bucket, bk.version, generation),
            &seed,
            bk.version,
            generation,
        )?;
        Ok((Keyring::new(generation, seed), w))
    }

    /// Unwraps a stored keyring.
    pub(crate) fn open_keyring(
        &self,
        store: &Store,
        id: &ProfileId,
        w: &WrappedKey,
    ) -> Result<Keyring> {
        let bucket = self.bucket_of(id);
        let decrypt_err = || Error::Decrypt {
            profile: *id,
            what: "keyring".into(),
        };
        let bk = self
            .node_key(store, self.shape.depth, bucket)?
            .ok_or_else(decrypt_err)?;
        if bk.version != w.parent_version {
            return Err(decrypt_err());
        }
        let seed = unwrap(
            &bk.key,
            &keyring_ad(id, bucket, w.parent_version, w.version),
            w,
        )
        .ok_or_else(decrypt_err)?;
        Ok(Keyring::new(w.version, seed))
    }
    /// An epoch above every one the root key store holds or this tree uses.
    pub(crate) fn next_epoch(&self) -> Result<u32> {
        self.root_epochs()?
            .into_iter()
            .chain([self.root_epoch()])
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| Error::corrupt("key tree header", "root epoch exhausted"))
    }
}
