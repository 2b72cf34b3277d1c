//! Erasure at scale: builds a store of N synthetic people (two identifiers
//! each, written through `resolve`), compacts it, forgets E random people
//! one by one (latency p50/p99), purging after 1, 11 and all E erasures,
//! and reports purge time and how much of the store each purge rewrote.
//!
//! ```text
//! cargo run --release --example erasure_scale -- [PROFILES] [ERASURES] [DIR]
//! cargo run --release --example erasure_scale -- 1000000 1000 /tmp/lethedb-erasure
//! ```

use std::time::{Duration, Instant};

use lethedb::{Db, Identifier, MemoryKeyProvider, Options, ProfileId, Update};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> lethedb::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let e: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "/tmp/lethedb-erasure-scale".into());
    let _ = std::fs::remove_dir_all(&dir);
    let keys = MemoryKeyProvider::generate()?;
    let db = std::sync::Arc::new(Db::open(
        &dir,
        &keys,
        Options::new()
            .create_if_missing(true)
            .schema(lethedb::synth::schema())
            .purge_after_erasures(0)
            .purge_deadline(Duration::from_secs(24 * 3600)),
    )?);

    let started = Instant::now();
    let threads = 2u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = std::sync::Arc::clone(&db);
            std::thread::spawn(move || -> lethedb::Result<Vec<ProfileId>> {
                let mut ids = Vec::new();
                let mut i = t;
                while i < n {
                    let p = lethedb::synth::profile(7, i);
                    let email = p
                        .fields
                        .iter()
                        .find(|(k, _)| k == "email")
                        .and_then(|(_, v)| match v {
                            lethedb::Value::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    let update: Update = p.fields.into_iter().collect();
                    let out = db.resolve(
                        &[
                            Identifier::user_id(format!("user-{i:09}")),
                            Identifier::email(email),
                        ],
                        update,
                    )?;
                    if let (Some(id), true) = (out.profile, out.created) {
                        ids.push(id);
                    }
                    i += threads;
                }
                Ok(ids)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.join().expect("writer thread")?);
    }
    let load = started.elapsed();
    db.compact()?;
    let stats = db.stats()?;
    eprintln!(
        "loaded {} people in {:.1}s, {} bytes on disk",
        ids.len(),
        load.as_secs_f64(),
        stats.disk_bytes
    );

    // Random victims (deterministic xorshift).
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut victims = Vec::with_capacity(e);
    while victims.len() < e.min(ids.len()) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = ids[(x % ids.len() as u64) as usize];
        if !victims.contains(&id) {
            victims.push(id);
        }
    }
    // Rounds: purge after 1, after 10 more, then after the rest, to show
    // how purge cost grows with the number of pending erasures.
    let mut rounds = Vec::new();
    let mut lat = Vec::with_capacity(victims.len());
    let mut done = 0;
    for size in [1usize, 10, victims.len().saturating_sub(11)] {
        let batch = &victims[done..(done + size).min(victims.len())];
        done += batch.len();
        for v in batch {
            let t = Instant::now();
            db.forget(v)?;
            lat.push(t.elapsed());
        }
        let report = db.purge()?;
        rounds.push(serde_json::json!({
            "erasures": batch.len(),
            "purge_seconds": report.duration.as_secs_f64(),
            "ranges": report.ranges_compacted,
            "files_rewritten": report.files_rewritten,
            "bytes_rewritten": report.bytes_rewritten,
            "store_sst_bytes": report.store_bytes,
            "rewritten_fraction": report.bytes_rewritten as f64 / report.store_bytes.max(1) as f64,
            "certificates": report.certificates.len(),
        }));
    }
    lat.sort();
    let after = db.stats()?;
    let out = serde_json::json!({
        "profiles": ids.len(),
        "erasures": victims.len(),
        "forget_p50_us": pct(&lat, 0.5).as_secs_f64() * 1e6,
        "forget_p99_us": pct(&lat, 0.99).as_secs_f64() * 1e6,
        "purges": rounds,
        "disk_bytes_before": stats.disk_bytes,
        "disk_bytes_after": after.disk_bytes,
        "load_seconds": load.as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}
