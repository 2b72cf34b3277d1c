//! Domain layer: profiles and their fields, identity, consent, erasure
//! (with retention, export and backups) and the audit log.

pub(crate) mod audit;
pub(crate) mod consent;
pub(crate) mod erasure;
pub(crate) mod fields;
pub(crate) mod identity;
pub(crate) mod index_auth;
pub(crate) mod locks;
pub(crate) mod profiles;
pub(crate) mod requests;
pub(crate) mod upgrade;
