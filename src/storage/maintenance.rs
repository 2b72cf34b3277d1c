//! Keeping the store's files what erasure needs them to be: flushes,
//! compactions of chosen ranges, the live-file list, checkpoints, RocksDB's
//! rotated info logs; and the figures the store reports (memory, column
//! families).

use std::path::Path;

use rocksdb::{BottommostLevelCompaction, Cache, CompactOptions, DB};

use super::columns::ALL_CFS;
use super::store::Store;
use crate::error::{Error, Result};

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

impl Store {
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

    /// Flushes every memtable to SST files and syncs the WAL.
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
