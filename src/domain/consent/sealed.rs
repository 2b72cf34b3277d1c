//! Consent records on disk: validation, purpose tags, sealing under the
//! profile's consent key, the current-state / history / grant index
//! entries staged into a batch, and `recorded_at` allocation.

use std::collections::HashMap;

use super::record::*;
use crate::crypto::aead;
use crate::domain::profiles::Working;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keytree::field_ad;
use crate::storage::columns::{ConsentCurrent, ConsentGranted, ConsentHistory};
use crate::storage::records::SealedConsent;
use crate::storage::Batch;
use crate::types::{ProfileId, Timestamp};

pub(super) const MAX_TEXT: usize = 4096;

pub(super) fn check_record(db: &Engine, r: &ConsentRecord) -> Result<()> {
    if !is_known_purpose(db, &r.purpose) {
        return Err(Error::UnknownPurpose(r.purpose.chars().take(64).collect()));
    }
    let texts = [
        Some(&r.source),
        r.policy_version.as_ref(),
        r.jurisdiction.as_ref(),
        r.proof.as_ref(),
        r.recorded_by.as_ref(),
    ];
    if texts.iter().flatten().any(|t| t.len() > MAX_TEXT) {
        return Err(Error::InvalidInput(
            "a consent text field is longer than 4096 bytes".into(),
        ));
    }
    if !r.timestamp.is_valid() || r.expires_at.is_some_and(|t| !t.is_valid()) {
        return Err(Error::InvalidInput(
            "consent timestamp outside years 0001..=9999".into(),
        ));
    }
    Ok(())
}

/// Built-in purposes, schema-declared ones, and `segment:<category>`.
pub(crate) fn is_known_purpose(db: &Engine, p: &str) -> bool {
    BUILTIN_PURPOSES.contains(&p)
        || db.schema_snapshot().purposes.contains(p)
        || p.strip_prefix("segment:")
            .is_some_and(|c| !c.is_empty() && c.len() <= 128)
}

pub(super) fn purpose_tag(db: &Engine, purpose: &str) -> Result<[u8; 8]> {
    let full = db.blind.key("$purpose", purpose)?;
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&full[..8]);
    Ok(tag)
}

pub(super) fn consent_ad(id: &ProfileId, generation: u32, prefix: u8, key_body: &[u8]) -> Vec<u8> {
    let mut ad = field_ad(id, generation, CONSENT_FIELD, true);
    ad.push(prefix);
    ad.extend_from_slice(key_body);
    ad
}

pub(super) fn bincode_opts() -> impl bincode::Options {
    crate::storage::records::bincode_options(1 << 20)
}

pub(super) fn consent_key(db: &Engine, w: &Working) -> Result<crate::crypto::SecretKey> {
    db.registry.ensure(&db.store, [CONSENT_FIELD])?;
    let fid = db
        .registry
        .id(CONSENT_FIELD)
        .ok_or_else(|| Error::corrupt("field registry", "consent field not registered"))?;
    w.keyring.field_keys()?.key(fid)
}

/// Seals `r` for the profile `w`. The plaintext is the bincode record,
/// followed by the origin index (u32 BE) when it is not 0 — the profile
/// among `w`'s origins the record is attributed to (docs/design.md,
/// "Consent"; records without it are the profile's own).
pub(super) fn seal(
    db: &Engine,
    w: &Working,
    prefix: u8,
    key_body: &[u8],
    r: &ConsentRecord,
    origin: u32,
) -> Result<SealedConsent> {
    seal_as(
        db,
        w,
        prefix,
        key_body,
        r,
        origin,
        Some(w.next_write_version()),
    )
}

/// `seal` binding write version `version` (format v2), or none (v1).
fn seal_as(
    db: &Engine,
    w: &Working,
    prefix: u8,
    key_body: &[u8],
    r: &ConsentRecord,
    origin: u32,
    version: Option<u64>,
) -> Result<SealedConsent> {
    use bincode::Options;
    let mut plain = zeroize::Zeroizing::new(
        bincode_opts()
            .serialize(r)
            .map_err(|e| Error::Internal(format!("consent record: {e}")))?,
    );
    if origin != 0 {
        plain.extend_from_slice(&origin.to_be_bytes());
    }
    let mut sealed = Vec::new();
    let mut ad = consent_ad(&w.id, w.record.generation, prefix, key_body);
    if let Some(v) = version {
        ad.extend_from_slice(&v.to_be_bytes());
    }
    aead::seal_into(&*consent_key(db, w)?, &ad, &plain, &mut sealed)?;
    Ok(SealedConsent {
        generation: w.record.generation,
        write_version: version,
        sealed,
    })
}

