//! The key tree: root (outside the LSM tree) → inner nodes → bucket keys
//! → profile keyrings → field keys (Reardon et al., CCS 2013).
//!
//! * The **root** of epoch *e* is a random 256-bit key held, sealed under a
//!   master-derived key, by a [`RootKeyStore`]. The current epoch is named
//!   by the `meta 't'` header.
//! * **Inner nodes** sit on `depth` levels; node `(level, i)` covers the
//!   profiles whose id starts with the `level × fanout_bits` bits `i`
//!   (profile ids are random). Level 1 is wrapped under the root, level
//!   ℓ + 1 under its parent; the last level are the **bucket keys**.
//! * A **keyring** (one random seed per profile plus a generation) is
//!   wrapped under its bucket key; **field keys** are HKDF-derived from it
//!   and never stored.
//!
//! Purge **rotates** the tree: every node on the path of an erased
//! profile gets a fresh key, every child of a fresh node (and every level-1
//! node) is re-wrapped under its parent's new key, the new root is stored,
//! the batch is committed with a synced WAL, and only then is the old root
//! destroyed. Each old copy of a replaced key, anywhere on disk, is wrapped
//! under a replaced parent, up to a destroyed root.
//!
//! Files: `shape` (fan-out, depth, which node a profile falls under),
//! `wrap` (node keys, keyrings, associated data, root sealing), `cache`
//! (unwrapped node keys), `tree` (the tree and its keyring operations),
//! `rotation` (purge's rotation and its crash points), `status`, and
//! `root` (where roots live: the [`RootKeyStore`] trait and its stores).

mod cache;
mod custody;
mod location;
mod pkcs11;
mod pkcs11_uri;
pub(crate) mod root;
mod rotation;
pub(crate) mod shape;
mod status;
pub(crate) mod tree;
pub(crate) mod wrap;

pub use custody::{RootKeyDevice, RootKeys};
pub use location::RootLocation;
pub use pkcs11::{PinSource, Pkcs11Config, Pkcs11RootKeyStore};
pub use root::{FileRootKeyStore, MemoryRootKeyStore, RootKeyStore};
pub use rotation::RotationStep;
pub use status::KeyTreeStatus;

pub(crate) use shape::Shape;
pub(crate) use tree::KeyHierarchy;
pub(crate) use wrap::{field_ad, require_empty, Keyring};
