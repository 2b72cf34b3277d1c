//! Profiles: partial updates, atomic multi-profile batches, and reads.
//!
//! A profile is one record in the `profiles` keyspace holding every field.
//! Personal and sensitive fields are sealed with AES-256-GCM under the
//! field's own key (derived from the profile keyring); the associated data
//! binds profile id, field name, key generation and format version.
//!
//! Files: `update` (what a write asks for, validated), `working` (a
//! profile being changed: sealing and opening fields), `write` (the single
//! write path), `read` (redirects and reads).

mod read;
mod sealing;
mod update;
mod working;
mod write;

pub use update::{Profile, ProfileBatch, Update, MAX_FIELDS_PER_PROFILE, MAX_VALUE_BYTES};

pub(crate) use read::{final_target, load_active, load_active_fields, read};
#[cfg(feature = "testkit")]
pub(crate) use sealing::seal_entry;
pub(crate) use sealing::Fields;
pub(crate) use sealing::{authenticated, check as check_record};
pub(crate) use update::{is_system_field, prepare, Prepared};
pub(crate) use working::Working;
pub(crate) use write::{apply, apply_system};
