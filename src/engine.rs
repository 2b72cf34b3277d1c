//! The engine: one struct owning storage, key tree, field registry, locks,
//! audit and configuration, which every domain module uses.

use std::path::Path;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::crypto::keyset::KeySet;
use crate::crypto::{kdf, KeyProvider, SecretKey};
use crate::domain::audit::AuditLog;
use crate::domain::erasure::certificate::Signer;
use crate::domain::erasure::markers::{self, Pending};
use crate::domain::fields::FieldRegistry;
use crate::domain::identity::blind::{BlindIndex, IdentityKeyState, IdentityKeys};
use crate::domain::identity::config::IdentityConfig;
use crate::domain::locks::StripedLocks;
use crate::error::{Error, Result};
use crate::keytree::{FileRootKeyStore, RootKeys, RootLocation};
use crate::keytree::{KeyHierarchy, Shape};
use crate::options::Options;
use crate::random::os_random;
use crate::storage::columns::{
    Configs, Erasures, KeySets, KeyTreeHeaders, Schemas, StoreHeaders, Tombstones,
};
use crate::storage::records::{self, Blob, StoreHeader, ValueCodec};
use crate::storage::{Batch, StorageConfig, Store};
use crate::types::{ProfileId, Schema, Timestamp};

/// The engine under the public [`Db`](crate::Db): the store, the key tree,
/// the field registry, locks, audit, signer and configuration. Every domain
/// module takes `&Engine`; `Db` is a thin facade over `Arc<Engine>`.
pub(crate) struct Engine {
    pub(crate) store: Store,
    pub(crate) keys: KeyHierarchy,
    /// Kept to open backup copies when a purge re-keys them.
    pub(crate) master: crate::crypto::MasterKey,
    /// False for a backup copy opened by a purge (the roots are shared).
    pub(crate) owns_roots: bool,
    /// The root key file shares the store directory's file system.
    pub(crate) root_co_located: bool,
    pub(crate) registry: FieldRegistry,
    pub(crate) locks: StripedLocks,
    /// Serialises operations that move identifiers between profiles.
    pub(crate) identity_lock: Mutex<()>,
    /// Serialises changes to data-subject requests and legal holds (taken
    /// after the identity lock, before the audit log's).
    pub(crate) privacy_lock: Mutex<()>,
    /// Keyed hash for consent purpose tags (`$purpose`).
    pub(crate) blind: BlindIndex,
    /// Keyed hash of the identifier index (the blind index proper).
    pub(crate) ids: IdentityKeys,
    /// Keyed hash for suppression entries (a different key than the blind index).
    pub(crate) suppression: BlindIndex,
    pub(crate) subject_key: SecretKey,
    /// Whether the store compresses its files (copies it edits do the same).
    pub(crate) compression: bool,
    /// Keys the tombstones of erased profile ids.
    pub(crate) tombstone_key: SecretKey,
    /// Authenticates identity-index and consent-index entries (format v2).
    pub(crate) entry_mac: crate::crypto::entry_mac::EntryMac,
    /// The store holds format v2 only (`FormatMarks`): anything of format
    /// v1 is refused as an integrity error, not read.
    pub(crate) v2_only: AtomicBool,
    pub(crate) audit: AuditLog,
    pub(crate) signer: Option<Signer>,
    /// Highest erasure id in the ledger.
    pub(crate) erasure_seq: Mutex<u64>,
    pub(crate) purge_lock: Mutex<()>,
    /// Serialises appends to the registered backups' ledger files (an inner
    /// lock: held only for the file writes).
    pub(crate) ledger_lock: Mutex<()>,
    /// The last purge's failure, until a purge succeeds.
    pub(crate) purge_error: Mutex<Option<String>>,
    /// Erasures waiting for purge (count, oldest request time).
    pub(crate) pending: Mutex<Pending>,
    pub(crate) suppress_forgotten: bool,
    /// Whether any suppression entry exists (skips the check when none do).
    pub(crate) suppression_active: AtomicBool,
    pub(crate) suppression_hits: AtomicU64,
    /// Last `recorded_at` handed out to a consent record (µs): strictly
    /// increasing within the process, see `consent::reserve_recorded_at`.
    pub(crate) consent_clock: std::sync::atomic::AtomicI64,
    pub(crate) purge_after_erasures: usize,
    pub(crate) purge_deadline: Duration,
    pub(crate) obsolete_file_wait: Duration,
    pub(crate) limits: crate::options::Limits,
    pub(crate) schema: RwLock<Arc<Schema>>,
    pub(crate) identity: RwLock<Arc<IdentityConfig>>,
    pub(crate) header: StoreHeader,
}

fn schema_blob(schema: &Schema) -> Result<Blob> {
    for name in schema.fields.keys() {
        crate::domain::fields::validate_name(name)?;
    }
    serde_json::to_vec(schema)
        .map(Blob)
        .map_err(|e| Error::InvalidInput(format!("schema: {e}")))
}

