//! Storage layer: one RocksDB instance, one column family per data kind,
//! typed keyspaces, and the single write path.

pub(crate) mod columns;
pub(crate) mod keys;
pub(crate) mod records;

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily,
    ColumnFamilyDescriptor, CompactOptions, DBCompressionType, Direction, IteratorMode,
    ReadOptions, WriteBatch, WriteOptions, DB,
};

use self::columns::{Keyspace, ALL_CFS};
use self::records::ValueCodec;
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

/// One logical operation's writes. Committed whole by [`Store::write`] or not at all.
#[derive(Default)]
pub(crate) struct Batch {
    ops: Vec<Op>,
    /// The first value that could not be encoded: the batch is refused
    /// whole by `Store::write` (nothing of it is written).
    error: Option<Error>,
}

/// One write of a batch: a put, or a delete when `value` is `None`.
struct Op {
    cf: &'static str,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// A key and its undecoded value.
pub(crate) type RawEntry<K> = (<K as Keyspace>::Key, Box<[u8]>);

/// Results of [`Store::get2`].
pub(crate) type Pair<A, B> = (
    Option<<A as Keyspace>::Value>,
    Option<<B as Keyspace>::Value>,
);

impl Batch {
    pub(crate) fn new() -> Self {
        Batch::default()
    }

    /// Stages a put. A value that cannot be encoded (over its record's
    /// bound) is not staged; the batch then carries the error and
    /// `Store::write` refuses all of it.
    pub(crate) fn put<K: Keyspace>(&mut self, key: &K::Key, value: &K::Value) {
        match value.try_encode() {
            Ok(v) => self.ops.push(Op {
                cf: K::CF,
                key: K::key(key),
                value: Some(v),
            }),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    pub(crate) fn delete<K: Keyspace>(&mut self, key: &K::Key) {
        self.ops.push(Op {
            cf: K::CF,
            key: K::key(key),
            value: None,
        });
    }

    /// Bytes of keys and values in the batch.
    pub(crate) fn bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|o| o.key.len() + o.value.as_ref().map_or(0, Vec::len))
            .sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.error.is_none()
    }
}

/// One live SST file, as RocksDB reports it.
#[derive(Clone, Debug)]
pub(crate) struct SstFile {
    pub(crate) cf: String,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) level: i32,
    pub(crate) start: Vec<u8>,
    pub(crate) end: Vec<u8>,
}

/// Per-column-family figures for `stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnStats {
    /// Column family name.
    pub name: String,
    /// RocksDB's estimate of the number of keys.
    pub estimated_keys: u64,
    /// Bytes in live SST files.
    pub sst_bytes: u64,
    /// Bytes in memtables.
    pub memtable_bytes: u64,
}

/// Memory RocksDB holds for one store, in bytes (RocksDB's own
/// accounting; the process's RSS adds the allocator's overhead).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Data, index and filter blocks in the shared block cache: at most the
    /// configured `block_cache_bytes` unless pinned blocks exceed it.
    pub block_cache: u64,
    /// The part of `block_cache` pinned (in use by readers, or pinned
    /// index and filter blocks).
    pub block_cache_pinned: u64,
    /// Open table readers' memory outside the block cache.
    pub table_readers: u64,
    /// Memtables, active and immutable.
    pub memtables: u64,
}

/// An integer property of one column family (0 when RocksDB has none).
fn int_property(db: &DB, cf: &rocksdb::ColumnFamily, name: &str) -> Result<u64> {
    Ok(db
        .property_int_value_cf(cf, name)
        .map_err(Error::storage)?
        .unwrap_or(0))
}

