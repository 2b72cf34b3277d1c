//! The privacy-operations part of the public API: US privacy signals (GPP,
//! GPC), TCF vendor decisions and Consent Mode v2, data-subject requests
//! and legal holds. One method per operation, each one call into the
//! domain modules.

use crate::db::Db;
use crate::domain::consent::{
    self, ConsentMode, ConsentModeMapping, ConsentRecord, VendorDecision,
};
use crate::domain::requests::{
    self, Evidence, Hold, Request, RequestFilter, RequestKind, RequestPolicy,
};
use crate::error::{Error, Result};
use crate::types::{ProfileId, Timestamp};

/// A data-subject request to open ([`Db::open_request`]).
///
/// ```
/// use lethedb::{NewRequest, RequestKind};
/// let r = NewRequest::new(RequestKind::Erasure, "US-CA").fields(["email"]).by("privacy-desk");
/// assert_eq!(r.jurisdiction, "US-CA");
/// ```
#[derive(Clone, Debug)]
pub struct NewRequest {
    /// What is asked.
    pub kind: RequestKind,
    /// Jurisdiction whose deadline applies.
    pub jurisdiction: String,
    /// Some fields only (erasure, rectification, restriction).
    pub fields: Vec<String>,
    /// When it was received (default: now).
    pub received_at: Option<Timestamp>,
    /// Who opened it (default `api`).
    pub by: String,
}

impl NewRequest {
    /// A request of `kind` under `jurisdiction`'s deadline, received now.
    pub fn new(kind: RequestKind, jurisdiction: impl Into<String>) -> Self {
        NewRequest {
            kind,
            jurisdiction: jurisdiction.into(),
            fields: Vec::new(),
            received_at: None,
            by: "api".into(),
        }
    }
    /// Limits it to these fields.
    pub fn fields<S: Into<String>>(mut self, f: impl IntoIterator<Item = S>) -> Self {
        self.fields = f.into_iter().map(Into::into).collect();
        self
    }
    /// Sets when it was received.
    pub fn received_at(mut self, t: Timestamp) -> Self {
        self.received_at = Some(t);
        self
    }
    /// Sets who opened it.
    pub fn by(mut self, who: impl Into<String>) -> Self {
        self.by = who.into();
        self
    }
}

/// A legal hold to place ([`Db::place_hold`]).
///
/// ```
/// let h = lethedb::NewHold::new("matter 2024-017", "legal").fields(["email"]);
/// assert_eq!(h.fields, ["email"]);
/// ```
#[derive(Clone, Debug)]
pub struct NewHold {
    /// Held fields; empty: the whole person.
    pub fields: Vec<String>,
    /// Why (a matter reference; no personal data).
    pub reason: String,
    /// Who answers for it.
    pub owner: String,
    /// When it lapses by itself, if ever.
    pub ends_at: Option<Timestamp>,
}

impl NewHold {
    /// A hold on the whole person.
    pub fn new(reason: impl Into<String>, owner: impl Into<String>) -> Self {
        NewHold {
            fields: Vec::new(),
            reason: reason.into(),
            owner: owner.into(),
            ends_at: None,
        }
    }
    /// Holds only these fields.
    pub fn fields<S: Into<String>>(mut self, f: impl IntoIterator<Item = S>) -> Self {
        self.fields = f.into_iter().map(Into::into).collect();
        self
    }
    /// Lapses at `t`.
    pub fn until(mut self, t: Timestamp) -> Self {
        self.ends_at = Some(t);
        self
    }
}

impl Db {
    /// Decodes an IAB GPP string and records the consent it implies, with
    /// the string as proof and the time of the call as the time it was
    /// given: `sale_or_share`, `ads_targeting` and the `sensitive:*`
    /// purposes from the US sections, `tcf:1`…`tcf:11` from `tcfeuv2`
    /// (mapping in docs/design.md, "GPP"). Returns the records as stored.
    /// A string that cannot be decoded is `Error::InvalidGppString` and
    /// records nothing.
    ///
    /// ```
    /// use lethedb::{ConsentStatus, Db, MemoryKeyProvider, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.create(Update::new())?;
    /// // usca: opted out of sale and sharing (IAB test data).
    /// let stored = db.import_gpp(&id, "DBABBg~BVVVVVVY")?;
    /// let sale = stored.iter().find(|r| r.purpose == "sale_or_share").unwrap();
    /// assert_eq!((sale.status, sale.jurisdiction.as_deref()), (ConsentStatus::Denied, Some("US-CA")));
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn import_gpp(&self, id: &ProfileId, gpp: &str) -> Result<Vec<ConsentRecord>> {
        self.import_gpp_at(id, gpp, Timestamp::now())
    }

    /// [`Db::import_gpp`] with the time the string was collected (an
    /// event's timestamp).
    pub fn import_gpp_at(
        &self,
        id: &ProfileId,
        gpp: &str,
        at: Timestamp,
    ) -> Result<Vec<ConsentRecord>> {
        self.record_us_signals(id, Some(gpp), false, at)
    }

