//! Key wrapping in the tree: the unwrapped node key and keyring types,
//! the associated data that binds each wrapped key to its place (node,
//! keyring, field, root), and sealing and loading of roots.

use std::sync::Arc;

use super::custody::{RootKeyDevice, RootKeys};
use crate::crypto::aead;
use crate::crypto::kdf::FieldKeys;
use crate::crypto::{random_key, SecretKey, KEY_LEN};
use crate::error::{Error, Result};
use crate::storage::records::{FormatVersion, WrappedKey, WRAPPED_LEN};
use crate::types::ProfileId;

#[derive(Clone)]
pub(super) struct NodeKey {
    pub(super) version: u32,
    pub(super) key: SecretKey,
}

/// An unwrapped profile keyring.
pub(crate) struct Keyring {
    pub(crate) generation: u32,
    pub(super) seed: SecretKey,
    /// The v2 record keys, derived on first use: a write derives once for
    /// opening the record and sealing it again.
    pub(super) record_keys: std::sync::OnceLock<crate::crypto::record::RecordKeys>,
}

impl Keyring {
    pub(super) fn new(generation: u32, seed: SecretKey) -> Self {
        Keyring {
            generation,
            seed,
            record_keys: std::sync::OnceLock::new(),
        }
    }
}

impl Keyring {
    /// The raw seed (test hook for remanence scans only).
    #[cfg(feature = "testkit")]
    pub(crate) fn seed_bytes(&self) -> &[u8] {
        self.seed.as_ref()
    }

    /// The v1 per-field keys (opening v1 records and merge records'
    /// displaced values).
    pub(crate) fn field_keys(&self) -> Result<FieldKeys> {
        FieldKeys::new(&self.seed, self.generation)
    }

    /// The v2 record keys: one HKDF-Expand for every field of the record,
    /// derived once per unwrapped keyring.
    pub(crate) fn record_keys(&self) -> Result<&crate::crypto::record::RecordKeys> {
        if self.record_keys.get().is_none() {
            let keys = crate::crypto::record::RecordKeys::derive(&self.seed, self.generation)?;
            let _ = self.record_keys.set(keys);
        }
        self.record_keys
            .get()
            .ok_or_else(|| Error::Internal("record keys".into()))
    }
}

pub(super) fn node_ad(level: u8, index: u32, parent_version: u32, version: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(32);
    ad.extend_from_slice(b"lethedb/node");
    ad.push(FormatVersion::CURRENT as u8);
    ad.push(level);
    ad.extend_from_slice(&index.to_be_bytes());
    ad.extend_from_slice(&parent_version.to_be_bytes());
    ad.extend_from_slice(&version.to_be_bytes());
    ad
}

pub(super) fn root_ad(store_id: &[u8; 16], epoch: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(40);
    ad.extend_from_slice(b"lethedb/root");
    ad.push(FormatVersion::CURRENT as u8);
    ad.extend_from_slice(store_id);
    ad.extend_from_slice(&epoch.to_be_bytes());
    ad
}

