//! Erasure certificates: PII-free statements of what was destroyed and
//! when, signed with the store's Ed25519 key.
//!
//! A certificate is one JSON object,
//! `{"certificate":{...body...},"signature":"<128 hex>"}`, printed in its
//! RFC 8785 (JCS) canonical form. Format `/3` signs
//! `"lethedb/certificate/v3" || JCS(body)`, so whitespace, key order and
//! string escapes do not matter — the certificate verifies after any JSON
//! tool re-serialises it — while every value is covered: a changed value
//! fails the signature, an added or removed member fails parsing.
//!
//! Format `/2` (issued before JCS) signed `"lethedb/certificate/v1" ||
//! body as compact JSON in field order`; that message is rebuilt from the
//! parsed values, so `/2` certificates verify as issued and after
//! re-serialisation too.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::crypto::{aead, kdf, MasterKey};
use crate::domain::audit::{self, Event};
use crate::error::{Error, Result};
use crate::random::os_random;
use crate::storage::columns::SigningKeys;
use crate::storage::records::SigningKeyRecord;
use crate::storage::{Batch, Store};
use crate::types::Timestamp;

/// Signing context of format `/3` (JCS body).
const SIGN_CONTEXT: &[u8] = b"lethedb/certificate/v3";
/// Signing context of format `/2` (compact body in field order).
const SIGN_CONTEXT_V2: &[u8] = b"lethedb/certificate/v1";
/// Value of the `format` field of certificates issued now: `/4` adds
/// `root_destroyed_in` to `/3` and is signed the same way.
pub(crate) const CERT_FORMAT: &str = "lethedb-erasure-certificate/4";
/// Format of certificates issued before `root_destroyed_in`; still verified.
const CERT_FORMAT_V3: &str = "lethedb-erasure-certificate/3";
/// Format of certificates issued before JCS; still verified.
const CERT_FORMAT_V2: &str = "lethedb-erasure-certificate/2";
/// Largest integer JSON carries exactly everywhere (I-JSON, RFC 7493:
/// 2^53 - 1). JCS writes numbers as IEEE doubles, so larger values are not
/// signed.
const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// The signed statement. Every field is PII-free.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// `lethedb-erasure-certificate/4` (`/3` before `root_destroyed_in`,
    /// `/2` before RFC 8785 signing).
    pub format: String,
    /// Store id (hex).
    pub store_id: String,
    /// Ledger id of the erasure.
    pub erasure_id: u64,
    /// Pseudonymous subject reference (hex): HMAC of the profile id under a
    /// master-derived key.
    pub subject_ref: String,
    /// `profile` (the whole person) or `fields`.
    pub scope: String,
    /// Erased fields (scope `fields`).
    pub fields: Vec<String>,
    /// Number of profiles (the person's own and those merged into it).
    pub profiles_erased: u32,
    /// Ids of the destroyed keys (hex).
    pub key_ids_destroyed: Vec<String>,
    /// Blind-index entries removed.
    pub index_entries_removed: u32,
    /// Consent records removed.
    pub consent_records_removed: u32,
    /// Identifiers put on the suppression list.
    pub suppressed_identifiers: u32,
    /// When `forget` committed (RFC 3339).
    pub requested_at: String,
    /// When purge finished compacting (RFC 3339).
    pub purged_at: String,
    /// Epoch of the key-tree root the erased keys were reachable from,
    /// destroyed by this purge: every copy of them on any disk or backup is
    /// wrapped under it.
    pub root_epoch_destroyed: u32,
    /// Every root version this purge destroyed (the live root above, older
    /// roots of backups that held the erased subjects, leftovers of an
    /// interrupted rotation).
    pub root_epochs_destroyed: Vec<u32>,
    /// The store's root epoch after the purge.
    pub root_epoch: u32,
    /// Where the destroyed root lived — the root key file, or the PKCS#11
    /// token (label, serial) and object (label, `CKA_ID`) — so an auditor
    /// can match the destruction against the HSM's own audit log. Present
    /// from format `/4` on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_destroyed_in: Option<String>,
    /// Backups re-keyed so that they stay restorable without the erased
    /// subjects.
    pub backups_rekeyed: u32,
    /// Backups that could not be reached and became unrestorable.
    pub backups_invalidated: u32,
    /// Audit-log position of the erasure entry.
    pub erasure_audit_seq: u64,
    /// Audit-log position of the purge entry.
    pub audit_seq: u64,
    /// Hash of the purge entry: the audit head when the certificate was issued (hex).
    pub audit_head: String,
    /// SST bytes purge rewrote (for all erasures of that purge).
    pub purge_bytes_rewritten: u64,
    /// The signer's Ed25519 public key (hex).
    pub public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    certificate: Certificate,
    signature: String,
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("certificate {what}: {e}"))
}

/// The signed message of a format `/3` certificate.
fn body_bytes(c: &Certificate) -> Result<Vec<u8>> {
    let mut msg = SIGN_CONTEXT.to_vec();
    msg.extend_from_slice(&serde_json_canonicalizer::to_vec(c).map_err(|e| internal("body", e))?);
    Ok(msg)
}

