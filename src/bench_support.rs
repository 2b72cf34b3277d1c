//! Thin wrappers over crate internals for `benches/` only. Not a stable API.

/// Seals `plain` under `key` with associated data `ad` (AES-256-GCM).
pub fn seal(key: &[u8; 32], ad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + crate::crypto::aead::OVERHEAD);
    // Sealing fails only for inputs far larger than any bench uses.
    if crate::crypto::aead::seal_into(key, ad, plain, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Opens what [`seal`] produced; `None` on authentication failure.
pub fn open(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    crate::crypto::aead::open(key, ad, sealed).map(|p| p.to_vec())
}

/// Derives the field key for `field_id` from a keyring seed, as reads do.
pub fn derive_field_key(seed: [u8; 32], field_id: u32) -> Option<[u8; 32]> {
    let fk = crate::crypto::kdf::FieldKeys::new(&crate::crypto::SecretKey::new(seed), 1).ok()?;
    fk.key(field_id).ok().map(|k| *k)
}

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use parking_lot::{Mutex, RwLock};
use rocksdb::{ColumnFamilyDescriptor, WriteBatch, DB};

use crate::error::{Error, Result};
use crate::storage::records::{
    decode_value, encode_value, FieldEntry, ProfileRecord, RecordStatus,
};
use crate::storage::{rocksdb_options, StorageConfig};
use crate::{Identifier, Normalization, ProfileId, Timestamp, Value};

const PROFILES_CF: &str = "profiles";
const INDEX_CF: &str = "index";
/// Key of the field-name registry in the profiles column family (profile
/// keys are 16 bytes, so a 1-byte key never collides).
const NAMES_KEY: &[u8] = b"n";
/// Name of the field listing a profile's identifiers, as lethedb's `$ids`.
const IDS_FIELD: &str = "$ids";

/// The plaintext baseline of `benches/scale.rs`: a profile store doing
/// lethedb's job without its privacy — the same RocksDB options (one shared
/// block cache, bloom filters, compression, write buffers), the same profile
/// record layout with every field stored in the clear, one index entry per
/// normalised identifier holding the profile id, and the same resolve logic
/// (look up every identifier, attach to the profile found, else create under
/// a lock). No encryption, no keyring, no blind index, no suppression list,
/// no audit. Not a stable API.
pub struct PlainStore {
    db: DB,
    write_opts: rocksdb::WriteOptions,
    names: RwLock<(Vec<String>, HashMap<String, u32>)>,
    create_lock: Mutex<()>,
    norm: Normalization,
    cache: rocksdb::Cache,
}

impl PlainStore {
    /// Opens (creating when asked) a baseline store at `path` with
    /// lethedb's RocksDB options for this cache and write-buffer size.
    pub fn open(
        path: &Path,
        block_cache_bytes: usize,
        write_buffer_bytes: usize,
        create: bool,
    ) -> Result<PlainStore> {
        let cfg = StorageConfig::new(block_cache_bytes, write_buffer_bytes);
        let (db_opts, cf_opts, cache) = rocksdb_options(&cfg, create)?;
        let db = DB::open_cf_descriptors(
            &db_opts,
            path,
            [PROFILES_CF, INDEX_CF]
                .into_iter()
                .map(|n| ColumnFamilyDescriptor::new(n, cf_opts.clone())),
        )
        .map_err(Error::storage)?;
        let store = PlainStore {
            db,
            write_opts: rocksdb::WriteOptions::default(),
            names: RwLock::new((Vec::new(), HashMap::new())),
            create_lock: Mutex::new(()),
            norm: Normalization::default(),
            cache,
        };
        if let Some(bytes) = store
            .db
            .get_cf(store.cf(PROFILES_CF)?, NAMES_KEY)
            .map_err(Error::storage)?
        {
            let list: Vec<String> = serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt("baseline names", e.to_string()))?;
            let mut names = store.names.write();
            for n in list {
                let id = u32::try_from(names.0.len()).unwrap_or(u32::MAX);
                names.1.insert(n.clone(), id);
                names.0.push(n);
            }
        }
        Ok(store)
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::corrupt("baseline", format!("column family {name} missing")))
    }

    /// Field id of `name`, registering it (and persisting the list) on first use.
    fn field_id(&self, name: &str) -> Result<u32> {
        if let Some(id) = self.names.read().1.get(name) {
            return Ok(*id);
        }
        let mut names = self.names.write();
        if let Some(id) = names.1.get(name) {
            return Ok(*id);
        }
        let id = u32::try_from(names.0.len()).unwrap_or(u32::MAX);
        names.0.push(name.to_string());
        names.1.insert(name.to_string(), id);
        let list = serde_json::to_vec(&names.0).unwrap_or_default();
        self.db
            .put_cf(self.cf(PROFILES_CF)?, NAMES_KEY, list)
            .map_err(Error::storage)?;
        Ok(id)
    }

    fn index_key(&self, id: &Identifier) -> Result<Vec<u8>> {
        let normalized = self.norm.normalize(id)?;
        let mut key = id.id_type.name().as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(normalized.as_bytes());
        Ok(key)
    }

    /// Writes `fields` to the profile the identifiers resolve to, creating
    /// it when none does; returns its id. Like `Db::resolve` without merges:
    /// when identifiers point at different profiles the first one wins.
    pub fn resolve(
        &self,
        identifiers: &[Identifier],
        fields: &[(String, Value)],
    ) -> Result<ProfileId> {
        let keys = identifiers
            .iter()
            .map(|i| self.index_key(i))
            .collect::<Result<Vec<_>>>()?;
        let mut encoded = Vec::with_capacity(fields.len() + 1);
        for (name, value) in fields {
            let mut out = Vec::new();
            encode_value(value, &mut out);
            encoded.push((self.field_id(name)?, out));
        }
        let ids_value = Value::List(
            identifiers
                .iter()
                .zip(&keys)
                .map(|(i, k)| {
                    // As lethedb's `$ids`: the normalised form only when it
                    // differs from the raw value.
                    let normalized = String::from_utf8_lossy(&k[i.id_type.name().len() + 1..]);
                    Value::List(vec![
                        Value::String(i.id_type.name().to_string()),
                        Value::String(i.value.clone()),
                        Value::String(if normalized == i.value {
                            String::new()
                        } else {
                            normalized.into_owned()
                        }),
                        Value::Int(0),
                    ])
                })
                .collect(),
        );
        let mut ids_bytes = Vec::new();
        encode_value(&ids_value, &mut ids_bytes);
        encoded.push((self.field_id(IDS_FIELD)?, ids_bytes));

        let found = self.find(&keys)?;
        let _create = found.is_none().then(|| self.create_lock.lock());
        // Re-check under the lock: another writer may have created it.
        let found = match found {
            Some(f) => Some(f),
            None => self.find(&keys)?,
        };
        let now = Timestamp::now();
        let (id, mut record) = match found {
            Some(id) => match self.record(&id)? {
                Some(r) => (id, r),
                None => return Err(Error::corrupt("baseline", "index points at no profile")),
            },
            None => (
                ProfileId::random()?,
                ProfileRecord {
                    generation: 0,
                    write_version: 0,
                    consents: Vec::new(),
                    created_at: now,
                    updated_at: now,
                    status: RecordStatus::Active,
                    origins: Vec::new(),
                    fields: Vec::new(),
                },
            ),
        };
        record.updated_at = now;
        for (field_id, payload) in encoded {
            record.set(FieldEntry {
                field_id,
                sealed: false,
                origin: 0,
                written_at: now,
                payload,
            });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(PROFILES_CF)?, id.as_bytes(), record.encode_clear());
        let index = self.cf(INDEX_CF)?;
        for k in &keys {
            batch.put_cf(index, k, id.as_bytes());
        }
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(Error::storage)?;
        Ok(id)
    }

    fn find(&self, keys: &[Vec<u8>]) -> Result<Option<ProfileId>> {
        let index = self.cf(INDEX_CF)?;
        for r in self.db.multi_get_cf(keys.iter().map(|k| (index, k))) {
            if let Some(v) = r.map_err(Error::storage)? {
                let bytes: [u8; 16] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::corrupt("baseline index", "value is not 16 bytes"))?;
                return Ok(Some(ProfileId::from_bytes(bytes)));
            }
        }
        Ok(None)
    }

    fn record(&self, id: &ProfileId) -> Result<Option<ProfileRecord>> {
        match self
            .db
            .get_pinned_cf(self.cf(PROFILES_CF)?, id.as_bytes())
            .map_err(Error::storage)?
        {
            Some(bytes) => Ok(Some(ProfileRecord::decode_clear(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The profile's fields by name, without `$ids` (as `Profile::fields`).
    pub fn get(&self, id: &ProfileId) -> Result<Option<BTreeMap<String, Value>>> {
        let Some(record) = self.record(id)? else {
            return Ok(None);
        };
        let names = self.names.read();
        let mut out = BTreeMap::new();
        for f in &record.fields {
            let name = names
                .0
                .get(f.field_id as usize)
                .ok_or_else(|| Error::corrupt("baseline", "unknown field id"))?;
            if name != IDS_FIELD {
                out.insert(name.clone(), decode_value(&f.payload)?);
            }
        }
        Ok(Some(out))
    }

    /// The profile an identifier belongs to.
    pub fn lookup(&self, id: &Identifier) -> Result<Option<ProfileId>> {
        self.find(&[self.index_key(id)?])
    }

    /// Flushes memtables and compacts every column family to the last level.
    /// RocksDB's memory figures for this store.
    pub fn memory(&self) -> Result<crate::MemoryUsage> {
        let cfs = [self.cf(PROFILES_CF)?, self.cf(INDEX_CF)?];
        crate::storage::memory_usage(&self.db, &self.cache, &cfs)
    }

    pub fn compact(&self) -> Result<()> {
        for name in [PROFILES_CF, INDEX_CF] {
            let cf = self.cf(name)?;
            self.db.flush_cf(cf).map_err(Error::storage)?;
            let mut o = rocksdb::CompactOptions::default();
            o.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
            self.db
                .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &o);
        }
        Ok(())
    }
}

/// Loads synthetic people `0..n` into `db` through `resolve`, on `threads`
/// writer threads (person `i` on thread `i % threads`): fields from
/// `synth::profile(7, i)`, identifiers `user-<i>` and the person's e-mail.
/// Returns the ids of the profiles created. For the scale examples.
pub fn load_people(db: &std::sync::Arc<crate::Db>, n: u64, threads: u64) -> Result<Vec<ProfileId>> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = std::sync::Arc::clone(db);
            std::thread::spawn(move || -> Result<Vec<ProfileId>> {
                let mut ids = Vec::new();
                let mut i = t;
                while i < n {
                    let p = crate::synth::profile(7, i);
                    let email = p
                        .fields
                        .iter()
                        .find(|(k, _)| k == "email")
                        .and_then(|(_, v)| match v {
                            Value::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    let update: crate::Update = p.fields.into_iter().collect();
                    let out = db.resolve(
                        &[
                            Identifier::user_id(format!("user-{i:09}")),
                            Identifier::email(email),
                        ],
                        update,
                    )?;
                    if let (Some(id), true) = (out.profile, out.created) {
                        ids.push(id);
                    }
                    i += threads;
                }
                Ok(ids)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(
            h.join()
                .map_err(|_| crate::Error::Internal("writer thread panicked".into()))??,
        );
    }
    Ok(ids)
}

/// Field and record crypto of the two profile formats, on made-up keys and
/// values, for `benches/record.rs` (criterion figures per field and per
/// record; docs/performance.md, "Record format v2").
pub struct RecordCrypto {
    seed: crate::crypto::SecretKey,
    id: [u8; 16],
    nonce: [u8; 16],
    /// v2: `(field id, ciphertext)`; the body the tag covers; the tag.
    v2_fields: Vec<(u32, Vec<u8>)>,
    body: Vec<u8>,
    tag: [u8; 16],
    /// v1: `(field id, field name, nonce ‖ ciphertext ‖ tag)`.
    v1_fields: Vec<(u32, String, Vec<u8>)>,
    plain: Vec<Vec<u8>>,
    entry_mac: crate::crypto::entry_mac::EntryMac,
}

impl RecordCrypto {
    /// `n` fields of `len` bytes each.
    pub fn new(n: usize, len: usize) -> Result<Self> {
        use crate::crypto::record::RecordKeys;
        let seed = crate::crypto::SecretKey::new([7; 32]);
        let id = [9u8; 16];
        let nonce = [3u8; 16];
        let keys = RecordKeys::derive(&seed, 1)?;
        let v1 = crate::crypto::kdf::FieldKeys::new(&seed, 1)?;
        let plain: Vec<Vec<u8>> = (0..n).map(|i| vec![b'a' + (i % 26) as u8; len]).collect();
        let mut v2_fields = Vec::new();
        let mut v1_fields = Vec::new();
        let mut body = Vec::new();
        for (i, p) in plain.iter().enumerate() {
            let fid = i as u32;
            let mut c = p.clone();
            keys.apply_field(&nonce, fid, &mut c)?;
            body.extend_from_slice(&c);
            v2_fields.push((fid, c));
            let name = format!("field{i}");
            let ad = crate::keytree::field_ad(&crate::ProfileId::from_bytes(id), 1, &name, true);
            let mut s = Vec::new();
            crate::crypto::aead::seal_into(&*v1.key(fid)?, &ad, p, &mut s)?;
            v1_fields.push((fid, name, s));
        }
        body.resize(body.len() + 100, 0); // header, framing
        let tag = keys.tag(&nonce, &id, &body)?;
        Ok(RecordCrypto {
            entry_mac: crate::crypto::entry_mac::EntryMac::new(&seed)?,
            seed,
            id,
            nonce,
            v2_fields,
            body,
            tag,
            v1_fields,
            plain,
        })
    }

    /// v2, one field of a record whose keys are derived and tag checked:
    /// the per-field cost of a read.
    pub fn v2_open_field(&self, keys: &V2Keys, i: usize) -> usize {
        let (fid, c) = &self.v2_fields[i];
        let mut buf = zeroize::Zeroizing::new(c.clone());
        let _ = keys.0.apply_field(&self.nonce, *fid, &mut buf);
        buf.len()
    }

    /// v2: the record keys (one HKDF-Expand).
    pub fn v2_keys(&self) -> Result<V2Keys> {
        Ok(V2Keys(crate::crypto::record::RecordKeys::derive(
            &self.seed, 1,
        )?))
    }

    /// v2: the record's tag checked.
    pub fn v2_verify(&self, keys: &V2Keys) -> bool {
        keys.0.verify(&self.nonce, &self.id, &self.body, &self.tag)
    }

    /// v2, a whole read: keys, tag, every field.
    pub fn v2_open_record(&self) -> Result<usize> {
        let keys = self.v2_keys()?;
        if !self.v2_verify(&keys) {
            return Err(Error::Internal("tag".into()));
        }
        Ok((0..self.v2_fields.len())
            .map(|i| self.v2_open_field(&keys, i))
            .sum())
    }

    /// v2, a whole write: keys, every field encrypted, the tag.
    pub fn v2_seal_record(&self) -> Result<[u8; 16]> {
        let keys = self.v2_keys()?;
        let mut body = Vec::with_capacity(self.body.len());
        for (i, p) in self.plain.iter().enumerate() {
            let mut c = p.clone();
            keys.0.apply_field(&self.nonce, i as u32, &mut c)?;
            body.extend_from_slice(&c);
        }
        body.resize(self.body.len(), 0);
        keys.0.tag(&self.nonce, &self.id, &body)
    }

    /// v1, one field: its key (HKDF-Expand) and AES-256-GCM open.
    pub fn v1_open_field(&self, i: usize) -> Result<usize> {
        let v1 = crate::crypto::kdf::FieldKeys::new(&self.seed, 1)?;
        let (fid, name, s) = &self.v1_fields[i];
        let ad = crate::keytree::field_ad(&crate::ProfileId::from_bytes(self.id), 1, name, true);
        crate::crypto::aead::open(&*v1.key(*fid)?, &ad, s)
            .map(|p| p.len())
            .ok_or_else(|| Error::Internal("open".into()))
    }

    /// v1, a whole read: every field opened on its own.
    pub fn v1_open_record(&self) -> Result<usize> {
        (0..self.v1_fields.len())
            .map(|i| self.v1_open_field(i))
            .sum()
    }

    /// An identity-index entry's MAC computed and checked (format v2).
    pub fn entry_mac(&self) -> bool {
        let t = self
            .entry_mac
            .tag(b"lethedb/v2/identity-entry", &[&self.id, &self.nonce]);
        self.entry_mac
            .verify(b"lethedb/v2/identity-entry", &[&self.id, &self.nonce], &t)
    }
}

/// The derived keys of [`RecordCrypto`] (opaque).
pub struct V2Keys(crate::crypto::record::RecordKeys);

/// The encoded values (the plaintext a field's payload holds) of synthetic
/// person `index`, by field name, for `examples/field_compression.rs`.
pub fn encoded_fields(seed: u64, index: u64) -> Vec<(String, Vec<u8>)> {
    crate::synth::profile(seed, index)
        .fields
        .into_iter()
        .map(|(name, v)| {
            let mut out = Vec::new();
            encode_value(&v, &mut out);
            (name, out)
        })
        .collect()
}