/// A consent record sealed as format v1 did (no write version): test
/// machinery for stores of mixed formats.
#[cfg(feature = "testkit")]
pub(super) fn seal_v1(
    db: &Engine,
    w: &Working,
    prefix: u8,
    key_body: &[u8],
    r: &ConsentRecord,
    origin: u32,
) -> Result<SealedConsent> {
    seal_as(db, w, prefix, key_body, r, origin, None)
}

pub(super) fn open(
    db: &Engine,
    w: &Working,
    prefix: u8,
    key_body: &[u8],
    s: &SealedConsent,
) -> Result<ConsentRecord> {
    open_with_origin(db, w, prefix, key_body, s).map(|(r, _)| r)
}

/// Opens a sealed consent record and its origin index (0: the profile's own).
pub(super) fn open_with_origin(
    db: &Engine,
    w: &Working,
    prefix: u8,
    key_body: &[u8],
    s: &SealedConsent,
) -> Result<(ConsentRecord, u32)> {
    use bincode::Options;
    let fail = || Error::Decrypt {
        profile: w.id,
        what: "consent record".into(),
    };
    if s.generation != w.record.generation {
        return Err(fail());
    }
    let mut ad = consent_ad(&w.id, s.generation, prefix, key_body);
    match s.write_version {
        Some(v) => ad.extend_from_slice(&v.to_be_bytes()),
        None => {
            if let Some(e) = db.v1_refused(&w.id, "consent record") {
                return Err(e);
            }
        }
    }
    let plain = aead::open(&*consent_key(db, w)?, &ad, &s.sealed).ok_or_else(fail)?;
    if prefix == b'c' {
        check_anchor(w, key_body, s.write_version)?;
    }
    let corrupt = |e: String| Error::corrupt("consent record", e);
    let mut rest: &[u8] = &plain;
    let r: ConsentRecord = bincode_opts()
        .allow_trailing_bytes()
        .deserialize_from(&mut rest)
        .map_err(|e| corrupt(e.to_string()))?;
    let origin = match rest {
        [] => 0,
        [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => return Err(corrupt(format!("{} trailing bytes", rest.len()))),
    };
    Ok((r, origin))
}

/// A current consent record must be the one the profile record anchors:
/// v2 records bind the write version the anchor holds; a v1 record is
/// current only for a purpose with no anchor (written before format v2).
fn check_anchor(w: &Working, key_body: &[u8], version: Option<u64>) -> Result<()> {
    let tag: [u8; 8] = key_body
        .get(16..24)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| Error::corrupt("consent record", "key too short"))?;
    let anchor = w.record.consent_anchor(&tag);
    if version == anchor {
        Ok(())
    } else {
        Err(rolled_back(w, version, anchor))
    }
}

fn rolled_back(w: &Working, version: Option<u64>, anchor: Option<u64>) -> Error {
    let show = |v: Option<u64>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
    Error::Integrity {
        profile: w.id,
        what: format!(
            "current consent record (written at version {}, the profile anchors {})",
            show(version),
            show(anchor)
        ),
    }
}

/// Every purpose the profile anchors must have had its current record in
/// `seen` (a scan of the profile's current records): none was removed.
pub(super) fn check_none_missing<'a>(
    w: &Working,
    seen: impl IntoIterator<Item = &'a [u8; 8]>,
) -> Result<()> {
    let seen: std::collections::HashSet<&[u8; 8]> = seen.into_iter().collect();
    match w.record.consents.iter().find(|(t, _)| !seen.contains(t)) {
        None => Ok(()),
        Some((_, v)) => Err(rolled_back(w, None, Some(*v))),
    }
}

/// A point read of the current record of purpose `tag` found nothing: only
/// right when the profile anchors nothing for it.
pub(super) fn check_absent(w: &Working, tag: &[u8; 8]) -> Result<()> {
    match w.record.consent_anchor(tag) {
        None => Ok(()),
        Some(v) => Err(rolled_back(w, None, Some(v))),
    }
}

pub(super) fn body<K: crate::storage::keys::KeyCodec>(k: &K) -> Vec<u8> {
    let mut out = Vec::new();
    k.write(&mut out);
    out
}

