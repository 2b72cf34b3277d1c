//! On-disk record formats. Byte layouts are documented in `docs/design.md`;
//! keep the two in step.
//!
//! Every record starts with a format version byte read through
//! [`FormatVersion`]; unknown versions are rejected. Records that are not
//! authenticated by an AEAD end with a CRC-32 (IEEE, `crc32fast`) of all
//! preceding bytes. All integers are big-endian.
//!
//! One file per record kind over one codec core (`codec.rs`): `store`
//! (store and key-tree headers, blobs, field registry), `wrapped` (tree
//! keys), `profile`, `identity` (index entries, merge records), `consent`,
//! `erasure` (ledger, purge queue, suppression, signing key, backups),
//! `audit`, and `value` (the field value encoding inside sealed fields).

mod audit;
mod codec;
mod consent;
mod erasure;
mod identity;
mod profile;
mod store;
mod value;
mod wrapped;

#[cfg(test)]
mod tests;

pub(crate) use audit::*;
pub(crate) use codec::{bincode_options, FormatVersion, ValueCodec};

/// The bincode record framing for records defined outside this module
/// (`domain::requests`): the macro and what it expands to.
pub(crate) mod framing {
    pub(crate) use crate::storage::records::codec::{
        bincode_options, bincode_record, check_crc, check_version, push_crc, FormatVersion,
        ValueCodec,
    };
}
pub(crate) use consent::*;
pub(crate) use erasure::*;
pub(crate) use identity::*;
pub(crate) use profile::*;
pub(crate) use store::*;
pub(crate) use value::*;
pub(crate) use wrapped::*;
