//! The key tree: root (outside the LSM tree) → inner nodes → bucket keys
//! → profile keyrings → field keys (Reardon et al., CCS 2013).
//!
//! * The **root** of epoch *e* is a random 256-bit key held, sealed under a
//!   master-derived key, by a [`RootKeyStore`]. The current epoch is named
//!   by the `meta 't'` header.
//! * **Inner nodes** sit on `depth` levels; node `(level, i)` covers the
//!   profiles whose id starts with the `level × fanout_bits` bits `i`
//!   (profile ids are random). Level 1 is wrapped under the root, level
//!   ℓ + 1 under its parent; the last level are the **bucket keys**.
//! * A **keyring** (one random seed per profile plus a generation) is
//!   wrapped under its bucket key; **field keys** are HKDF-derived from it
//!   and never stored.
//!
//! Purge **rotates** the tree: every node on the path of an erased
//! profile gets a fresh key, every child of a fresh node (and every level-1
//! node) is re-wrapped under its parent's new key, the new root is stored,
//! the batch is committed with a synced WAL, and only then is the old root
//! destroyed. Each old copy of a replaced key, anywhere on disk, is wrapped
//! under a replaced parent, up to a destroyed root.

use std::collections::{BTreeSet, HashMap};
#[cfg(feature = "testkit")]
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use super::aead;
use super::kdf::{self, FieldKeys};
use super::root::RootKeyStore;
use super::{random_key, MasterKey, SecretKey, KEY_LEN};
use crate::error::{Error, Result};
use crate::storage::columns::{KeyTreeHeaders, Keyrings, TreeNodes};
use crate::storage::format::{FormatVersion, KeyTreeHeader, WrappedKey, WRAPPED_LEN};
use crate::storage::{Batch, Store};
use crate::types::ProfileId;

/// Accepted `fanout_bits` and `depth`; `fanout_bits × depth` ≤ 24.
pub(crate) const FANOUT_BITS_RANGE: std::ops::RangeInclusive<u8> = 1..=16;
pub(crate) const DEPTH_RANGE: std::ops::RangeInclusive<u8> = 1..=4;
pub(crate) const MAX_BUCKET_BITS: u8 = 24;

/// Fan-out and depth of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) fanout_bits: u8,
    pub(crate) depth: u8,
}

impl Shape {
    pub(crate) fn check(self) -> Result<Self> {
        if !FANOUT_BITS_RANGE.contains(&self.fanout_bits)
            || !DEPTH_RANGE.contains(&self.depth)
            || self.bucket_bits() > MAX_BUCKET_BITS
        {
            return Err(Error::InvalidInput(format!(
                "key tree fan-out 2^{} and depth {}: fanout_bits must be in {}..={}, depth in {}..={}, and fanout_bits x depth at most {MAX_BUCKET_BITS}",
                self.fanout_bits,
                self.depth,
                FANOUT_BITS_RANGE.start(),
                FANOUT_BITS_RANGE.end(),
                DEPTH_RANGE.start(),
                DEPTH_RANGE.end()
            )));
        }
        Ok(self)
    }

    pub(crate) fn bucket_bits(self) -> u8 {
        self.fanout_bits.saturating_mul(self.depth)
    }

    /// Index at `level` (1..=depth) of the node covering `id`.
    fn index_of(self, id: &ProfileId, level: u8) -> u32 {
        let b = id.as_bytes();
        let top = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let bits = u32::from(level) * u32::from(self.fanout_bits);
        top >> (32 - bits)
    }

    pub(crate) fn bucket_of(self, id: &ProfileId) -> u32 {
        self.index_of(id, self.depth)
    }

    fn parent_index(self, index: u32) -> u32 {
        index >> self.fanout_bits
    }

    /// `[first, end)` of the children of `(level, index)` on `level + 1`.
    fn children(self, index: u32) -> (u32, u32) {
        (index << self.fanout_bits, (index + 1) << self.fanout_bits)
    }

