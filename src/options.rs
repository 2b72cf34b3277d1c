//! Options for opening a store.

use std::sync::Arc;

use crate::domain::identity::config::IdentityConfig;
use crate::keytree::{RootKeyDevice, RootKeyStore, RootKeys};
use crate::types::Schema;

/// How to open a store. Built with chained setters.
///
/// ```
/// use lethedb::Options;
/// let opts = Options::new().create_if_missing(true).block_cache_bytes(64 << 20);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) create_if_missing: bool,
    pub(crate) block_cache_bytes: usize,
    pub(crate) write_buffer_bytes: usize,
    pub(crate) sync_writes: bool,
    pub(crate) fanout_bits: u8,
    pub(crate) depth: u8,
    pub(crate) root_keys: Option<RootKeys>,
    pub(crate) refuse_co_located_roots: bool,
    pub(crate) key_cache_entries: usize,
    pub(crate) schema: Option<Schema>,
    pub(crate) identity: Option<IdentityConfig>,
    pub(crate) compression: bool,
    pub(crate) suppress_forgotten: bool,
    pub(crate) purge_after_erasures: usize,
    pub(crate) purge_deadline: std::time::Duration,
    /// How long purge waits for RocksDB to delete obsolete files before it
    /// fails without issuing certificates.
    pub(crate) obsolete_file_wait: std::time::Duration,
    pub(crate) limits: Limits,
    /// Set by `Db::restore` only: opens a directory marked as a backup.
    pub(crate) restoring: bool,
    /// Set for a backup copy opened by a purge: its root key store is the
    /// live store's, so it must destroy nothing but its own old root.
    pub(crate) shared_roots: bool,
    /// Opened by a master-key rotation (which may find its marker).
    pub(crate) rotating_master: bool,
    #[cfg(feature = "testkit")]
    pub(crate) stop_master_rotation: u8,
    pub(crate) backup_root_keys: Option<RootKeys>,
}

/// Size limits on writes, checked before anything is written: a write
/// that exceeds one fails with [`crate::Error::InvalidValue`] (one value) or
/// [`crate::Error::InvalidInput`] (a whole profile) and changes nothing.
/// They are settings of the process, not of the store: lowering one does
/// not touch data already stored.
///
/// ```
/// use lethedb::{Limits, Options};
/// let opts = Options::new().max_value_bytes(4096).max_profile_bytes(64 << 10);
/// assert_eq!(Limits::default().max_value_bytes, 64 << 10);
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded value of one field (default 64 KiB; at most
    /// [`crate::MAX_VALUE_BYTES`], the format's own bound).
    pub max_value_bytes: usize,
    /// Largest total of a profile's sealed field payloads after a write
    /// (default 1 MiB).
    pub max_profile_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: 64 << 10,
            max_profile_bytes: 1 << 20,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: false,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
            sync_writes: false,
            fanout_bits: 10,
            depth: 2,
            root_keys: None,
            refuse_co_located_roots: false,
            key_cache_entries: (1 << 20) + (1 << 10),
            schema: None,
            identity: None,
            compression: true,
            suppress_forgotten: true,
            purge_after_erasures: 1000,
            purge_deadline: std::time::Duration::from_secs(15 * 60),
            obsolete_file_wait: std::time::Duration::from_secs(30),
            limits: Limits::default(),
            restoring: false,
            shared_roots: false,
            rotating_master: false,
            #[cfg(feature = "testkit")]
            stop_master_rotation: 0,
            backup_root_keys: None,
        }
    }
}

impl Options {
    /// Defaults: open an existing store, 64 MiB block cache, 32 MiB write
    /// buffers, WAL not fsynced per write, a key tree of fan-out 1024 and
    /// depth 2, root keys in `<DIR>.rootkeys`.
    pub fn new() -> Self {
        Options::default()
    }