/// The signed message of a format `/2` certificate.
fn body_bytes_v2(c: &Certificate) -> Result<Vec<u8>> {
    let mut msg = SIGN_CONTEXT_V2.to_vec();
    msg.extend_from_slice(&serde_json::to_vec(c).map_err(|e| internal("body", e))?);
    Ok(msg)
}

/// The first member whose number JCS cannot carry exactly (above
/// 2^53 - 1, negative or fractional), searched over every number of the
/// serialised certificate, so a field added later is covered too.
fn inexact_number(c: &Certificate) -> Result<Option<String>> {
    fn walk(v: &serde_json::Value, at: &str) -> Option<String> {
        match v {
            serde_json::Value::Number(n) => {
                let exact = n.as_u64().is_some_and(|x| x <= MAX_EXACT_INTEGER);
                (!exact).then(|| at.to_string())
            }
            serde_json::Value::Array(items) => items.iter().find_map(|i| walk(i, at)),
            serde_json::Value::Object(m) => m.iter().find_map(|(k, v)| walk(v, k)),
            _ => None,
        }
    }
    let v = serde_json::to_value(c).map_err(|e| internal("body", e))?;
    Ok(walk(&v, "certificate"))
}

/// The store's certificate signer.
pub(crate) struct Signer {
    key: SigningKey,
}

fn signing_ad(store_id: &[u8; 16]) -> Vec<u8> {
    let mut ad = b"lethedb/signing-key/v1".to_vec();
    ad.extend_from_slice(store_id);
    ad
}

/// The signing key record re-sealed from one master key to another (a
/// master-key rotation); `None` when the store has no signing key yet.
pub(crate) fn reseal_signing_key(
    store: &Store,
    old: &MasterKey,
    new: &MasterKey,
    store_id: &[u8; 16],
) -> Result<Option<SigningKeyRecord>> {
    let Some(mut rec) = store.get::<SigningKeys>(&())? else {
        return Ok(None);
    };
    let from = kdf::derive(old, store_id, kdf::LABEL_SIGNING_WRAP)?;
    let to = kdf::derive(new, store_id, kdf::LABEL_SIGNING_WRAP)?;
    let plain = aead::open(&from, &signing_ad(store_id), &rec.sealed_secret)
        .ok_or_else(|| Error::corrupt("signing key", "does not authenticate"))?;
    let mut sealed = Vec::new();
    aead::seal_into(&to, &signing_ad(store_id), &plain, &mut sealed)?;
    rec.sealed_secret = sealed;
    Ok(Some(rec))
}

impl Signer {
    /// Loads the signing key, or creates it (one batch with its audit entry).
    pub(crate) fn load_or_create(
        store: &Store,
        log: &audit::AuditLog,
        master: &MasterKey,
        store_id: &[u8; 16],
        read_only: bool,
    ) -> Result<Option<Signer>> {
        let wrap = kdf::derive(master, store_id, kdf::LABEL_SIGNING_WRAP)?;
        if let Some(rec) = store.get::<SigningKeys>(&())? {
            let plain = aead::open(&wrap, &signing_ad(store_id), &rec.sealed_secret)
                .ok_or_else(|| Error::corrupt("signing key", "does not authenticate"))?;
            let secret: [u8; 32] = plain
                .as_slice()
                .try_into()
                .map_err(|_| Error::corrupt("signing key", "wrong length"))?;
            let key = SigningKey::from_bytes(&secret);
            if key.verifying_key().to_bytes() != rec.public {
                return Err(Error::corrupt(
                    "signing key",
                    "public key does not match the secret",
                ));
            }
            return Ok(Some(Signer { key }));
        }
        if read_only {
            return Ok(None);
        }
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        os_random(secret.as_mut())?;
        let key = SigningKey::from_bytes(&secret);
        let mut sealed = Vec::new();
        aead::seal_into(&wrap, &signing_ad(store_id), secret.as_ref(), &mut sealed)?;
        let public = key.verifying_key().to_bytes();
        let mut batch = Batch::new();
        batch.put::<SigningKeys>(
            &(),
            &SigningKeyRecord {
                created_at: Timestamp::now().as_micros(),
                public,
                sealed_secret: sealed,
            },
        );
        log.commit(
            store,
            batch,
            &[Event::new(
                "signing_key_created",
                None,
                serde_json::json!({ "public_key": crate::hex::encode(&public) }),
            )],
        )?;
        Ok(Some(Signer { key }))
    }

    pub(crate) fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `message`, which must begin with its own signing context.
    pub(crate) fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Signs a certificate; returns its canonical (RFC 8785) one-line JSON
    /// form. Refuses integers beyond 2^53 - 1, which JCS cannot carry
    /// exactly.
    pub(crate) fn sign(&self, cert: &Certificate) -> Result<String> {
        if let Some(name) = inexact_number(cert)? {
            return Err(internal(&name, "exceeds 2^53 - 1"));
        }
        let sig = self.key.sign(&body_bytes(cert)?);
        let signed = Signed {
            certificate: cert.clone(),
            signature: crate::hex::encode(&sig.to_bytes()),
        };
        serde_json_canonicalizer::to_string(&signed).map_err(|e| internal("document", e))
    }
}

