//! Key derivation: HKDF-SHA-256 subkeys of the master key, the key check
//! value, and per-field keys derived from a profile's keyring seed.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::{SecretKey, KEY_LEN};
use super::provider::MasterKey;
use crate::error::{Error, Result};

/// HKDF `info` labels. Each subkey has its own label (domain separation).
pub(crate) const LABEL_KEY_CHECK: &str = "lethedb/v1/key-check";
pub(crate) const LABEL_ROOT_WRAP: &str = "lethedb/v1/root-wrap";
pub(crate) const LABEL_BLIND_INDEX: &str = "lethedb/v1/blind-index";
pub(crate) const LABEL_SUPPRESSION: &str = "lethedb/v1/suppression";
pub(crate) const LABEL_SUBJECT_REF: &str = "lethedb/v1/subject-ref";
pub(crate) const LABEL_SIGNING_WRAP: &str = "lethedb/v1/signing-wrap";
pub(crate) const LABEL_LEDGER_MAC: &str = "lethedb/v1/ledger-mac";
pub(crate) const LABEL_LEDGER_SEAL: &str = "lethedb/v1/ledger-seal";
pub(crate) const LABEL_TOMBSTONE: &str = "lethedb/v1/tombstone";
pub(crate) const LABEL_AUDIT_SEAL: &str = "lethedb/v1/audit-seal";
const LABEL_FIELD: &[u8] = b"lethedb/v1/field-key";
const KEY_CHECK_MESSAGE: &[u8] = b"lethedb key check value v1";

/// Derives a 256-bit subkey of the master key for this store.
/// The store id is the HKDF salt, so one master key gives unrelated subkeys
/// in different stores.
pub(crate) fn derive(master: &MasterKey, store_id: &[u8; 16], label: &str) -> Result<SecretKey> {
    let hk = Hkdf::<Sha256>::new(Some(store_id), master.bytes());
    let mut out = SecretKey::new([0u8; KEY_LEN]);
    hk.expand(label.as_bytes(), out.as_mut())
        .map_err(|_| Error::Internal("HKDF output length".into()))?;
    Ok(out)
}

fn key_check_mac(master: &MasterKey, store_id: &[u8; 16]) -> Result<Hmac<Sha256>> {
    let k = derive(master, store_id, LABEL_KEY_CHECK)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_ref())
        .map_err(|_| Error::Internal("HMAC key length".into()))?;
    mac.update(KEY_CHECK_MESSAGE);
    Ok(mac)
}

/// The key check value stored in the store header: HMAC-SHA-256 under a
/// dedicated subkey. It reveals nothing about the master key.
pub(crate) fn key_check_value(master: &MasterKey, store_id: &[u8; 16]) -> Result<[u8; 32]> {
    Ok(key_check_mac(master, store_id)?
        .finalize()
        .into_bytes()
        .into())
}

/// Constant-time comparison of the stored key check value with the master key's.
pub(crate) fn key_check_matches(
    master: &MasterKey,
    store_id: &[u8; 16],
    stored: &[u8; 32],
) -> Result<bool> {
    Ok(key_check_mac(master, store_id)?
        .verify_slice(stored)
        .is_ok())
}

/// Derives field keys from a profile keyring seed: `HKDF-Expand(seed,
/// "lethedb/v1/field-key" || field_id || generation)`. Built once per
/// operation so the HMAC key schedule is computed once per profile.
pub(crate) struct FieldKeys {
    hk: Hkdf<Sha256>,
    generation: u32,
}

impl FieldKeys {
    pub(crate) fn new(seed: &SecretKey, generation: u32) -> Result<Self> {
        let hk = Hkdf::<Sha256>::from_prk(seed.as_ref())
            .map_err(|_| Error::Internal("keyring seed length".into()))?;
        Ok(FieldKeys { hk, generation })
    }

    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    pub(crate) fn key(&self, field_id: u32) -> Result<SecretKey> {
        let mut info = [0u8; LABEL_FIELD.len() + 8];
        info[..LABEL_FIELD.len()].copy_from_slice(LABEL_FIELD);
        info[LABEL_FIELD.len()..LABEL_FIELD.len() + 4].copy_from_slice(&field_id.to_be_bytes());
        info[LABEL_FIELD.len() + 4..].copy_from_slice(&self.generation.to_be_bytes());
        let mut out = SecretKey::new([0u8; KEY_LEN]);
        self.hk
            .expand(&info, out.as_mut())
            .map_err(|_| Error::Internal("HKDF output length".into()))?;
        Ok(out)
    }
}

/// HMAC-SHA-256 of `parts` (concatenated) under `key`.
pub(crate) fn mac32(key: &SecretKey, parts: &[&[u8]]) -> Result<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref())
        .map_err(|_| Error::Internal("HMAC key length".into()))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// HMAC-SHA-256 of `parts` under `key`, truncated to 128 bits.
pub(crate) fn mac16(key: &SecretKey, parts: &[&[u8]]) -> Result<[u8; 16]> {
    let full = mac32(key, parts)?;
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_are_separated_by_label_store_and_master() {
        let m1 = MasterKey::from_bytes([1; 32]);
        let m2 = MasterKey::from_bytes([2; 32]);
        let a = derive(&m1, &[0; 16], LABEL_KEY_CHECK).unwrap();
        assert_ne!(*a, *derive(&m1, &[0; 16], LABEL_ROOT_WRAP).unwrap());
        assert_ne!(*a, *derive(&m1, &[1; 16], LABEL_KEY_CHECK).unwrap());
        assert_ne!(*a, *derive(&m2, &[0; 16], LABEL_KEY_CHECK).unwrap());
    }

    #[test]
    fn key_check_accepts_only_the_right_key() {
        let m1 = MasterKey::from_bytes([1; 32]);
        let m2 = MasterKey::from_bytes([2; 32]);
        let kcv = key_check_value(&m1, &[7; 16]).unwrap();
        assert!(key_check_matches(&m1, &[7; 16], &kcv).unwrap());
        assert!(!key_check_matches(&m2, &[7; 16], &kcv).unwrap());
    }

    #[test]
    fn field_keys_differ_by_field_and_generation() {
        let seed = SecretKey::new([9; 32]);
        let g1 = FieldKeys::new(&seed, 1).unwrap();
        let g2 = FieldKeys::new(&seed, 2).unwrap();
        assert_ne!(*g1.key(1).unwrap(), *g1.key(2).unwrap());
        assert_ne!(*g1.key(1).unwrap(), *g2.key(1).unwrap());
        assert_eq!(
            *g1.key(1).unwrap(),
            *FieldKeys::new(&seed, 1).unwrap().key(1).unwrap()
        );
    }
}