    /// Records a Global Privacy Control signal (`Sec-GPC: 1`, or
    /// `navigator.globalPrivacyControl`) seen at `at`: an opt-out of sale
    /// and sharing — `sale_or_share` and `ads_targeting` denied, source
    /// `gpc`. Returns the records as stored.
    ///
    /// ```
    /// use lethedb::{Db, MemoryKeyProvider, Options, Timestamp, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.create(Update::new())?;
    /// db.record_gpc(&id, Timestamp::now())?;
    /// assert_eq!(db.consent(&id, "sale_or_share")?.unwrap().source, "gpc");
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn record_gpc(&self, id: &ProfileId, at: Timestamp) -> Result<Vec<ConsentRecord>> {
        self.record_us_signals(id, None, true, at)
    }

    /// A GPP string and/or a GPC signal collected together, recorded in one
    /// atomic write (one record per purpose; GPC's opt-out replaces what
    /// the GPP string says of sale and sharing). Nothing is written when
    /// the GPP string is bad.
    pub fn record_us_signals(
        &self,
        id: &ProfileId,
        gpp: Option<&str>,
        gpc: bool,
        at: Timestamp,
    ) -> Result<Vec<ConsentRecord>> {
        let records = consent::gpp::signal_records(gpp, gpc, at)?;
        if records.is_empty() {
            return Err(match gpp {
                Some(text) => Error::InvalidGppString(format!(
                    "no section this build maps to consent (sections {:?})",
                    consent::gpp::decode_header(text)?.section_ids
                )),
                None => {
                    Error::InvalidInput("no signal given (neither a GPP string nor GPC)".into())
                }
            });
        }
        let _tree = self.engine.keys.shared();
        consent::record(&self.engine, id, &records)
    }

    /// May TCF vendor `vendor` (GVL id) process this profile for TCF
    /// purpose `purpose` (1–11) now? One call for activation jobs: the
    /// profile's current `tcf:P` record must allow processing, processing
    /// must be neither restricted nor objected to, and the TC string the
    /// record came from must give the vendor consent (with purpose
    /// consent) or legitimate interest (with purpose legitimate interest,
    /// never for purposes 1 and 3–6), after publisher restrictions.
    ///
    /// ```
    /// use lethedb::{Db, MemoryKeyProvider, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.create(Update::new())?;
    /// db.import_tcf(&id, "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA")?;
    /// assert!(!db.vendor_may_process(&id, 626, 1)?.allowed);
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn vendor_may_process(
        &self,
        id: &ProfileId,
        vendor: u16,
        purpose: u8,
    ) -> Result<VendorDecision> {
        let _tree = self.engine.keys.shared();
        consent::vendor(&self.engine, id, vendor, purpose)
    }

    /// The profile's current consent as Google Consent Mode v2 signals
    /// (`ad_storage`, `analytics_storage`, `ad_user_data`,
    /// `ad_personalization`) under `mapping` ([`ConsentModeMapping`]'s
    /// default is documented there and in docs/design.md).
    ///
    /// ```
    /// use lethedb::{ConsentModeMapping, Db, MemoryKeyProvider, Options, Timestamp, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.create(Update::new())?;
    /// db.record_gpc(&id, Timestamp::now())?;
    /// let mode = db.consent_mode(&id, &ConsentModeMapping::default())?;
    /// assert_eq!(mode.to_json()["ad_user_data"], "denied");
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn consent_mode(
        &self,
        id: &ProfileId,
        mapping: &ConsentModeMapping,
    ) -> Result<ConsentMode> {
        let _tree = self.engine.keys.shared();
        consent::consent_mode(&self.engine, id, mapping)
    }

    /// The subject references of the person `id` resolves to: the active
    /// profile's first, then those of the profiles merged into it (an
    /// erasure of the person covers them all, so a hold on any counts).
    fn subjects_of(&self, id: &ProfileId) -> Result<Vec<[u8; 16]>> {
        requests::lineage_subjects(&self.engine, id)
    }

    /// Opens a data-subject request for the person `subject` resolves to.
    /// The request keeps the subject reference, never an identifier; its
    /// due time is the jurisdiction's period from receipt
    /// ([`RequestPolicy`]; GDPR one month, CCPA 45 days by default). An
    /// erasure request for a held person opens `on_hold`. Audited.
    ///
    /// ```
    /// use lethedb::{Db, MemoryKeyProvider, NewRequest, Options, RequestKind, Timestamp, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.create(Update::new().set("email", "ada@example.com"))?;
    /// let received = Timestamp::parse_rfc3339("2024-01-31T09:00:00Z")?;
    /// let r = db.open_request(&id, NewRequest::new(RequestKind::Access, "EU").received_at(received))?;
    /// assert_eq!(r.due_at.to_string(), "2024-02-29T09:00:00.000000Z"); // one month, leap year
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn open_request(&self, subject: &ProfileId, new: NewRequest) -> Result<Request> {
        let _tree = self.engine.keys.shared();
        requests::open(
            &self.engine,
            &self.subjects_of(subject)?,
            new.kind,
            new.fields,
            &new.jurisdiction,
            new.received_at.unwrap_or_else(Timestamp::now),
            &new.by,
        )
    }

