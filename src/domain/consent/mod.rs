//! Consent: per-purpose records with history, purpose-bound reads, the
//! consent index, merge policy, and IAB TCF v2.2 import.
//!
//! Every consent record is sealed with AES-256-GCM under the profile's
//! consent key (the field key of the reserved field `$consent`), with the
//! record's storage key in the associated data. Purposes appear on disk only
//! as 64-bit keyed tags (HMAC under the blind-index root), so the consent
//! index reveals neither purposes nor statuses without the master key.

pub mod tcf;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::crypto::aead;
use crate::domain::profiles::{self, final_target, is_system_field, Working};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::keytree::field_ad;
use crate::storage::columns::{ConsentCurrent, ConsentGranted, ConsentHistory, Keyspace};
use crate::storage::records::{GrantEntry, RecordStatus, SealedConsent};
use crate::storage::Batch;
use crate::types::{FieldClass, MergeId, ProfileId, Timestamp, Value};

/// Reserved field whose key seals consent records.
pub(crate) const CONSENT_FIELD: &str = "$consent";
/// Reserved field holding the restriction / objection flags.
pub(crate) const PROCESSING_FIELD: &str = "$processing";

/// The 11 IAB TCF v2.2 purposes and the built-in marketing purposes.
pub const BUILTIN_PURPOSES: &[&str] = &[
    "tcf:1",
    "tcf:2",
    "tcf:3",
    "tcf:4",
    "tcf:5",
    "tcf:6",
    "tcf:7",
    "tcf:8",
    "tcf:9",
    "tcf:10",
    "tcf:11",
    "email_marketing",
    "sms_marketing",
    "analytics",
    "personalization",
    "ads_targeting",
    "sale_or_share",
];

/// Status of a consent record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// Given.
    Granted,
    /// Refused.
    Denied,
    /// Given earlier, taken back.
    Withdrawn,
}

/// GDPR Art. 6 legal basis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// Art. 6(1)(a).
    Consent,
    /// Art. 6(1)(b).
    Contract,
    /// Art. 6(1)(c).
    LegalObligation,
    /// Art. 6(1)(d).
    VitalInterests,
    /// Art. 6(1)(e).
    PublicTask,
    /// Art. 6(1)(f).
    LegitimateInterests,
}

macro_rules! snake_parse {
    ($t:ty, $what:expr) => {
        impl std::str::FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                serde_json::from_value(serde_json::Value::String(s.to_string()))
                    .map_err(|_| Error::InvalidInput(format!("unknown {} {s:?}", $what)))
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => Err(std::fmt::Error),
                }
            }
        }
    };
}
snake_parse!(ConsentStatus, "consent status (granted, denied, withdrawn)");
snake_parse!(
    LegalBasis,
    "legal basis (consent, contract, legal_obligation, vital_interests, public_task, legitimate_interests)"
);

/// One consent record (after ISO/IEC TS 27560 and the Kantara consent receipt).
///
/// ```
/// use lethedb::{ConsentRecord, ConsentStatus};
/// let r = ConsentRecord::new("email_marketing", ConsentStatus::Granted).source("signup-form").policy_version("2024-05");
/// assert_eq!(r.purpose, "email_marketing");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Purpose id.
    pub purpose: String,
    /// Granted, denied or withdrawn.
    pub status: ConsentStatus,
    /// Legal basis.
    pub legal_basis: LegalBasis,
    /// When the person gave or refused it.
    pub timestamp: Timestamp,
    /// Source / collection method (form, CMP, call centre, …).
    pub source: String,
    /// Notice or policy version shown.
    pub policy_version: Option<String>,
    /// Jurisdiction (e.g. `EU`, `US-CA`).
    pub jurisdiction: Option<String>,
    /// When it stops counting as granted.
    pub expires_at: Option<Timestamp>,
    /// Proof: a TC string, a receipt hash, a message id.
    pub proof: Option<String>,
    /// Who recorded it (system or operator).
    pub recorded_by: Option<String>,
    /// When lethedb stored it (set on write).
    pub recorded_at: Timestamp,
}

