//! The blind identity index: `HMAC-SHA-256(K_type, normalised value)`,
//! truncated to 128 bits, is the index key. `K_type` is HKDF-Expand of a
//! master-derived blind root under the type name, so equal values of
//! different types never share a key, and nothing about the value is
//! recoverable without the master key.

use std::collections::HashMap;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use parking_lot::RwLock;
use sha2::Sha256;

use crate::crypto::SecretKey;
use crate::error::{Error, Result};

/// Bytes of the truncated MAC used as the index key.
pub(crate) const BLIND_LEN: usize = 16;

/// A blind index key.
pub(crate) type BlindKey = [u8; BLIND_LEN];

pub(crate) struct BlindIndex {
    root: Hkdf<Sha256>,
    macs: RwLock<HashMap<String, Hmac<Sha256>>>,
}

impl BlindIndex {
    pub(crate) fn new(root: &SecretKey) -> Result<Self> {
        Ok(BlindIndex {
            root: Hkdf::<Sha256>::from_prk(root.as_ref())
                .map_err(|_| Error::Internal("blind root length".into()))?,
            macs: RwLock::new(HashMap::new()),
        })
    }

    fn keyed(&self, type_name: &str) -> Result<Hmac<Sha256>> {
        if let Some(m) = self.macs.read().get(type_name) {
            return Ok(m.clone());
        }
        let mut info = b"lethedb/v1/blind-index/".to_vec();
        info.extend_from_slice(type_name.as_bytes());
        let mut key = SecretKey::new([0u8; 32]);
        self.root
            .expand(&info, key.as_mut())
            .map_err(|_| Error::Internal("HKDF output length".into()))?;
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref())
            .map_err(|_| Error::Internal("HMAC key length".into()))?;
        self.macs.write().insert(type_name.to_string(), mac.clone());
        Ok(mac)
    }

    /// The index key of a normalised value of a type.
    pub(crate) fn key(&self, type_name: &str, normalized: &str) -> Result<BlindKey> {
        let mut mac = self.keyed(type_name)?;
        mac.update(normalized.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; BLIND_LEN];
        out.copy_from_slice(&full[..BLIND_LEN]);
        Ok(out)
    }
}

/// The identifier index's keys: the current blind index and, while a
/// blind-index rotation runs, the one it replaces with the cursor below
/// which every profile is re-indexed (docs/design.md, "Blind-index
/// rotation"). An entry pointing at profile `p` is under the current key
/// when `p` is below the cursor (or no rotation runs), else under the
/// previous one; lookups and deletions try both. Changed only under the
/// identity lock.
pub(crate) struct IdentityKeys {
    state: RwLock<IdentityKeyState>,
}

#[derive(Clone)]
pub(crate) struct IdentityKeyState {
    pub(crate) current: std::sync::Arc<BlindIndex>,
    pub(crate) generation: u32,
    pub(crate) previous: Option<std::sync::Arc<BlindIndex>>,
    pub(crate) cursor: Option<[u8; 16]>,
}

impl IdentityKeyState {
    /// Every key a value's entry may be under in this state: the current
    /// one first, then (during a rotation) the previous one.
    pub(crate) fn keys(&self, type_name: &str, normalized: &str) -> Result<Vec<BlindKey>> {
        let mut out = vec![self.current.key(type_name, normalized)?];
        if let Some(p) = &self.previous {
            out.push(p.key(type_name, normalized)?);
        }
        Ok(out)
    }

    /// See [`IdentityKeys::version`].
    pub(crate) fn version(&self) -> (u32, bool, Option<[u8; 16]>) {
        (self.generation, self.previous.is_some(), self.cursor)
    }
}

impl IdentityKeys {
    pub(crate) fn new(state: IdentityKeyState) -> Self {
        IdentityKeys {
            state: RwLock::new(state),
        }
    }

    pub(crate) fn state(&self) -> IdentityKeyState {
        self.state.read().clone()
    }

    /// What identifies the key state: generation, rotation under way,
    /// cursor. A lock-free reader that computed its keys under one state
    /// and read under another retries (a start and a step can both commit
    /// between computing keys and reading).
    pub(crate) fn version(&self) -> (u32, bool, Option<[u8; 16]>) {
        self.state.read().version()
    }

    pub(crate) fn set(&self, state: IdentityKeyState) {
        *self.state.write() = state;
    }

    /// The current key of a normalised value.
    #[cfg(test)]
    pub(crate) fn key(&self, type_name: &str, normalized: &str) -> Result<BlindKey> {
        let current = std::sync::Arc::clone(&self.state.read().current);
        current.key(type_name, normalized)
    }

    /// Every key the value's entry may be under: the current one first,
    /// then (during a rotation) the previous one.
    pub(crate) fn keys(&self, type_name: &str, normalized: &str) -> Result<Vec<BlindKey>> {
        self.state().keys(type_name, normalized)
    }

    /// The key an entry pointing at `profile` must be under now.
    pub(crate) fn key_for(
        &self,
        profile: &[u8; 16],
        type_name: &str,
        normalized: &str,
    ) -> Result<BlindKey> {
        let st = self.state();
        match (&st.previous, &st.cursor) {
            (Some(p), Some(c)) if profile >= c => p.key(type_name, normalized),
            _ => st.current.key(type_name, normalized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_and_separated_by_type() {
        let b = BlindIndex::new(&SecretKey::new([1; 32])).unwrap();
        let a1 = b.key("email", "a@example.com").unwrap();
        assert_eq!(a1, b.key("email", "a@example.com").unwrap());
        assert_ne!(a1, b.key("user_id", "a@example.com").unwrap());
        assert_ne!(a1, b.key("email", "b@example.com").unwrap());
        let other = BlindIndex::new(&SecretKey::new([2; 32])).unwrap();
        assert_ne!(a1, other.key("email", "a@example.com").unwrap());
    }
}
