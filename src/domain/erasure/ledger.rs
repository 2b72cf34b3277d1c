//! The backup ledger: its lines (`LedgerLine`), reading and atomically
//! replacing its file, and the keys of its lines (`LedgerKeys`): MAC and
//! sealing of the erased profile ids under one master key, and re-sealing
//! a ledger file from one master key to another (master-key rotation).
//! When lines are appended and pruned is in `copies.rs`.

use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::types::ProfileId;

use std::io::Write;

use serde::{Deserialize, Serialize};

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

/// Where a master-key rotation stages a backup's re-sealed ledger until
/// the copy has moved: `<ledger>.next`.
pub(crate) fn staged_ledger(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".next");
    std::path::PathBuf::from(p)
}

/// Writes to `to` the ledger file at `path` with every line sealed under
/// `new` (lines under `old` re-sealed, lines already under `new` kept),
/// atomically: temporary file, fsync, rename, directory fsync. Nothing is
/// written for an empty or missing ledger.
pub(crate) fn reseal_ledger_file(
    path: &Path,
    to: &Path,
    old: &LedgerKeys,
    new: &LedgerKeys,
) -> Result<usize> {
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
    replace_ledger(to, &out)?;
    Ok(lines.len())
}

/// One ledger line. The erased profile ids are sealed (`sealed_profiles`,
/// hex of AES-256-GCM `nonce ‖ ct ‖ tag` of the concatenated 16-byte ids
/// under HKDF(master, store id, `lethedb/v1/ledger-seal`), AD
/// `"lethedb/ledger/v2" ‖ store id ‖ erasure id u64 BE`): the file sits
/// beside a backup, in every copy of it, and must not list who was erased.
/// Lines of builds before issue 17 carry them in clear (`profiles`); they
/// are still read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LedgerLine {
    pub(super) erasure_id: u64,
    pub(super) scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) sealed_profiles: String,
    pub(super) fields: Vec<String>,
    pub(super) requested_at: String,
    pub(super) mac: String,
}

pub(crate) fn read_ledger(path: &Path) -> Result<Vec<LedgerLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io_at(path, e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::InvalidInput(format!("{} line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Appends `text` (whole lines) to the ledger file at `path`, synced.
pub(crate) fn append_lines(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io_at(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io_at(path, e))
}

/// Replaces the ledger file at `path` with `text`: temporary file, fsync,
/// rename, directory fsync — old or new after a crash, never half.
pub(crate) fn replace_ledger(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    append_lines(&tmp, text)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io_at(path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_at(dir, e))
}