impl ConsentRecord {
    /// A record with legal basis `consent`, timestamp now, source `api`.
    pub fn new(purpose: impl Into<String>, status: ConsentStatus) -> Self {
        ConsentRecord {
            purpose: purpose.into(),
            status,
            legal_basis: LegalBasis::Consent,
            timestamp: Timestamp::now(),
            source: "api".into(),
            policy_version: None,
            jurisdiction: None,
            expires_at: None,
            proof: None,
            recorded_by: None,
            recorded_at: Timestamp(0),
        }
    }
    /// Sets the legal basis.
    pub fn legal_basis(mut self, b: LegalBasis) -> Self {
        self.legal_basis = b;
        self
    }
    /// Sets the time it was given.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.timestamp = t;
        self
    }
    /// Sets the source.
    pub fn source(mut self, s: impl Into<String>) -> Self {
        self.source = s.into();
        self
    }
    /// Sets the policy version.
    pub fn policy_version(mut self, v: impl Into<String>) -> Self {
        self.policy_version = Some(v.into());
        self
    }
    /// Sets the jurisdiction.
    pub fn jurisdiction(mut self, j: impl Into<String>) -> Self {
        self.jurisdiction = Some(j.into());
        self
    }
    /// Sets the expiry.
    pub fn expires(mut self, t: Timestamp) -> Self {
        self.expires_at = Some(t);
        self
    }
    /// Sets the proof.
    pub fn proof(mut self, p: impl Into<String>) -> Self {
        self.proof = Some(p.into());
        self
    }
    /// Sets who recorded it.
    pub fn recorded_by(mut self, who: impl Into<String>) -> Self {
        self.recorded_by = Some(who.into());
        self
    }

    /// Whether it allows processing at `at`: status granted and not expired.
    pub fn allows_at(&self, at: Timestamp) -> bool {
        self.status == ConsentStatus::Granted && self.expires_at.is_none_or(|e| e > at)
    }

    /// Whether it is expired at `at`.
    pub fn expired_at(&self, at: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= at)
    }

    /// JSON form used by the CLI; `effective` is as of now.
    pub fn to_json(&self) -> serde_json::Value {
        self.to_json_at(Timestamp::now())
    }

    /// JSON form with `effective` (`granted`, `expired`, `not_granted`) as
    /// of `at`: an as-of listing must not judge expiry by today's clock.
    pub fn to_json_at(&self, at: Timestamp) -> serde_json::Value {
        serde_json::json!({
            "purpose": self.purpose,
            "status": self.status.to_string(),
            "effective": if self.allows_at(at) { "granted" } else if self.expired_at(at) { "expired" } else { "not_granted" },
            "legal_basis": self.legal_basis.to_string(),
            "timestamp": self.timestamp.to_string(),
            "source": self.source,
            "policy_version": self.policy_version,
            "jurisdiction": self.jurisdiction,
            "expires_at": self.expires_at.map(|t| t.to_string()),
            "proof": self.proof,
            "recorded_by": self.recorded_by,
            // Null until stored: a record built in memory was never recorded.
            "recorded_at": (self.recorded_at != Timestamp(0)).then(|| self.recorded_at.to_string()),
        })
    }
}

/// Restriction (Art. 18) and objection (Art. 21) flags of a profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingFlags {
    /// Processing restricted: purpose-bound reads return nothing.
    pub restricted: bool,
    /// The person objected: purpose-bound reads return nothing.
    pub objected: bool,
}

/// Result of a purpose-bound read.
#[derive(Clone, Debug, PartialEq)]
pub struct PurposeRead {
    /// The profile read (after following merges).
    pub profile_id: ProfileId,
    /// The purpose.
    pub purpose: String,
    /// Fields the purpose may use now.
    pub fields: BTreeMap<String, Value>,
    /// Fields withheld, with the reason.
    pub withheld: BTreeMap<String, String>,
}

impl PurposeRead {
    /// JSON form used by the CLI.
    pub fn to_json(&self) -> serde_json::Value {
        let fields = crate::types::fields_to_json(&self.fields);
        serde_json::json!({
            "profile_id": self.profile_id.to_string(),
            "purpose": self.purpose,
            "fields": fields,
            "withheld": self.withheld,
        })
    }
}

