//! Storage layer: one RocksDB instance, one column family per data kind,
//! typed keyspaces, and the single write path.

mod batch;
pub(crate) mod columns;
mod config;
pub(crate) mod keys;
mod maintenance;
pub(crate) mod records;
mod store;

pub(crate) use self::maintenance::SstFile;
pub use self::maintenance::{ColumnStats, MemoryUsage};
#[cfg(feature = "testkit")]
pub(crate) use self::{config::rocksdb_options, maintenance::memory_usage};

pub(crate) use self::batch::Batch;
pub(crate) use self::config::{is_store_dir, StorageConfig};
pub(crate) use self::store::Store;

#[cfg(test)]
#[path = "batch_tests.rs"]
mod batch_bounds;
