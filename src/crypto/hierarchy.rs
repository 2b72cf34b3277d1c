//! The key hierarchy: master key → wrap key → bucket keys → profile keyrings
//! → field keys.
//!
//! * The **wrap key** is HKDF-derived from the master key and the store id.
//!   It is the root of the tree and is never stored.
//! * **Bucket keys** are random 256-bit keys, one per bucket of profiles
//!   (`bucket = top bucket_bits of SHA-256("lethedb/v1/bucket" || profile id)`),
//!   stored wrapped under the wrap key in the `keys` column family.
//! * A **keyring** is one random 256-bit seed per profile plus a generation
//!   number, stored wrapped under the profile's bucket key.
//! * **Field keys** are derived from the seed, field id and generation
//!   (see [`super::kdf::FieldKeys`]); they are never stored.
//!
//! The later key-tree work inserts levels between the root and the bucket
//! keys; keyrings and profile records do not change.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

use super::aead;
use super::kdf::{self, FieldKeys};
use super::{random_key, MasterKey, SecretKey, KEY_LEN};
use crate::error::{Error, Result};
use crate::storage::columns::BucketKeys;
use crate::storage::format::{FormatVersion, WrappedKey, WRAPPED_LEN};
use crate::storage::{Batch, Store};
use crate::types::ProfileId;

/// Epoch of the root (wrap) key. Rotating the root arrives with the key tree.
pub(crate) const ROOT_EPOCH: u32 = 1;

/// Smallest and largest accepted `bucket_bits`.
pub(crate) const BUCKET_BITS_RANGE: std::ops::RangeInclusive<u8> = 1..=24;

struct BucketKey {
    version: u32,
    key: SecretKey,
}

/// An unwrapped profile keyring.
pub(crate) struct Keyring {
    pub(crate) generation: u32,
    seed: SecretKey,
}

impl Keyring {
    /// The raw seed (test hook for remanence scans only).
    pub(crate) fn seed_bytes(&self) -> &[u8] {
        self.seed.as_ref()
    }

    pub(crate) fn field_keys(&self) -> Result<FieldKeys> {
        FieldKeys::new(&self.seed, self.generation)
    }
}

pub(crate) struct KeyHierarchy {
    wrap_key: SecretKey,
    bucket_bits: u8,
    buckets: RwLock<HashMap<u32, Arc<BucketKey>>>,
    create_lock: Mutex<()>,
}

fn bucket_ad(bucket: u32, parent_version: u32, version: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(32);
    ad.extend_from_slice(b"lethedb/bucket");
    ad.push(FormatVersion::CURRENT as u8);
    ad.extend_from_slice(&bucket.to_be_bytes());
    ad.extend_from_slice(&parent_version.to_be_bytes());
    ad.extend_from_slice(&version.to_be_bytes());
    ad
}

fn keyring_ad(id: &ProfileId, bucket: u32, parent_version: u32, generation: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(48);
    ad.extend_from_slice(b"lethedb/keyring");
    ad.push(FormatVersion::CURRENT as u8);
    ad.extend_from_slice(id.as_bytes());
    ad.extend_from_slice(&bucket.to_be_bytes());
    ad.extend_from_slice(&parent_version.to_be_bytes());
    ad.extend_from_slice(&generation.to_be_bytes());
    ad
}

/// Associated data of a field entry: binds it to its profile, field name,
/// key generation, format version and whether it is sealed or plain.
pub(crate) fn field_ad(id: &ProfileId, generation: u32, field: &str, sealed: bool) -> Vec<u8> {
    let mut ad = Vec::with_capacity(40 + field.len());
    ad.extend_from_slice(b"lethedb/field");
    ad.push(FormatVersion::CURRENT as u8);
    ad.push(u8::from(sealed));
    ad.extend_from_slice(id.as_bytes());
    ad.extend_from_slice(&generation.to_be_bytes());
    ad.extend_from_slice(&u16::try_from(field.len()).unwrap_or(u16::MAX).to_be_bytes());
    ad.extend_from_slice(field.as_bytes());
    ad
}

