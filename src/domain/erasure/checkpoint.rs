//! Signed audit checkpoints: the audit log's head at one moment, signed
//! with the store's Ed25519 key, exported to wherever the operator keeps
//! evidence. The chain itself (SHA-256, head stored beside the entries)
//! shows an altered or removed entry *inside* the log; a cut tail with a
//! rewritten head is only visible against a head recorded elsewhere, which
//! is what a checkpoint is (`lethedb audit checkpoint`, then
//! `lethedb audit verify --checkpoint FILE`).
//!
//! Format (RFC 8785 canonical JSON, one line):
//! `{"checkpoint":{"at","format","head","public_key","seq","store_id"},
//! "signature"}` — the signature is Ed25519 over
//! `"lethedb/audit-checkpoint/v1" ‖ JCS(checkpoint)`, a context no
//! certificate signature uses.

use serde::{Deserialize, Serialize};

use super::certificate::Signer;
use crate::domain::audit;
use crate::error::{Error, Result};
use crate::storage::Store;
use crate::types::Timestamp;

const CONTEXT: &[u8] = b"lethedb/audit-checkpoint/v1";
const FORMAT: &str = "lethedb-audit-checkpoint/1";

/// The signed content of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpoint {
    /// `lethedb-audit-checkpoint/1`.
    pub format: String,
    /// Store id (hex).
    pub store_id: String,
    /// Sequence number of the last entry covered.
    pub seq: u64,
    /// Hash of that entry (hex; zeros for an empty log).
    pub head: String,
    /// When the checkpoint was taken (RFC 3339).
    pub at: String,
    /// The store's Ed25519 public key (hex).
    pub public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    checkpoint: AuditCheckpoint,
    signature: String,
}

fn message(c: &AuditCheckpoint) -> Result<Vec<u8>> {
    let mut msg = CONTEXT.to_vec();
    msg.extend_from_slice(
        &serde_json_canonicalizer::to_vec(c)
            .map_err(|e| Error::Internal(format!("checkpoint: {e}")))?,
    );
    Ok(msg)
}

/// A signed checkpoint of `store`'s audit log as it is now (the chain is
/// verified first: a checkpoint never vouches for a broken log).
pub(crate) fn take(store: &Store, store_id: &str, signer: &Signer) -> Result<String> {
    let report = audit::verify(store, None)?;
    let c = AuditCheckpoint {
        format: FORMAT.into(),
        store_id: store_id.into(),
        seq: report.entries,
        head: report.head_hash,
        at: Timestamp::now().to_string(),
        public_key: crate::hex::encode(&signer.public_key()),
    };
    if c.seq > (1 << 53) - 1 {
        return Err(Error::Internal("audit sequence beyond 2^53 - 1".into()));
    }
    let signature = crate::hex::encode(&signer.sign_message(&message(&c)?));
    serde_json_canonicalizer::to_string(&Signed {
        checkpoint: c,
        signature,
    })
    .map_err(|e| Error::Internal(format!("checkpoint: {e}")))
}

/// Checks `text` is a checkpoint signed by `public_key` (when given; else
/// by the key it names) for the store `store_id`, and that `store`'s log
/// still holds its entry with its hash and chains past it. A log cut below
/// the checkpoint, or rewritten, fails with `Error::AuditChain`.
pub(crate) fn verify(
    store: &Store,
    store_id: &str,
    text: &str,
    public_key: Option<&[u8; 32]>,
) -> Result<AuditCheckpoint> {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let bad = |why: &str| Error::InvalidInput(format!("audit checkpoint: {why}"));
    let signed: Signed = serde_json::from_str(text.trim()).map_err(|e| bad(&e.to_string()))?;
    let c = signed.checkpoint;
    if c.format != FORMAT {
        return Err(bad("unknown format"));
    }
    let named: [u8; 32] = crate::hex::decode(&c.public_key)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("public key is not 32 hex bytes"))?;
    if public_key.is_some_and(|k| *k != named) {
        return Err(bad("signed by another key"));
    }
    let sig: [u8; 64] = crate::hex::decode(&signed.signature)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("signature is not 64 hex bytes"))?;
    VerifyingKey::from_bytes(&named)
        .map_err(|_| bad("invalid public key"))?
        .verify(&message(&c)?, &Signature::from_bytes(&sig))
        .map_err(|_| bad("signature does not verify"))?;
    if c.store_id != store_id {
        return Err(bad("taken of another store"));
    }
    let report = audit::verify(store, None)?;
    if report.entries < c.seq {
        return Err(Error::AuditChain {
            seq: report.entries,
            reason: format!(
                "the log ends at entry {} but a checkpoint covers entry {} (entries removed from the tail)",
                report.entries, c.seq
            ),
        });
    }
    let hash = match audit::entry_at(store, c.seq)? {
        Some(e) => crate::hex::encode(&audit::entry_hash(&e)),
        None if c.seq == 0 => crate::hex::encode(&[0u8; 32]),
        None => {
            return Err(Error::AuditChain {
                seq: c.seq,
                reason: "the checkpointed entry is missing".into(),
            })
        }
    };
    if hash != c.head {
        return Err(Error::AuditChain {
            seq: c.seq,
            reason: "the checkpointed entry has another hash (the log was rewritten)".into(),
        });
    }
    Ok(c)
}
