//! Rotation of the key tree at purge: fresh keys on the path of every
//! erased profile, the tree re-wrapped under a new root, committed with a
//! synced WAL; plus the crash points tests stop it at (feature `testkit`).

use std::collections::{BTreeSet, HashMap};
#[cfg(feature = "testkit")]
use std::sync::atomic::Ordering;

use crate::crypto::random_key;
use crate::error::{Error, Result};
use crate::storage::columns::{KeyTreeHeaders, Keyrings, Profiles, TreeNodes};
use crate::storage::records::{KeyTreeHeader, KeyringSlot, WrappedKey};
use crate::storage::{Batch, Store};

use super::cache::*;
use super::custody::RootKeys;
use super::tree::KeyHierarchy;
use super::wrap::*;

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

/// Number of the rotation steps a test may stop at.
#[cfg(feature = "testkit")]
fn step_no(s: RotationStep) -> u8 {
    s as u8
}

impl KeyHierarchy {
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

    /// Rotates the tree for the erasures of `buckets` (see the module
    /// documentation) and commits it. Does not destroy the old root: the
    /// caller does, once every copy that must survive is re-rooted.
    ///
    /// `new_epoch` comes from [`Self::next_epoch`]. Keyrings of erased
    /// profiles are gone already (forget deleted them); every keyring left
    /// in a touched bucket is re-wrapped.
    ///
    /// `v2_only`: the store holds record format v2 only, so a keyring entry
    /// of format v1 (`keys 'k'`) is stale — put there from outside — and is
    /// deleted, not carried over under the new bucket key.
    pub(crate) fn rotate(
        &self,
        store: &Store,
        buckets: &BTreeSet<u32>,
        new_epoch: u32,
        v2_only: bool,
    ) -> Result<Rotation> {
        let _exclusive = self.epoch_lock.write();
        let shape = self.shape;
        let depth = shape.depth;
        let old_root = self.root.read().clone();
        let mut rot = Rotation {
            old_epoch: old_root.version(),
            new_epoch,
            ..Rotation::default()
        };
        let new_root = store_new_root(&self.root_wrap, &self.store_id, &self.roots, new_epoch)?;
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
                if v2_only {
                    batch.delete::<Keyrings>(&id);
                    continue;
                }
                batch.put::<Keyrings>(&id, &rewrap_keyring(&id, b, o, n, &w)?);
                rot.keyrings_rewrapped += 1;
            }
            // Format v2 records carry their keyring: the slot is re-wrapped
            // in place (the record's tag does not cover it).
            for item in store.range::<Profiles>(&from, to.as_ref())? {
                let (id, mut stored) = item?;
                let generation = stored.record.generation;
                let Some(seal) = stored.seal.as_mut() else {
                    continue;
                };
                let w = WrappedKey {
                    parent_version: seal.keyring.parent_version,
                    version: generation,
                    sealed: seal.keyring.sealed,
                };
                let w2 = rewrap_keyring(&id, b, o, n, &w)?;
                seal.keyring = KeyringSlot {
                    parent_version: w2.parent_version,
                    sealed: w2.sealed,
                };
                batch.put::<Profiles>(&id, &stored);
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
                    &Kek::Key(o.clone()),
                    &Kek::Key(n.clone()),
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
        old_parent: &Kek,
        new_parent: &Kek,
        fresh: &HashMap<NodeId, NodeKey>,
    ) -> Result<()> {
        // The upper bound keeps the scan inside this parent's children.
        for item in store.range::<TreeNodes>(&([level], range.0), Some(&([level], range.1)))? {
            let ((_, i), w) = item?;
            let (version, key) = match fresh.get(&(level, i)) {
                Some(f) => (f.version, f.key.clone()),
                None => (w.version, unwrap_node(old_parent, level, i, &w)?),
            };
            let w2 = new_parent.wrap(
                &node_ad(level, i, new_parent.version(), version),
                &key,
                version,
            )?;
            batch.put::<TreeNodes>(&([level], i), &w2);
            rot.nodes_rewrapped += 1;
        }
        Ok(())
    }

    /// Destroys root versions (never the current one).
    pub(crate) fn destroy_roots(&self, epochs: &[u32]) -> Result<()> {
        let current = self.root_epoch();
        let doomed: Vec<u32> = epochs.iter().copied().filter(|e| *e != current).collect();
        self.roots.destroy(&self.store_id, &doomed)?;
        self.crash_point(RotationStep::AfterRootDestroyed)
    }

    /// Gives `copy` (a checkpoint of this store, same tree) a root of its
    /// own: a new epoch, every level-1 node re-wrapped under it, committed
    /// with a synced WAL. Returns the new epoch.
    pub(crate) fn root_copy(&self, copy: &Store) -> Result<u32> {
        let _shared = self.shared();
        let epoch = self.next_epoch()?;
        self.root_copy_into(copy, &self.roots, epoch)
    }

    /// Gives `copy` (whose tree is this one's, on this tree's current
    /// root) root `epoch`, created in `into`: every level-1 node is
    /// re-wrapped under it and the header names it, committed with a
    /// synced WAL. Restore uses it to move a copy from the backup's root
    /// key store (file or device) to the restored store's own.
    pub(crate) fn root_copy_into(&self, copy: &Store, into: &RootKeys, epoch: u32) -> Result<u32> {
        let mut batch = Batch::new();
        self.reroot(copy, into, epoch, &self.root_wrap, &mut batch)?;
        copy.write_synced(batch)?;
        Ok(epoch)
    }

    /// Stores root `epoch` durably in `into` (sealed under `wrap_key` when
    /// `into` holds sealed roots) and puts into `batch` every level-1 node
    /// of `copy` (whose tree is on this tree's current root) re-wrapped
    /// under it, and the header naming it. The caller commits the batch.
    pub(crate) fn reroot(
        &self,
        copy: &Store,
        into: &RootKeys,
        epoch: u32,
        wrap_key: &crate::crypto::SecretKey,
        batch: &mut Batch,
    ) -> Result<()> {
        let old_root = self.root.read().clone();
        let root = store_new_root(wrap_key, &self.store_id, into, epoch)?;
        let mut rot = Rotation::default();
        let end = 1u32 << self.shape.fanout_bits;
        self.rewrap_children(
            copy,
            batch,
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
        Ok(())
    }
}

/// Keyring `w` of profile `id` in bucket `b`, moved from the bucket's old
/// key `o` to its new key `n`.
fn rewrap_keyring(
    id: &crate::types::ProfileId,
    b: u32,
    o: &NodeKey,
    n: &NodeKey,
    w: &WrappedKey,
) -> Result<WrappedKey> {
    if w.parent_version != o.version {
        return Err(Error::corrupt(
            "keyring",
            format!(
                "profile {id} wrapped under bucket version {}, bucket is at {}",
                w.parent_version, o.version
            ),
        ));
    }
    let seed =
        unwrap(&o.key, &keyring_ad(id, b, o.version, w.version), w).ok_or(Error::Decrypt {
            profile: *id,
            what: "keyring".into(),
        })?;
    wrap(
        &n.key,
        &keyring_ad(id, b, n.version, w.version),
        &seed,
        n.version,
        w.version,
    )
}
