//! Domain layer: profiles and their fields. Identity, consent, erasure and
//! audit join this layer in later issues.

pub(crate) mod consent;
pub(crate) mod fields;
pub(crate) mod identity;
pub(crate) mod locks;
pub(crate) mod profiles;