fn wrap(
    kek: &SecretKey,
    ad: &[u8],
    secret: &SecretKey,
    parent_version: u32,
    version: u32,
) -> Result<WrappedKey> {
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    aead::seal_into(kek, ad, secret.as_ref(), &mut out)?;
    let sealed: [u8; WRAPPED_LEN] = out
        .try_into()
        .map_err(|_| Error::corrupt("wrapped key", "unexpected sealed length"))?;
    Ok(WrappedKey {
        parent_version,
        version,
        sealed,
    })
}

fn unwrap(kek: &SecretKey, ad: &[u8], w: &WrappedKey) -> Option<SecretKey> {
    let plain = aead::open(kek, ad, &w.sealed)?;
    let arr: [u8; KEY_LEN] = plain.as_slice().try_into().ok()?;
    Some(SecretKey::new(arr))
}

impl KeyHierarchy {
    pub(crate) fn new(master: &MasterKey, store_id: &[u8; 16], bucket_bits: u8) -> Result<Self> {
        if !BUCKET_BITS_RANGE.contains(&bucket_bits) {
            return Err(Error::corrupt(
                "store header",
                format!("bucket_bits {bucket_bits} out of range"),
            ));
        }
        Ok(KeyHierarchy {
            wrap_key: kdf::derive(master, store_id, kdf::LABEL_BUCKET_WRAP)?,
            bucket_bits,
            buckets: RwLock::new(HashMap::new()),
            create_lock: Mutex::new(()),
        })
    }

    pub(crate) fn bucket_of(&self, id: &ProfileId) -> u32 {
        let mut h = Sha256::new();
        h.update(b"lethedb/v1/bucket");
        h.update(id.as_bytes());
        let d = h.finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> (32 - u32::from(self.bucket_bits))
    }

    fn load_bucket(&self, store: &Store, bucket: u32) -> Result<Option<Arc<BucketKey>>> {
        if let Some(k) = self.buckets.read().get(&bucket) {
            return Ok(Some(Arc::clone(k)));
        }
        let Some(w) = store.get::<BucketKeys>(&bucket)? else {
            return Ok(None);
        };
        let key = unwrap(
            &self.wrap_key,
            &bucket_ad(bucket, w.parent_version, w.version),
            &w,
        )
        .ok_or_else(|| {
            Error::corrupt(
                "bucket key",
                format!("bucket {bucket} does not authenticate under the root key"),
            )
        })?;
        let k = Arc::new(BucketKey {
            version: w.version,
            key,
        });
        self.buckets.write().insert(bucket, Arc::clone(&k));
        Ok(Some(k))
    }

    /// Returns the bucket key, creating it if the bucket has none yet.
    /// Creation is its own atomic batch (a bucket key without keyrings is
    /// harmless); the mutex makes sure one bucket never gets two keys.
    fn bucket_key_or_create(&self, store: &Store, bucket: u32) -> Result<Arc<BucketKey>> {
        if let Some(k) = self.load_bucket(store, bucket)? {
            return Ok(k);
        }
        let _guard = self.create_lock.lock();
        if let Some(k) = self.load_bucket(store, bucket)? {
            return Ok(k);
        }
        let key = random_key()?;
        let version = 1;
        let w = wrap(
            &self.wrap_key,
            &bucket_ad(bucket, ROOT_EPOCH, version),
            &key,
            ROOT_EPOCH,
            version,
        )?;
        let mut batch = Batch::new();
        batch.put::<BucketKeys>(&bucket, &w);
        store.write(batch)?;
        let k = Arc::new(BucketKey { version, key });
        self.buckets.write().insert(bucket, Arc::clone(&k));
        Ok(k)
    }

