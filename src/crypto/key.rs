//! Symmetric keys: their length, the wiping buffer they live in, and fresh
//! random ones.

use crate::error::Result;
use crate::random::os_random;

/// Length of every symmetric key in the hierarchy.
pub(crate) const KEY_LEN: usize = 32;

/// A 256-bit secret that is wiped from memory when dropped.
pub(crate) type SecretKey = zeroize::Zeroizing<[u8; KEY_LEN]>;

/// A fresh random key from the OS random number generator.
pub(crate) fn random_key() -> Result<SecretKey> {
    let mut k = SecretKey::new([0u8; KEY_LEN]);
    os_random(k.as_mut())?;
    Ok(k)
}