pub(super) fn keyring_ad(
    id: &ProfileId,
    bucket: u32,
    parent_version: u32,
    generation: u32,
) -> Vec<u8> {
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

pub(super) fn wrap(
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

pub(super) fn unwrap(kek: &SecretKey, ad: &[u8], w: &WrappedKey) -> Option<SecretKey> {
    let plain = aead::open(kek, ad, &w.sealed)?;
    let arr: [u8; KEY_LEN] = plain.as_slice().try_into().ok()?;
    Some(SecretKey::new(arr))
}

/// A key that wraps tree nodes: a node key (or a root unsealed from a
/// [`crate::RootKeyStore`]) in memory, or a root inside a device.
#[derive(Clone)]
pub(super) enum Kek {
    Key(NodeKey),
    Device {
        version: u32,
        store_id: [u8; 16],
        device: Arc<dyn RootKeyDevice>,
    },
}

impl Kek {
    pub(super) fn version(&self) -> u32 {
        match self {
            Kek::Key(k) => k.version,
            Kek::Device { version, .. } => *version,
        }
    }

    /// Wraps `secret` (of key version `version`) under this key.
    pub(super) fn wrap(&self, ad: &[u8], secret: &SecretKey, version: u32) -> Result<WrappedKey> {
        match self {
            Kek::Key(k) => wrap(&k.key, ad, secret, k.version, version),
            Kek::Device {
                version: epoch,
                store_id,
                device,
            } => Ok(WrappedKey {
                parent_version: *epoch,
                version,
                sealed: device.wrap(store_id, *epoch, ad, secret)?,
            }),
        }
    }

    /// Unwraps `w`; `None` when it does not authenticate.
    pub(super) fn unwrap(&self, ad: &[u8], w: &WrappedKey) -> Result<Option<SecretKey>> {
        match self {
            Kek::Key(k) => Ok(unwrap(&k.key, ad, w)),
            Kek::Device {
                version: epoch,
                store_id,
                device,
            } => device.unwrap(store_id, *epoch, ad, &w.sealed),
        }
    }
}

/// A fresh root of `epoch`, stored durably: random and sealed into a
/// root key store, or generated inside a device.
pub(super) fn store_new_root(
    wrap_key: &SecretKey,
    store_id: &[u8; 16],
    roots: &RootKeys,
    epoch: u32,
) -> Result<Kek> {
    match roots {
        RootKeys::Sealed(s) => {
            let key = random_key()?;
            s.put(epoch, &seal_root(wrap_key, store_id, epoch, &key)?)?;
            Ok(Kek::Key(NodeKey {
                version: epoch,
                key,
            }))
        }
        RootKeys::Device(d) => {
            d.generate(store_id, epoch)?;
            Ok(Kek::Device {
                version: epoch,
                store_id: *store_id,
                device: Arc::clone(d),
            })
        }
    }
}

/// Fails unless `roots` holds no version for `store_id` (`whom`: who needs
/// it empty).
pub(crate) fn require_empty(roots: &RootKeys, store_id: &[u8; 16], whom: &str) -> Result<()> {
    match roots.epochs(store_id)?.first() {
        Some(&epoch) => Err(Error::RootKey {
            epoch,
            reason: format!(
                "{} already holds root keys; {whom} needs an empty root key store",
                roots.describe()
            ),
        }),
        None => Ok(()),
    }
}

pub(super) fn seal_root(
    wrap_key: &SecretKey,
    store_id: &[u8; 16],
    epoch: u32,
    root: &SecretKey,
) -> Result<Vec<u8>> {
    let mut out = vec![FormatVersion::CURRENT as u8];
    aead::seal_into(wrap_key, &root_ad(store_id, epoch), root.as_ref(), &mut out)?;
    Ok(out)
}

/// The root of `epoch`: unsealed from a root key store, or a handle on
/// the device's key.
pub(super) fn load_root(
    wrap_key: &SecretKey,
    store_id: &[u8; 16],
    roots: &RootKeys,
    epoch: u32,
) -> Result<Kek> {
    let missing = || -> Result<Error> {
        Ok(Error::RootKey {
            epoch,
            reason: format!(
                "not held by the root key store ({}; holds {:?}): it was destroyed by a purge, or this is not the store's root key store",
                roots.describe(),
                roots.epochs(store_id)?
            ),
        })
    };
    let s = match roots {
        RootKeys::Device(d) => {
            if !d.epochs(store_id)?.contains(&epoch) {
                return Err(missing()?);
            }
            return Ok(Kek::Device {
                version: epoch,
                store_id: *store_id,
                device: Arc::clone(d),
            });
        }
        RootKeys::Sealed(s) => s,
    };
    let Some(sealed) = s.get(epoch)? else {
        return Err(missing()?);
    };
    match sealed.split_first() {
        Some((&v, _)) if v != FormatVersion::CURRENT as u8 => Err(Error::UnsupportedFormat {
            what: "sealed root key",
            version: v,
            supported: FormatVersion::CURRENT as u8,
        }),
        Some((_, body)) => {
            let plain = aead::open(wrap_key, &root_ad(store_id, epoch), body).ok_or_else(|| {
                Error::RootKey {
                    epoch,
                    reason: "does not authenticate under this store's master key (another store's root key store?)".into(),
                }
            })?;
            let arr: [u8; KEY_LEN] = plain
                .as_slice()
                .try_into()
                .map_err(|_| Error::corrupt("sealed root key", "wrong length"))?;
            Ok(Kek::Key(NodeKey {
                version: epoch,
                key: SecretKey::new(arr),
            }))
        }
        None => Err(Error::corrupt("sealed root key", "empty")),
    }
}

pub(super) fn unwrap_node(
    parent: &Kek,
    level: u8,
    index: u32,
    w: &WrappedKey,
) -> Result<SecretKey> {
    if w.parent_version != parent.version() {
        return Err(Error::corrupt(
            "key tree",
            format!(
                "node ({level}, {index}) is wrapped under parent version {}, the parent is at {}",
                w.parent_version,
                parent.version()
            ),
        ));
    }
    parent
        .unwrap(&node_ad(level, index, w.parent_version, w.version), w)?
        .ok_or_else(|| {
            Error::corrupt(
                "key tree",
                format!("node ({level}, {index}) does not authenticate under its parent"),
            )
        })
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