    /// `[first, end)` of the profile ids in `bucket` (`None`: to the end).
    fn keyring_range(self, bucket: u32) -> (ProfileId, Option<ProfileId>) {
        let shift = 32 - u32::from(self.bucket_bits());
        let id_at = |b: u32| {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&(b << shift).to_be_bytes());
            ProfileId::from_bytes(bytes)
        };
        let last = (1u32 << self.bucket_bits()) - 1;
        (id_at(bucket), (bucket < last).then(|| id_at(bucket + 1)))
    }
}

#[derive(Clone)]
struct NodeKey {
    version: u32,
    key: SecretKey,
}

/// An unwrapped profile keyring.
pub(crate) struct Keyring {
    pub(crate) generation: u32,
    seed: SecretKey,
}

impl Keyring {
    /// The raw seed (test hook for remanence scans only).
    #[cfg(feature = "testkit")]
    pub(crate) fn seed_bytes(&self) -> &[u8] {
        self.seed.as_ref()
    }

    pub(crate) fn field_keys(&self) -> Result<FieldKeys> {
        FieldKeys::new(&self.seed, self.generation)
    }
}

type NodeId = (u8, u32);

/// Unwrapped node keys, bounded: a full shard evicts an arbitrary entry
/// (hash order, in effect random). Upper levels are few and hot, so they
/// stay; a bucket key that was evicted costs one point read to reload.
struct NodeCache {
    shards: Vec<Mutex<HashMap<NodeId, NodeKey>>>,
    per_shard: usize,
}

const CACHE_SHARDS: usize = 16;

impl NodeCache {
    fn new(capacity: usize) -> Self {
        NodeCache {
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            per_shard: capacity.div_ceil(CACHE_SHARDS).max(1),
        }
    }

    fn shard(&self, id: NodeId) -> &Mutex<HashMap<NodeId, NodeKey>> {
        let h = (id.1 as usize)
            .wrapping_mul(31)
            .wrapping_add(usize::from(id.0));
        &self.shards[h % CACHE_SHARDS]
    }

    fn get(&self, id: NodeId) -> Option<NodeKey> {
        self.shard(id).lock().get(&id).cloned()
    }

    fn insert(&self, id: NodeId, key: NodeKey) {
        let mut s = self.shard(id).lock();
        if s.len() >= self.per_shard && !s.contains_key(&id) {
            if let Some(victim) = s.keys().next().copied() {
                s.remove(&victim);
            }
        }
        s.insert(id, key);
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// A step of the rotation at which a test can stop it, as a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RotationStep {
    /// The new root is stored; the tree is not re-wrapped yet.
    AfterRootStored = 1,
    /// The re-wrapped tree is committed; the old root still exists.
    AfterTreeCommitted = 2,
    /// Old roots destroyed; compaction and certificates not done.
    AfterRootDestroyed = 3,
}

/// What one rotation did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rotation {
    pub(crate) old_epoch: u32,
    pub(crate) new_epoch: u32,
    /// Nodes that got a fresh key.
    pub(crate) keys_replaced: u64,
    /// Nodes re-wrapped under a new parent key (including the replaced ones).
    pub(crate) nodes_rewrapped: u64,
    /// Keyrings re-wrapped under a new bucket key.
    pub(crate) keyrings_rewrapped: u64,
    /// Bytes of keys and values in the rotation batch.
    pub(crate) bytes_written: u64,
}

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
            "nodes_per_level": self.nodes_per_level,
            "cached_keys": self.cached_keys,
            "cache_capacity": self.cache_capacity,
            "pending_purges": self.pending_purges,
            "backups": self.backups.iter().map(|(p, e)| serde_json::json!({"path": p, "root_epoch": e})).collect::<Vec<_>>(),
        })
    }
}

pub(crate) struct KeyHierarchy {
    shape: Shape,
    store_id: [u8; 16],
    root_wrap: SecretKey,
    roots: Arc<dyn RootKeyStore>,
    root: RwLock<NodeKey>,
    cache: NodeCache,
    cache_capacity: usize,
    create_lock: Mutex<()>,
    /// Shared by every operation that reads or writes keyrings; exclusive
    /// while a rotation swaps the tree.
    epoch_lock: RwLock<()>,
    #[cfg(feature = "testkit")]
    crash_at: AtomicU8,
}

