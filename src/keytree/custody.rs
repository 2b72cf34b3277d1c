//! Roots inside a device ([`RootKeyDevice`]) and the two custodies a
//! store's roots can be in ([`RootKeys`]).

use std::sync::Arc;

use super::location::RootLocation;
use super::root::RootKeyStore;
use crate::error::Result;

/// Holds the roots as keys inside a device (an HSM over PKCS#11) that
/// wraps and unwraps for the engine: a root never enters process memory.
///
/// Every call names the store (`store_id`); a device keeps the roots of
/// different stores apart. The contract is that of [`RootKeyStore`]:
/// `generate` returns once the new root is durable, `destroy` once the
/// roots are irrevocably gone, and a crash leaves each root fully present
/// or fully gone.
///
/// `wrap` encrypts a 32-byte key under root `epoch` with AES-256-GCM, a
/// fresh 96-bit IV and `ad` as associated data, returning `IV (12) ‖
/// ciphertext (32) ‖ tag (16)`; `unwrap` reverses it and returns `None`
/// when the bytes do not authenticate.
pub trait RootKeyDevice: Send + Sync {
    /// Epochs of the roots held for `store_id`, ascending.
    fn epochs(&self, store_id: &[u8; 16]) -> Result<Vec<u32>>;
    /// Creates root `epoch` inside the device, durably and non-extractable.
    /// Fails if it is already held.
    fn generate(&self, store_id: &[u8; 16], epoch: u32) -> Result<()>;
    /// Encrypts `key` under root `epoch` inside the device.
    fn wrap(&self, store_id: &[u8; 16], epoch: u32, ad: &[u8], key: &[u8; 32]) -> Result<[u8; 60]>;
    /// Decrypts what `wrap` returned; `None` when it does not authenticate.
    fn unwrap(
        &self,
        store_id: &[u8; 16],
        epoch: u32,
        ad: &[u8],
        sealed: &[u8; 60],
    ) -> Result<Option<zeroize::Zeroizing<[u8; 32]>>>;
    /// Destroys roots durably and irrevocably; unknown epochs are ignored.
    fn destroy(&self, store_id: &[u8; 16], epochs: &[u32]) -> Result<()>;
    /// Where the roots live.
    fn location(&self) -> RootLocation;
}

impl std::fmt::Debug for dyn RootKeyDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootKeyDevice({:?})", self.location())
    }
}

/// Where a store's roots live: sealed bytes in a [`RootKeyStore`] (the
/// engine unseals them with a master-derived key) or keys inside a
/// [`RootKeyDevice`].
#[derive(Clone)]
pub enum RootKeys {
    /// Sealed roots held by a store (file, memory, your own).
    Sealed(Arc<dyn RootKeyStore>),
    /// Roots inside a device.
    Device(Arc<dyn RootKeyDevice>),
}

impl std::fmt::Debug for RootKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootKeys({})", self.describe())
    }
}

impl From<Arc<dyn RootKeyStore>> for RootKeys {
    fn from(s: Arc<dyn RootKeyStore>) -> Self {
        RootKeys::Sealed(s)
    }
}

impl From<Arc<dyn RootKeyDevice>> for RootKeys {
    fn from(d: Arc<dyn RootKeyDevice>) -> Self {
        RootKeys::Device(d)
    }
}

impl RootKeys {
    /// Epochs held for the store `store_id`, ascending.
    pub fn epochs(&self, store_id: &[u8; 16]) -> Result<Vec<u32>> {
        match self {
            RootKeys::Sealed(s) => s.epochs(),
            RootKeys::Device(d) => d.epochs(store_id),
        }
    }

    /// Destroys roots of `store_id` durably.
    pub fn destroy(&self, store_id: &[u8; 16], epochs: &[u32]) -> Result<()> {
        match self {
            RootKeys::Sealed(s) => s.destroy(epochs),
            RootKeys::Device(d) => d.destroy(store_id, epochs),
        }
    }

    /// Where the roots live.
    pub fn location(&self) -> RootLocation {
        match self {
            RootKeys::Sealed(s) => s.location(),
            RootKeys::Device(d) => d.location(),
        }
    }

    /// Where the roots live, in words.
    pub fn describe(&self) -> String {
        match self {
            RootKeys::Sealed(s) => s.describe(),
            RootKeys::Device(d) => match d.location() {
                RootLocation::Pkcs11 {
                    token,
                    serial,
                    object,
                } => format!("pkcs11 token {token:?} (serial {serial:?}) objects {object:?}"),
                other => format!("{other:?}"),
            },
        }
    }

    /// True for a device: roots never enter process memory.
    pub fn is_device(&self) -> bool {
        matches!(self, RootKeys::Device(_))
    }
}

impl std::fmt::Debug for dyn RootKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootKeyStore({})", self.describe())
    }
}
