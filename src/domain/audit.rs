//! The audit log: append-only, hash-chained, with a keyed head.
//!
//! Entry `n` stores the hash of entry `n - 1` (`prev`); its own hash is
//! `SHA-256("lethedb/audit/v1" || encoded entry)`. The head (last sequence
//! number and hash) is stored beside the entries and anchored in every
//! erasure certificate, so an altered, removed or reordered entry breaks
//! the chain, and a truncated tail disagrees with the head or with a
//! certificate issued later. The head is sealed: every commit also writes
//! `HMAC-SHA-256(seal key, "lethedb/audit-seal/v1" || store id || seq ||
//! hash)` under a master-derived key, so cutting the tail and rewriting
//! the head is caught by [`verify`] with the key (`Db::verify_audit`)
//! unless the attacker holds the master key or an older head *and* its
//! seal (a rollback — signed checkpoints kept elsewhere catch that). Open
//! checks the seal before anything can re-seal over a rewritten head:
//! every (re)sealing is itself an entry (`audit_head_sealed`, reason
//! `created`, `missing` or `mismatch`), and the keyed verification accepts
//! exactly one, the first, with reason `created` (a new store) or
//! `missing` (a store from a build before seals). Entries carry no personal data: subjects
//! appear as pseudonymous references (HMAC of the profile id under a
//! master-derived key), details are counts, ids and field names.
//!
//! Every audited operation adds its entries to its own batch under the log
//! mutex, so the operation and its entry commit together, in sequence order.

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::crypto::{kdf, MasterKey, SecretKey};
use crate::error::{Error, Result};
use crate::storage::columns::{AuditHeads, AuditLog as AuditLogKs, AuditSeals};
use crate::storage::records::{AuditEntry, AuditHead, AuditSeal, ValueCodec};
use crate::storage::{Batch, Store};
use crate::types::Timestamp;

/// An audited event, before it gets its place in the chain.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) kind: &'static str,
    pub(crate) subject: Option<[u8; 16]>,
    pub(crate) detail: serde_json::Value,
}

impl Event {
    pub(crate) fn new(
        kind: &'static str,
        subject: Option<[u8; 16]>,
        detail: serde_json::Value,
    ) -> Self {
        Event {
            kind,
            subject,
            detail,
        }
    }
}

/// Position of an appended entry: sequence number and entry hash.
pub(crate) type Position = (u64, [u8; 32]);

/// One audit entry as shown to operators and auditors.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// Sequence number, from 1.
    pub seq: u64,
    /// When it was appended.
    pub at: Timestamp,
    /// What happened: `forget`, `forget_fields`, `purge`, `merge`, `unmerge`,
    /// `consent`, `processing_flags`, `export`, `unsuppress`, `backup`,
    /// `restore`, `retention`, `signing_key_created`, `audit_head_sealed`,
    /// `master_key_rotated`, `master_key_rotation_finished`,
    /// `blind_index_rotation_started`, `blind_index_rotation_finished`.
    pub kind: String,
    /// Pseudonymous subject reference (hex), when the entry is about one person.
    pub subject_ref: Option<String>,
    /// PII-free details.
    pub detail: serde_json::Value,
    /// This entry's hash (hex).
    pub hash: String,
}

impl AuditRecord {
    /// The record as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "at": self.at.to_string(),
            "kind": self.kind,
            "subject_ref": self.subject_ref,
            "detail": self.detail,
            "hash": self.hash,
        })
    }
}

/// Result of a successful chain verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// Number of entries checked.
    pub entries: u64,
    /// Hash of the last entry (hex; zeros for an empty log).
    pub head_hash: String,
    /// Whether the head was also checked against its keyed seal: `true`
    /// from [`Db::verify_audit`](crate::Db::verify_audit), `false` from the
    /// keyless [`verify_audit_log`](crate::verify_audit_log), which cannot
    /// tell a cut tail with a rewritten head from an intact log.
    pub head_sealed: bool,
}