fn identity_blob(cfg: &IdentityConfig) -> Result<Blob> {
    cfg.rules.validate()?;
    crate::domain::identity::ids::parse_region(&cfg.normalization.default_region)?;
    serde_json::to_vec(cfg)
        .map(Blob)
        .map_err(|e| Error::InvalidInput(format!("identity config: {e}")))
}

impl Engine {
    /// Opens the store at `path`, or creates it when `options` say so.
    ///
    /// Fails with [`Error::StoreNotFound`] when there is no store and creation
    /// was not requested, [`Error::NotAStore`] for a foreign RocksDB
    /// directory, [`Error::UnsupportedFormat`] for a newer format, and
    /// [`Error::WrongKey`] when the master key does not match.
    pub(crate) fn open(
        path: impl AsRef<Path>,
        keys: &dyn KeyProvider,
        options: Options,
    ) -> Result<Engine> {
        let path = path.as_ref();
        if options.limits.max_value_bytes > records::MAX_VALUE_BYTES {
            return Err(Error::InvalidInput(format!(
                "max_value_bytes {} exceeds the format's bound of {} bytes",
                options.limits.max_value_bytes,
                records::MAX_VALUE_BYTES
            )));
        }
        let exists = crate::storage::is_store_dir(path);
        if !exists && !options.create_if_missing {
            return Err(Error::StoreNotFound {
                path: path.to_path_buf(),
            });
        }
        if exists {
            let cfs =
                rocksdb::DB::list_cf(&rocksdb::Options::default(), path).map_err(Error::storage)?;
            if !cfs.iter().any(|c| c == crate::storage::columns::CF_META) {
                return Err(Error::NotAStore {
                    path: path.to_path_buf(),
                });
            }
        }
        let master = keys.master_key()?;
        let roots: RootKeys = match &options.root_keys {
            Some(r) => r.clone(),
            None => RootKeys::Sealed(Arc::new(FileRootKeyStore::beside(path))),
        };
        let root_co_located = check_co_location(path, &roots, options.refuse_co_located_roots)?;
        if !exists {
            std::fs::create_dir_all(path).map_err(|e| Error::io_at(path, e))?;
        }
        let cfg = StorageConfig {
            block_cache_bytes: options.block_cache_bytes,
            write_buffer_bytes: options.write_buffer_bytes,
            sync_writes: options.sync_writes,
            compression: options.compression,
        };
        let store = Store::open(path, &cfg, options.create_if_missing)?;
        let mut schema_to_set = options.schema;
        let mut identity_to_set = options.identity;
        let header = match store.get_raw::<StoreHeaders>(&())? {
            Some(bytes) if !records::has_store_magic(&bytes) => {
                return Err(Error::NotAStore {
                    path: path.to_path_buf(),
                })
            }
            Some(bytes) => StoreHeader::decode(&bytes)?,
            // A new store, or one whose creation crashed before its first
            // batch: initialise header and schema in one atomic batch.
            None if options.create_if_missing && store.is_empty()? => {
                let shape = Shape {
                    fanout_bits: options.fanout_bits,
                    depth: options.depth,
                }
                .check()?;
                let mut store_id = [0u8; 16];
                os_random(&mut store_id)?;
                // The first root goes to the root key store before the
                // store exists: a crash in between leaves an empty store
                // and a root nobody uses (creation then refuses the
                // non-empty root key store, naming it).
                let tree = KeyHierarchy::init_root(&master, &store_id, shape, &roots)?;
                let h = StoreHeader {
                    store_id,
                    bucket_bits: shape.bucket_bits(),
                    key_check: kdf::key_check_value(&master, &store_id)?,
                    created_at: Timestamp::now(),
                };
                let mut batch = Batch::new();
                batch.put::<StoreHeaders>(&(), &h);
                batch.put::<KeyTreeHeaders>(&(), &tree);
                if let Some(schema) = schema_to_set.take() {
                    batch.put::<Schemas>(&(), &schema_blob(&schema)?);
                }
                // The key set: random keys of this store's own, sealed
                // under the master key (older stores derive them from it).
                batch.put::<KeySets>(&(), &Blob(KeySet::random()?.seal(&master, &store_id)?));
                // A new store holds format v2 only: v1 records are refused.
                batch.put::<crate::storage::columns::FormatMarks>(&(), &Blob(Vec::new()));
                let identity = identity_to_set.take().unwrap_or_default();
                batch.put::<Configs>(&(), &identity_blob(&identity)?);
                store.write(batch)?;
                h
            }
            None => {
                return Err(Error::NotAStore {
                    path: path.to_path_buf(),
                })
            }
        };
        if !kdf::key_check_matches(&master, &header.store_id, &header.key_check)? {
            return Err(Error::WrongKey);
        }
        if !options.rotating_master
            && store
                .get_raw::<crate::storage::columns::MasterRotations>(&())?
                .is_some()
        {
            return Err(Error::InvalidInput(
                "a master-key rotation of this store is unfinished: run `lethedb keys rotate-master` again (Db::rotate_master with the old and the new key) to finish it".into(),
            ));
        }
        if markers::is_backup(&store)? && !options.restoring {
            return Err(Error::InvalidInput(format!(
                "{} is a backup copy; restore it with `lethedb restore` (which replays later erasures)",
                path.display()
            )));
        }
        let tree = store.get::<KeyTreeHeaders>(&())?.ok_or_else(|| {
            Error::corrupt(
                "key tree header",
                "missing: the store was made by a build without the key tree, which this build does not open",
            )
        })?;
        if tree.fanout_bits.saturating_mul(tree.depth) != header.bucket_bits {
            return Err(Error::corrupt(
                "key tree header",
                format!(
                    "fan-out 2^{} x depth {} does not match the store header's {} bucket bits",
                    tree.fanout_bits, tree.depth, header.bucket_bits
                ),
            ));
        }
        let keys = KeyHierarchy::open(
            &master,
            &header.store_id,
            &tree,
            roots,
            options.key_cache_entries,
        )?;
        let keyset = match store.get::<KeySets>(&())? {
            Some(blob) => KeySet::open(&master, &header.store_id, &blob.0)?,
            None => KeySet::legacy(&master, &header.store_id)?,
        };
        let blind = BlindIndex::new(&keyset.purpose)?;
        let ids = IdentityKeys::new(IdentityKeyState {
            current: Arc::new(BlindIndex::new(&keyset.identity)?),
            generation: keyset.identity_generation,
            previous: match &keyset.previous_identity {
                Some(k) => Some(Arc::new(BlindIndex::new(k)?)),
                None => None,
            },
            cursor: keyset.cursor,
        });
        let suppression = BlindIndex::new(&keyset.suppression)?;
        let audit = AuditLog::load(&store, &master, &header.store_id)?;
        let signer = Signer::load_or_create(&store, &audit, &master, &header.store_id, false)?;
        let subject_key = keyset.subject_ref.clone();
        let tombstone_key = keyset.tombstone.clone();
        let entry_mac = crate::crypto::entry_mac::EntryMac::new(&keyset.tombstone)?;
        let v2_only = store
            .get_raw::<crate::storage::columns::FormatMarks>(&())?
            .is_some();
        let erasure_seq = store.last::<Erasures>()?.map_or(0, |(id, _)| id);
        let suppression_active = markers::any_suppressed(&store)?;
        let pending = markers::scan_pending(&store)?;
        let registry = FieldRegistry::load(&store)?;
        let schema = match store.get::<Schemas>(&())? {
            Some(blob) => Schema::from_json(
                std::str::from_utf8(&blob.0).map_err(|_| Error::corrupt("schema", "not UTF-8"))?,
            )
            .map_err(|e| Error::corrupt("schema", e.to_string()))?,
            None => Schema::new(),
        };
        let identity = match store.get::<Configs>(&())? {
            Some(blob) => serde_json::from_slice(&blob.0)
                .map_err(|e| Error::corrupt("identity config", e.to_string()))?,
            None => IdentityConfig::default(),
        };
        let db = Engine {
            store,
            keys,
            master,
            owns_roots: !options.shared_roots,
            root_co_located,
            registry,
            locks: StripedLocks::new(),
            identity_lock: Mutex::new(()),
            privacy_lock: Mutex::new(()),
            blind,
            ids,
            suppression,
            subject_key,
            tombstone_key,
            entry_mac,
            v2_only: AtomicBool::new(v2_only),
            compression: options.compression,
            audit,
            signer,
            erasure_seq: Mutex::new(erasure_seq),
            purge_lock: Mutex::new(()),
            ledger_lock: Mutex::new(()),
            purge_error: Mutex::new(None),
            pending: Mutex::new(pending),
            suppress_forgotten: options.suppress_forgotten,
            suppression_active: AtomicBool::new(suppression_active),
            suppression_hits: AtomicU64::new(0),
            consent_clock: std::sync::atomic::AtomicI64::new(i64::MIN),
            purge_after_erasures: options.purge_after_erasures,
            purge_deadline: options.purge_deadline,
            obsolete_file_wait: options.obsolete_file_wait,
            limits: options.limits,
            schema: RwLock::new(Arc::new(schema)),
            identity: RwLock::new(Arc::new(identity)),
            header,
        };
        if let Some(s) = schema_to_set {
            db.set_schema(s)?;
        }
        if let Some(c) = identity_to_set {
            db.set_identity_config(c)?;
        }
        Ok(db)
    }