const MAX_TEXT: usize = 4096;

fn check_record(db: &Engine, r: &ConsentRecord) -> Result<()> {
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

fn purpose_tag(db: &Engine, purpose: &str) -> Result<[u8; 8]> {
    let full = db.blind.key("$purpose", purpose)?;
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&full[..8]);
    Ok(tag)
}

fn consent_ad(id: &ProfileId, generation: u32, prefix: u8, key_body: &[u8]) -> Vec<u8> {
    let mut ad = field_ad(id, generation, CONSENT_FIELD, true);
    ad.push(prefix);
    ad.extend_from_slice(key_body);
    ad
}

fn bincode_opts() -> impl bincode::Options {
    crate::storage::records::bincode_options(1 << 20)
}

fn consent_key(db: &Engine, w: &Working) -> Result<crate::crypto::SecretKey> {
    db.registry.ensure(&db.store, [CONSENT_FIELD])?;
    let fid = db
        .registry
        .id(CONSENT_FIELD)
        .ok_or_else(|| Error::corrupt("field registry", "consent field not registered"))?;
    w.keyring.field_keys()?.key(fid)
}

fn seal(
    db: &Engine,
    w: &Working,
    prefix: u8,
    key_body: &[u8],
    r: &ConsentRecord,
) -> Result<SealedConsent> {
    use bincode::Options;
    let plain = zeroize::Zeroizing::new(
        bincode_opts()
            .serialize(r)
            .map_err(|e| Error::Internal(format!("consent record: {e}")))?,
    );
    let mut sealed = Vec::new();
    aead::seal_into(
        &*consent_key(db, w)?,
        &consent_ad(&w.id, w.record.generation, prefix, key_body),
        &plain,
        &mut sealed,
    )?;
    Ok(SealedConsent {
        generation: w.record.generation,
        sealed,
    })
}

fn open(
    db: &Engine,
    w: &Working,
    prefix: u8,
    key_body: &[u8],
    s: &SealedConsent,
) -> Result<ConsentRecord> {
    use bincode::Options;
    let fail = || Error::Decrypt {
        profile: w.id,
        what: "consent record".into(),
    };
    if s.generation != w.record.generation {
        return Err(fail());
    }
    let plain = aead::open(
        &*consent_key(db, w)?,
        &consent_ad(&w.id, s.generation, prefix, key_body),
        &s.sealed,
    )
    .ok_or_else(fail)?;
    bincode_opts()
        .deserialize(&plain)
        .map_err(|e| Error::corrupt("consent record", e.to_string()))
}

fn body<K: crate::storage::keys::KeyCodec>(k: &K) -> Vec<u8> {
    let mut out = Vec::new();
    k.write(&mut out);
    out
}

/// Current states of a profile, by purpose tag.
fn current_states(db: &Engine, w: &Working) -> Result<HashMap<[u8; 8], ConsentRecord>> {
    let mut out = HashMap::new();
    for item in db.store.entries::<ConsentCurrent>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        let r = open(db, w, b'c', &body(&key), &sealed)?;
        out.insert(key.1, r);
    }
    Ok(out)
}

/// Adds a state change to `batch`: history entry, current state (when the
/// record is at least as new as the current one), and the consent index.
fn stage_state(
    db: &Engine,
    w: &Working,
    tag: [u8; 8],
    r: &ConsentRecord,
    batch: &mut Batch,
) -> Result<()> {
    let cur_key = (w.id, tag);
    batch.put::<ConsentCurrent>(&cur_key, &seal(db, w, b'c', &body(&cur_key), r)?);
    if r.status == ConsentStatus::Granted {
        batch.put::<ConsentGranted>(
            &(tag, w.id),
            &GrantEntry {
                expires_at: r.expires_at,
            },
        );
    } else {
        batch.delete::<ConsentGranted>(&(tag, w.id));
    }
    Ok(())
}