/// Hash of an entry as chained.
pub(crate) fn entry_hash(entry: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"lethedb/audit/v1");
    h.update(entry.encode());
    h.finalize().into()
}

pub(crate) fn to_record(entry: &AuditEntry) -> AuditRecord {
    AuditRecord {
        seq: entry.seq,
        at: Timestamp(entry.at),
        kind: entry.kind.clone(),
        subject_ref: entry.subject.map(|s| crate::hex::encode(&s)),
        detail: serde_json::from_str(&entry.detail).unwrap_or(serde_json::Value::Null),
        hash: crate::hex::encode(&entry_hash(entry)),
    }
}

pub(crate) struct AuditLog {
    head: Mutex<AuditHead>,
    seal_key: SecretKey,
    store_id: [u8; 16],
}

/// Kind of the entry open writes when it seals a head: a new store's, or
/// one that had no seal or a seal that does not match it.
const SEALED: &str = "audit_head_sealed";

const EMPTY_HEAD: AuditHead = AuditHead {
    seq: 0,
    hash: [0; 32],
};

impl AuditLog {
    /// Loads the head and checks its seal. A new store's log, a head
    /// without a seal (a store from a build before seals, or the seal
    /// removed) and a head whose seal does not match (the tail cut and the
    /// head rewritten, or a build before seals wrote after this one) are
    /// sealed with an `audit_head_sealed` entry recording what was found,
    /// so the evidence stays in the chain (see [`verify`]).
    pub(crate) fn load(store: &Store, master: &MasterKey, store_id: &[u8; 16]) -> Result<Self> {
        let stored = store.get::<AuditHeads>(&())?;
        // A head removed while entries exist: go on after the last entry
        // (never over it), and record the finding.
        let last = match stored {
            Some(_) => None,
            None => store.last::<AuditLogKs>()?.map(|(seq, e)| AuditHead {
                seq,
                hash: entry_hash(&e),
            }),
        };
        let head = stored.or(last).unwrap_or(EMPTY_HEAD);
        let log = AuditLog {
            head: Mutex::new(head),
            seal_key: kdf::derive(master, store_id, kdf::LABEL_AUDIT_SEAL)?,
            store_id: *store_id,
        };
        // A seal that does not decode counts as one that does not match
        // (an I/O error is an error).
        let seal = match store.get::<AuditSeals>(&()) {
            Ok(s) => s,
            Err(Error::Corrupt { .. } | Error::UnsupportedFormat { .. }) => Some(AuditSeal {
                seq: u64::MAX,
                mac: [0; 32],
            }),
            Err(e) => return Err(e),
        };
        let found = match seal {
            Some(s) if s == log.seal(&head)? && last.is_none() => return Ok(log),
            None if head.seq == 0 => serde_json::json!({ "reason": "created" }),
            None if last.is_none() => {
                serde_json::json!({ "reason": "missing", "head_seq": head.seq })
            }
            s => serde_json::json!({
                "reason": "mismatch",
                "head_seq": head.seq,
                "head_missing": last.is_some(),
                "sealed_seq": s.map(|s| s.seq),
            }),
        };
        log.commit(store, Batch::new(), &[Event::new(SEALED, None, found)])?;
        Ok(log)
    }

    /// The seal of `head` under this store's seal key.
    fn seal(&self, head: &AuditHead) -> Result<AuditSeal> {
        Ok(AuditSeal {
            seq: head.seq,
            mac: kdf::mac32(
                &self.seal_key,
                &[
                    b"lethedb/audit-seal/v1",
                    &self.store_id,
                    &head.seq.to_be_bytes(),
                    &head.hash,
                ],
            )?,
        })
    }

