//! `lethedb demo`: writes synthetic profiles, checks a sample, and scans
//! every file of the store for the plaintext it wrote.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lethedb::{forensics, synth, ProfileBatch, ProfileId, Update};
use rand::{Rng, SeedableRng};

use super::{default_key_file, init_store, Failure};

/// Needles are collected from at most this many profiles (memory bound).
const MAX_SCANNED_PROFILES: u64 = 1_000_000;
const SAMPLE: u64 = 1_000;

pub(crate) fn run(
    db: &Option<PathBuf>,
    key_file: &Option<PathBuf>,
    n: u64,
    seed: Option<u64>,
    batch_size: u64,
) -> Result<(), Failure> {
    if n == 0 || batch_size == 0 {
        return Err(Failure::new("--profiles and --batch must be at least 1"));
    }
    let dir = match db {
        Some(d) => d.clone(),
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from(format!("lethedb-demo-{stamp}"))
        }
    };
    let key = key_file.clone().unwrap_or_else(|| default_key_file(&dir));
    let seed = seed.unwrap_or_else(|| rand::thread_rng().gen());
    println!("lethedb demo: {n} synthetic profiles, seed {seed}");
    println!("  store    {}", dir.display());
    println!("  key file {}", key.display());
    println!(
        "  root keys {}",
        lethedb::FileRootKeyStore::beside(&dir).path().display()
    );
    let db = init_store(
        &dir,
        &key,
        lethedb::Options::new(),
        Some(synth::schema()),
        lethedb::IdentityConfig::default(),
    )?;

    // Write.
    let bar = ProgressBar::new(n);
    bar.set_style(
        ProgressStyle::with_template("  writing  [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .map_err(|e| Failure::new(e.to_string()))?
            .progress_chars("=> "),
    );
    let mut ids: Vec<ProfileId> = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut plaintext_bytes = 0u64;
    let mut needles: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut i = 0u64;
    while i < n {
        let end = (i + batch_size).min(n);
        let mut batch = ProfileBatch::new();
        for j in i..end {
            let p = synth::profile(seed, j);
            plaintext_bytes += p.plaintext_bytes() as u64;
            if j < MAX_SCANNED_PROFILES {
                needles.extend(p.needles);
            }
            ids.push(batch.create(p.fields.into_iter().collect::<Update>())?);
        }
        db.apply(batch)?;
        bar.set_position(end);
        i = end;
    }
    bar.finish_and_clear();
    let write_secs = started.elapsed().as_secs_f64();
    println!(
        "  wrote    {n} profiles in {write_secs:.2} s: {:.0} profiles/s ({} per atomic batch)",
        n as f64 / write_secs,
        batch_size
    );

    // Read a random sample back and compare with the regenerated profiles.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1));
    let sample = SAMPLE.min(n);
    let mut mismatches = 0u64;
    let mut read_time = std::time::Duration::ZERO;
    for _ in 0..sample {
        let j = rng.gen_range(0..n);
        let id = ids[usize::try_from(j).unwrap_or(0)];
        let started = Instant::now();
        let got = db.get(&id)?;
        read_time += started.elapsed();
        let want: std::collections::BTreeMap<String, lethedb::Value> =
            synth::profile(seed, j).fields.into_iter().collect();
        if got.fields != want {
            mismatches += 1;
        }
    }
    let read_secs = read_time.as_secs_f64();
    println!(
        "  read     {sample} random profiles in {:.1} ms ({:.1} µs each): {} mismatches",
        read_secs * 1e3,
        read_secs * 1e6 / sample as f64,
        mismatches
    );

    // Flush and compact so SST files hold everything, then scan every file.
    let started = Instant::now();
    db.compact()?;
    let compact_secs = started.elapsed().as_secs_f64();
    let stats = db.stats()?;
    drop(db);
    let started = Instant::now();
    let report = forensics::scan_dir(&dir, &needles)?;
    let scan_secs = started.elapsed().as_secs_f64();
    println!(
        "  scanned  {} files, {} bytes, for {} plaintext strings (emails, phones, addresses, names) of {} profiles in {scan_secs:.2} s",
        report.files,
        report.bytes,
        report.needles,
        n.min(MAX_SCANNED_PROFILES)
    );
    println!(
        "  found    {} plaintext occurrences (must be 0)",
        report.hits.len()
    );
    for hit in report.hits.iter().take(5) {
        println!("           {} @ {}", hit.file.display(), hit.offset);
    }
    println!("  compact  {compact_secs:.2} s");
    println!(
        "  on disk  {} bytes: {:.1} bytes/profile (plaintext as JSON: {:.1} bytes/profile)",
        stats.disk_bytes,
        stats.disk_bytes as f64 / n as f64,
        plaintext_bytes as f64 / n as f64
    );
    for c in &stats.columns {
        if c.sst_bytes > 0 {
            println!(
                "           {:<10} {:>12} bytes in SST ({:.1} bytes/profile)",
                c.name,
                c.sst_bytes,
                c.sst_bytes as f64 / n as f64
            );
        }
    }
    if mismatches > 0 || !report.hits.is_empty() {
        return Err(Failure::new("demo checks failed"));
    }
    println!("  ok: every sampled profile read back intact, no plaintext on disk");
    Ok(())
}
