//! The record seal of profile format v2: every personal field encrypted
//! under its own key with XChaCha20, the whole record authenticated once
//! with XChaCha20-Poly1305 (encrypt-then-MAC).
//!
//! Keys of one profile generation, from one KDF invocation:
//! `K_enc ‖ K_mac = HKDF-Expand(seed, "lethedb/v2/record-keys" ‖ generation, 64)`.
//!
//! A record write draws a fresh random 16-byte nonce `R`. Field `f` is
//! `XChaCha20(K_enc, R[0..12] ‖ f ‖ R[12..16] ‖ 0⁴)`: the first 16 nonce
//! bytes (`R[0..12] ‖ f`) go into HChaCha20, so each field of each write is
//! encrypted under its own subkey `K_f = HChaCha20(K_enc, R[0..12] ‖ f)`,
//! used for exactly one plaintext. The tag is XChaCha20-Poly1305 under
//! `K_mac` with nonce `R ‖ "lethedb2"`, empty plaintext and the record
//! (bound to its profile id) as associated data. docs/design.md, "Profile
//! record format v2", has the security argument and the limits.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::XChaCha20;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::key::{SecretKey, KEY_LEN};
use crate::error::{Error, Result};
use crate::random::os_random;

/// Bytes of the per-write record nonce.
pub(crate) const RECORD_NONCE_LEN: usize = 16;
/// Bytes of the record's authentication tag.
pub(crate) const RECORD_TAG_LEN: usize = 16;

const LABEL_RECORD_KEYS: &[u8] = b"lethedb/v2/record-keys";
const TAG_NONCE_SUFFIX: &[u8; 8] = b"lethedb2";
/// Prefix of the associated data the tag covers.
const TAG_AD_LABEL: &[u8] = b"lethedb/profile/v2";

/// The encryption and authentication keys of one profile generation.
pub(crate) struct RecordKeys {
    enc: SecretKey,
    mac: SecretKey,
}

impl RecordKeys {
    /// Both keys from one HKDF-Expand of the keyring seed.
    pub(crate) fn derive(seed: &SecretKey, generation: u32) -> Result<Self> {
        let hk = Hkdf::<Sha256>::from_prk(seed.as_ref())
            .map_err(|_| Error::Internal("keyring seed length".into()))?;
        let mut info = [0u8; LABEL_RECORD_KEYS.len() + 4];
        info[..LABEL_RECORD_KEYS.len()].copy_from_slice(LABEL_RECORD_KEYS);
        info[LABEL_RECORD_KEYS.len()..].copy_from_slice(&generation.to_be_bytes());
        let mut okm = Zeroizing::new([0u8; 2 * KEY_LEN]);
        hk.expand(&info, okm.as_mut())
            .map_err(|_| Error::Internal("HKDF output length".into()))?;
        let mut enc = SecretKey::new([0u8; KEY_LEN]);
        let mut mac = SecretKey::new([0u8; KEY_LEN]);
        enc.copy_from_slice(&okm[..KEY_LEN]);
        mac.copy_from_slice(&okm[KEY_LEN..]);
        Ok(RecordKeys { enc, mac })
    }

    /// Encrypts (or decrypts: the stream cipher is its own inverse) field
    /// `field_id` of the record written with `nonce`, in place.
    pub(crate) fn apply_field(
        &self,
        nonce: &[u8; RECORD_NONCE_LEN],
        field_id: u32,
        buf: &mut [u8],
    ) {
        let mut n = [0u8; 24];
        n[..12].copy_from_slice(&nonce[..12]);
        n[12..16].copy_from_slice(&field_id.to_be_bytes());
        n[16..20].copy_from_slice(&nonce[12..]);
        let mut c = XChaCha20::new(self.enc.as_ref().into(), (&n).into());
        c.apply_keystream(buf);
    }