    /// Appends `events` to `batch`, lets `extra` add writes that need the
    /// new positions, and commits the batch as one write. With `synced` the
    /// WAL is synced before this returns, whatever
    /// `Options::sync_writes` says — for operations whose acknowledgement
    /// is a promise (an erasure must not be undone by a power loss after
    /// the caller was told it happened).
    pub(crate) fn commit_with(
        &self,
        store: &Store,
        mut batch: Batch,
        events: &[Event],
        synced: bool,
        extra: impl FnOnce(&[Position], &mut Batch) -> Result<()>,
    ) -> Result<Vec<Position>> {
        let mut head = self.head.lock();
        let mut next = *head;
        let now = Timestamp::now().as_micros();
        let mut positions = Vec::with_capacity(events.len());
        for e in events {
            let entry = AuditEntry {
                seq: next.seq + 1,
                at: now,
                kind: e.kind.to_string(),
                subject: e.subject,
                detail: e.detail.to_string(),
                prev: next.hash,
            };
            let hash = entry_hash(&entry);
            batch.put::<AuditLogKs>(&entry.seq, &entry);
            next = AuditHead {
                seq: entry.seq,
                hash,
            };
            positions.push((next.seq, hash));
        }
        extra(&positions, &mut batch)?;
        if !events.is_empty() {
            batch.put::<AuditHeads>(&(), &next);
            batch.put::<AuditSeals>(&(), &self.seal(&next)?);
        }
        if synced {
            store.write_synced(batch)?;
        } else {
            store.write(batch)?;
        }
        *head = next;
        Ok(positions)
    }

    /// This log with its seal key derived from another master key (the
    /// same head): what a master-key rotation commits through, so the
    /// head it leaves is sealed under the new key.
    pub(crate) fn under(&self, master: &MasterKey) -> Result<AuditLog> {
        Ok(AuditLog {
            head: Mutex::new(*self.head.lock()),
            seal_key: kdf::derive(master, &self.store_id, kdf::LABEL_AUDIT_SEAL)?,
            store_id: self.store_id,
        })
    }

    /// Commits `batch` with `events` appended to the log.
    pub(crate) fn commit(
        &self,
        store: &Store,
        batch: Batch,
        events: &[Event],
    ) -> Result<Vec<Position>> {
        self.commit_with(store, batch, events, false, |_, _| Ok(()))
    }
}

