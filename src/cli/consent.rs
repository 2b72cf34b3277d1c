//! `lethedb consent …`.

use super::args::*;
use super::output::*;
use super::*;

pub(super) fn consent_cmd(db: &Db, cmd: &ConsentCmd) -> CliResult {
    let ts = |s: &Option<String>| -> std::result::Result<Option<Timestamp>, Failure> {
        Ok(match s {
            Some(t) => Some(Timestamp::parse_rfc3339(t)?),
            None => None,
        })
    };
    match cmd {
        ConsentCmd::Set {
            id,
            purpose,
            status,
            legal_basis,
            source,
            policy_version,
            expires,
            at,
            jurisdiction,
            proof,
            recorded_by,
        } => {
            let mut r = ConsentRecord::new(purpose, status.parse::<ConsentStatus>()?)
                .legal_basis(legal_basis.parse::<LegalBasis>()?)
                .source(source);
            r.policy_version = policy_version.clone();
            r.expires_at = ts(expires)?;
            r.jurisdiction = jurisdiction.clone();
            r.proof = proof.clone();
            r.recorded_by = recorded_by.clone();
            if let Some(t) = ts(at)? {
                r.timestamp = t;
            }
            db.record_consent(&id.parse()?, r)?;
        }
        ConsentCmd::Get { id, purpose, at } => {
            let id: ProfileId = id.parse()?;
            let when = ts(at)?.unwrap_or_else(Timestamp::now);
            let records: Vec<ConsentRecord> = match (purpose, ts(at)?) {
                (Some(p), Some(t)) => db.consent_at(&id, p, t)?.into_iter().collect(),
                (Some(p), None) => db.consent(&id, p)?.into_iter().collect(),
                (None, Some(t)) => {
                    let mut purposes: Vec<String> = db
                        .consent_history(&id)?
                        .into_iter()
                        .map(|(_, r)| r.purpose)
                        .collect();
                    purposes.sort_by(|a, b| lethedb::purpose_order(a, b));
                    purposes.dedup();
                    let mut out = Vec::new();
                    for p in purposes {
                        out.extend(db.consent_at(&id, &p, t)?);
                    }
                    out
                }
                (None, None) => db.consents(&id)?,
            };
            print_json(&serde_json::Value::Array(
                records.iter().map(|r| r.to_json_at(when)).collect(),
            ));
        }
        ConsentCmd::History { id } => {
            let items: Vec<serde_json::Value> = db
                .consent_history(&id.parse()?)?
                .into_iter()
                .map(|(pid, r)| {
                    let mut j = r.to_json();
                    j["profile_id"] = serde_json::Value::String(pid.to_string());
                    j
                })
                .collect();
            print_json(&serde_json::Value::Array(items));
        }
        ConsentCmd::ImportTcf { id, tc_string } => {
            let records = db.import_tcf(&id.parse()?, tc_string)?;
            print_json(&serde_json::Value::Array(
                records.iter().map(ConsentRecord::to_json).collect(),
            ));
        }
        ConsentCmd::ImportGpp {
            id,
            gpc,
            at,
            gpp_string,
            gpp,
        } => {
            let gpp_string = gpp_string.as_ref().or(gpp.as_ref());
            let id: ProfileId = id.parse()?;
            let when = ts(at)?.unwrap_or_else(Timestamp::now);
            let records = db.record_us_signals(&id, gpp_string.map(String::as_str), *gpc, when)?;
            print_json(&serde_json::Value::Array(
                records.iter().map(ConsentRecord::to_json).collect(),
            ));
        }
        ConsentCmd::Vendors {
            id,
            vendor,
            purpose,
        } => {
            let id: ProfileId = id.parse()?;
            let purposes: Vec<u8> = if purpose.is_empty() {
                (1..=11).collect()
            } else {
                purpose
                    .iter()
                    .map(|p| {
                        let n = p.trim().strip_prefix("tcf:").unwrap_or(p.trim());
                        n.parse::<u8>().map_err(|_| {
                            Failure::new(format!(
                                "purpose {:?} is not a TCF purpose (3 or tcf:3)",
                                p.chars().take(16).collect::<String>()
                            ))
                        })
                    })
                    .collect::<std::result::Result<_, _>>()?
            };
            let mut out = Vec::new();
            for v in vendor {
                for p in &purposes {
                    out.push(db.vendor_may_process(&id, *v, *p)?.to_json());
                }
            }
            print_json(&serde_json::Value::Array(out));
        }
        ConsentCmd::Mode { id, mapping } => {
            let mapping = match mapping {
                Some(path) => lethedb::ConsentModeMapping::from_json(
                    &std::fs::read_to_string(path)
                        .map_err(|e| Failure::new(format!("reading the mapping: {e}")))?,
                )?,
                None => lethedb::ConsentModeMapping::default(),
            };
            print_json(&db.consent_mode(&id.parse()?, &mapping)?.to_json());
        }
        ConsentCmd::Who { purpose } => {
            let ids: Vec<String> = db
                .consented_profiles(purpose)?
                .iter()
                .map(ToString::to_string)
                .collect();
            print_json(&serde_json::json!(ids));
        }
        ConsentCmd::Flags {
            id,
            restricted,
            objected,
        } => {
            let id: ProfileId = id.parse()?;
            let mut flags = db.processing_flags(&id)?;
            if restricted.is_some() || objected.is_some() {
                flags.restricted = restricted.unwrap_or(flags.restricted);
                flags.objected = objected.unwrap_or(flags.objected);
                db.set_processing_flags(&id, flags)?;
            }
            print_json(
                &serde_json::json!({"restricted": flags.restricted, "objected": flags.objected}),
            );
        }
    }
    Ok(())
}