    /// Directory of the store.
    pub(crate) fn path(&self) -> &Path {
        self.store.path()
    }

    /// The error for a record or entry of format v1 found in a store that
    /// holds only v2 (put there from outside), `None` when v1 is allowed.
    pub(crate) fn v1_refused(&self, profile: &ProfileId, what: &str) -> Option<Error> {
        self.v2_only
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| Error::Integrity {
                profile: *profile,
                what: format!("{what} of format v1 in a store that holds only format v2"),
            })
    }

    /// Pseudonymous reference of a subject as used in the audit log and
    /// certificates: HMAC-SHA-256 of the profile id under a master-derived
    /// key, 128 bits.
    pub(crate) fn subject_ref(&self, id: &ProfileId) -> Result<[u8; 16]> {
        kdf::mac16(&self.subject_key, &[b"lethedb/subject", id.as_bytes()])
    }

    /// Key of the tombstone of `id` once erased: HMAC-SHA-256 of the id
    /// under a master-derived key, 128 bits (docs/design.md, "forget").
    pub(crate) fn tombstone_of(&self, id: &ProfileId) -> Result<[u8; 16]> {
        kdf::mac16(&self.tombstone_key, &[b"lethedb/tombstone", id.as_bytes()])
    }

    /// The erased-profile error for `id` when a keyed tombstone says it was
    /// erased. (Tombstones of format version 1 are profile records with
    /// status erased; `markers::erased_error` reads those.)
    pub(crate) fn erased_error(&self, id: &ProfileId) -> Result<Option<Error>> {
        Ok(self
            .store
            .get::<Tombstones>(&self.tombstone_of(id)?)?
            .map(|t| Error::ProfileErased {
                profile: *id,
                erasure_id: t.erasure_id,
            }))
    }

    /// Random id of this store, fixed at creation (hex).
    pub(crate) fn store_id(&self) -> String {
        crate::hex::encode(&self.header.store_id)
    }

    /// The current schema.
    pub(crate) fn schema(&self) -> Schema {
        (*self.schema_snapshot()).clone()
    }

    pub(crate) fn identity_snapshot(&self) -> Arc<IdentityConfig> {
        Arc::clone(&self.identity.read())
    }

    pub(crate) fn schema_snapshot(&self) -> Arc<Schema> {
        Arc::clone(&self.schema.read())
    }

    /// Replaces and persists the schema. Applies to later writes; values
    /// already stored keep the protection they were written with.
    pub(crate) fn set_schema(&self, schema: Schema) -> Result<()> {
        let mut batch = Batch::new();
        batch.put::<Schemas>(&(), &schema_blob(&schema)?);
        let mut guard = self.schema.write();
        self.store.write(batch)?;
        *guard = Arc::new(schema);
        Ok(())
    }

    /// The identity settings (normalisation and merge rules).
    pub(crate) fn identity_config(&self) -> IdentityConfig {
        (**self.identity.read()).clone()
    }

    /// Replaces and persists the identity settings. Changing normalisation
    /// does not re-index identifiers already stored.
    pub(crate) fn set_identity_config(&self, config: IdentityConfig) -> Result<()> {
        let mut batch = Batch::new();
        batch.put::<Configs>(&(), &identity_blob(&config)?);
        let mut guard = self.identity.write();
        self.store.write(batch)?;
        *guard = Arc::new(config);
        Ok(())
    }
}

