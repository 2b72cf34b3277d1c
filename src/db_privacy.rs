//! The privacy-operations part of the public API: US privacy signals (GPP,
//! GPC), TCF vendor decisions and Consent Mode v2, data-subject requests
//! and legal holds. One method per operation, each one call into the
//! domain modules.

use crate::db::Db;
use crate::domain::consent::{
    self, ConsentMode, ConsentModeMapping, ConsentRecord, VendorDecision,
};
use crate::error::Result;
use crate::types::{ProfileId, Timestamp};

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
                Some(text) => crate::Error::InvalidGppString(format!(
                    "no section this build maps to consent (sections {:?})",
                    consent::gpp::decode_header(text)?.section_ids
                )),
                None => crate::Error::InvalidInput(
                    "no signal given (neither a GPP string nor GPC)".into(),
                ),
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
}
