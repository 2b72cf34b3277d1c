//! Retention: per-field time-to-live and inactive-profile expiry, executed
//! through the erasure path (`forget_field` / `forget`), then purged, so
//! every expiry gets a certificate. Consent expiry needs no run: expired
//! grants already read as not granted.

use serde_json::json;

use crate::domain::audit::Event;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::storage::columns::Profiles;
use crate::storage::records::RecordStatus;
use crate::storage::Batch;
use crate::types::{ProfileId, Timestamp};

const DAY_US: i64 = 86_400_000_000;

/// What a retention run did.
#[derive(Clone, Debug, Default)]
pub struct RetentionReport {
    /// Profiles forgotten for inactivity.
    pub profiles_forgotten: usize,
    /// Profiles that had expired fields erased.
    pub profiles_with_fields_erased: usize,
    /// Field values erased.
    pub fields_erased: usize,
    /// Expired people or field sets a legal hold kept (wholly or in part:
    /// the fields no hold covers are erased).
    pub held_back: usize,
    /// The holds that kept them (ids, in the order met).
    pub holds: Vec<u64>,
    /// Certificates from the purge that ended the run.
    pub certificates: Vec<String>,
}

/// Counts one erasure a hold kept back, and the hold.
fn note_hold(report: &mut RetentionReport, hold_id: u64) {
    report.held_back += 1;
    if !report.holds.contains(&hold_id) {
        report.holds.push(hold_id);
    }
}

/// `Db::run_retention`: applies the schema's retention rules as of `now`.
pub(crate) fn run(db: &Engine, now: Timestamp) -> Result<RetentionReport> {
    let schema = db.schema_snapshot();
    let ttl: Vec<(u32, i64)> = schema
        .fields
        .iter()
        .filter_map(|(name, spec)| {
            let days = spec.retention_days?;
            Some((db.registry.id(name)?, i64::from(days) * DAY_US))
        })
        .collect();
    let inactive = schema.inactive_profile_days.map(|d| i64::from(d) * DAY_US);
    let mut report = RetentionReport::default();
    if ttl.is_empty() && inactive.is_none() {
        return Ok(report);
    }
    // Collect first (headers and write times need no field opened), then erase.
    let mut expired_profiles: Vec<(ProfileId, Vec<String>)> = Vec::new();
    let mut expired_fields: Vec<(ProfileId, Vec<String>)> = Vec::new();
    for item in db.store.entries::<Profiles>(&[])? {
        let (id, stored) = item?;
        // What retention erases is decided on authenticated headers.
        crate::domain::profiles::check_record(db, &id, &stored)?;
        let rec = stored.record;
        if rec.status != RecordStatus::Active {
            continue;
        }
        if inactive.is_some_and(|limit| now.as_micros() - rec.updated_at.as_micros() >= limit) {
            // Its field names: what is erased instead when a hold keeps
            // some fields of the person (the rest still expires).
            let mut names = Vec::new();
            for e in &rec.fields {
                let name = db.registry.name(e.field_id)?;
                if !crate::domain::profiles::is_system_field(&name) {
                    names.push(name);
                }
            }
            expired_profiles.push((id, names));
            continue;
        }
        let mut names = Vec::new();
        for e in &rec.fields {
            if let Some((_, limit)) = ttl.iter().find(|(f, _)| *f == e.field_id) {
                if now.as_micros() - e.written_at.as_micros() >= *limit {
                    names.push(db.registry.name(e.field_id)?);
                }
            }
        }
        if !names.is_empty() {
            expired_fields.push((id, names));
        }
    }
    // Held data is skipped, not erased, and reported with its holds (one
    // held person must not stop retention for everyone else); what the
    // holds do not cover still expires.
    let mut forgotten = 0;
    let (mut with_fields, mut fields_erased) = (0, 0);
    let mut erase_fields =
        |id: &ProfileId, names: &[String], report: &mut RetentionReport| -> Result<()> {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let r = match super::erase::forget_fields(db, &[*id], &refs, None) {
                Err(Error::LegalHold { hold_id, .. }) => {
                    note_hold(report, hold_id);
                    let rest = crate::domain::requests::unheld(db, id, names)?;
                    if rest.is_empty() {
                        return Ok(());
                    }
                    let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
                    (
                        super::erase::forget_fields(db, &[*id], &refs, None)?,
                        rest.len(),
                    )
                }
                other => (other?, names.len()),
            };
            // Counted only when something was erased.
            if r.0.erasure_id.is_some() {
                with_fields += 1;
                fields_erased += r.1;
            }
            Ok(())
        };
    for (id, names) in &expired_profiles {
        match super::erase::forget(db, id) {
            Err(Error::LegalHold { hold_id, .. }) => {
                note_hold(&mut report, hold_id);
                let rest = crate::domain::requests::unheld(db, id, names)?;
                if !rest.is_empty() {
                    erase_fields(id, &rest, &mut report)?;
                }
            }
            other => {
                if other?.erasure_id.is_some() {
                    forgotten += 1;
                }
            }
        }
    }
    for (id, names) in &expired_fields {
        erase_fields(id, names, &mut report)?;
    }
    report.profiles_forgotten = forgotten;
    report.profiles_with_fields_erased = with_fields;
    report.fields_erased = fields_erased;
    db.audit.commit(
        &db.store,
        Batch::new(),
        &[Event::new(
            "retention",
            None,
            json!({
                "as_of": now.to_string(),
                "profiles_forgotten": report.profiles_forgotten,
                "profiles_with_fields_erased": report.profiles_with_fields_erased,
                "fields_erased": report.fields_erased,
                "held_back": report.held_back,
                "holds": report.holds,
            }),
        )],
    )?;
    report.certificates = super::purge::purge(db)?.certificates;
    Ok(report)
}
