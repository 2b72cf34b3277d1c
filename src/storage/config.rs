//! Tuning of the RocksDB instance: the storage configuration and the
//! options every store (and the scale bench's plaintext baseline) opens with.

use rocksdb::{BlockBasedIndexType, BlockBasedOptions, Cache, DBCompressionType};

use crate::error::{Error, Result};

/// Tuning for the RocksDB instance.
#[derive(Clone, Debug)]
pub(crate) struct StorageConfig {
    pub(crate) block_cache_bytes: usize,
    pub(crate) write_buffer_bytes: usize,
    pub(crate) sync_writes: bool,
    pub(crate) compression: bool,
}

impl StorageConfig {
    /// Caches of the given sizes, compression on, writes not synced.
    pub(crate) fn new(block_cache_bytes: usize, write_buffer_bytes: usize) -> Self {
        StorageConfig {
            block_cache_bytes,
            write_buffer_bytes,
            sync_writes: false,
            compression: true,
        }
    }

    /// Every write synced to disk before it returns.
    pub(crate) fn synced(mut self) -> Self {
        self.sync_writes = true;
        self
    }
}

/// Whether `path` holds a RocksDB instance (its `CURRENT` file).
pub(crate) fn is_store_dir(path: &std::path::Path) -> bool {
    path.join("CURRENT").exists()
}

/// The RocksDB options lethedb runs with: database options, the options of
/// every column family (one block cache shared by all of them, bloom
/// filters, index and filter blocks charged to the cache), and the cache.
/// The scale benchmark's plaintext baseline opens with these same options.
pub(crate) fn rocksdb_options(
    cfg: &StorageConfig,
    create: bool,
) -> Result<(rocksdb::Options, rocksdb::Options, Cache)> {
    let cache = Cache::new_lru_cache(cfg.block_cache_bytes);
    // Erasure (docs/design.md, "Purge"): the MANIFEST is rewritten from
    // the current state at every version change (no space amplification
    // allowed), so the key boundaries of compacted-away SST files never
    // linger in an old MANIFEST.
    let mut db_opts = rocksdb::Options::default()
        .get_options_from_string("max_manifest_file_size=1;max_manifest_space_amp_pct=0")
        .map_err(Error::storage)?;
    db_opts.create_if_missing(create);
    db_opts.create_missing_column_families(create);
    db_opts.set_max_background_jobs(2);
    db_opts.set_keep_log_file_num(4);
    // RocksDB's info log prints key boundaries at INFO level (manual
    // compaction ranges: `'p' ‖ profile id`, `'i' ‖ blind key`, in hex), so
    // only warnings and errors are logged (docs/design.md, "Purge").
    db_opts.set_log_level(rocksdb::LogLevel::Warn);
    // WAL files are never recycled: an old WAL's bytes are deleted with it.
    db_opts.set_recycle_log_file_num(0);
    // Index and filter blocks live in the block cache, so the cache bounds
    // memory at any N. They are partitioned (4 KiB partitions under a small
    // pinned top level): with whole-file filters a point read that missed
    // the cache had to load and parse a multi-megabyte filter block, which
    // the scale run showed as write and lookup throughput falling with N.
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4096);
    table.set_cache_index_and_filter_blocks(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table.set_pin_top_level_index_and_filter(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut o = rocksdb::Options::default();
    o.set_block_based_table_factory(&table);
    o.set_write_buffer_size(cfg.write_buffer_bytes);
    if cfg.compression {
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_bottommost_compression_type(DBCompressionType::Zstd);
    } else {
        o.set_compression_type(DBCompressionType::None);
        o.set_bottommost_compression_type(DBCompressionType::None);
    }
    o.set_level_compaction_dynamic_level_bytes(true);
    Ok((db_opts, o, cache))
}