fn node_ad(level: u8, index: u32, parent_version: u32, version: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(32);
    ad.extend_from_slice(b"lethedb/node");
    ad.push(FormatVersion::CURRENT as u8);
    ad.push(level);
    ad.extend_from_slice(&index.to_be_bytes());
    ad.extend_from_slice(&parent_version.to_be_bytes());
    ad.extend_from_slice(&version.to_be_bytes());
    ad
}

fn root_ad(store_id: &[u8; 16], epoch: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(40);
    ad.extend_from_slice(b"lethedb/root");
    ad.push(FormatVersion::CURRENT as u8);
    ad.extend_from_slice(store_id);
    ad.extend_from_slice(&epoch.to_be_bytes());
    ad
}

fn keyring_ad(id: &ProfileId, bucket: u32, parent_version: u32, generation: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(48);
    ad.extend_from_slice(b"lethedb/keyring");
    ad.push(FormatVersion::CURRENT as u8);
    ad.extend_from_slice(id.as_bytes());
    ad.extend_from_slice(&bucket.to_be_bytes());
    ad.extend_from_slice(&parent_version.to_be_bytes());
    ad.extend_from_slice(&generation.to_be_bytes());
    ad
}

/// Associated data of a field entry: binds it to its profile, field name,
/// key generation, format version and whether it is sealed or plain.
pub(crate) fn field_ad(id: &ProfileId, generation: u32, field: &str, sealed: bool) -> Vec<u8> {
    let mut ad = Vec::with_capacity(40 + field.len());
    ad.extend_from_slice(b"lethedb/field");
    ad.push(FormatVersion::CURRENT as u8);
    ad.push(u8::from(sealed));
    ad.extend_from_slice(id.as_bytes());
    ad.extend_from_slice(&generation.to_be_bytes());
    ad.extend_from_slice(&u16::try_from(field.len()).unwrap_or(u16::MAX).to_be_bytes());
    ad.extend_from_slice(field.as_bytes());
    ad
}

fn wrap(
    kek: &SecretKey,
    ad: &[u8],
    secret: &SecretKey,
    parent_version: u32,
    version: u32,
) -> Result<WrappedKey> {
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    aead::seal_into(kek, ad, secret.as_ref(), &mut out)?;
    let sealed: [u8; WRAPPED_LEN] = out
        .try_into()
        .map_err(|_| Error::corrupt("wrapped key", "unexpected sealed length"))?;
    Ok(WrappedKey {
        parent_version,
        version,
        sealed,
    })
}

fn unwrap(kek: &SecretKey, ad: &[u8], w: &WrappedKey) -> Option<SecretKey> {
    let plain = aead::open(kek, ad, &w.sealed)?;
    let arr: [u8; KEY_LEN] = plain.as_slice().try_into().ok()?;
    Some(SecretKey::new(arr))
}

/// Number of the rotation steps a test may stop at.
#[cfg(feature = "testkit")]
fn step_no(s: RotationStep) -> u8 {
    s as u8
}

impl KeyHierarchy {
    /// Stores the first root version of a new store and returns its header.
    /// Refuses a root key store that already holds versions: they belong
    /// to another store (or to a creation that crashed; remove them).
    pub(crate) fn init_root(
        master: &MasterKey,
        store_id: &[u8; 16],
        shape: Shape,
        roots: &dyn RootKeyStore,
    ) -> Result<KeyTreeHeader> {
        shape.check()?;
        require_empty(roots, "a new store")?;
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
        roots: Arc<dyn RootKeyStore>,
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
        let root = load_root(&root_wrap, store_id, &*roots, epoch)?;
        Ok(KeyHierarchy {
            shape,
            store_id: *store_id,
            root_wrap,
            roots,
            root: RwLock::new(NodeKey {
                version: epoch,
                key: root,
            }),
            cache: NodeCache::new(cache_capacity),
            cache_capacity,
            create_lock: Mutex::new(()),
            epoch_lock: RwLock::new(()),
            #[cfg(feature = "testkit")]
            crash_at: AtomicU8::new(0),
        })
    }

    pub(crate) fn roots(&self) -> &dyn RootKeyStore {
        &*self.roots
    }

    pub(crate) fn roots_arc(&self) -> &Arc<dyn RootKeyStore> {
        &self.roots
    }

