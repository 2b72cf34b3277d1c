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
/// Value of the `format` field of certificates issued now.
pub(crate) const CERT_FORMAT: &str = "lethedb-erasure-certificate/3";
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
    /// `lethedb-erasure-certificate/3` (`/2` for certificates issued
    /// before RFC 8785 signing).
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
    let message = match c.format.as_str() {
        CERT_FORMAT => {
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
    audit::verify(store)?;
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
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn sample() -> Certificate {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        Certificate {
            format: CERT_FORMAT.into(),
            store_id: "00112233445566778899aabbccddeeff".into(),
            erasure_id: 42,
            subject_ref: "ab".repeat(32),
            scope: "profile".into(),
            fields: vec!["email".into(), "naïve/field".into()],
            profiles_erased: 2,
            key_ids_destroyed: vec!["cd".repeat(16), "ef".repeat(16)],
            index_entries_removed: 3,
            consent_records_removed: 4,
            suppressed_identifiers: 1,
            requested_at: "2026-11-29T10:00:00.000000Z".into(),
            purged_at: "2026-11-29T10:00:01.500000Z".into(),
            root_epoch_destroyed: 5,
            root_epochs_destroyed: vec![4, 5],
            root_epoch: 6,
            backups_rekeyed: 1,
            backups_invalidated: 0,
            erasure_audit_seq: 17,
            audit_seq: 18,
            audit_head: "12".repeat(32),
            purge_bytes_rewritten: 1_234_567,
            public_key: crate::hex::encode(&key.verifying_key().to_bytes()),
        }
    }

    fn signer() -> (Signer, [u8; 32]) {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let pk = key.verifying_key().to_bytes();
        (Signer { key }, pk)
    }

    /// Rewrites a JSON value with object members in reverse order.
    fn reversed(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let members: Vec<String> = m
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{} : {}", json!(k), reversed(v)))
                    .collect();
                format!("{{ {} }}", members.join(" ,\n "))
            }
            Value::Array(a) => {
                let items: Vec<String> = a.iter().map(reversed).collect();
                format!("[ {} ]", items.join(", "))
            }
            other => other.to_string(),
        }
    }

    /// Every way of changing one value of the body (and the signature).
    fn single_value_changes(v: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        let Value::Object(doc) = v else {
            return out;
        };
        for (section, inner) in doc {
            match inner {
                Value::Object(body) => {
                    for (k, leaf) in body {
                        let mut changed = Vec::new();
                        match leaf {
                            Value::String(s) => {
                                changed.push(json!(format!("{s}x")));
                                let mut t: Vec<char> = s.chars().collect();
                                if let Some(c) = t.first_mut() {
                                    *c = if *c == '1' { '2' } else { '1' };
                                }
                                changed.push(json!(t.into_iter().collect::<String>()));
                            }
                            Value::Number(n) => {
                                let n = n.as_u64().unwrap_or(0);
                                changed.push(json!(n + 1));
                                changed.push(json!(n.saturating_sub(1).max(n ^ 1)));
                            }
                            Value::Array(a) => {
                                let mut longer = a.clone();
                                longer.push(a.first().cloned().unwrap_or(json!("x")));
                                changed.push(Value::Array(longer));
                                if !a.is_empty() {
                                    changed.push(Value::Array(a[1..].to_vec()));
                                    let mut rev = a.clone();
                                    rev.reverse();
                                    if rev != *a {
                                        changed.push(Value::Array(rev));
                                    }
                                }
                            }
                            other => panic!("unexpected {other}"),
                        }
                        for c in changed {
                            let mut d = v.clone();
                            d[section][k] = c;
                            out.push(d);
                        }
                    }
                }
                Value::String(sig) => {
                    let mut d = v.clone();
                    let flipped = if sig.starts_with('0') { "1" } else { "0" };
                    d[section] = json!(format!("{flipped}{}", &sig[1..]));
                    out.push(d);
                }
                other => panic!("unexpected {other}"),
            }
        }
        out
    }

    #[test]
    fn issued_text_is_the_jcs_form_and_verifies() {
        let (s, pk) = signer();
        let text = s.sign(&sample()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json_canonicalizer::to_string(&v).unwrap(), text);
        let check = verify_certificate(&text, &pk).unwrap();
        assert_eq!(check.certificate, sample());
    }

    /// The canonical form written out by hand from RFC 8785 (members sorted
    /// by code unit, no white space, UTF-8 as is, `/` unescaped, integers
    /// in shortest form), not from the canonicaliser under test.
    #[test]
    fn canonical_bytes_match_rfc_8785_by_hand() {
        let (s, pk) = signer();
        let c = sample();
        let body = format!(
            concat!(
                r#"{{"audit_head":"{head}","audit_seq":18,"backups_invalidated":0,"#,
                r#""backups_rekeyed":1,"consent_records_removed":4,"erasure_audit_seq":17,"#,
                r#""erasure_id":42,"fields":["email","naïve/field"],"#,
                r#""format":"lethedb-erasure-certificate/3","index_entries_removed":3,"#,
                r#""key_ids_destroyed":["{k1}","{k2}"],"profiles_erased":2,"#,
                r#""public_key":"{pk}","purge_bytes_rewritten":1234567,"#,
                r#""purged_at":"2026-11-29T10:00:01.500000Z","#,
                r#""requested_at":"2026-11-29T10:00:00.000000Z","root_epoch":6,"#,
                r#""root_epoch_destroyed":5,"root_epochs_destroyed":[4,5],"scope":"profile","#,
                r#""store_id":"00112233445566778899aabbccddeeff","subject_ref":"{subject}","#,
                r#""suppressed_identifiers":1}}"#
            ),
            head = "12".repeat(32),
            k1 = "cd".repeat(16),
            k2 = "ef".repeat(16),
            pk = crate::hex::encode(&pk),
            subject = "ab".repeat(32),
        );
        let text = s.sign(&c).unwrap();
        let sig_hex = text
            .rsplit_once(r#","signature":""#)
            .and_then(|(_, t)| t.strip_suffix(r#""}"#))
            .expect("signature member last");
        assert_eq!(
            text,
            format!(r#"{{"certificate":{body},"signature":"{sig_hex}"}}"#)
        );
        // The signature is Ed25519 over the context and those bytes.
        let mut msg = b"lethedb/certificate/v3".to_vec();
        msg.extend_from_slice(body.as_bytes());
        let sig: [u8; 64] = crate::hex::decode(sig_hex).unwrap().try_into().unwrap();
        VerifyingKey::from_bytes(&pk)
            .unwrap()
            .verify_strict(&msg, &Signature::from_bytes(&sig))
            .unwrap();
    }

    #[test]
    fn reserialised_certificates_still_verify() {
        let (s, pk) = signer();
        let text = s.sign(&sample()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let forms = [
            serde_json::to_string_pretty(&v).unwrap(),
            // Python's json.dump default separators.
            text.replace("\",\"", "\", \"")
                .replace("\":", "\": ")
                .replace(",\"", ", \""),
            reversed(&v),
            // Other escapes of the same characters.
            text.replace("naïve\\/field", "na\\u00efve\\/field")
                .replace("naïve/field", "na\\u00efve\\/field")
                .replace("\"email\"", "\"\\u0065mail\""),
            format!("\n\t{text}\r\n "),
        ];
        for (i, form) in forms.iter().enumerate() {
            assert_ne!(form, &text, "form {i} is not a re-serialisation");
            verify_certificate(form, &pk)
                .unwrap_or_else(|e| panic!("form {i} failed: {e}\n{form}"));
        }
    }

    #[test]
    fn any_single_changed_value_fails() {
        let (s, pk) = signer();
        let text = s.sign(&sample()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let changes = single_value_changes(&v);
        assert!(changes.len() > 40, "{}", changes.len());
        for d in changes {
            for form in [d.to_string(), serde_json::to_string_pretty(&d).unwrap()] {
                assert!(
                    verify_certificate(&form, &pk).is_err(),
                    "changed certificate verified: {form}"
                );
            }
        }
        // Added, removed and repeated members.
        let mut added = v.clone();
        added["certificate"]["note"] = json!("x");
        let mut removed = v.clone();
        removed["certificate"]
            .as_object_mut()
            .unwrap()
            .remove("fields");
        let repeated = text.replacen(
            "\"erasure_id\":42",
            "\"erasure_id\":42,\"erasure_id\":43",
            1,
        );
        assert_ne!(repeated, text);
        for form in [added.to_string(), removed.to_string(), repeated] {
            assert!(matches!(
                verify_certificate(&form, &pk),
                Err(Error::InvalidCertificate(_))
            ));
        }
    }

    #[test]
    fn integers_beyond_two_to_the_53_are_not_signed() {
        let (s, pk) = signer();
        let mut c = sample();
        c.purge_bytes_rewritten = MAX_EXACT_INTEGER + 1;
        assert!(s.sign(&c).is_err());
        c.purge_bytes_rewritten = MAX_EXACT_INTEGER;
        let text = s.sign(&c).unwrap();
        verify_certificate(&text, &pk).unwrap();
        // A value one past the limit rounds to the same double as a signed
        // value would: refused, not verified.
        let past = text.replace("9007199254740991", "9007199254740993");
        assert_ne!(past, text);
        assert!(verify_certificate(&past, &pk).is_err());
    }

    #[test]
    fn format_2_certificates_still_verify_and_fail_on_changes() {
        // A `/2` certificate as earlier builds issued it: compact JSON in
        // field order, signed over the v1 context.
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let pk = key.verifying_key().to_bytes();
        let mut c = sample();
        c.format = CERT_FORMAT_V2.into();
        c.public_key = crate::hex::encode(&pk);
        let mut msg = b"lethedb/certificate/v1".to_vec();
        msg.extend_from_slice(&serde_json::to_vec(&c).unwrap());
        let sig = key.sign(&msg);
        let text = serde_json::to_string(&Signed {
            certificate: c.clone(),
            signature: crate::hex::encode(&sig.to_bytes()),
        })
        .unwrap();
        assert!(text.starts_with("{\"certificate\":{\"format\":\"lethedb-erasure-certificate/2\""));
        assert_eq!(verify_certificate(&text, &pk).unwrap().certificate, c);
        let v: Value = serde_json::from_str(&text).unwrap();
        verify_certificate(&serde_json::to_string_pretty(&v).unwrap(), &pk).unwrap();
        verify_certificate(&reversed(&v), &pk).unwrap();
        for d in single_value_changes(&v) {
            assert!(verify_certificate(&d.to_string(), &pk).is_err(), "{d}");
        }
        // A /2 body signed under the /3 rules does not pass as /2, nor the reverse.
        let (s3, pk3) = signer();
        let mut as3 = sample();
        as3.format = CERT_FORMAT_V2.into();
        let forged = s3.sign(&as3).unwrap();
        assert!(verify_certificate(&forged, &pk3).is_err());
    }

    /// The `verify_certificate` fuzz corpus holds certificates this module
    /// signs with the fuzz key; `LETHEDB_WRITE_CORPUS=1` rewrites them.
    #[test]
    fn fuzz_corpus_seeds_are_current() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/verify_certificate");
        let key = SigningKey::from_bytes(&crate::fuzz_support::CERTIFICATE_FUZZ_SECRET);
        let mut c = sample();
        c.public_key = crate::hex::encode(&key.verifying_key().to_bytes());
        let v3 = Signer { key: key.clone() }.sign(&c).unwrap();
        let mut c2 = c.clone();
        c2.format = CERT_FORMAT_V2.into();
        let mut msg = SIGN_CONTEXT_V2.to_vec();
        msg.extend_from_slice(&serde_json::to_vec(&c2).unwrap());
        let v2 = serde_json::to_string(&Signed {
            certificate: c2,
            signature: crate::hex::encode(&key.sign(&msg).to_bytes()),
        })
        .unwrap();
        for (name, text) in [("v3_signed", v3), ("v2_signed", v2)] {
            let path = dir.join(name);
            if std::env::var_os("LETHEDB_WRITE_CORPUS").is_some() {
                std::fs::write(&path, &text).unwrap();
            }
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{name}");
            verify_certificate(&text, &key.verifying_key().to_bytes()).unwrap();
        }
    }
}
