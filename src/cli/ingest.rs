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

/// One line of input, at most `max` bytes (newline excluded); a longer
/// line is consumed to its end and reported as too long, so one oversize
/// line costs at most `max` bytes of memory.
enum Line {
    End,
    Text { consumed: usize },
    TooLong { consumed: usize },
}

fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    buf.clear();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = reader.by_ref().take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.len() <= max {
        return Ok(Line::Text { consumed: n });
    }
    // Skip the rest of the line without keeping it.
    let mut consumed = n;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                consumed += i + 1;
                break;
            }
            None => {
                let k = chunk.len();
                reader.consume(k);
                consumed += k;
            }
        }
    }
    buf.clear();
    Ok(Line::TooLong { consumed })
}

pub(crate) fn run(
    db: &Db,
    file: &str,
    strict: bool,
    region: Option<&str>,
    max_line_bytes: usize,
) -> Result<(), Failure> {
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
    let mut buf = Vec::new();
    let mut lineno = 0u64;
    loop {
        let read = next_line(&mut reader, &mut buf, max_line_bytes)
            .map_err(|e| Failure::new(format!("{file}: line {}: {e}", lineno + 1)))?;
        let (consumed, text) = match read {
            Line::End => break,
            Line::Text { consumed } => (
                consumed,
                std::str::from_utf8(&buf).map_err(|e| {
                    lethedb::Error::InvalidInput(format!(
                        "not valid UTF-8 (byte {})",
                        e.valid_up_to()
                    ))
                }),
            ),
            Line::TooLong { consumed } => (
                consumed,
                Err(lethedb::Error::InvalidInput(format!(
                    "longer than {max_line_bytes} bytes (--max-line-bytes)"
                ))),
            ),
        };
        lineno += 1;
        bar.inc(consumed as u64);
        if text.as_ref().is_ok_and(|t| t.trim().is_empty()) {
            continue;
        }
        // Phones that fail under --default-region are rejected here, not
        // handed on: resolve would read them again under the store's own
        // region and could index a number of another country.
        let mut region_rejected = Vec::new();
        let parsed = text
            .and_then(|t| parse_event(&schema, t.trim()))
            .map(|e| match e {
                Event::Identify {
                    identifiers,
                    traits,
                    consents,
                } => Event::Identify {
                    identifiers: identifiers
                        .into_iter()
                        .filter_map(|i| match normalise_phone(db, i, region) {
                            Ok(i) => Some(i),
                            Err(why) => {
                                region_rejected.push(why);
                                None
                            }
                        })
                        .collect(),
                    traits,
                    consents,
                },
                other => other,
            });
        let result = parsed.and_then(|e| apply_event(db, e));
        match result {
            Ok(out) => {
                s.rejected += region_rejected.len() as u64;
                for why in &region_rejected {
                    bar.suspend(|| eprintln!("line {lineno}: rejected phone identifier: {why}"));
                }
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

/// Applies `--default-region` to phone numbers (other identifiers pass
/// through); the error says why a phone was refused, never its value.
fn normalise_phone(db: &Db, id: Identifier, region: Option<&str>) -> Result<Identifier, String> {
    if id.id_type != IdType::Phone || region.is_none() {
        return Ok(id);
    }
    with_region(db, id, region, false).map_err(|f| f.message)
}