    pub(crate) fn root_epoch(&self) -> u32 {
        self.root.read().version
    }

    /// Held by every operation that reads or writes keyrings, so that a
    /// rotation never interleaves with one. Recursive: an operation may
    /// call another.
    pub(crate) fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.epoch_lock.read_recursive()
    }

    /// Test hook: the next rotation stops (with an error, as a crash
    /// would) at `step`.
    #[cfg(feature = "testkit")]
    pub(crate) fn stop_rotation_at(&self, step: Option<RotationStep>) {
        self.crash_at
            .store(step.map_or(0, step_no), Ordering::SeqCst);
    }

    /// A crash point of the rotation: fails when the test hook asks for
    /// this step (feature `testkit`); compiled to nothing otherwise.
    #[cfg(feature = "testkit")]
    fn crash_point(&self, step: RotationStep) -> Result<()> {
        if self.crash_at.load(Ordering::SeqCst) == step_no(step) {
            self.crash_at.store(0, Ordering::SeqCst);
            return Err(Error::InvalidInput(format!(
                "rotation stopped at {step:?} (test hook)"
            )));
        }
        Ok(())
    }

    #[cfg(not(feature = "testkit"))]
    #[inline(always)]
    fn crash_point(&self, _step: RotationStep) -> Result<()> {
        Ok(())
    }

    pub(crate) fn bucket_of(&self, id: &ProfileId) -> u32 {
        self.shape.bucket_of(id)
    }

    fn parent_key(&self, store: &Store, level: u8, index: u32) -> Result<NodeKey> {
        if level == 1 {
            return Ok(self.root.read().clone());
        }
        let p = self.shape.parent_index(index);
        self.node_key(store, level - 1, p)?.ok_or_else(|| {
            Error::corrupt(
                "key tree",
                format!("node ({level}, {index}) has no parent ({}, {p})", level - 1),
            )
        })
    }

    /// The unwrapped key of node `(level, index)`, from the cache or the
    /// store (loading its ancestors as needed); `None` if it does not exist.
    fn node_key(&self, store: &Store, level: u8, index: u32) -> Result<Option<NodeKey>> {
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
    fn bucket_key_or_create(&self, store: &Store, bucket: u32) -> Result<NodeKey> {
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
        for level in 1..=depth {
            let index = bucket >> (u32::from(self.shape.fanout_bits) * u32::from(depth - level));
            if let Some(k) = self.node_key(store, level, index)? {
                parent = k;
                continue;
            }
            let k = NodeKey {
                version: 1,
                key: random_key()?,
            };
            let w = wrap(
                &parent.key,
                &node_ad(level, index, parent.version, 1),
                &k.key,
                parent.version,
                1,
            )?;
            batch.put::<TreeNodes>(&([level], index), &w);
            created.push(((level, index), k.clone()));
            parent = k;
        }
        store.write(batch)?;
        for (id, k) in created {
            self.cache.insert(id, k);
        }
        Ok(parent)
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
        Ok((Keyring { generation, seed }, w))
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
        Ok(Keyring {
            generation: w.version,
            seed,
        })
    }

    /// Rotates the tree for the erasures of `buckets` (see the module
    /// documentation) and commits it. Does not destroy the old root: the
    /// caller does, once every copy that must survive is re-rooted.
    ///
    /// `new_epoch` comes from [`Self::next_epoch`]. Keyrings of erased
    /// profiles are gone already (forget deleted them); every keyring left
    /// in a touched bucket is re-wrapped.
    pub(crate) fn rotate(
        &self,
        store: &Store,
        buckets: &BTreeSet<u32>,
        new_epoch: u32,
    ) -> Result<Rotation> {
        let _exclusive = self.epoch_lock.write();
        let shape = self.shape;
        let depth = shape.depth;
        let old_root = self.root.read().clone();
        let mut rot = Rotation {
            old_epoch: old_root.version,
            new_epoch,
            ..Rotation::default()
        };
        let new_root = store_new_root(&self.root_wrap, &self.store_id, &*self.roots, new_epoch)?;
        self.crash_point(RotationStep::AfterRootStored)?;

        // Touched nodes, per level (index 0 = level 1).
        let mut touched: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); usize::from(depth)];
        touched[usize::from(depth) - 1] = buckets.clone();
        for l in (1..usize::from(depth)).rev() {
            touched[l - 1] = touched[l].iter().map(|&i| shape.parent_index(i)).collect();
        }
        let mut old: HashMap<NodeId, NodeKey> = HashMap::new();
        let mut fresh: HashMap<NodeId, NodeKey> = HashMap::new();
        for (l, set) in touched.iter().enumerate() {
            let level = u8::try_from(l + 1).unwrap_or(u8::MAX);
            for &i in set {
                if let Some(k) = self.node_key(store, level, i)? {
                    let version = k.version.checked_add(1).ok_or_else(|| {
                        Error::corrupt("key tree", format!("node ({level}, {i}) version exhausted"))
                    })?;
                    fresh.insert(
                        (level, i),
                        NodeKey {
                            version,
                            key: random_key()?,
                        },
                    );
                    old.insert((level, i), k);
                }
            }
        }
        rot.keys_replaced = fresh.len() as u64;

        let mut batch = Batch::new();
        // Keyrings of the touched buckets, under their bucket's new key.
        for &b in &touched[usize::from(depth) - 1] {
            let (Some(o), Some(n)) = (old.get(&(depth, b)), fresh.get(&(depth, b))) else {
                continue;
            };
            let (from, to) = shape.keyring_range(b);
            for item in store.range::<Keyrings>(&from, to.as_ref())? {
                let (id, w) = item?;
                if w.parent_version != o.version {
                    return Err(Error::corrupt(
                        "keyring",
                        format!(
                            "profile {id} wrapped under bucket version {}, bucket is at {}",
                            w.parent_version, o.version
                        ),
                    ));
                }
                let seed = unwrap(&o.key, &keyring_ad(&id, b, o.version, w.version), &w).ok_or(
                    Error::Decrypt {
                        profile: id,
                        what: "keyring".into(),
                    },
                )?;
                let w2 = wrap(
                    &n.key,
                    &keyring_ad(&id, b, n.version, w.version),
                    &seed,
                    n.version,
                    w.version,
                )?;
                batch.put::<Keyrings>(&id, &w2);
                rot.keyrings_rewrapped += 1;
            }
        }
        // Children of every fresh inner node, under its new key.
        for level in 1..depth {
            for &i in &touched[usize::from(level) - 1] {
                let (Some(o), Some(n)) = (old.get(&(level, i)), fresh.get(&(level, i))) else {
                    continue;
                };
                let (first, end) = shape.children(i);
                let child = level + 1;
                self.rewrap_children(
                    store,
                    &mut batch,
                    &mut rot,
                    child,
                    (first, end),
                    o,
                    n,
                    &fresh,
                )?;
            }
        }
        // Every level-1 node, under the new root.
        let end = 1u32 << shape.fanout_bits;
        self.rewrap_children(
            store,
            &mut batch,
            &mut rot,
            1,
            (0, end),
            &old_root,
            &new_root,
            &fresh,
        )?;
        batch.put::<KeyTreeHeaders>(
            &(),
            &KeyTreeHeader {
                fanout_bits: shape.fanout_bits,
                depth,
                root_epoch: new_epoch,
            },
        );
        rot.bytes_written = batch.bytes() as u64;
        store.write_synced(batch)?;
        *self.root.write() = new_root;
        for (id, k) in fresh {
            self.cache.insert(id, k);
        }
        self.crash_point(RotationStep::AfterTreeCommitted)?;
        Ok(rot)
    }

    /// Re-wraps the existing nodes of `level` with index in `range` (the
    /// children of one parent) from `old_parent` to `new_parent`; a child
    /// with a fresh key is wrapped with that key.
    #[allow(clippy::too_many_arguments)]
    fn rewrap_children(
        &self,
        store: &Store,
        batch: &mut Batch,
        rot: &mut Rotation,
        level: u8,
        range: (u32, u32),
        old_parent: &NodeKey,
        new_parent: &NodeKey,
        fresh: &HashMap<NodeId, NodeKey>,
    ) -> Result<()> {
        // The upper bound keeps the scan inside this parent's children.
        for item in store.range::<TreeNodes>(&([level], range.0), Some(&([level], range.1)))? {
            let ((_, i), w) = item?;
            let (version, key) = match fresh.get(&(level, i)) {
                Some(f) => (f.version, f.key.clone()),
                None => (w.version, unwrap_node(old_parent, level, i, &w)?),
            };
            let w2 = wrap(
                &new_parent.key,
                &node_ad(level, i, new_parent.version, version),
                &key,
                new_parent.version,
                version,
            )?;
            batch.put::<TreeNodes>(&([level], i), &w2);
            rot.nodes_rewrapped += 1;
        }
        Ok(())
    }

    /// An epoch above every one the root key store holds or this tree uses.
    pub(crate) fn next_epoch(&self) -> Result<u32> {
        self.roots
            .epochs()?
            .into_iter()
            .chain([self.root_epoch()])
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| Error::corrupt("key tree header", "root epoch exhausted"))
    }

    /// Destroys root versions (never the current one).
    pub(crate) fn destroy_roots(&self, epochs: &[u32]) -> Result<()> {
        let current = self.root_epoch();
        let doomed: Vec<u32> = epochs.iter().copied().filter(|e| *e != current).collect();
        self.roots.destroy(&doomed)?;
        self.crash_point(RotationStep::AfterRootDestroyed)
    }

    /// Gives `copy` (a checkpoint of this store, same tree) a root of its
    /// own: a new epoch, every level-1 node re-wrapped under it, committed
    /// with a synced WAL. Returns the new epoch.
    pub(crate) fn root_copy(&self, copy: &Store) -> Result<u32> {
        let _shared = self.shared();
        let old_root = self.root.read().clone();
        let epoch = self.next_epoch()?;
        let root = store_new_root(&self.root_wrap, &self.store_id, &*self.roots, epoch)?;
        let mut batch = Batch::new();
        let mut rot = Rotation::default();
        let end = 1u32 << self.shape.fanout_bits;
        self.rewrap_children(
            copy,
            &mut batch,
            &mut rot,
            1,
            (0, end),
            &old_root,
            &root,
            &HashMap::new(),
        )?;
        batch.put::<KeyTreeHeaders>(
            &(),
            &KeyTreeHeader {
                fanout_bits: self.shape.fanout_bits,
                depth: self.shape.depth,
                root_epoch: epoch,
            },
        );
        copy.write_synced(batch)?;
        Ok(epoch)
    }

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
            root_epochs_held: self.roots.epochs()?,
            root_key_store: self.roots.describe(),
            nodes_per_level,
            cached_keys: self.cache.len(),
            cache_capacity: self.cache_capacity,
            pending_purges: 0,
            backups: Vec::new(),
        })
    }
}

