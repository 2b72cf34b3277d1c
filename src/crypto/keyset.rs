//! The store's key set: keys whose outputs the store keeps and could not
//! recompute under another master key — blind-index roots (identifier
//! index entries, consent purpose tags), the suppression key (buckets of
//! forgotten identifiers), the subject-reference key (audit entries,
//! certificates) and the tombstone key (ids of erased profiles, which are
//! gone). A master-key rotation re-wraps them; it cannot re-derive them.
//!
//! A store made before the key set derives them from the master key
//! (`KeySet::legacy`, what every earlier build did); its first master-key
//! rotation stores that set, wrapped, so the same keys live on under the
//! new master key. A store created now stores a set of its own random
//! keys from the start. Layout of the sealed record: docs/design.md, "Key
//! set".

use super::aead;
use super::kdf::{self, derive};
use super::key::{random_key, SecretKey, KEY_LEN};
use super::provider::MasterKey;
use crate::error::{Error, Result};

/// HKDF label of the key that wraps the key set.
pub(crate) const LABEL_KEY_SET_WRAP: &str = "lethedb/v1/key-set-wrap";
const FORMAT: u8 = 1;
const FLAG_PREVIOUS: u8 = 1;
const FLAG_CURSOR: u8 = 2;

/// See the module documentation.
pub(crate) struct KeySet {
    /// Root of the consent purpose tags (`$purpose`).
    pub(crate) purpose: SecretKey,
    /// Root of the identifier index, of generation `identity_generation`.
    pub(crate) identity: SecretKey,
    pub(crate) identity_generation: u32,
    /// During a blind-index rotation: the root being replaced, and the
    /// profile id below which every profile is re-indexed.
    pub(crate) previous_identity: Option<SecretKey>,
    pub(crate) cursor: Option<[u8; 16]>,
    pub(crate) suppression: SecretKey,
    pub(crate) subject_ref: SecretKey,
    pub(crate) tombstone: SecretKey,
}

fn ad(store_id: &[u8; 16]) -> Vec<u8> {
    let mut ad = b"lethedb/key-set/v1".to_vec();
    ad.extend_from_slice(store_id);
    ad
}

impl KeySet {
    fn first(
        blind: SecretKey,
        suppression: SecretKey,
        subject_ref: SecretKey,
        tombstone: SecretKey,
    ) -> Self {
        KeySet {
            purpose: blind.clone(),
            identity: blind,
            identity_generation: 1,
            previous_identity: None,
            cursor: None,
            suppression,
            subject_ref,
            tombstone,
        }
    }

    /// The keys every build before the key set derived from the master key.
    pub(crate) fn legacy(master: &MasterKey, store_id: &[u8; 16]) -> Result<Self> {
        Ok(Self::first(
            derive(master, store_id, kdf::LABEL_BLIND_INDEX)?,
            derive(master, store_id, kdf::LABEL_SUPPRESSION)?,
            derive(master, store_id, kdf::LABEL_SUBJECT_REF)?,
            derive(master, store_id, kdf::LABEL_TOMBSTONE)?,
        ))
    }

    /// Fresh random keys (a new store).
    pub(crate) fn random() -> Result<Self> {
        Ok(Self::first(
            random_key()?,
            random_key()?,
            random_key()?,
            random_key()?,
        ))
    }

