//! Crypto primitives: master key providers, key derivation, AEAD sealing
//! and the symmetric key type. The key tree built from them is
//! [`crate::keytree`].
//!
//! Primitives come from RustCrypto crates: AES-256-GCM (`aes-gcm`),
//! HKDF-SHA-256 (`hkdf`), HMAC-SHA-256 (`hmac`). Key bytes live in
//! `Zeroizing` buffers and are wiped on drop.
//!
//! This file only declares and re-exports; the children import one another
//! directly (`super::key`, `super::kdf`), so no child depends on it.

pub(crate) mod aead;
pub(crate) mod entry_mac;
pub(crate) mod kdf;
pub(crate) mod key;
pub(crate) mod keyset;
pub(crate) mod provider;
pub(crate) mod record;

pub use provider::{EnvKeyProvider, FileKeyProvider, KeyProvider, MasterKey, MemoryKeyProvider};

pub(crate) use key::{random_key, SecretKey, KEY_LEN};
