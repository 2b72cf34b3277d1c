//! Crypto layer: master key providers, key derivation, AEAD sealing and the
//! key tree (root → inner nodes → bucket keys → per-profile keyring → field keys).
//!
//! Primitives come from RustCrypto crates: AES-256-GCM (`aes-gcm`),
//! HKDF-SHA-256 (`hkdf`), HMAC-SHA-256 (`hmac`). Key bytes live in
//! `Zeroizing` buffers and are wiped on drop.

pub(crate) mod aead;
pub(crate) mod hierarchy;
pub(crate) mod kdf;
mod provider;
pub(crate) mod root;

pub use hierarchy::{KeyTreeStatus, RotationStep};
pub use provider::{EnvKeyProvider, FileKeyProvider, KeyProvider, MasterKey, MemoryKeyProvider};
pub use root::{FileRootKeyStore, MemoryRootKeyStore, RootKeyStore};

use crate::error::Result;

/// Length of every symmetric key in the hierarchy.
pub(crate) const KEY_LEN: usize = 32;

/// A 256-bit secret that is wiped from memory when dropped.
pub(crate) type SecretKey = zeroize::Zeroizing<[u8; KEY_LEN]>;

pub(crate) use crate::random::os_random;

/// A fresh random key from the OS random number generator.
pub(crate) fn random_key() -> Result<SecretKey> {
    let mut k = SecretKey::new([0u8; KEY_LEN]);
    os_random(k.as_mut())?;
    Ok(k)
}