    /// The sealed record: `format (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`
    /// under HKDF(master, store id, `lethedb/v1/key-set-wrap`).
    pub(crate) fn seal(&self, master: &MasterKey, store_id: &[u8; 16]) -> Result<Vec<u8>> {
        let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(256));
        for k in [
            &self.purpose,
            &self.suppression,
            &self.subject_ref,
            &self.tombstone,
        ] {
            plain.extend_from_slice(k.as_ref());
        }
        plain.extend_from_slice(&self.identity_generation.to_be_bytes());
        plain.extend_from_slice(self.identity.as_ref());
        let flags = if self.previous_identity.is_some() {
            FLAG_PREVIOUS
        } else {
            0
        } | if self.cursor.is_some() {
            FLAG_CURSOR
        } else {
            0
        };
        plain.push(flags);
        if let Some(p) = &self.previous_identity {
            plain.extend_from_slice(p.as_ref());
        }
        if let Some(c) = &self.cursor {
            plain.extend_from_slice(c);
        }
        let wrap = derive(master, store_id, LABEL_KEY_SET_WRAP)?;
        let mut out = vec![FORMAT];
        aead::seal_into(&wrap, &ad(store_id), &plain, &mut out)?;
        Ok(out)
    }

    /// Opens a sealed record; a typed error when it does not authenticate
    /// under `master` or does not parse.
    pub(crate) fn open(master: &MasterKey, store_id: &[u8; 16], sealed: &[u8]) -> Result<Self> {
        let bad = |d: &str| Error::corrupt("key set", d.to_string());
        let (&format, body) = sealed.split_first().ok_or_else(|| bad("empty"))?;
        if format != FORMAT {
            return Err(Error::UnsupportedFormat {
                what: "key set",
                version: format,
                supported: FORMAT,
            });
        }
        let wrap = derive(master, store_id, LABEL_KEY_SET_WRAP)?;
        let plain = aead::open(&wrap, &ad(store_id), body)
            .ok_or_else(|| bad("does not authenticate under this master key"))?;
        let mut rest: &[u8] = &plain;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(bad("truncated"));
            }
            let (a, b) = rest.split_at(n);
            rest = b;
            Ok(a)
        };
        let key = |b: &[u8]| -> Result<SecretKey> {
            let arr: [u8; KEY_LEN] = b.try_into().map_err(|_| bad("key length"))?;
            Ok(SecretKey::new(arr))
        };
        let purpose = key(take(32)?)?;
        let suppression = key(take(32)?)?;
        let subject_ref = key(take(32)?)?;
        let tombstone = key(take(32)?)?;
        let gen: [u8; 4] = take(4)?.try_into().map_err(|_| bad("generation"))?;
        let identity = key(take(32)?)?;
        let flags = take(1)?[0];
        if flags & !(FLAG_PREVIOUS | FLAG_CURSOR) != 0 {
            return Err(bad("unknown flags"));
        }
        let previous_identity = if flags & FLAG_PREVIOUS != 0 {
            Some(key(take(32)?)?)
        } else {
            None
        };
        let cursor = if flags & FLAG_CURSOR != 0 {
            let c: [u8; 16] = take(16)?.try_into().map_err(|_| bad("cursor"))?;
            Some(c)
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(KeySet {
            purpose,
            identity,
            identity_generation: u32::from_be_bytes(gen),
            previous_identity,
            cursor,
            suppression,
            subject_ref,
            tombstone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binding_and_rejections() {
        let m = MasterKey::from_bytes([1; 32]);
        let other = MasterKey::from_bytes([2; 32]);
        let id = [3u8; 16];
        let mut k = KeySet::random().unwrap();
        k.previous_identity = Some(SecretKey::new([9; 32]));
        k.cursor = Some([4; 16]);
        k.identity_generation = 7;
        let sealed = k.seal(&m, &id).unwrap();
        let back = KeySet::open(&m, &id, &sealed).unwrap();
        assert_eq!(*back.tombstone, *k.tombstone);
        assert_eq!(*back.identity, *k.identity);
        assert_eq!(back.identity_generation, 7);
        assert_eq!(back.cursor, Some([4; 16]));
        assert_eq!(*back.previous_identity.unwrap(), [9; 32]);
        assert!(KeySet::open(&other, &id, &sealed).is_err());
        assert!(KeySet::open(&m, &[0; 16], &sealed).is_err());
        for i in 0..sealed.len() {
            let mut b = sealed.clone();
            b[i] ^= 1;
            assert!(KeySet::open(&m, &id, &b).is_err(), "flip at {i}");
        }
        for cut in 0..sealed.len() {
            assert!(KeySet::open(&m, &id, &sealed[..cut]).is_err());
        }
        // Legacy keys are what earlier builds derived.
        let l = KeySet::legacy(&m, &id).unwrap();
        assert_eq!(
            *l.tombstone,
            *derive(&m, &id, kdf::LABEL_TOMBSTONE).unwrap()
        );
        assert_eq!(*l.identity, *l.purpose);
    }
}
