//! The suppression list: so resolution does not re-create a forgotten
//! person from the next event that names them. Checked by identity
//! resolution, written by `forget`, lifted by `unsuppress`.
//!
//! An entry is keyed by a **bucket**: the first `SUPPRESSION_BITS` (32) bits
//! of a separately keyed HMAC of the identifier, the rest of the 16-byte key
//! zero, and holds only the day it was written — no erasure id, so nothing
//! leads from an entry to the ledger's profile ids or subject reference.
//! Many identifiers share a bucket: someone holding the master key who
//! enumerates a space of identifiers learns a set of candidates per entry,
//! not the identifier (docs/design.md, "Suppression": false-positive rate
//! and brute-force cost measured). Entries written by earlier builds under
//! the full 128-bit key are still found and lifted.

use serde_json::json;

use crate::domain::audit::Event;
use crate::domain::identity::blind::BlindKey;
use crate::domain::identity::ids::Identifier;
use crate::engine::Engine;
use crate::error::Result;
use crate::storage::columns::{cf_index, Keyspace, PendingPurges, Suppressions};
use crate::storage::records::{rekey_item_id, PendingPurge};
use crate::storage::Batch;

/// Bits of the keyed hash a suppression entry keeps.
pub(crate) const SUPPRESSION_BITS: u32 = 32;

/// The first `bits` bits of `full`, the rest zero.
fn truncate(full: BlindKey, bits: u32) -> BlindKey {
    let mut out = [0u8; 16];
    let whole = (bits / 8) as usize;
    out[..whole].copy_from_slice(&full[..whole]);
    if !bits.is_multiple_of(8) {
        out[whole] = full[whole] & (0xffu8 << (8 - bits % 8));
    }
    out
}

/// The bucket an identifier (type, normalised value) is suppressed under.
pub(crate) fn bucket(db: &Engine, id_type: &str, normalized: &str) -> Result<BlindKey> {
    Ok(truncate(
        db.suppression.key(id_type, normalized)?,
        SUPPRESSION_BITS,
    ))
}

/// Both keys an identifier's entry may have: its bucket, and the full
/// keyed hash earlier builds wrote.
fn entry_keys(db: &Engine, id_type: &str, normalized: &str) -> Result<[BlindKey; 2]> {
    let full = db.suppression.key(id_type, normalized)?;
    Ok([truncate(full, SUPPRESSION_BITS), full])
}

/// `Db::unsuppress`: lifts the suppression of one identifier.
pub(crate) fn unsuppress(db: &Engine, identifier: &Identifier) -> Result<bool> {
    let cfg = db.identity_snapshot();
    // An e-mail indexed or suppressed by an earlier build under its older
    // form is found by that form too (docs/design.md, "Identifiers and
    // normalisation").
    let forms = cfg.normalization.lookup_forms(identifier)?;
    let mut batch = Batch::new();
    let mut ranges = Vec::new();
    for form in forms {
        for key in entry_keys(db, identifier.id_type.name(), &form)? {
            if db.store.get::<Suppressions>(&key)?.is_some() {
                batch.delete::<Suppressions>(&key);
                let k = <Suppressions as Keyspace>::key(&key);
                ranges.push((cf_index(<Suppressions as Keyspace>::CF), k.clone(), k));
            }
        }
    }
    if batch.is_empty() {
        return Ok(false);
    }
    // The lifted entry's key leaves the files at the next purge.
    let at = crate::types::Timestamp::now().as_micros();
    batch.put::<PendingPurges>(
        &rekey_item_id()?,
        &PendingPurge {
            requested_at: at,
            ranges,
        },
    );
    db.audit.commit(
        &db.store,
        batch,
        &[Event::new(
            "unsuppress",
            None,
            json!({ "identifier_type": identifier.id_type.name() }),
        )],
    )?;
    db.pending.lock().add(at);
    Ok(true)
}

/// Which of `keys` (type, normalised value) are suppressed.
/// Whether resolve must check suppression at all: suppression is on and
/// some entry exists.
pub(crate) fn suppression_in_force(db: &Engine) -> bool {
    db.suppress_forgotten
        && db
            .suppression_active
            .load(std::sync::atomic::Ordering::Acquire)
}

pub(crate) fn suppressed(db: &Engine, ids: &[(&str, &str)]) -> Result<Vec<bool>> {
    if !suppression_in_force(db) {
        return Ok(vec![false; ids.len()]);
    }
    let mut keys = Vec::with_capacity(ids.len() * 2);
    for (t, n) in ids {
        keys.extend(entry_keys(db, t, n)?);
    }
    let found = db.store.multi_get::<Suppressions>(&keys)?;
    Ok(found
        .chunks(2)
        .map(|pair| pair.iter().any(Option::is_some))
        .collect())
}

#[cfg(test)]
mod buckets {
    use super::*;

    /// Truncation keeps exactly the leading bits.
    #[test]
    fn truncate_keeps_the_leading_bits() {
        let full = [0xff; 16];
        assert_eq!(
            truncate(full, 32),
            [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(truncate(full, 12)[..3], [0xff, 0xf0, 0]);
    }

    /// The false-positive rate of a fresh identifier against N suppressed
    /// ones is 1 - (1 - 2^-b)^N: measured at b = 16 (so the count is large
    /// enough to see) with real keyed hashes, it is within 4 sigma of the
    /// formula — the buckets are uniform, so at b = 32 the rate is N / 2^32.
    #[test]
    fn false_positive_rate_matches_the_formula() {
        let (_dir, handle, _) = crate::db::scratch_store();
        let db = &*handle.engine;
        let bits = 16;
        let n = 2_000;
        let probes = 100_000;
        let suppressed: std::collections::HashSet<BlindKey> = (0..n)
            .map(|i| {
                truncate(
                    db.suppression
                        .key("email", &format!("gone{i}@example.com"))
                        .unwrap(),
                    bits,
                )
            })
            .collect();
        let hits = (0..probes)
            .filter(|i| {
                let k = db
                    .suppression
                    .key("email", &format!("new{i}@example.com"))
                    .unwrap();
                suppressed.contains(&truncate(k, bits))
            })
            .count() as f64;
        let p = 1.0 - (1.0 - 2f64.powi(-(bits as i32))).powi(n);
        let expect = probes as f64 * p;
        let sigma = (probes as f64 * p * (1.0 - p)).sqrt();
        println!("b={bits} N={n}: {hits} false positives in {probes} probes (expected {expect:.0} ± {sigma:.0})");
        assert!((hits - expect).abs() < 4.0 * sigma, "{hits} vs {expect}");
    }

    /// Brute-force cost: keyed hashes per second on this machine (what an
    /// attacker with the master key pays per candidate identifier).
    /// `cargo test --release --lib suppression_bruteforce -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn suppression_bruteforce_rate() {
        let (_dir, handle, _) = crate::db::scratch_store();
        let db = &*handle.engine;
        let n = 2_000_000u64;
        let start = std::time::Instant::now();
        let mut x = 0u8;
        for i in 0..n {
            x ^= db
                .suppression
                .key("phone", &format!("+1202{i:07}"))
                .unwrap()[0];
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{:.0} keyed hashes/s ({x})", n as f64 / secs);
    }
}