fn stage_history(db: &Engine, w: &Working, r: &ConsentRecord, batch: &mut Batch) -> Result<()> {
    let mut hk = [0u8; 12];
    hk[..8].copy_from_slice(&r.recorded_at.as_micros().to_be_bytes());
    crate::random::os_random(&mut hk[8..])?;
    let key = (w.id, hk);
    batch.put::<ConsentHistory>(&key, &seal(db, w, b'h', &body(&key), r)?);
    Ok(())
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
        stage_history(db, w, &r, batch)?;
        let newer = current.get(&tag).is_none_or(|c| r.timestamp >= c.timestamp);
        if newer {
            stage_state(db, w, tag, &r, batch)?;
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

/// The order lethedb lists purposes in: text compared piecewise, runs of
/// digits by their numeric value, so `tcf:2` comes before `tcf:10`. Total
/// and consistent with equality (ties of value, such as `01` and `1`, fall
/// back to byte order).
///
/// ```
/// let mut p = vec!["tcf:10", "email_marketing", "tcf:2", "tcf:1", "analytics"];
/// p.sort_by(|a, b| lethedb::purpose_order(a, b));
/// assert_eq!(p, ["analytics", "email_marketing", "tcf:1", "tcf:2", "tcf:10"]);
/// ```
pub fn purpose_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> impl Iterator<Item = &str> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some(run)
        })
    }
    let numeric = |x: &str, y: &str| {
        let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
        x.len().cmp(&y.len()).then_with(|| x.cmp(y))
    };
    let (mut ra, mut rb) = (runs(a), runs(b));
    loop {
        match (ra.next(), rb.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                let both_digits = x.starts_with(|c: char| c.is_ascii_digit())
                    && y.starts_with(|c: char| c.is_ascii_digit());
                let o = if both_digits { numeric(x, y) } else { x.cmp(y) };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Runs `f` on the active profile `id` resolves to, holding its stripe lock
/// (and the identity lock when `id` was merged away); `f` fills the batch.
fn with_locked_profile<T>(
    db: &Engine,
    id: &ProfileId,
    f: impl FnOnce(&Working, &mut Batch) -> Result<(T, usize)>,
) -> Result<T> {
    // Try `id` itself under its stripe lock; if it was merged away, take the
    // identity lock (merge chains then stay still) and follow the redirect.
    let mut identity = None;
    let (_guards, w) = loop {
        let target = if identity.is_some() {
            final_target(db, id)?.ok_or(Error::ProfileNotFound(*id))?
        } else {
            *id
        };
        let guards = db.locks.lock([&target]);
        let w = Working::load(db, &target)?.ok_or(Error::ProfileNotFound(*id))?;
        if w.record.status == RecordStatus::Active {
            break (guards, w);
        }
        if identity.is_some() {
            return Err(Error::corrupt(
                "profile record",
                "redirect target is not active",
            ));
        }
        drop(guards);
        identity = Some(db.identity_lock.lock());
    };
    let mut batch = Batch::new();
    let (out, records) = f(&w, &mut batch)?;
    db.audit
        .commit(&db.store, batch, &[audit_event(db, &w.id, records)?])?;
    Ok(out)
}

/// The audit entry of a consent change: that `records` records were
/// written for the subject — never which purposes or states.
pub(crate) fn audit_event(
    db: &Engine,
    id: &ProfileId,
    records: usize,
) -> Result<crate::domain::audit::Event> {
    Ok(crate::domain::audit::Event::new(
        "consent",
        Some(db.subject_ref(id)?),
        serde_json::json!({ "records": records }),
    ))
}

/// `Db::record_consents`.
/// Records consents; returns them as stored (with `recorded_at` set).
pub(crate) fn record(
    db: &Engine,
    id: &ProfileId,
    records: &[ConsentRecord],
) -> Result<Vec<ConsentRecord>> {
    with_locked_profile(db, id, |w, batch| {
        let mut states = load_states(db, w)?;
        let stored = stage_records(db, w, records, &mut states, batch)?;
        Ok((stored, records.len()))
    })
}

/// `Db::consents`: current states, in [`purpose_order`].
pub(crate) fn current(db: &Engine, id: &ProfileId) -> Result<Vec<ConsentRecord>> {
    let w = profiles::load_active(db, id)?;
    let mut v: Vec<ConsentRecord> = current_states(db, &w)?.into_values().collect();
    v.sort_by(|a, b| purpose_order(&a.purpose, &b.purpose));
    Ok(v)
}

/// `Db::consent`: the current state of one purpose (one point read).
pub(crate) fn current_one(
    db: &Engine,
    id: &ProfileId,
    purpose: &str,
) -> Result<Option<ConsentRecord>> {
    let w = profiles::load_active(db, id)?;
    let key = (w.id, purpose_tag(db, purpose)?);
    match db.store.get::<ConsentCurrent>(&key)? {
        Some(s) => Ok(Some(open(db, &w, b'c', &body(&key), &s)?)),
        None => Ok(None),
    }
}

fn own_history(db: &Engine, w: &Working) -> Result<Vec<ConsentRecord>> {
    let mut out = Vec::new();
    for item in db.store.entries::<ConsentHistory>(w.id.as_bytes())? {
        let (key, sealed) = item?;
        out.push(open(db, w, b'h', &body(&key), &sealed)?);
    }
    Ok(out)
}

/// `Db::consent_history`: the profile's own history and that of every
/// profile merged into it, each entry with the profile it was recorded for.
pub(crate) fn history(db: &Engine, id: &ProfileId) -> Result<Vec<(ProfileId, ConsentRecord)>> {
    let w = profiles::load_active(db, id)?;
    let mut out: Vec<(ProfileId, ConsentRecord)> = own_history(db, &w)?
        .into_iter()
        .map(|r| (w.id, r))
        .collect();
    for o in &w.record.origins {
        if let Some(m) = Working::load(db, o)? {
            out.extend(own_history(db, &m)?.into_iter().map(|r| (m.id, r)));
        }
    }
    out.sort_by_key(|(_, r)| r.recorded_at);
    Ok(out)
}

/// `Db::consent_at`: the state at `at` per the profile's own history — the
/// record with the latest timestamp not after `at` (later recording wins ties).
pub(crate) fn at(
    db: &Engine,
    id: &ProfileId,
    purpose: &str,
    at: Timestamp,
) -> Result<Option<ConsentRecord>> {
    let w = profiles::load_active(db, id)?;
    Ok(own_history(db, &w)?
        .into_iter()
        .filter(|r| r.purpose == purpose && r.timestamp <= at)
        .max_by_key(|r| (r.timestamp, r.recorded_at)))
}

/// `Db::consented_profiles`: profiles with `purpose` granted and not expired now.
pub(crate) fn who(db: &Engine, purpose: &str) -> Result<Vec<ProfileId>> {
    let tag = purpose_tag(db, purpose)?;
    let now = Timestamp::now();
    let mut out = Vec::new();
    for item in db.store.entries::<ConsentGranted>(&tag)? {
        let ((_, id), g) = item?;
        if g.expires_at.is_none_or(|e| e > now) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Reads the restriction / objection flags of a loaded profile.
fn flags_of(db: &Engine, w: &Working) -> Result<ProcessingFlags> {
    let Some(fid) = db.registry.id(PROCESSING_FIELD) else {
        return Ok(ProcessingFlags::default());
    };
    match w.record.fields.iter().find(|e| e.field_id == fid) {
        None => Ok(ProcessingFlags::default()),
        Some(e) => match w.open(db, e)?.1 {
            Value::Json(j) => serde_json::from_value(j)
                .map_err(|e| Error::corrupt("processing flags", e.to_string())),
            _ => Err(Error::corrupt("processing flags", "not a JSON object")),
        },
    }
}

/// `Db::processing_flags`.
pub(crate) fn flags(db: &Engine, id: &ProfileId) -> Result<ProcessingFlags> {
    flags_of(db, &profiles::load_active(db, id)?)
}

/// `Db::set_processing_flags`.
pub(crate) fn set_flags(db: &Engine, id: &ProfileId, flags: ProcessingFlags) -> Result<()> {
    let json = serde_json::to_value(flags).map_err(|e| Error::Internal(e.to_string()))?;
    profiles::apply_system(
        db,
        id,
        PROCESSING_FIELD,
        Value::Json(json),
        Some("processing_flags"),
    )
}

/// `Db::get_for_purpose`.
pub(crate) fn read_for_purpose(db: &Engine, id: &ProfileId, purpose: &str) -> Result<PurposeRead> {
    if !is_known_purpose(db, purpose) {
        return Err(Error::UnknownPurpose(purpose.chars().take(64).collect()));
    }
    let w = profiles::load_active(db, id)?;
    let schema = db.schema_snapshot();
    let flags = flags_of(db, &w)?;
    let key = (w.id, purpose_tag(db, purpose)?);
    let state = match db.store.get::<ConsentCurrent>(&key)? {
        Some(s) => Some(open(db, &w, b'c', &body(&key), &s)?),
        None => None,
    };
    let now = Timestamp::now();
    let mut out = PurposeRead {
        profile_id: w.id,
        purpose: purpose.to_string(),
        fields: BTreeMap::new(),
        withheld: BTreeMap::new(),
    };
    for entry in &w.record.fields {
        let name = db.registry.name(entry.field_id)?;
        if is_system_field(&name) {
            continue;
        }
        let spec = schema.spec(&name);
        let refusal: Option<String> = if flags.restricted {
            Some("processing restricted (GDPR Art. 18)".into())
        } else if flags.objected {
            Some("the person objected to processing (GDPR Art. 21)".into())
        } else if spec.class == FieldClass::NonPersonal {
            None
        } else if !spec.purposes.iter().any(|p| p == purpose) {
            Some(format!("field is not declared for purpose {purpose}"))
        } else {
            match &state {
                None => Some("no consent or legal basis recorded for the purpose".into()),
                Some(s) if s.expired_at(now) => Some("consent expired".into()),
                Some(s) if s.status != ConsentStatus::Granted => {
                    Some(format!("consent {}", s.status))
                }
                Some(s)
                    if spec.class == FieldClass::Sensitive
                        && s.legal_basis != LegalBasis::Consent =>
                {
                    Some(format!(
                        "special-category data needs explicit consent, basis is {}",
                        s.legal_basis
                    ))
                }
                Some(_) => None,
            }
        };
        match refusal {
            Some(why) => {
                out.withheld.insert(name, why);
            }
            None => {
                let (_, value) = w.open(db, entry)?;
                out.fields.insert(name, value);
            }
        }
    }
    Ok(out)
}

fn restrictiveness(r: &ConsentRecord, now: Timestamp) -> (u8, i64) {
    if !r.allows_at(now) {
        (0, 0)
    } else {
        (1, r.expires_at.map_or(i64::MAX, |t| t.as_micros()))
    }
}

/// Merge policy: per purpose, the most restrictive current state wins
/// (not granted < granted expiring sooner < granted expiring later). When
/// the survivor's state changes, the change is recorded in its history with
/// source `merge:<merge id>`. The merged profile's index entries are removed;
/// its states and history stay (frozen) for unmerge and audit.
pub(crate) fn on_merge(
    db: &Engine,
    s: &Working,
    q: &Working,
    merge_id: MergeId,
    s_states: &mut States,
    batch: &mut Batch,
) -> Result<()> {
    let now = Timestamp::now();
    let q_states = current_states(db, q)?;
    for (tag, qr) in &q_states {
        batch.delete::<ConsentGranted>(&(*tag, q.id));
        let winner = match s_states.get(tag) {
            Some(sr) if restrictiveness(sr, now) <= restrictiveness(qr, now) => continue,
            _ => qr,
        };
        let mut r = winner.clone();
        r.source = format!("merge:{merge_id}");
        r.recorded_at = Timestamp(reserve_recorded_at(db, s, 1)?);
        stage_history(db, s, &r, batch)?;
        stage_state(db, s, *tag, &r, batch)?;
        s_states.insert(*tag, r);
    }
    Ok(())
}

/// Unmerge: the restored profile's consent index entries come back from its
/// own (frozen) current states. The survivor keeps its states, including the
/// more restrictive ones the merge gave it — the safe side.
pub(crate) fn on_unmerge(db: &Engine, b: &Working, batch: &mut Batch) -> Result<()> {
    for (tag, r) in current_states(db, b)? {
        if r.status == ConsentStatus::Granted {
            batch.put::<ConsentGranted>(
                &(tag, b.id),
                &GrantEntry {
                    expires_at: r.expires_at,
                },
            );
        }
    }
    Ok(())
}

/// Key ranges holding a profile's consent records (current and history).
pub(crate) fn touched_ranges(id: &ProfileId, add: &mut dyn FnMut(&'static str, Vec<u8>, Vec<u8>)) {
    for prefix in [
        <ConsentCurrent as Keyspace>::PREFIX,
        <ConsentHistory as Keyspace>::PREFIX,
    ] {
        let mut start = vec![prefix];
        start.extend_from_slice(id.as_bytes());
        let mut end = start.clone();
        end.resize(start.len() + 12, 0xff);
        add(<ConsentCurrent as Keyspace>::CF, start, end);
    }
}

/// Erasure: deletes every consent record of `id` (current states, history,
/// index entries) into `batch`, reporting the key ranges touched; returns
/// the number of records removed.
pub(crate) fn erase_into(
    db: &Engine,
    id: &ProfileId,
    batch: &mut Batch,
    add: &mut dyn FnMut(&'static str, Vec<u8>, Vec<u8>),
) -> Result<u32> {
    let mut n = 0u32;
    for key in db.store.keys_with::<ConsentCurrent>(id.as_bytes())? {
        let key = key?;
        batch.delete::<ConsentCurrent>(&key);
        batch.delete::<ConsentGranted>(&(key.1, *id));
        let g = ConsentGranted::key(&(key.1, *id));
        add(<ConsentGranted as Keyspace>::CF, g.clone(), g);
        n += 1;
    }
    for key in db.store.keys_with::<ConsentHistory>(id.as_bytes())? {
        batch.delete::<ConsentHistory>(&key?);
        n += 1;
    }
    touched_ranges(id, add);
    Ok(n)
}

/// Re-key: re-seals every consent record of `old` under `new`'s keyring.
pub(crate) fn reseal(db: &Engine, old: &Working, new: &Working, batch: &mut Batch) -> Result<()> {
    for item in db.store.entries::<ConsentCurrent>(old.id.as_bytes())? {
        let (key, sealed) = item?;
        let r = open(db, old, b'c', &body(&key), &sealed)?;
        batch.put::<ConsentCurrent>(&key, &seal(db, new, b'c', &body(&key), &r)?);
    }
    for item in db.store.entries::<ConsentHistory>(old.id.as_bytes())? {
        let (key, sealed) = item?;
        let r = open(db, old, b'h', &body(&key), &sealed)?;
        batch.put::<ConsentHistory>(&key, &seal(db, new, b'h', &body(&key), &r)?);
    }
    Ok(())
}

/// Consent records a TC string implies: one per TCF purpose 1–11 — granted
/// on consent if its consent bit is set, else granted on legitimate interests
/// if that bit is set, else denied — with the TC string as proof.
pub(crate) fn records_from_tcf(tc: &tcf::TcString, text: &str) -> Vec<ConsentRecord> {
    (1u8..=11)
        .map(|p| {
            let (status, basis) = if tc.purpose_consents.contains(&p) {
                (ConsentStatus::Granted, LegalBasis::Consent)
            } else if tc.purpose_legitimate_interests.contains(&p) {
                (ConsentStatus::Granted, LegalBasis::LegitimateInterests)
            } else {
                (ConsentStatus::Denied, LegalBasis::Consent)
            };
            let mut r = ConsentRecord::new(format!("tcf:{p}"), status)
                .legal_basis(basis)
                .at(tc.last_updated)
                .source(format!("tcf:cmp:{}:{}", tc.cmp_id, tc.cmp_version))
                .policy_version(format!(
                    "tcf-policy:{};gvl:{}",
                    tc.policy_version, tc.vendor_list_version
                ))
                .proof(text.trim());
            r.jurisdiction = Some(tc.publisher_country.clone());
            r
        })
        .collect()
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
                sealed: vec![0; 40],
            },
        );
        db.store.write(batch).unwrap();
        let w = profiles::load_active(db, &id).unwrap();
        assert_eq!(reserve_recorded_at(db, &w, 3).unwrap(), ahead + 1);
        assert_eq!(reserve_recorded_at(db, &w, 1).unwrap(), ahead + 4);
    }
}
