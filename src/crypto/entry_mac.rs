//! The MAC of index entries (format v2): identity-index entries and
//! consent-index (grant) entries are authenticated under one store key, so
//! an entry cannot be forged or re-pointed at another profile.
//!
//! `K_entry = HKDF-Expand(tombstone key, "lethedb/v2/entry-mac", 32)`: a
//! key of the key set, so it survives master-key rotations like the
//! entries it authenticates. The tag is HMAC-SHA-256 over
//! `label ‖ parts`, truncated to 64 bits (docs/design.md, "Record format v2").

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::SecretKey;
use crate::error::{Error, Result};

const LABEL_ENTRY_MAC: &[u8] = b"lethedb/v2/entry-mac";
/// Bytes of an entry tag.
pub(crate) const ENTRY_TAG_LEN: usize = 8;

/// The keyed HMAC state, computed once (each tag then costs two SHA-256
/// compressions).
#[derive(Clone)]
pub(crate) struct EntryMac {
    mac: Hmac<Sha256>,
}

impl EntryMac {
    pub(crate) fn new(root: &SecretKey) -> Result<Self> {
        let hk = Hkdf::<Sha256>::from_prk(root.as_ref())
            .map_err(|_| Error::Internal("entry MAC root length".into()))?;
        let mut k = SecretKey::new([0u8; 32]);
        hk.expand(LABEL_ENTRY_MAC, k.as_mut())
            .map_err(|_| Error::Internal("HKDF output length".into()))?;
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_ref())
            .map_err(|_| Error::Internal("HMAC key length".into()))?;
        Ok(EntryMac { mac })
    }

    fn keyed(&self, label: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut m = self.mac.clone();
        m.update(label);
        for p in parts {
            m.update(p);
        }
        m
    }

    /// The tag of an entry of kind `label` over `parts`.
    pub(crate) fn tag(&self, label: &[u8], parts: &[&[u8]]) -> [u8; ENTRY_TAG_LEN] {
        let full = self.keyed(label, parts).finalize().into_bytes();
        let mut out = [0u8; ENTRY_TAG_LEN];
        out.copy_from_slice(&full[..ENTRY_TAG_LEN]);
        out
    }

    /// Whether `tag` is the tag of `parts` (constant time).
    pub(crate) fn verify(&self, label: &[u8], parts: &[&[u8]], tag: &[u8; ENTRY_TAG_LEN]) -> bool {
        self.keyed(label, parts).verify_truncated_left(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_bind_label_parts_and_key() {
        let m = EntryMac::new(&SecretKey::new([1; 32])).unwrap();
        let t = m.tag(b"a", &[b"x", b"y"]);
        assert!(m.verify(b"a", &[b"x", b"y"], &t));
        assert!(!m.verify(b"b", &[b"x", b"y"], &t));
        assert!(!m.verify(b"a", &[b"x", b"z"], &t));
        let other = EntryMac::new(&SecretKey::new([2; 32])).unwrap();
        assert!(!other.verify(b"a", &[b"x", b"y"], &t));
        let mut bad = t;
        bad[7] ^= 1;
        assert!(!m.verify(b"a", &[b"x", b"y"], &bad));
    }
}