/// Whether the roots sit on the store directory's file system; an error
/// (before anything is written) when they do and `refuse` says so.
pub(crate) fn check_co_location(path: &Path, roots: &RootKeys, refuse: bool) -> Result<bool> {
    let c = co_located(path, &roots.location())?;
    if c && refuse {
        return Err(Error::InvalidInput(format!(
            "the root key store ({}) is on the file system of {}: a copy of that volume would keep roots a purge destroys; put the roots on another device or in an HSM (--root-keys pkcs11:…), or allow it",
            roots.describe(),
            path.display()
        )));
    }
    Ok(c)
}

/// True when `location` is a file on the file system of the store
/// directory `dir` (compared by device number; a file not created yet is
/// judged by its directory, a store not created yet by its parent).
pub(crate) fn co_located(dir: &Path, location: &RootLocation) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let RootLocation::File(file) = location else {
        return Ok(false);
    };
    let device = |p: &Path| -> Result<Option<u64>> {
        let mut cur = Some(p);
        while let Some(c) = cur {
            let c = if c.as_os_str().is_empty() {
                Path::new(".")
            } else {
                c
            };
            match std::fs::metadata(c) {
                Ok(m) => return Ok(Some(m.dev())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => cur = c.parent(),
                Err(e) => return Err(Error::io_at(c, e)),
            }
        }
        Ok(None)
    };
    Ok(match (device(dir)?, device(file)?) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    })
}
