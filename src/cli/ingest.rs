//! `lethedb ingest`: Segment-spec NDJSON into the store.

use std::io::{BufRead, BufReader, Read};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lethedb::ingest::{apply_event, parse_event, Event};
use lethedb::{Db, IdType, Identifier};

use super::{with_region, Failure};

#[derive(Default)]
struct Summary {
    records: u64,
    malformed: u64,
    created: u64,
    merges: u64,
    attached: u64,
    rejected: u64,
    suppressed: u64,
    unresolved: u64,
}

pub(crate) fn run(db: &Db, file: &str, strict: bool, region: Option<&str>) -> Result<(), Failure> {
    let (reader, len): (Box<dyn Read>, Option<u64>) = if file == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = std::fs::File::open(file).map_err(|e| Failure::new(format!("{file}: {e}")))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("  ingesting [{bar:40}] {bytes}/{total_bytes} {msg}")
                .map_err(|e| Failure::new(e.to_string()))?
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    let schema = db.schema();
    let started = Instant::now();
    let mut s = Summary::default();
    let mut reader = BufReader::new(reader);
    let mut line = String::new();
    let mut lineno = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Failure::new(format!("{file}: line {}: {e}", lineno + 1)))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        bar.inc(n as u64);
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_event(&schema, line.trim()).map(|e| match e {
            Event::Identify {
                identifiers,
                traits,
                consents,
            } => Event::Identify {
                identifiers: identifiers
                    .into_iter()
                    .map(|i| normalise_phone(db, i, region))
                    .collect(),
                traits,
                consents,
            },
            other => other,
        });
        let result = parsed.and_then(|e| apply_event(db, e));
        match result {
            Ok(out) => {
                s.records += 1;
                s.created += u64::from(out.created);
                s.merges += out.merges.len() as u64;
                s.attached += out.attached as u64;
                s.rejected += out.rejected.len() as u64;
                s.suppressed += out
                    .rejected
                    .iter()
                    .filter(|r| r.reason == lethedb::RejectReason::Suppressed)
                    .count() as u64;
                s.unresolved += u64::from(out.profile.is_none());
                for r in &out.rejected {
                    // Types and reasons only: identifier values are personal data.
                    bar.suspend(|| {
                        eprintln!(
                            "line {lineno}: rejected {} identifier: {}",
                            r.identifier.id_type, r.reason
                        )
                    });
                }
            }
            Err(e) => {
                s.malformed += 1;
                if strict {
                    bar.finish_and_clear();
                    return Err(Failure::new(format!("line {lineno}: {e}")));
                }
                bar.suspend(|| eprintln!("line {lineno}: skipped: {e}"));
            }
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "records": s.records,
            "malformed_lines": s.malformed,
            "profiles_created": s.created,
            "merges": s.merges,
            "identifiers_attached": s.attached,
            "identifiers_rejected": s.rejected,
            "identifiers_suppressed": s.suppressed,
            "records_without_usable_identifier": s.unresolved,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "records_per_second": if secs > 0.0 { (s.records as f64 / secs).round() } else { 0.0 },
        })
    );
    Ok(())
}

/// Applies `--default-region` to phone numbers; on failure the original is
/// kept so resolve reports it as a rejected identifier.
fn normalise_phone(db: &Db, id: Identifier, region: Option<&str>) -> Identifier {
    if id.id_type != IdType::Phone {
        return id;
    }
    with_region(db, id.clone(), region).unwrap_or(id)
}
