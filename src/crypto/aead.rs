//! AES-256-GCM sealing with random 96-bit nonces.
//!
//! Sealed layout: `nonce (12) || ciphertext (len of plaintext) || tag (16)`.
//! Nonces come from a CSPRNG seeded by the OS (`rand::thread_rng`). Every
//! key here encrypts few messages (one field of one profile per generation),
//! far below the 2^32 random-nonce limit for GCM.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use rand::RngCore;
use zeroize::Zeroizing;

use super::key::KEY_LEN;
use crate::error::{Error, Result};

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(key))
}

/// Appends `nonce || ciphertext || tag` of `plaintext` to `out`.
pub(crate) fn seal_into(
    key: &[u8; KEY_LEN],
    ad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let start = out.len();
    out.reserve(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher(key)
        .encrypt_in_place_detached(
            aes_gcm::Nonce::from_slice(&nonce),
            ad,
            &mut out[start + NONCE_LEN..],
        )
        .map_err(|_| Error::InvalidInput("value too large to seal".into()))?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Opens a sealed value; `None` when authentication fails for any reason
/// (wrong key, altered bytes, different associated data, too short).
pub(crate) fn open(key: &[u8; KEY_LEN], ad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = Zeroizing::new(ct.to_vec());
    cipher(key)
        .decrypt_in_place_detached(
            aes_gcm::Nonce::from_slice(nonce),
            ad,
            &mut buf,
            aes_gcm::Tag::from_slice(tag),
        )
        .ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let k = [3u8; 32];
        let mut sealed = Vec::new();
        seal_into(&k, b"ad-1", b"hello", &mut sealed).unwrap();
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(open(&k, b"ad-1", &sealed).unwrap().as_slice(), b"hello");
        assert!(
            open(&k, b"ad-2", &sealed).is_none(),
            "other associated data must fail"
        );
        assert!(
            open(&[4u8; 32], b"ad-1", &sealed).is_none(),
            "other key must fail"
        );
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(open(&k, b"ad-1", &t).is_none(), "flip at {i} must fail");
        }
        assert!(open(&k, b"ad-1", &sealed[..OVERHEAD - 1]).is_none());
    }

    #[test]
    fn nonces_differ() {
        let k = [3u8; 32];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        seal_into(&k, b"", b"same", &mut a).unwrap();
        seal_into(&k, b"", b"same", &mut b).unwrap();
        assert_ne!(a, b);
    }
}