    /// A fresh keyring for `id` (generation 1) and its wrapped form, which
    /// the caller puts into its own batch.
    pub(crate) fn new_keyring(
        &self,
        store: &Store,
        id: &ProfileId,
    ) -> Result<(Keyring, WrappedKey)> {
        self.keyring_with_generation(store, id, 1)
    }

    pub(crate) fn keyring_with_generation(
        &self,
        store: &Store,
        id: &ProfileId,
        generation: u32,
    ) -> Result<(Keyring, WrappedKey)> {
        let bucket = self.bucket_of(id);
        let bk = self.bucket_key_or_create(store, bucket)?;
        let seed = random_key()?;
        let w = wrap(
            &bk.key,
            &keyring_ad(id, bucket, bk.version, generation),
            &seed,
            bk.version,
            generation,
        )?;
        Ok((Keyring { generation, seed }, w))
    }

    /// Unwraps a stored keyring.
    pub(crate) fn open_keyring(
        &self,
        store: &Store,
        id: &ProfileId,
        w: &WrappedKey,
    ) -> Result<Keyring> {
        let bucket = self.bucket_of(id);
        let decrypt_err = || Error::Decrypt {
            profile: *id,
            what: "keyring".into(),
        };
        let bk = self.load_bucket(store, bucket)?.ok_or_else(decrypt_err)?;
        if bk.version != w.parent_version {
            return Err(decrypt_err());
        }
        let seed = unwrap(
            &bk.key,
            &keyring_ad(id, bucket, w.parent_version, w.version),
            w,
        )
        .ok_or_else(decrypt_err)?;
        Ok(Keyring {
            generation: w.version,
            seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_ad_separates_profiles_fields_and_generations() {
        let a = ProfileId::from_bytes([1; 16]);
        let b = ProfileId::from_bytes([2; 16]);
        assert_ne!(
            field_ad(&a, 1, "email", true),
            field_ad(&b, 1, "email", true)
        );
        assert_ne!(
            field_ad(&a, 1, "email", true),
            field_ad(&a, 2, "email", true)
        );
        assert_ne!(
            field_ad(&a, 1, "email", true),
            field_ad(&a, 1, "phone", true)
        );
        assert_ne!(
            field_ad(&a, 1, "email", true),
            field_ad(&a, 1, "email", false)
        );
        // Length prefix: ("ab","c") style ambiguities cannot collide.
        assert_ne!(field_ad(&a, 1, "e", true), field_ad(&a, 1, "e\0", true));
    }

    #[test]
    fn same_key_other_profile_or_field_fails_to_open() {
        // Even under one key, the associated data alone rejects a moved ciphertext.
        let a = ProfileId::from_bytes([1; 16]);
        let b = ProfileId::from_bytes([2; 16]);
        let key = SecretKey::new([5; 32]);
        let mut sealed = Vec::new();
        aead::seal_into(&key, &field_ad(&a, 1, "email", true), b"v", &mut sealed).unwrap();
        assert!(aead::open(&key, &field_ad(&a, 1, "email", true), &sealed).is_some());
        assert!(aead::open(&key, &field_ad(&b, 1, "email", true), &sealed).is_none());
        assert!(aead::open(&key, &field_ad(&a, 1, "phone", true), &sealed).is_none());
        assert!(aead::open(&key, &field_ad(&a, 2, "email", true), &sealed).is_none());
        assert!(aead::open(&key, &field_ad(&a, 1, "email", false), &sealed).is_none());
    }

    #[test]
    fn wrap_round_trip_and_ad_binding() {
        let kek = SecretKey::new([7; 32]);
        let secret = SecretKey::new([8; 32]);
        let w = wrap(&kek, b"ad", &secret, 1, 1).unwrap();
        assert_eq!(*unwrap(&kek, b"ad", &w).unwrap(), *secret);
        assert!(unwrap(&kek, b"other", &w).is_none());
        assert!(unwrap(&SecretKey::new([9; 32]), b"ad", &w).is_none());
    }
}