    /// One request by id (`Error::RequestNotFound` when there is none).
    pub fn request(&self, id: u64) -> Result<Request> {
        requests::get(&self.engine, id)
    }

    /// Requests matching `filter`: `due_before: Some(now)` lists the
    /// overdue ones (in due order, from an index of open requests only).
    pub fn requests(&self, filter: &RequestFilter) -> Result<Vec<Request>> {
        requests::list(&self.engine, filter)
    }

    /// The subject reference (for [`RequestFilter::subject_ref`]) of the
    /// person `id` resolves to.
    pub fn request_subject(&self, id: &ProfileId) -> Result<[u8; 16]> {
        let _tree = self.engine.keys.shared();
        Ok(self.subjects_of(id)?[0])
    }

    /// Records the requester's identity verification (`verified` or
    /// failed). Audited.
    pub fn verify_request(&self, id: u64, by: &str, verified: bool) -> Result<Request> {
        requests::verify(&self.engine, id, by, verified)
    }

    /// Extends the deadline once, by the jurisdiction's extension (GDPR two
    /// months, CCPA 45 days, counted from receipt), with a recorded reason.
    pub fn extend_request(&self, id: u64, by: &str, reason: &str) -> Result<Request> {
        requests::extend(&self.engine, id, by, reason)
    }

    /// Completes an open, verified request with its evidence (an erasure
    /// request with its certificate — which `purge` does by itself when it
    /// issues the certificate). Audited.
    pub fn complete_request(&self, id: u64, by: &str, evidence: Evidence) -> Result<Request> {
        requests::complete(&self.engine, id, by, evidence)
    }

    /// Rejects a request with a reason. Audited.
    pub fn reject_request(&self, id: u64, by: &str, reason: &str) -> Result<Request> {
        requests::reject(&self.engine, id, by, reason)
    }

    /// The deadline policy in force.
    pub fn request_policy(&self) -> Result<RequestPolicy> {
        requests::policy(&self.engine)
    }

    /// Replaces the deadline policy (stored, audited); requests already
    /// open keep their due times.
    pub fn set_request_policy(&self, policy: &RequestPolicy) -> Result<()> {
        requests::set_policy(&self.engine, policy)
    }

    /// Places a legal hold on the person `subject` resolves to (or on some
    /// of their fields): `forget`, `forget_fields` and retention refuse
    /// held data with `Error::LegalHold` naming the hold, and the person's
    /// open erasure requests wait `on_hold`. Audited.
    ///
    /// ```
    /// use lethedb::{Db, Error, MemoryKeyProvider, NewHold, Options, Update};
    /// let dir = tempfile::tempdir()?;
    /// let db = Db::open(dir.path(), &MemoryKeyProvider::generate()?, Options::new().create_if_missing(true))?;
    /// let id = db.create(Update::new().set("email", "ada@example.com"))?;
    /// let hold = db.place_hold(&id, NewHold::new("matter 2024-017", "legal"))?;
    /// assert!(matches!(db.forget(&id), Err(Error::LegalHold { hold_id, .. }) if hold_id == hold.id));
    /// db.release_hold(hold.id, "legal")?;
    /// db.forget(&id)?;
    /// Ok::<_, lethedb::Error>(())
    /// ```
    pub fn place_hold(&self, subject: &ProfileId, hold: NewHold) -> Result<Hold> {
        let _tree = self.engine.keys.shared();
        requests::place(
            &self.engine,
            &self.subjects_of(subject)?,
            hold.fields,
            &hold.reason,
            &hold.owner,
            hold.ends_at,
        )
    }

    /// Releases a hold (audited); erasure requests that waited only for it
    /// return to `open`, and the erasure may run.
    pub fn release_hold(&self, id: u64, by: &str) -> Result<Hold> {
        requests::release(&self.engine, id, by)
    }

    /// Every hold, or those on the person `subject` resolves to (placed
    /// through any profile of its lineage).
    pub fn holds(&self, subject: Option<&ProfileId>) -> Result<Vec<Hold>> {
        let _tree = self.engine.keys.shared();
        let Some(subject) = subject else {
            return requests::list_holds(&self.engine, None);
        };
        let mut out = Vec::new();
        for s in self.subjects_of(subject)? {
            out.extend(requests::list_holds(&self.engine, Some(s))?);
        }
        out.sort_by_key(|h| h.id);
        Ok(out)
    }

    /// Every request about the person `id` resolves to (opened through any
    /// profile of its lineage), in id order.
    pub fn requests_about(&self, id: &ProfileId) -> Result<Vec<Request>> {
        let _tree = self.engine.keys.shared();
        let mut out = Vec::new();
        for s in self.subjects_of(id)? {
            let filter = RequestFilter {
                subject_ref: Some(s),
                ..RequestFilter::default()
            };
            out.extend(requests::list(&self.engine, &filter)?);
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }
}