/// Current states of a profile, by purpose tag.
pub(super) fn current_states(db: &Engine, w: &Working) -> Result<HashMap<[u8; 8], ConsentRecord>> {
    let mut out = HashMap::new();
    for item in db.store.entries::<ConsentCurrent>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        let r = open(db, w, b'c', &body(&key), &sealed)?;
        out.insert(key.1, r);
    }
    check_none_missing(w, out.keys())?;
    Ok(out)
}

/// Adds a state change to `batch`: history entry, current state (when the
/// record is at least as new as the current one), and the consent index.
pub(super) fn stage_state(
    db: &Engine,
    w: &Working,
    tag: [u8; 8],
    r: &ConsentRecord,
    origin: u32,
    batch: &mut Batch,
) -> Result<()> {
    let version = put_current(db, w, tag, r, origin, batch)?;
    if r.status == ConsentStatus::Granted {
        batch.put::<ConsentGranted>(
            &(tag, w.id),
            &crate::domain::index_auth::grant_entry(db, &tag, &w.id, r.expires_at, version),
        );
    } else {
        batch.delete::<ConsentGranted>(&(tag, w.id));
    }
    Ok(())
}

/// Puts the current record of purpose `tag` and stages its anchor;
/// returns the anchor value it binds.
pub(super) fn put_current(
    db: &Engine,
    w: &Working,
    tag: [u8; 8],
    r: &ConsentRecord,
    origin: u32,
    batch: &mut Batch,
) -> Result<u64> {
    let key = (w.id, tag);
    let v = w.next_anchor(tag)?;
    let sealed = seal_as(db, w, b'c', &body(&key), r, origin, Some(v))?;
    batch.put::<ConsentCurrent>(&key, &sealed);
    Ok(v)
}

/// Deletes the current record (and index entry) of purpose `tag` and
/// stages the anchor's removal.
pub(super) fn delete_current(w: &Working, tag: [u8; 8], batch: &mut Batch) {
    batch.delete::<ConsentCurrent>(&(w.id, tag));
    batch.delete::<ConsentGranted>(&(tag, w.id));
    w.stage_anchor_removal(tag);
}

pub(super) fn stage_history(
    db: &Engine,
    w: &Working,
    r: &ConsentRecord,
    origin: u32,
    batch: &mut Batch,
) -> Result<()> {
    let mut hk = [0u8; 12];
    hk[..8].copy_from_slice(&r.recorded_at.as_micros().to_be_bytes());
    crate::random::os_random(&mut hk[8..])?;
    put_history(db, w, hk, r, origin, batch)
}

/// Puts one history entry under its key `hk` (recorded at ‖ random).
pub(super) fn put_history(
    db: &Engine,
    w: &Working,
    hk: [u8; 12],
    r: &ConsentRecord,
    origin: u32,
    batch: &mut Batch,
) -> Result<()> {
    let key = (w.id, hk);
    batch.put::<ConsentHistory>(&key, &seal(db, w, b'h', &body(&key), r, origin)?);
    Ok(())
}

/// A profile's own history in recording order: key, record, origin index.
pub(super) fn history_entries(
    db: &Engine,
    w: &Working,
) -> Result<Vec<([u8; 12], ConsentRecord, u32)>> {
    let mut out = Vec::new();
    for item in db.store.entries::<ConsentHistory>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        let (r, origin) = open_with_origin(db, w, b'h', &body(&key), &sealed)?;
        out.push((key.1, r, origin));
    }
    Ok(out)
}

/// Current states of a profile with their origin indexes.
pub(super) fn current_with_origins(
    db: &Engine,
    w: &Working,
) -> Result<HashMap<[u8; 8], (ConsentRecord, u32)>> {
    let mut out = HashMap::new();
    for item in db.store.entries::<ConsentCurrent>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        out.insert(key.1, open_with_origin(db, w, b'c', &body(&key), &sealed)?);
    }
    check_none_missing(w, out.keys())?;
    Ok(out)
}

/// Current consent states of a profile by purpose tag, as staged so far in
/// an operation (load once, then pass to every staging call).
pub(crate) type States = HashMap<[u8; 8], ConsentRecord>;

/// The stored current states of a profile.
pub(crate) fn load_states(db: &Engine, w: &Working) -> Result<States> {
    current_states(db, w)
}