    /// Create the store (and its directory) when it does not exist.
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }

    /// Size of the block cache shared by all column families. With index and
    /// filter blocks charged to it, it bounds read-side memory.
    pub fn block_cache_bytes(mut self, bytes: usize) -> Self {
        self.block_cache_bytes = bytes;
        self
    }

    /// Memtable size per column family.
    pub fn write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.write_buffer_bytes = bytes;
        self
    }

    /// fsync the WAL on every write. Off by default: acknowledged writes
    /// survive a process crash but may be lost on power failure.
    pub fn sync_writes(mut self, yes: bool) -> Self {
        self.sync_writes = yes;
        self
    }

    /// Shape of the key tree, fixed when the store is created (ignored
    /// when opening an existing store): every inner node has `2^fanout_bits`
    /// children and there are `depth` levels of keys between the root and
    /// the keyrings, the last being `2^(fanout_bits × depth)` bucket keys.
    /// `fanout_bits` in 1..=16, `depth` in 1..=4, their product at most 24.
    ///
    /// The default, 10 and 2, is sized for 10^9 profiles: 2^20 buckets of
    /// about 1000 keyrings each, so purging one erasure re-wraps about
    /// 1000 keyrings and 2 × 1024 nodes, and 2^20 + 2^10 unwrapped keys
    /// (about 50 MB) keep every read free of extra key reads.
    ///
    /// ```
    /// use lethedb::Options;
    /// let opts = Options::new().create_if_missing(true).key_tree(8, 3);
    /// # let _ = opts;
    /// ```
    pub fn key_tree(mut self, fanout_bits: u8, depth: u8) -> Self {
        self.fanout_bits = fanout_bits;
        self.depth = depth;
        self
    }

    /// Where the roots of the key tree live (default: a
    /// [`crate::FileRootKeyStore`] at `<DIR>.rootkeys`, beside the store
    /// directory). Implement [`RootKeyStore`] to keep them in a KMS or HSM.
    pub fn root_keys(mut self, store: Arc<dyn RootKeyStore>) -> Self {
        self.root_keys = Some(RootKeys::Sealed(store));
        self
    }

    /// Where the roots live, as [`RootKeys`] (either kind).
    pub fn root_keys_in(mut self, roots: RootKeys) -> Self {
        self.root_keys = Some(roots);
        self
    }

    /// For [`crate::Db::restore`]: where the backup's root lives, either kind.
    pub fn backup_root_keys_in(mut self, roots: RootKeys) -> Self {
        self.backup_root_keys = Some(roots);
        self
    }

    /// Keeps the roots inside a device instead (a PKCS#11 token:
    /// [`crate::Pkcs11RootKeyStore`]); the roots never enter process
    /// memory, and a copy of the whole volume holds none of them.
    pub fn root_key_device(mut self, device: Arc<dyn RootKeyDevice>) -> Self {
        self.root_keys = Some(RootKeys::Device(device));
        self
    }

    /// Refuses to create or open a store whose root key file sits on the
    /// store directory's file system (default: allowed, and flagged in the
    /// open report, `keys status` and on the CLI's stderr). On one file
    /// system, a snapshot or file-level backup of the volume carries the
    /// roots a purge destroyed, so erasure holds only against a copy of the
    /// store directory alone. See docs/design.md, "Where the roots live".
    pub fn refuse_co_located_roots(mut self, refuse: bool) -> Self {
        self.refuse_co_located_roots = refuse;
        self
    }

    /// For [`crate::Db::restore`]: the root key store holding the backup's
    /// root (default: the one `BACKUP.json` names, the source store's
    /// `<DIR>.rootkeys`). The restored store's own roots go to
    /// [`Options::root_keys`] (default `<TO>.rootkeys`), which must be empty.
    pub fn backup_root_keys(mut self, store: Arc<dyn RootKeyStore>) -> Self {
        self.backup_root_keys = Some(RootKeys::Sealed(store));
        self
    }

    /// For [`crate::Db::restore`]: the device holding the backup's root.
    pub fn backup_root_key_device(mut self, device: Arc<dyn RootKeyDevice>) -> Self {
        self.backup_root_keys = Some(RootKeys::Device(device));
        self
    }

    /// Most unwrapped tree keys kept in memory (default 2^20 + 2^10, every
    /// key of the default tree; about 50 bytes each). Beyond it a read
    /// whose bucket key was evicted costs one point read of the key.
    pub fn key_cache_entries(mut self, entries: usize) -> Self {
        self.key_cache_entries = entries;
        self
    }

    /// Identity settings (normalisation, merge rules) to persist at open,
    /// replacing the stored ones. A new store defaults to region `US`.
    pub fn identity(mut self, config: IdentityConfig) -> Self {
        self.identity = Some(config);
        self
    }

    /// Compress SST blocks (LZ4, Zstandard at the last level; on by
    /// default). Turning it off makes every stored byte appear verbatim in
    /// the files, which lets a forensic byte scan (`lethedb::forensics`)
    /// see ciphertexts and wrapped keys — used by the remanence tests.
    pub fn compression(mut self, yes: bool) -> Self {
        self.compression = yes;
        self
    }

    /// Reject later resolves that carry an identifier of a forgotten person
    /// (on by default). Lift one with `Db::unsuppress`.
    pub fn suppress_forgotten(mut self, yes: bool) -> Self {
        self.suppress_forgotten = yes;
        self
    }

    /// Purge automatically once this many erasures are pending (default
    /// 1000; 0 never purges by count). Checked after each `forget`.
    pub fn purge_after_erasures(mut self, count: usize) -> Self {
        self.purge_after_erasures = count;
        self
    }

    /// Test hook: a master-key rotation stops (with an error, as a crash
    /// would) after step `step`: 1 the store moved to the new key, 2 the
    /// backups moved, 3 the old roots destroyed.
    #[cfg(feature = "testkit")]
    #[doc(hidden)]
    pub fn stop_master_rotation_after(mut self, step: u8) -> Self {
        self.stop_master_rotation = step;
        self
    }

    /// Test hook: how long purge waits for obsolete files (default 30 s).
    #[cfg(feature = "testkit")]
    #[doc(hidden)]
    pub fn obsolete_file_wait(mut self, wait: std::time::Duration) -> Self {
        self.obsolete_file_wait = wait;
        self
    }

    /// Purge automatically once the oldest pending erasure is this old
    /// (default 15 minutes). Checked at open, after each `forget`, and by
    /// the thread of `Db::start_purge_scheduler`.
    pub fn purge_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.purge_deadline = deadline;
        self
    }

    /// Largest encoded value of one field (default 64 KiB, at most
    /// [`crate::MAX_VALUE_BYTES`]; a larger setting fails at open).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_value_bytes = bytes;
        self
    }

    /// Largest total of a profile's sealed field payloads after a write
    /// (default 1 MiB).
    pub fn max_profile_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_profile_bytes = bytes;
        self
    }

    /// A schema to persist at open, replacing the stored one.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }
}
