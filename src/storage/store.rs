//! The store: one RocksDB instance with a column family per data kind,
//! typed reads and the single write path.

use std::path::{Path, PathBuf};

use rocksdb::{
    Cache, ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, ReadOptions, WriteBatch,
    WriteOptions, DB,
};

use super::batch::{Batch, Op};
use super::columns::{Keyspace, ALL_CFS};
use super::config::{rocksdb_options, StorageConfig};
use super::records::ValueCodec;
use crate::error::{Error, Result};

/// A key and its undecoded value.
pub(crate) type RawEntry<K> = (<K as Keyspace>::Key, Box<[u8]>);

pub(crate) struct Store {
    pub(super) db: DB,
    path: PathBuf,
    write_opts: WriteOptions,
    pub(super) cache: Cache,
    /// Test hook: batches written with a synced WAL.
    #[cfg(feature = "testkit")]
    pub(crate) synced_writes: std::sync::atomic::AtomicU64,
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
            #[cfg(feature = "testkit")]
            synced_writes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
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
        let upper = super::keys::successor(&lower);
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
            None => super::keys::successor(&[K::PREFIX]),
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
        self.write_opt(batch, &wo)?;
        #[cfg(feature = "testkit")]
        self.synced_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The last raw entry of one keyspace whose body starts with
    /// `body_prefix` (one reverse seek), if any.
    fn last_raw<K: Keyspace>(&self, body_prefix: &[u8]) -> Result<Option<RawEntry<K>>> {
        let cf = self.cf(K::CF)?;
        let mut lower = vec![K::PREFIX];
        lower.extend_from_slice(body_prefix);
        let mut ro = ReadOptions::default();
        if let Some(upper) = super::keys::successor(&lower) {
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
}