/// Stages consent records for a locked, active profile into `batch`;
/// `current` holds the states as staged so far and is kept up to date.
pub(crate) fn stage_records(
    db: &Engine,
    w: &Working,
    records: &[ConsentRecord],
    origin: u32,
    current: &mut States,
    batch: &mut Batch,
) -> Result<Vec<ConsentRecord>> {
    for rec in records {
        check_record(db, rec)?;
    }
    let first = reserve_recorded_at(db, w, records.len())?;
    let mut stored = Vec::with_capacity(records.len());
    for (i, rec) in records.iter().enumerate() {
        let mut r = rec.clone();
        // Strictly increasing, in the order given: history keys sort by
        // `recorded_at`, and "later recording wins ties" must mean the later
        // record, within a call and across calls.
        r.recorded_at = Timestamp(first.saturating_add(i as i64));
        let tag = purpose_tag(db, &r.purpose)?;
        stage_history(db, w, &r, origin, batch)?;
        let newer = current.get(&tag).is_none_or(|c| r.timestamp >= c.timestamp);
        if newer {
            stage_state(db, w, tag, &r, origin, batch)?;
            current.insert(tag, r.clone());
        }
        stored.push(r);
    }
    Ok(stored)
}

/// Reserves `n` consecutive `recorded_at` values (µs) for records of the
/// locked profile `w` and returns the first: the current time, or one past
/// the last value handed out in this process, or one past the profile's
/// latest history entry (one reverse seek; covers other processes, reopens
/// and a clock stepped back), whichever is latest. So a profile's recording
/// order is strictly its history order.
pub(crate) fn reserve_recorded_at(db: &Engine, w: &Working, n: usize) -> Result<i64> {
    use std::sync::atomic::Ordering::SeqCst;
    let stored = match db.store.last_key_with::<ConsentHistory>(w.id.as_bytes())? {
        Some((_, hk)) => {
            let mut t = [0u8; 8];
            t.copy_from_slice(&hk[..8]);
            i64::from_be_bytes(t)
        }
        None => i64::MIN,
    };
    let now = Timestamp::now().as_micros().max(stored.saturating_add(1));
    let n = i64::try_from(n.max(1)).unwrap_or(i64::MAX);
    let start = |last: i64| now.max(last.saturating_add(1));
    let previous = db
        .consent_clock
        .fetch_update(SeqCst, SeqCst, |last| {
            Some(start(last).saturating_add(n - 1))
        })
        .unwrap_or_else(|last| last);
    Ok(start(previous))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history entry recorded by a process whose clock ran an hour ahead
    /// (or before the clock stepped back): new records sort after it.
    #[test]
    fn recorded_at_floors_at_the_latest_history_entry() {
        let (_dir, handle, id) = crate::db::scratch_store();
        let db = &*handle.engine;
        let ahead = Timestamp::now().as_micros() + 3_600_000_000;
        let mut hk = [0u8; 12];
        hk[..8].copy_from_slice(&ahead.to_be_bytes());
        let mut batch = Batch::new();
        batch.put::<ConsentHistory>(
            &(id, hk),
            &SealedConsent {
                generation: 0,
                write_version: Some(1),
                sealed: vec![0; 40],
            },
        );
        db.store.write(batch).unwrap();
        let w = crate::domain::profiles::load_active(db, &id).unwrap();
        assert_eq!(reserve_recorded_at(db, &w, 3).unwrap(), ahead + 1);
        assert_eq!(reserve_recorded_at(db, &w, 1).unwrap(), ahead + 4);
    }

    /// Two current records of one purpose staged by one operation (both
    /// land in the WAL) bind different anchor values, so the superseded one
    /// cannot be put back as current.
    #[test]
    fn two_current_records_of_one_purpose_in_one_operation_bind_different_values() {
        let (_dir, handle, id) = crate::db::scratch_store();
        let db = &*handle.engine;
        let w = crate::domain::profiles::load_active(db, &id).unwrap();
        let mut batch = Batch::new();
        let r = ConsentRecord::new("email_marketing", ConsentStatus::Granted);
        let tag = purpose_tag(db, "email_marketing").unwrap();
        let a = put_current(db, &w, tag, &r, 0, &mut batch).unwrap();
        let b = put_current(db, &w, tag, &r, 0, &mut batch).unwrap();
        assert_ne!(a, b);
        assert_eq!(a >> 16, w.next_write_version());
        assert_eq!(b >> 16, w.next_write_version());
    }
}