/// A fresh random root of `epoch`, stored (durably) in `roots`.
fn store_new_root(
    wrap_key: &SecretKey,
    store_id: &[u8; 16],
    roots: &dyn RootKeyStore,
    epoch: u32,
) -> Result<NodeKey> {
    let key = random_key()?;
    roots.put(epoch, &seal_root(wrap_key, store_id, epoch, &key)?)?;
    Ok(NodeKey {
        version: epoch,
        key,
    })
}

/// Fails unless `roots` holds no version (`whom`: who needs it empty).
pub(crate) fn require_empty(roots: &dyn RootKeyStore, whom: &str) -> Result<()> {
    match roots.epochs()?.first() {
        Some(&epoch) => Err(Error::RootKey {
            epoch,
            reason: format!(
                "{} already holds root keys; {whom} needs an empty root key store",
                roots.describe()
            ),
        }),
        None => Ok(()),
    }
}

fn seal_root(
    wrap_key: &SecretKey,
    store_id: &[u8; 16],
    epoch: u32,
    root: &SecretKey,
) -> Result<Vec<u8>> {
    let mut out = vec![FormatVersion::CURRENT as u8];
    aead::seal_into(wrap_key, &root_ad(store_id, epoch), root.as_ref(), &mut out)?;
    Ok(out)
}

