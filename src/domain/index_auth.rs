//! Authenticated index entries (format v2): an identity-index entry binds
//! its blind key to its profile, a consent-index (grant) entry binds its
//! purpose tag, profile, expiry and the write version of the current
//! consent record it stands for — each under the store's entry MAC key
//! (`crypto::entry_mac`). Entries of format v1 (CRC only) are read as they
//! are until `upgrade` rewrites them.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::records::{GrantEntry, IdentityEntry};
use crate::types::{ProfileId, Timestamp};

const LABEL_IDENTITY: &[u8] = b"lethedb/v2/identity-entry";
const LABEL_GRANT: &[u8] = b"lethedb/v2/grant-entry";

/// The entry pointing blind key `key` at `profile`.
pub(crate) fn identity_entry(db: &Engine, key: &[u8; 16], profile: ProfileId) -> IdentityEntry {
    IdentityEntry {
        profile,
        mac: Some(db.entry_mac.tag(LABEL_IDENTITY, &[key, profile.as_bytes()])),
    }
}

/// The profile the entry under `key` points at, once its MAC checks.
pub(crate) fn identity_target(db: &Engine, key: &[u8; 16], e: &IdentityEntry) -> Result<ProfileId> {
    match &e.mac {
        None => match db.v1_refused(&e.profile, "identity index entry") {
            None => Ok(e.profile),
            Some(err) => Err(err),
        },
        Some(mac)
            if db
                .entry_mac
                .verify(LABEL_IDENTITY, &[key, e.profile.as_bytes()], mac) =>
        {
            Ok(e.profile)
        }
        Some(_) => Err(Error::Integrity {
            profile: e.profile,
            what: "identity index entry (it does not authenticate: forged, re-pointed or altered)"
                .into(),
        }),
    }
}

/// The consent-index entry of purpose `tag` granted to `profile`, standing
/// for the current record written at `version`.
pub(crate) fn grant_entry(
    db: &Engine,
    tag: &[u8; 8],
    profile: &ProfileId,
    expires_at: Option<Timestamp>,
    version: u64,
) -> GrantEntry {
    let mut e = GrantEntry {
        expires_at,
        auth: None,
    };
    let mac = db.entry_mac.tag(
        LABEL_GRANT,
        &[
            tag,
            profile.as_bytes(),
            &e.expiry_bytes(),
            &version.to_be_bytes(),
        ],
    );
    e.auth = Some((version, mac));
    e
}

/// Checks a grant entry's MAC; returns the version it stands for (`None`
/// for a v1 entry).
pub(crate) fn check_grant(
    db: &Engine,
    tag: &[u8; 8],
    profile: &ProfileId,
    e: &GrantEntry,
) -> Result<Option<u64>> {
    let Some((version, mac)) = &e.auth else {
        return match db.v1_refused(profile, "consent index entry") {
            None => Ok(None),
            Some(err) => Err(err),
        };
    };
    if db.entry_mac.verify(
        LABEL_GRANT,
        &[
            tag,
            profile.as_bytes(),
            &e.expiry_bytes(),
            &version.to_be_bytes(),
        ],
        mac,
    ) {
        Ok(Some(*version))
    } else {
        Err(Error::Integrity {
            profile: *profile,
            what: "consent index entry (it does not authenticate: forged or altered)".into(),
        })
    }
}
