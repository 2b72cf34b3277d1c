//! `lethedb request …` and `lethedb hold …`.

use lethedb::{Evidence, NewHold, NewRequest, RequestFilter, RequestKind, RequestStatus};
use sha2::{Digest, Sha256};

use super::args::*;
use super::output::*;
use super::*;

/// `7d`, `36h`, `2w` as microseconds.
fn span(text: &str) -> std::result::Result<i64, Failure> {
    let bad = || Failure::new(format!("{text:?} is not a span like 7d, 36h or 2w"));
    let mut chars = text.chars();
    let unit = chars.next_back().ok_or_else(bad)?;
    let n: i64 = chars.as_str().parse().map_err(|_| bad())?;
    let hour = 3_600_000_000i64;
    let unit = match unit {
        'h' => hour,
        'd' => 24 * hour,
        'w' => 7 * 24 * hour,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).filter(|v| *v >= 0).ok_or_else(bad)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn request_cmd(db: &Db, cmd: &RequestCmd) -> CliResult {
    let r = match cmd {
        RequestCmd::Open {
            subject,
            kind,
            jurisdiction,
            received,
            fields,
            by,
        } => {
            let mut new = NewRequest::new(kind.parse::<RequestKind>()?, jurisdiction)
                .fields(fields.iter().cloned())
                .by(by);
            if let Some(t) = received {
                new = new.received_at(Timestamp::parse_rfc3339(t)?);
            }
            db.open_request(&subject.profile(db)?, new)?
        }
        RequestCmd::List {
            overdue,
            due_within,
            status,
            id,
            limit,
        } => {
            let now = Timestamp::now();
            let due_before = match (overdue, due_within) {
                (true, _) => Some(now),
                (false, Some(s)) => Some(Timestamp(now.0.saturating_add(span(s)?))),
                (false, None) => None,
            };
            let status = status
                .as_deref()
                .map(str::parse::<RequestStatus>)
                .transpose()?;
            let list = match id {
                // The person's requests, through every profile of the lineage.
                Some(id) => {
                    let mut all = db.requests_about(&id.parse()?)?;
                    all.retain(|r| {
                        status.is_none_or(|s| s == r.status)
                            && due_before.is_none_or(|d| r.overdue_at(d))
                    });
                    all.truncate(limit.unwrap_or(usize::MAX));
                    all
                }
                None => db.requests(&RequestFilter {
                    due_before,
                    status,
                    subject_ref: None,
                    limit: *limit,
                })?,
            };
            print_json(&serde_json::Value::Array(
                list.iter().map(lethedb::Request::to_json).collect(),
            ));
            return Ok(());
        }
        RequestCmd::Show { request } => db.request(*request)?,
        RequestCmd::Verify {
            request,
            failed,
            by,
        } => db.verify_request(*request, by, !failed)?,
        RequestCmd::Extend {
            request,
            reason,
            by,
        } => db.extend_request(*request, by, reason)?,
        RequestCmd::Complete {
            request,
            export_file,
            export_digest,
            erasure,
            statement,
            by,
        } => {
            let evidence = if let Some(path) = export_file {
                let bytes = std::fs::read(path)
                    .map_err(|e| Failure::new(format!("reading the export bundle: {e}")))?;
                Evidence::ExportBundle {
                    sha256: hex(&Sha256::digest(&bytes)),
                }
            } else if let Some(d) = export_digest {
                Evidence::ExportBundle {
                    sha256: d.to_ascii_lowercase(),
                }
            } else if let Some(e) = erasure {
                let of = |c: &String| {
                    serde_json::from_str::<serde_json::Value>(c)
                        .is_ok_and(|v| v["erasure_id"] == serde_json::json!(e))
                };
                let cert = db.certificates()?.into_iter().find(of).ok_or_else(|| {
                    Failure::new(format!("erasure {e} has no certificate yet (run purge)"))
                })?;
                Evidence::ErasureCertificate {
                    erasure_id: *e,
                    sha256: hex(&Sha256::digest(cert.as_bytes())),
                }
            } else if let Some(text) = statement {
                Evidence::Statement { text: text.clone() }
            } else {
                return Err(Failure {
                    code: 2,
                    message: "give --export-file, --export-digest, --erasure or --statement".into(),
                });
            };
            db.complete_request(*request, by, evidence)?
        }
        RequestCmd::Reject {
            request,
            reason,
            by,
        } => db.reject_request(*request, by, reason)?,
    };
    print_json(&r.to_json());
    Ok(())
}

pub(super) fn hold_cmd(db: &Db, cmd: &HoldCmd) -> CliResult {
    match cmd {
        HoldCmd::Place {
            subject,
            reason,
            owner,
            fields,
            until,
        } => {
            let mut new = NewHold::new(reason, owner).fields(fields.iter().cloned());
            if let Some(t) = until {
                new = new.until(Timestamp::parse_rfc3339(t)?);
            }
            print_json(&db.place_hold(&subject.profile(db)?, new)?.to_json());
        }
        HoldCmd::Release { hold, by } => print_json(&db.release_hold(*hold, by)?.to_json()),
        HoldCmd::List { id } => {
            let id: Option<ProfileId> = id.as_deref().map(str::parse).transpose()?;
            let holds = db.holds(id.as_ref())?;
            print_json(&serde_json::Value::Array(
                holds.iter().map(lethedb::Hold::to_json).collect(),
            ));
        }
    }
    Ok(())
}