fn load_root(
    wrap_key: &SecretKey,
    store_id: &[u8; 16],
    roots: &dyn RootKeyStore,
    epoch: u32,
) -> Result<SecretKey> {
    let Some(sealed) = roots.get(epoch)? else {
        return Err(Error::RootKey {
            epoch,
            reason: format!(
                "not held by the root key store ({}; holds {:?}): it was destroyed by a purge, or this is not the store's root key store",
                roots.describe(),
                roots.epochs()?
            ),
        });
    };
    match sealed.split_first() {
        Some((&v, _)) if v != FormatVersion::CURRENT as u8 => Err(Error::UnsupportedFormat {
            what: "sealed root key",
            version: v,
            supported: FormatVersion::CURRENT as u8,
        }),
        Some((_, body)) => {
            let plain = aead::open(wrap_key, &root_ad(store_id, epoch), body).ok_or_else(|| {
                Error::RootKey {
                    epoch,
                    reason: "does not authenticate under this store's master key (another store's root key store?)".into(),
                }
            })?;
            let arr: [u8; KEY_LEN] = plain
                .as_slice()
                .try_into()
                .map_err(|_| Error::corrupt("sealed root key", "wrong length"))?;
            Ok(SecretKey::new(arr))
        }
        None => Err(Error::corrupt("sealed root key", "empty")),
    }
}

