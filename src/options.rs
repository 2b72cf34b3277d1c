//! Options for opening a store.

use crate::domain::identity::IdentityConfig;
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
    pub(crate) bucket_bits: u8,
    pub(crate) schema: Option<Schema>,
    pub(crate) identity: Option<IdentityConfig>,
    pub(crate) compression: bool,
    pub(crate) suppress_forgotten: bool,
    pub(crate) purge_after_erasures: usize,
    pub(crate) purge_deadline: std::time::Duration,
    pub(crate) limits: Limits,
    /// Set by `Db::restore` only: opens a directory marked as a backup.
    pub(crate) restoring: bool,
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
            bucket_bits: 16,
            schema: None,
            identity: None,
            compression: true,
            suppress_forgotten: true,
            purge_after_erasures: 1000,
            purge_deadline: std::time::Duration::from_secs(15 * 60),
            limits: Limits::default(),
            restoring: false,
        }
    }
}

impl Options {
    /// Defaults: open an existing store, 64 MiB block cache, 32 MiB write
    /// buffers, WAL not fsynced per write, 2^16 key buckets.
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

    /// Number of key buckets as a power of two (1..=24), fixed when the
    /// store is created; ignored when opening an existing store.
    pub fn bucket_bits(mut self, bits: u8) -> Self {
        self.bucket_bits = bits;
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
