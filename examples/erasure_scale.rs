//! Erasure at scale: builds a store of N synthetic people (two identifiers
//! each, written through `resolve`), compacts it, measures read latency
//! (`get` of random people: first touch after a reopen, and warm), then
//! forgets random people one by one (latency p50/p99) in rounds of the
//! given sizes, purging after each round, and reports per purge the
//! key-tree rotation (keys replaced, nodes and keyrings re-wrapped, bytes
//! written, time) and how much of the store the compaction rewrote.
//!
//! ```text
//! cargo run --release --example erasure_scale -- [PROFILES] [ROUNDS] [DIR] [FANOUT_BITS,DEPTH] [backup]
//! cargo run --release --example erasure_scale -- 1000000 1,100,10000 /tmp/lethedb-erasure 10,2
//! cargo run --release --example erasure_scale -- 1000000 1,100,10000 /tmp/lethedb-flat 16,1
//! ```
//! The second is the layout without a tree: 2^16 bucket keys wrapped
//! directly under the root. With `backup`, a backup is taken before the
//! erasures, so every purge also re-keys it (time in `rotation_seconds`).

use std::time::{Duration, Instant};

use lethedb::{Db, MemoryKeyProvider, Options, ProfileId};

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
    let sizes: Vec<usize> = args
        .get(2)
        .map(|a| a.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 100, 10_000]);
    let e: usize = sizes.iter().sum();
    let dir = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "/tmp/lethedb-erasure-scale".into());
    let shape: Vec<u8> = args
        .get(4)
        .map(|a| a.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 2]);
    let (fanout_bits, depth) = (shape[0], shape[1]);
    let _ = std::fs::remove_dir_all(&dir);
    let roots = lethedb::FileRootKeyStore::beside(std::path::Path::new(&dir));
    let _ = std::fs::remove_file(roots.path());
    let keys = MemoryKeyProvider::generate()?;
    let options = Options::new()
        .schema(lethedb::synth::schema())
        .purge_after_erasures(0)
        .purge_deadline(Duration::from_secs(24 * 3600))
        .key_tree(fanout_bits, depth);
    let db = std::sync::Arc::new(Db::open(
        &dir,
        &keys,
        options.clone().create_if_missing(true),
    )?);

    let started = Instant::now();
    let ids = lethedb::bench_support::load_people(&db, n, 2)?;
    let load = started.elapsed();
    db.compact()?;
    let stats = db.stats()?;
    eprintln!(
        "loaded {} people in {:.1}s, {} bytes on disk",
        ids.len(),
        load.as_secs_f64(),
        stats.disk_bytes
    );

    // Read latency: first touch after a reopen (empty key and block
    // caches; the OS page cache is warm), then the same reads again.
    drop(db);
    let db = Db::open(&dir, &keys, options)?;
    let mut y = 0x9e37_79b9_7f4a_7c15_u64;
    let sample: Vec<ProfileId> = (0..20_000)
        .map(|_| {
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            ids[(y % ids.len() as u64) as usize]
        })
        .collect();
    let reads = |label: &str| -> lethedb::Result<serde_json::Value> {
        let mut lat = Vec::with_capacity(sample.len());
        for id in &sample {
            let t = Instant::now();
            db.get(id)?;
            lat.push(t.elapsed());
        }
        let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
        lat.sort();
        Ok(serde_json::json!({
            "phase": label,
            "reads": lat.len(),
            "mean_us": mean.as_secs_f64() * 1e6,
            "p50_us": pct(&lat, 0.5).as_secs_f64() * 1e6,
            "p99_us": pct(&lat, 0.99).as_secs_f64() * 1e6,
        }))
    };
    let read_first = reads("first touch after reopen")?;
    let read_warm = reads("warm")?;
    if args.get(5).map(String::as_str) == Some("backup") {
        let b = format!("{dir}-backup");
        let _ = std::fs::remove_dir_all(&b);
        let t = Instant::now();
        db.backup(&b)?;
        eprintln!("backup taken in {:.1}s", t.elapsed().as_secs_f64());
    }
    let tree_before = db.key_tree_status()?.to_json();

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
    // One purge per round, to show how purge cost grows with the number
    // of pending erasures.
    let mut rounds = Vec::new();
    let mut lat = Vec::with_capacity(victims.len());
    let mut done = 0;
    let mut victims_left = victims.len();
    for &size in &sizes {
        let size = size.min(victims_left);
        victims_left -= size;
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
            "rotation_seconds": report.rotation.as_secs_f64(),
            "keys_replaced": report.keys_replaced,
            "nodes_rewrapped": report.nodes_rewrapped,
            "keyrings_rewrapped": report.keyrings_rewrapped,
            "rewraps": report.nodes_rewrapped + report.keyrings_rewrapped,
            "key_bytes_written": report.key_bytes_written,
            "root_epoch_destroyed": report.root_epoch_destroyed,
            "backups_rekeyed": report.backups_rekeyed,
        }));
    }
    lat.sort();
    let after = db.stats()?;
    let out = serde_json::json!({
        "profiles": ids.len(),
        "erasures": victims.len(),
        "forget_p50_us": pct(&lat, 0.5).as_secs_f64() * 1e6,
        "forget_p99_us": pct(&lat, 0.99).as_secs_f64() * 1e6,
        "tree": { "fanout_bits": fanout_bits, "depth": depth },
        "key_tree_before_erasures": tree_before,
        "reads": [read_first, read_warm],
        "purges": rounds,
        "disk_bytes_before": stats.disk_bytes,
        "disk_bytes_after": after.disk_bytes,
        "load_seconds": load.as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}