/// Sums RocksDB's memory figures over `cfs` of `db`, whose tables share `cache`.
pub(crate) fn memory_usage(
    db: &DB,
    cache: &Cache,
    cfs: &[&rocksdb::ColumnFamily],
) -> Result<MemoryUsage> {
    let mut m = MemoryUsage {
        block_cache: cache.get_usage() as u64,
        block_cache_pinned: cache.get_pinned_usage() as u64,
        ..MemoryUsage::default()
    };
    for cf in cfs {
        m.table_readers += int_property(db, cf, "rocksdb.estimate-table-readers-mem")?;
        m.memtables += int_property(db, cf, "rocksdb.cur-size-all-mem-tables")?;
    }
    Ok(m)
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

pub(crate) struct Store {
    db: DB,
    path: PathBuf,
    write_opts: WriteOptions,
    cache: Cache,
}

impl Store {
    /// Opens (or creates) the RocksDB instance with every column family.
    pub(crate) fn open(path: &Path, cfg: &StorageConfig, create: bool) -> Result<Self> {
        Self::open_mode(path, cfg, create, false)
    }

    /// Opens an existing store read-only (no lock, no writes): used to
    /// verify the audit log and certificates without the master key.
    pub(crate) fn open_read_only(path: &Path, cfg: &StorageConfig) -> Result<Self> {
        Self::open_mode(path, cfg, false, true)
    }

    fn open_mode(path: &Path, cfg: &StorageConfig, create: bool, read_only: bool) -> Result<Self> {
        let (db_opts, cf_opts, cache) = rocksdb_options(cfg, create)?;
        let cfs = ALL_CFS
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        let db = if read_only {
            DB::open_cf_descriptors_read_only(&db_opts, path, cfs, false).map_err(Error::storage)?
        } else {
            DB::open_cf_descriptors(&db_opts, path, cfs).map_err(Error::storage)?
        };
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(cfg.sync_writes);
        Ok(Store {
            db,
            path: path.to_path_buf(),
            write_opts,
            cache,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::corrupt("store", format!("column family {name} missing")))
    }

    /// Point read of one typed record.
    pub(crate) fn get<K: Keyspace>(&self, key: &K::Key) -> Result<Option<K::Value>> {
        let cf = self.cf(K::CF)?;
        match self
            .db
            .get_pinned_cf(cf, K::key(key))
            .map_err(Error::storage)?
        {
            Some(bytes) => Ok(Some(K::Value::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Point read of one record's raw bytes.
    pub(crate) fn get_raw<K: Keyspace>(&self, key: &K::Key) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(self.cf(K::CF)?, K::key(key))
            .map_err(Error::storage)
    }

    /// True when no column family holds any key.
    pub(crate) fn is_empty(&self) -> Result<bool> {
        for name in ALL_CFS {
            if self
                .db
                .iterator_cf(self.cf(name)?, IteratorMode::Start)
                .next()
                .is_some()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Two point reads in one `MultiGet` call.
    pub(crate) fn get2<A: Keyspace, B: Keyspace>(
        &self,
        a: &A::Key,
        b: &B::Key,
    ) -> Result<Pair<A, B>> {
        let (cfa, cfb) = (self.cf(A::CF)?, self.cf(B::CF)?);
        let mut res = self
            .db
            .multi_get_cf([(cfa, A::key(a)), (cfb, B::key(b))])
            .into_iter();
        let mut next = || {
            res.next()
                .ok_or_else(|| Error::corrupt("store", "MultiGet returned too few results"))
        };
        let ra = next()?;
        let rb = next()?;
        let va = ra
            .map_err(Error::storage)?
            .map(|bytes| A::Value::decode(&bytes))
            .transpose()?;
        let vb = rb
            .map_err(Error::storage)?
            .map(|bytes| B::Value::decode(&bytes))
            .transpose()?;
        Ok((va, vb))
    }

    /// Point reads of many keys of one keyspace in one `MultiGet`.
    pub(crate) fn multi_get<K: Keyspace>(&self, keys: &[K::Key]) -> Result<Vec<Option<K::Value>>> {
        let cf = self.cf(K::CF)?;
        self.db
            .multi_get_cf(keys.iter().map(|k| (cf, K::key(k))))
            .into_iter()
            .map(|r| {
                r.map_err(Error::storage)?
                    .map(|bytes| K::Value::decode(&bytes))
                    .transpose()
            })
            .collect()
    }

    /// Iterates, in order, the keys of one keyspace whose body starts with `body_prefix`.
    pub(crate) fn keys_with<K: Keyspace>(
        &self,
        body_prefix: &[u8],
    ) -> Result<impl Iterator<Item = Result<K::Key>> + '_> {
        Ok(self
            .entries_raw::<K>(body_prefix)?
            .map(|item| item.map(|(k, _)| k)))
    }

    /// Iterates keys and raw values of one keyspace whose body starts with `body_prefix`.
    pub(crate) fn entries_raw<K: Keyspace>(
        &self,
        body_prefix: &[u8],
    ) -> Result<impl Iterator<Item = Result<RawEntry<K>>> + '_> {
        let cf = self.cf(K::CF)?;
        let mut lower = vec![K::PREFIX];
        lower.extend_from_slice(body_prefix);
        let upper = keys::successor(&lower);
        let mut ro = ReadOptions::default();
        if let Some(upper) = upper {
            ro.set_iterate_upper_bound(upper);
        }
        ro.fill_cache(false);
        let it = self
            .db
            .iterator_cf_opt(cf, ro, IteratorMode::From(&lower, Direction::Forward));
        Ok(it.map(|item| {
            let (k, v) = item.map_err(Error::storage)?;
            Ok((K::parse_key(&k)?, v))
        }))
    }

    /// Iterates keys and decoded values of one keyspace in `[from, to)`
    /// (`to = None`: to the end of the keyspace).
    pub(crate) fn range<K: Keyspace>(
        &self,
        from: &K::Key,
        to: Option<&K::Key>,
    ) -> Result<impl Iterator<Item = Result<(K::Key, K::Value)>> + '_> {
        let cf = self.cf(K::CF)?;
        let lower = K::key(from);
        let upper = match to {
            Some(t) => Some(K::key(t)),
            None => keys::successor(&[K::PREFIX]),
        };
        let mut ro = ReadOptions::default();
        if let Some(upper) = upper {
            ro.set_iterate_upper_bound(upper);
        }
        let it = self
            .db
            .iterator_cf_opt(cf, ro, IteratorMode::From(&lower, Direction::Forward));
        Ok(it.map(|item| {
            let (k, v) = item.map_err(Error::storage)?;
            Ok((K::parse_key(&k)?, K::Value::decode(&v)?))
        }))
    }

    /// Iterates keys and decoded values of one keyspace whose body starts with `body_prefix`.
    pub(crate) fn entries<K: Keyspace>(
        &self,
        body_prefix: &[u8],
    ) -> Result<impl Iterator<Item = Result<(K::Key, K::Value)>> + '_> {
        Ok(self
            .entries_raw::<K>(body_prefix)?
            .map(|item| item.and_then(|(k, v)| Ok((k, K::Value::decode(&v)?)))))
    }

    /// The write path: every logical operation is committed here as one
    /// atomic RocksDB `WriteBatch`.
    pub(crate) fn write(&self, batch: Batch) -> Result<()> {
        self.write_opt(batch, &self.write_opts)
    }

    fn write_opt(&self, batch: Batch, opts: &WriteOptions) -> Result<()> {
        if let Some(e) = batch.error {
            return Err(e);
        }
        if batch.ops.is_empty() {
            return Ok(());
        }
        let mut wb = WriteBatch::default();
        for Op { cf, key, value } in batch.ops {
            let cf = self.cf(cf)?;
            match value {
                Some(v) => wb.put_cf(cf, key, v),
                None => wb.delete_cf(cf, key),
            }
        }
        self.db.write_opt(wb, opts).map_err(Error::storage)?;
        Ok(())
    }

    /// Commits a batch with the WAL synced, whatever the store's setting
    /// (key-tree rotations: the new tree must be durable before the old
    /// root is destroyed).
    pub(crate) fn write_synced(&self, batch: Batch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.write_opt(batch, &wo)
    }

    /// Flushes every memtable to SST files and syncs the WAL.
    /// Deletes RocksDB's rotated info logs (`LOG.old.*`) in the store
    /// directory: a build that logged at INFO level, or RocksDB itself
    /// before this setting existed, may have printed key boundaries into
    /// them. The current `LOG` is written at WARN level and kept.
    pub(crate) fn remove_rotated_info_logs(&self) -> Result<usize> {
        let dir = self.path();
        let mut n = 0;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io_at(dir, e))? {
            let path = entry.map_err(|e| Error::io_at(dir, e))?.path();
            let old_log = path
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with("LOG.old."));
            if old_log {
                std::fs::remove_file(&path).map_err(|e| Error::io_at(&path, e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub(crate) fn flush(&self) -> Result<()> {
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name)?).map_err(Error::storage)?;
        }
        self.db.flush_wal(true).map_err(Error::storage)?;
        Ok(())
    }

    /// Flushes, then compacts every column family down to the bottommost level.
    pub(crate) fn compact(&self) -> Result<()> {
        self.flush()?;
        let mut co = CompactOptions::default();
        co.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        co.set_exclusive_manual_compaction(true);
        for name in ALL_CFS {
            self.db
                .compact_range_cf_opt(self.cf(name)?, None::<&[u8]>, None::<&[u8]>, &co);
        }
        Ok(())
    }

    /// Every live SST file with its key range.
    pub(crate) fn live_files(&self) -> Result<Vec<SstFile>> {
        Ok(self
            .db
            .live_files()
            .map_err(Error::storage)?
            .into_iter()
            .map(|f| SstFile {
                cf: f.column_family_name,
                name: f.name.trim_start_matches('/').to_string(),
                size: f.size as u64,
                level: f.level,
                start: f.start_key.unwrap_or_default(),
                end: f.end_key.unwrap_or_default(),
            })
            .collect())
    }

    /// Forced bottommost compaction of `[start, end]` in one column family:
    /// every file overlapping the range is rewritten down to the last level,
    /// where deleted keys and their older versions are dropped.
    pub(crate) fn compact_range(&self, cf: &'static str, start: &[u8], end: &[u8]) -> Result<()> {
        let mut co = CompactOptions::default();
        co.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        co.set_exclusive_manual_compaction(false);
        self.db
            .compact_range_cf_opt(self.cf(cf)?, Some(start), Some(end), &co);
        Ok(())
    }

    /// Forced bottommost compaction of one whole column family.
    pub(crate) fn compact_cf(&self, cf: &'static str) -> Result<()> {
        let mut co = CompactOptions::default();
        co.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        self.db
            .compact_range_cf_opt(self.cf(cf)?, None::<&[u8]>, None::<&[u8]>, &co);
        Ok(())
    }

    /// A consistent copy of the store in `dir` (hard links where possible).
    pub(crate) fn checkpoint(&self, dir: &Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .map_err(Error::storage)?
            .create_checkpoint(dir)
            .map_err(Error::storage)?;
        Ok(())
    }

    /// The last raw entry of one keyspace whose body starts with
    /// `body_prefix` (one reverse seek), if any.
    fn last_raw<K: Keyspace>(&self, body_prefix: &[u8]) -> Result<Option<RawEntry<K>>> {
        let cf = self.cf(K::CF)?;
        let mut lower = vec![K::PREFIX];
        lower.extend_from_slice(body_prefix);
        let mut ro = ReadOptions::default();
        if let Some(upper) = keys::successor(&lower) {
            ro.set_iterate_upper_bound(upper);
        }
        ro.set_iterate_lower_bound(lower);
        let mut it = self.db.iterator_cf_opt(cf, ro, IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(Error::storage)?;
                Ok(Some((K::parse_key(&k)?, v)))
            }
        }
    }

    /// The last key of one keyspace whose body starts with `body_prefix`.
    pub(crate) fn last_key_with<K: Keyspace>(&self, body_prefix: &[u8]) -> Result<Option<K::Key>> {
        Ok(self.last_raw::<K>(body_prefix)?.map(|(k, _)| k))
    }

    /// The last key and value of one keyspace, if any.
    pub(crate) fn last<K: Keyspace>(&self) -> Result<Option<(K::Key, K::Value)>> {
        self.last_raw::<K>(&[])?
            .map(|(k, v)| Ok((k, K::Value::decode(&v)?)))
            .transpose()
    }

    pub(crate) fn memory_usage(&self) -> Result<MemoryUsage> {
        let cfs = ALL_CFS
            .iter()
            .map(|n| self.cf(n))
            .collect::<Result<Vec<_>>>()?;
        memory_usage(&self.db, &self.cache, &cfs)
    }

    pub(crate) fn column_stats(&self) -> Result<Vec<ColumnStats>> {
        let mut out = Vec::with_capacity(ALL_CFS.len());
        for name in ALL_CFS {
            let cf = self.cf(name)?;
            let prop = |p: &str| int_property(&self.db, cf, p);
            out.push(ColumnStats {
                name: name.to_string(),
                estimated_keys: prop("rocksdb.estimate-num-keys")?,
                sst_bytes: prop("rocksdb.live-sst-files-size")?,
                memtable_bytes: prop("rocksdb.cur-size-all-mem-tables")?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod batch_bounds;