/// Walks the whole chain: sequence numbers consecutive from 1, each entry's
/// `prev` equal to the previous hash, and the stored head equal to the last
/// entry. Needs no key: entries are plaintext and PII-free.
///
/// With `sealed_by` (the open store's log, which holds the seal key) it
/// also checks the head's seal and the sealing entries: exactly one, with
/// reason `created` or `missing`, and no other after it (a later one means
/// the seal was found removed or not matching a rewritten head).
pub(crate) fn verify(store: &Store, sealed_by: Option<&AuditLog>) -> Result<AuditReport> {
    // The head and seal are read together (with the key, under the log's
    // mutex, so no append lands between them); the walk then checks the
    // chain up to that head, without holding up appends that come after.
    let (stored, seal) = {
        let _appends = sealed_by.map(|log| log.head.lock());
        let stored = store
            .get::<AuditHeads>(&())
            .map_err(|e| Error::AuditChain {
                seq: 0,
                reason: format!("head: {e}"),
            })?
            .unwrap_or(EMPTY_HEAD);
        let seal = match sealed_by {
            Some(_) => store
                .get::<AuditSeals>(&())
                .map_err(|e| Error::AuditChain {
                    seq: stored.seq,
                    reason: format!("head seal: {e}"),
                })?,
            None => None,
        };
        (stored, seal)
    };
    let mut expect = EMPTY_HEAD;
    let mut first_sealed = None;
    let mut beyond = None;
    for item in store.entries_raw::<AuditLogKs>(&[])? {
        let (seq, bytes) = item?;
        if seq > stored.seq && expect.seq == stored.seq {
            // Appended after the head was read — checked below.
            beyond = Some(seq);
            break;
        }
        let broken = |reason: String| Error::AuditChain { seq, reason };
        let entry = AuditEntry::decode(&bytes).map_err(|e| broken(e.to_string()))?;
        if seq != expect.seq + 1 {
            return Err(broken(format!(
                "expected entry {} next (an entry was removed or reordered)",
                expect.seq + 1
            )));
        }
        if entry.seq != seq {
            return Err(broken(format!(
                "entry claims sequence number {}",
                entry.seq
            )));
        }
        if entry.prev != expect.hash {
            return Err(broken(
                "does not chain to the previous entry (an earlier entry was altered, removed or reordered)".into(),
            ));
        }
        if sealed_by.is_some() && entry.kind == SEALED {
            let found: serde_json::Value =
                serde_json::from_str(&entry.detail).unwrap_or(serde_json::Value::Null);
            match (found["reason"].as_str(), first_sealed) {
                // A new store seals at its first entry; an upgraded one
                // records its finding once.
                (Some("created"), None) if seq == 1 => first_sealed = Some(seq),
                (Some("missing"), None) => first_sealed = Some(seq),
                (Some("mismatch"), _) if found["head_missing"] == true => {
                    return Err(broken(
                        "records that the head was missing while entries existed when the store was opened (the head was removed)".into(),
                    ))
                }
                (Some("mismatch"), _) => {
                    return Err(broken(
                        "records that the stored head did not match its seal when the store was opened: the tail was cut and the head rewritten (or a build without seals wrote to the store)".into(),
                    ))
                }
                (_, first) => {
                    return Err(broken(format!(
                        "records that the head's seal was missing although the log was sealed before (entry {}): the seal was removed, the tail perhaps cut and the head rewritten",
                        first.map_or_else(|| "unknown".to_string(), |f| f.to_string())
                    )))
                }
            }
        }
        expect = AuditHead {
            seq,
            hash: entry_hash(&entry),
        };
    }
    if let Some(first) = beyond {
        // A concurrent append has moved the head past those entries by
        // now (head and entries commit together); a removed or rolled-back
        // head has not, and the entries after it were never checked.
        let now = store
            .get::<AuditHeads>(&())
            .map_err(|e| Error::AuditChain {
                seq: first,
                reason: format!("head: {e}"),
            })?
            .unwrap_or(EMPTY_HEAD);
        if now.seq < first {
            return Err(Error::AuditChain {
                seq: first,
                reason: format!(
                    "entries follow the stored head (entry {}): the head was removed or rolled back",
                    stored.seq
                ),
            });
        }
    }
    if stored != expect {
        return Err(Error::AuditChain {
            seq: expect.seq,
            reason: format!(
                "stored head names entry {} but the chain ends at entry {} with another hash (entries altered or the tail removed)",
                stored.seq, expect.seq
            ),
        });
    }
    if let Some(log) = sealed_by {
        let ok = match seal {
            Some(s) => s == log.seal(&stored)? && first_sealed.is_some(),
            None => stored.seq == 0,
        };
        if !ok {
            return Err(Error::AuditChain {
                seq: expect.seq,
                reason: "the head does not match its keyed seal (the tail was cut and the head rewritten, or the seal removed)".into(),
            });
        }
    }
    Ok(AuditReport {
        entries: expect.seq,
        head_hash: crate::hex::encode(&expect.hash),
        head_sealed: sealed_by.is_some(),
    })
}

/// The entry at `seq`, if present.
pub(crate) fn entry_at(store: &Store, seq: u64) -> Result<Option<AuditEntry>> {
    store.get::<AuditLogKs>(&seq)
}

/// Every entry about `subject`, in order.
pub(crate) fn about(store: &Store, subject: &[u8; 16]) -> Result<Vec<AuditRecord>> {
    let mut out = Vec::new();
    for item in store.entries::<AuditLogKs>(&[])? {
        let (_, e) = item?;
        if e.subject.as_ref() == Some(subject) {
            out.push(to_record(&e));
        }
    }
    Ok(out)
}

/// Every entry, in order.
pub(crate) fn all(store: &Store) -> Result<Vec<AuditRecord>> {
    store
        .entries::<AuditLogKs>(&[])?
        .map(|item| item.map(|(_, e)| to_record(&e)))
        .collect()
}