    /// The MAC cipher, its nonce `R ‖ "lethedb2"` and the associated data
    /// `"lethedb/profile/v2" ‖ id ‖ body`.
    fn tag_inputs(
        &self,
        nonce: &[u8; RECORD_NONCE_LEN],
        id: &[u8; 16],
        body: &[u8],
    ) -> (XChaCha20Poly1305, [u8; 24], Vec<u8>) {
        let cipher = XChaCha20Poly1305::new(self.mac.as_ref().into());
        let mut n = [0u8; 24];
        n[..16].copy_from_slice(nonce);
        n[16..].copy_from_slice(TAG_NONCE_SUFFIX);
        let mut ad = Vec::with_capacity(TAG_AD_LABEL.len() + 16 + body.len());
        ad.extend_from_slice(TAG_AD_LABEL);
        ad.extend_from_slice(id);
        ad.extend_from_slice(body);
        (cipher, n, ad)
    }

    /// The tag over `body` (the encoded record up to the tag) of profile `id`.
    pub(crate) fn tag(
        &self,
        nonce: &[u8; RECORD_NONCE_LEN],
        id: &[u8; 16],
        body: &[u8],
    ) -> Result<[u8; RECORD_TAG_LEN]> {
        let (cipher, n, ad) = self.tag_inputs(nonce, id, body);
        let tag = cipher
            .encrypt_in_place_detached((&n).into(), &ad, &mut [])
            .map_err(|_| Error::Internal("record too large to authenticate".into()))?;
        Ok(tag.into())
    }

    /// Whether `tag` authenticates `body` of profile `id` (constant time).
    pub(crate) fn verify(
        &self,
        nonce: &[u8; RECORD_NONCE_LEN],
        id: &[u8; 16],
        body: &[u8],
        tag: &[u8; RECORD_TAG_LEN],
    ) -> bool {
        let (cipher, n, ad) = self.tag_inputs(nonce, id, body);
        cipher
            .decrypt_in_place_detached((&n).into(), &ad, &mut [], tag.into())
            .is_ok()
    }
}

/// A fresh record nonce from the OS random number generator.
pub(crate) fn record_nonce() -> Result<[u8; RECORD_NONCE_LEN]> {
    let mut n = [0u8; RECORD_NONCE_LEN];
    os_random(&mut n)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8, generation: u32) -> RecordKeys {
        RecordKeys::derive(&SecretKey::new([seed; 32]), generation).unwrap()
    }

    #[test]
    fn fields_round_trip_and_differ_by_field_nonce_generation_and_seed() {
        let k = keys(1, 1);
        let n = [7u8; 16];
        let plain = b"alice@example.com".to_vec();
        let mut a = plain.clone();
        k.apply_field(&n, 3, &mut a);
        assert_ne!(a, plain);
        let mut back = a.clone();
        k.apply_field(&n, 3, &mut back);
        assert_eq!(back, plain);
        for (other, what) in [
            (
                {
                    let mut b = plain.clone();
                    k.apply_field(&n, 4, &mut b);
                    b
                },
                "field",
            ),
            (
                {
                    let mut b = plain.clone();
                    k.apply_field(&[8u8; 16], 3, &mut b);
                    b
                },
                "nonce",
            ),
            (
                {
                    let mut b = plain.clone();
                    keys(1, 2).apply_field(&n, 3, &mut b);
                    b
                },
                "generation",
            ),
            (
                {
                    let mut b = plain.clone();
                    keys(2, 1).apply_field(&n, 3, &mut b);
                    b
                },
                "seed",
            ),
        ] {
            assert_ne!(other, a, "{what} must change the keystream");
        }
    }

    #[test]
    fn the_tag_binds_body_id_nonce_and_key() {
        let k = keys(1, 1);
        let (n, id, body) = ([7u8; 16], [9u8; 16], b"header and fields".to_vec());
        let t = k.tag(&n, &id, &body).unwrap();
        assert!(k.verify(&n, &id, &body, &t));
        assert!(!k.verify(&n, &[8u8; 16], &body, &t));
        assert!(!k.verify(&[6u8; 16], &id, &body, &t));
        assert!(!keys(1, 2).verify(&n, &id, &body, &t));
        for i in 0..body.len() {
            let mut b = body.clone();
            b[i] ^= 1;
            assert!(!k.verify(&n, &id, &b, &t), "flip at {i}");
        }
        for i in 0..t.len() {
            let mut bad = t;
            bad[i] ^= 0x80;
            assert!(!k.verify(&n, &id, &body, &bad));
        }
    }
}