fn unwrap_node(parent: &NodeKey, level: u8, index: u32, w: &WrappedKey) -> Result<SecretKey> {
    if w.parent_version != parent.version {
        return Err(Error::corrupt(
            "key tree",
            format!(
                "node ({level}, {index}) is wrapped under parent version {}, the parent is at {}",
                w.parent_version, parent.version
            ),
        ));
    }
    unwrap(
        &parent.key,
        &node_ad(level, index, w.parent_version, w.version),
        w,
    )
    .ok_or_else(|| {
        Error::corrupt(
            "key tree",
            format!("node ({level}, {index}) does not authenticate under its parent"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_ad_separates_profiles_fields_and_generations() {
        let a = ProfileId::from_bytes([1; 16]);
        let b = ProfileId::from_bytes([2; 16]);
        assert_ne!(
            field_ad(&a, 1, "email", true),
            field_ad(&b, 1, "email", true)
        );
        assert_ne!(
            field_ad(&a, 1, "email", true),
            field_ad(&a, 2, "email", true)
        );
        assert_ne!(
            field_ad(&a, 1, "email", true),
            field_ad(&a, 1, "phone", true)
        );
        assert_ne!(
            field_ad(&a, 1, "email", true),
            field_ad(&a, 1, "email", false)
        );
        // Length prefix: ("ab","c") style ambiguities cannot collide.
        assert_ne!(field_ad(&a, 1, "e", true), field_ad(&a, 1, "e\0", true));
    }

    #[test]
    fn same_key_other_profile_or_field_fails_to_open() {
        // Even under one key, the associated data alone rejects a moved ciphertext.
        let a = ProfileId::from_bytes([1; 16]);
        let b = ProfileId::from_bytes([2; 16]);
        let key = SecretKey::new([5; 32]);
        let mut sealed = Vec::new();
        aead::seal_into(&key, &field_ad(&a, 1, "email", true), b"v", &mut sealed).unwrap();
        assert!(aead::open(&key, &field_ad(&a, 1, "email", true), &sealed).is_some());
        assert!(aead::open(&key, &field_ad(&b, 1, "email", true), &sealed).is_none());
        assert!(aead::open(&key, &field_ad(&a, 1, "phone", true), &sealed).is_none());
        assert!(aead::open(&key, &field_ad(&a, 2, "email", true), &sealed).is_none());
        assert!(aead::open(&key, &field_ad(&a, 1, "email", false), &sealed).is_none());
    }

    #[test]
    fn wrap_round_trip_and_ad_binding() {
        let kek = SecretKey::new([7; 32]);
        let secret = SecretKey::new([8; 32]);
        let w = wrap(&kek, b"ad", &secret, 1, 1).unwrap();
        assert_eq!(*unwrap(&kek, b"ad", &w).unwrap(), *secret);
        assert!(unwrap(&kek, b"other", &w).is_none());
        assert!(unwrap(&SecretKey::new([9; 32]), b"ad", &w).is_none());
    }
}
