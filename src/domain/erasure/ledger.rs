//! The keys of the backup ledger lines (`LedgerKeys`): MAC and sealing of
//! the erased profile ids under one master key, and re-sealing a ledger
//! file from one master key to another (master-key rotation). The lines
//! themselves and the ledger files' life are in `copies.rs`.

use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::types::ProfileId;

use super::copies::{read_ledger, replace_ledger, LedgerLine};

/// The keys of a store's ledger lines under one master key: the line MAC
/// key and the key sealing the profile ids.
pub(crate) struct LedgerKeys {
    mac: crate::crypto::SecretKey,
    seal: crate::crypto::SecretKey,
    store_id: [u8; 16],
}

impl LedgerKeys {
    pub(crate) fn new(master: &crate::crypto::MasterKey, store_id: &[u8; 16]) -> Result<Self> {
        use crate::crypto::kdf;
        Ok(LedgerKeys {
            mac: kdf::derive(master, store_id, kdf::LABEL_LEDGER_MAC)?,
            seal: kdf::derive(master, store_id, kdf::LABEL_LEDGER_SEAL)?,
            store_id: *store_id,
        })
    }

    pub(super) fn of(db: &Engine) -> Result<Self> {
        Self::new(&db.master, &db.header.store_id)
    }

    pub(super) fn mac(&self, l: &LedgerLine) -> Result<String> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.mac.as_ref())
            .map_err(|_| Error::Internal("HMAC key length".into()))?;
        let body = if l.sealed_profiles.is_empty() {
            json!([l.erasure_id, l.scope, l.profiles, l.fields, l.requested_at])
        } else {
            json!([
                "v2",
                l.erasure_id,
                l.scope,
                l.sealed_profiles,
                l.fields,
                l.requested_at
            ])
        }
        .to_string();
        mac.update(body.as_bytes());
        Ok(crate::hex::encode(&mac.finalize().into_bytes()))
    }

    fn seal_ad(&self, erasure_id: u64) -> Vec<u8> {
        let mut ad = b"lethedb/ledger/v2".to_vec();
        ad.extend_from_slice(&self.store_id);
        ad.extend_from_slice(&erasure_id.to_be_bytes());
        ad
    }

    /// A sealed, MACed line naming `ids`.
    pub(super) fn line(
        &self,
        erasure_id: u64,
        scope: &str,
        ids: &[[u8; 16]],
        fields: &[String],
        requested_at: String,
    ) -> Result<LedgerLine> {
        let mut sealed = Vec::new();
        crate::crypto::aead::seal_into(
            &self.seal,
            &self.seal_ad(erasure_id),
            &ids.concat(),
            &mut sealed,
        )?;
        let mut l = LedgerLine {
            erasure_id,
            scope: scope.into(),
            profiles: Vec::new(),
            sealed_profiles: crate::hex::encode(&sealed),
            fields: fields.to_vec(),
            requested_at,
            mac: String::new(),
        };
        l.mac = self.mac(&l)?;
        Ok(l)
    }

    /// The profile ids of a line whose MAC verifies under these keys;
    /// `None` when it does not.
    pub(crate) fn open(&self, l: &LedgerLine) -> Result<Option<Vec<ProfileId>>> {
        if self.mac(l)? != l.mac {
            return Ok(None);
        }
        if l.sealed_profiles.is_empty() {
            return l
                .profiles
                .iter()
                .map(|p| p.parse::<ProfileId>())
                .collect::<Result<_>>()
                .map(Some);
        }
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "erasure ledger line {}: sealed profile ids {why}",
                l.erasure_id
            ))
        };
        let sealed = crate::hex::decode(&l.sealed_profiles).ok_or_else(|| bad("are not hex"))?;
        let plain = crate::crypto::aead::open(&self.seal, &self.seal_ad(l.erasure_id), &sealed)
            .ok_or_else(|| bad("do not authenticate under this store's key"))?;
        if plain.len() % 16 != 0 {
            return Err(bad("have a length that is not a multiple of 16"));
        }
        Ok(Some(
            plain
                .chunks_exact(16)
                .map(|c| {
                    let mut id = [0u8; 16];
                    id.copy_from_slice(c);
                    ProfileId::from_bytes(id)
                })
                .collect(),
        ))
    }

    /// `l` as these keys seal it (lines from `old` keys, or already ours).
    pub(crate) fn reseal(&self, old: &LedgerKeys, l: &LedgerLine) -> Result<LedgerLine> {
        if self.open(l)?.is_some() {
            return Ok(l.clone());
        }
        let ids = old.open(l)?.ok_or_else(|| {
            Error::InvalidInput(format!(
                "erasure ledger line {} authenticates under neither the old nor the new master key",
                l.erasure_id
            ))
        })?;
        let ids: Vec<[u8; 16]> = ids.iter().map(|p| *p.as_bytes()).collect();
        self.line(
            l.erasure_id,
            &l.scope,
            &ids,
            &l.fields,
            l.requested_at.clone(),
        )
    }
}

/// Rewrites the ledger file at `path` with every line sealed under `new`
/// (lines under `old` re-sealed), atomically: temporary file, fsync,
/// rename, directory fsync.
pub(crate) fn reseal_ledger_file(path: &Path, old: &LedgerKeys, new: &LedgerKeys) -> Result<usize> {
    let lines = read_ledger(path)?;
    if lines.is_empty() {
        return Ok(0);
    }
    let mut out = String::new();
    for l in &lines {
        out.push_str(
            &serde_json::to_string(&new.reseal(old, l)?)
                .map_err(|e| Error::Internal(format!("ledger line: {e}")))?,
        );
        out.push('\n');
    }
    replace_ledger(path, &out)?;
    Ok(lines.len())
}
