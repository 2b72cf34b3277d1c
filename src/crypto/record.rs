//! The record seal of profile format v2: every personal field encrypted
//! under its own key stream, the whole record authenticated once with
//! AES-256-GCM over an empty plaintext (GMAC; encrypt-then-MAC).
//!
//! Keys of one profile generation, from one HKDF invocation:
//! `K_enc ‖ K_mac = HKDF-Expand(seed, "lethedb/v2/record-keys" ‖ generation, 64)`.
//!
//! A record write draws a fresh random 16-byte nonce `R`. Every field key of
//! that write comes from one keystream, `S = AES-256-CTR(K_enc, IV = R)`:
//! field `f`'s key is the segment `S[2^20·f .. 2^20·(f + 1))` (1 MiB, the
//! largest value), a one-time pad the field's value is XORed with. The
//! segments are disjoint, so no two fields share key bytes, and `R` is
//! fresh per write, so no key encrypts twice; a read generates only the
//! segments of the fields it returns, and there is no key schedule per
//! field. The tag is AES-256-GCM under `K_mac` with nonce
//! `R[0..12]`, empty plaintext and `"lethedb/profile/v2" ‖ profile id ‖
//! body` as associated data. docs/design.md, "Profile record format v2",
//! has the security argument and the limits.

use aes::cipher::{StreamCipher, StreamCipherSeek};
use aes::Aes256Enc;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{AesGcm, KeyInit};
use ctr::cipher::InnerIvInit;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::key::{SecretKey, KEY_LEN};
use crate::error::{Error, Result};
use crate::random::os_random;

type Ctr = ctr::Ctr128BE<Aes256Enc>;
/// AES-256-GCM over the encryption-only key schedule (a MAC never decrypts).
type Gmac = AesGcm<Aes256Enc, aes_gcm::aead::consts::U12>;

/// Bytes of key stream each field owns: the largest encoded value (1 MiB).
pub(crate) const FIELD_SEGMENT: usize = 1 << 20;

/// Bytes of the per-write record nonce.
pub(crate) const RECORD_NONCE_LEN: usize = 16;
/// Bytes of the record's authentication tag.
pub(crate) const RECORD_TAG_LEN: usize = 16;

const LABEL_RECORD_KEYS: &[u8] = b"lethedb/v2/record-keys";
/// Prefix of the associated data the tag covers.
const TAG_AD_LABEL: &[u8] = b"lethedb/profile/v2";

/// The encryption and authentication keys of one profile generation, with
/// their AES key schedules computed once.
pub(crate) struct RecordKeys {
    enc: Aes256Enc,
    mac: Gmac,
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
        Ok(RecordKeys {
            enc: Aes256Enc::new_from_slice(&okm[..KEY_LEN])
                .map_err(|_| Error::Internal("AES key length".into()))?,
            mac: Gmac::new_from_slice(&okm[KEY_LEN..])
                .map_err(|_| Error::Internal("AES key length".into()))?,
        })
    }

    /// Encrypts (or decrypts: XOR with the key stream is its own inverse)
    /// field `field_id` of the record written with `nonce`, in place.
    /// Values are at most [`FIELD_SEGMENT`] bytes (the codec's bound).
    pub(crate) fn apply_field(
        &self,
        nonce: &[u8; RECORD_NONCE_LEN],
        field_id: u32,
        buf: &mut [u8],
    ) -> Result<()> {
        if buf.len() > FIELD_SEGMENT {
            return Err(Error::RecordTooLarge {
                what: "field value",
                bytes: buf.len() as u64,
                limit: FIELD_SEGMENT as u64,
            });
        }
        let mut s = Ctr::from_core(ctr::CtrCore::inner_iv_init(self.enc.clone(), nonce.into()));
        s.seek(u64::from(field_id) * FIELD_SEGMENT as u64);
        s.apply_keystream(buf);
        Ok(())
    }

    fn ad(id: &[u8; 16], body: &[u8]) -> Vec<u8> {
        let mut ad = Vec::with_capacity(TAG_AD_LABEL.len() + 16 + body.len());
        ad.extend_from_slice(TAG_AD_LABEL);
        ad.extend_from_slice(id);
        ad.extend_from_slice(body);
        ad
    }

    /// The tag over `body` (the encoded record up to the tag) of profile `id`.
    pub(crate) fn tag(
        &self,
        nonce: &[u8; RECORD_NONCE_LEN],
        id: &[u8; 16],
        body: &[u8],
    ) -> Result<[u8; RECORD_TAG_LEN]> {
        let tag = self
            .mac
            .encrypt_in_place_detached((&nonce[..12]).into(), &Self::ad(id, body), &mut [])
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
        self.mac
            .decrypt_in_place_detached(
                (&nonce[..12]).into(),
                &Self::ad(id, body),
                &mut [],
                tag.into(),
            )
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
        k.apply_field(&n, 3, &mut a).unwrap();
        assert_ne!(a, plain);
        let mut back = a.clone();
        k.apply_field(&n, 3, &mut back).unwrap();
        assert_eq!(back, plain);
        for (other, what) in [
            (
                {
                    let mut b = plain.clone();
                    k.apply_field(&n, 4, &mut b).unwrap();
                    b
                },
                "field",
            ),
            (
                {
                    let mut b = plain.clone();
                    k.apply_field(&[8u8; 16], 3, &mut b).unwrap();
                    b
                },
                "nonce",
            ),
            (
                {
                    let mut b = plain.clone();
                    keys(1, 2).apply_field(&n, 3, &mut b).unwrap();
                    b
                },
                "generation",
            ),
            (
                {
                    let mut b = plain.clone();
                    keys(2, 1).apply_field(&n, 3, &mut b).unwrap();
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

    #[test]
    fn field_segments_are_disjoint_and_bounded() {
        let k = keys(1, 1);
        let n = [7u8; 16];
        // The last block of field 3's segment and the first of field 4's
        // are different key stream bytes (no overlap at the boundary).
        let mut a = vec![0u8; FIELD_SEGMENT];
        k.apply_field(&n, 3, &mut a).unwrap();
        let mut b = vec![0u8; 16];
        k.apply_field(&n, 4, &mut b).unwrap();
        assert_ne!(&a[FIELD_SEGMENT - 16..], &b[..]);
        assert_ne!(&a[..16], &b[..]);
        let mut too_long = vec![0u8; FIELD_SEGMENT + 1];
        assert!(k.apply_field(&n, 3, &mut too_long).is_err());
        assert!(
            too_long.iter().all(|&x| x == 0),
            "nothing written on refusal"
        );
    }
}