fn strict_hex<const N: usize>(what: &str, s: &str) -> Result<[u8; N]> {
    let bytes = crate::hex::decode(s)
        .filter(|b| crate::hex::encode(b) == s)
        .ok_or_else(|| Error::InvalidCertificate(format!("{what} is not lowercase hex")))?;
    bytes
        .try_into()
        .map_err(|_| Error::InvalidCertificate(format!("{what} has the wrong length")))
}

/// Parses a public key as exported by `lethedb certificate public-key`:
/// 64 lowercase hex characters (surrounding whitespace ignored).
///
/// ```
/// assert!(lethedb::parse_public_key(&"ab".repeat(32)).is_ok());
/// assert!(lethedb::parse_public_key("xyz").is_err());
/// ```
pub fn parse_public_key(text: &str) -> Result<[u8; 32]> {
    strict_hex("public key", text.trim())
}

/// What [`verify_certificate`] established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateCheck {
    /// The verified certificate.
    pub certificate: Certificate,
}

/// Verifies a certificate against a public key (32 bytes). Needs no master
/// key and no store.
///
/// The text may be any JSON serialisation of the certificate (pretty
/// printed, keys reordered, escapes changed): format `/3` is verified over
/// the RFC 8785 canonical form of the body, format `/2` over its compact
/// form rebuilt from the parsed values. Any changed value, or an added,
/// removed or repeated member, fails.
///
/// ```
/// let err = lethedb::verify_certificate("{}", &[0u8; 32]).unwrap_err();
/// assert!(matches!(err, lethedb::Error::InvalidCertificate(_)));
/// ```
pub fn verify_certificate(text: &str, public_key: &[u8; 32]) -> Result<CertificateCheck> {
    // Typed parsing rejects unknown, missing and duplicate members (a
    // `serde_json::Value` would silently keep the last of two duplicates).
    let signed: Signed = serde_json::from_str(text)
        .map_err(|e| Error::InvalidCertificate(format!("not a certificate: {e}")))?;
    let c = &signed.certificate;
    let v4 = c.format == CERT_FORMAT;
    if v4 != c.root_destroyed_in.is_some() {
        return Err(Error::InvalidCertificate(format!(
            "format {:?} {} root_destroyed_in",
            c.format,
            if v4 { "requires" } else { "does not carry" }
        )));
    }
    let message = match c.format.as_str() {
        CERT_FORMAT | CERT_FORMAT_V3 => {
            if let Some(name) = inexact_number(c)? {
                return Err(Error::InvalidCertificate(format!(
                    "{name} exceeds 2^53 - 1 (not representable in canonical JSON)"
                )));
            }
            body_bytes(c)?
        }
        CERT_FORMAT_V2 => body_bytes_v2(c)?,
        other => {
            return Err(Error::InvalidCertificate(format!(
                "unknown format {other:?}"
            )))
        }
    };
    let named: [u8; 32] = strict_hex("public_key", &c.public_key)?;
    if &named != public_key {
        return Err(Error::InvalidCertificate(
            "signed by another key than the one given".into(),
        ));
    }
    let sig: [u8; 64] = strict_hex("signature", &signed.signature)?;
    let vk = VerifyingKey::from_bytes(public_key)
        .map_err(|_| Error::InvalidCertificate("public key is not a valid Ed25519 key".into()))?;
    vk.verify_strict(&message, &Signature::from_bytes(&sig))
        .map_err(|_| Error::InvalidCertificate("signature does not verify".into()))?;
    Ok(CertificateCheck {
        certificate: signed.certificate,
    })
}

/// Checks a verified certificate's chain position in a store's audit log:
/// the chain verifies and the entry at `audit_seq` hashes to `audit_head`.
/// Reads the store without its master key.
pub(crate) fn check_chain_position(store: &Store, c: &Certificate) -> Result<()> {
    let report = audit::verify(store, None)?;
    if c.audit_seq > report.entries {
        return Err(Error::InvalidCertificate(format!(
            "audit entry {} lies beyond the log's head (entry {})",
            c.audit_seq, report.entries
        )));
    }
    let entry = audit::entry_at(store, c.audit_seq)?.ok_or_else(|| {
        Error::InvalidCertificate(format!("audit entry {} is missing", c.audit_seq))
    })?;
    if crate::hex::encode(&audit::entry_hash(&entry)) != c.audit_head {
        return Err(Error::InvalidCertificate(format!(
            "audit entry {} does not have the certified hash",
            c.audit_seq
        )));
    }
    if entry.kind != "purge" {
        return Err(Error::InvalidCertificate(format!(
            "audit entry {} is not a purge",
            c.audit_seq
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "certificate_tests.rs"]
mod tests;
