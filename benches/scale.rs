//! Scale run: lethedb against a plaintext RocksDB profile store
//! (`bench_support::PlainStore`: same RocksDB options, same record layout in
//! the clear, one index entry per identifier) on the same synthetic people,
//! in one run, for each N.
//!
//! ```text
//! cargo bench --bench scale                              # N = 1e6 and 1e7
//! cargo bench --bench scale -- --sizes 100000            # quick look
//! cargo bench --bench scale -- --large                   # adds N = 5e7
//! ```
//!
//! Options: `--sizes a,b,..`, `--large`, `--threads T` (default 2),
//! `--samples S` warm reads per measurement (default 200000),
//! `--cold-samples C` (default 20000), `--dir DIR` for the stores (default
//! `/tmp/lethedb-scale`), `--out DIR` for the report (default
//! `$CARGO_TARGET_DIR/scale`, else `target/scale`), `--keep` keeps stores,
//! `--reuse` takes the figures of runs already saved in `OUT/runs/`.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it makes a
//! 2,000-person run instead, so the read-back check of both engines is a test.
//!
//! For each N both stores are loaded first (a child process each: load,
//! compaction, read-back check), then `--rounds R` (default 5) interleaved
//! measurement rounds run on the same loaded stores — baseline, lethedb,
//! baseline, … — each a child process of its own (so its RSS is its own):
//! cold get and lookup, warm get and lookup, update, and the upsert of
//! `--round-upserts M` (default 50000) new people. A ratio is taken per
//! round and the median reported with its min–max, so a noisy neighbour
//! moves one round, not the figure. Output: `scale.json`, `scale.md` and
//! `scale.png` in the out directory. See docs/performance.md for what each
//! figure means.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lethedb::bench_support::PlainStore;
use lethedb::{synth, Db, Identifier, MemoryKeyProvider, Options, ProfileId, Update, Value};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

const SEED: u64 = 0x5ca1e;
const BLOCK_CACHE: usize = 64 << 20;
const WRITE_BUFFER: usize = 32 << 20;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

// ------------------------------------------------------------------ settings

#[derive(Clone, Debug)]
struct Settings {
    sizes: Vec<u64>,
    threads: u64,
    samples: u64,
    cold_samples: u64,
    dir: PathBuf,
    out: PathBuf,
    keep: bool,
    reuse: bool,
    /// Interleaved measurement rounds per N (baseline, lethedb, baseline, …).
    rounds: u64,
    /// New people upserted per round and engine.
    round_upserts: u64,
}

fn settings(args: &[String]) -> Res<Settings> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let mut s = Settings {
        sizes: vec![1_000_000, 10_000_000],
        threads: 2,
        samples: 200_000,
        cold_samples: 20_000,
        dir: PathBuf::from("/tmp/lethedb-scale"),
        out: target.join("scale"),
        keep: false,
        reuse: false,
        rounds: 5,
        round_upserts: 50_000,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--sizes" => {
                s.sizes = value()?
                    .split(',')
                    .map(|x| x.trim().parse::<f64>().map(|f| f as u64))
                    .collect::<std::result::Result<_, _>>()?
            }
            "--large" => s.sizes.push(50_000_000),
            "--threads" => s.threads = value()?.parse()?,
            "--samples" => s.samples = value()?.parse()?,
            "--cold-samples" => s.cold_samples = value()?.parse()?,
            "--dir" => s.dir = value()?.into(),
            "--out" => s.out = value()?.into(),
            "--keep" => s.keep = true,
            "--reuse" => s.reuse = true,
            "--rounds" => s.rounds = value()?.parse()?,
            "--round-upserts" => s.round_upserts = value()?.parse()?,
            // cargo bench passes --bench; criterion-style filters are ignored.
            _ => {}
        }
    }
    Ok(s)
}

// ------------------------------------------------------------------ engines

/// The two stores behind one interface, so both run the same driver code.
enum Engine {
    Lethe(Box<Db>),
    Plain(Box<PlainStore>),
}

impl Engine {
    fn open(kind: &str, path: &Path, create: bool) -> Res<Engine> {
        Ok(match kind {
            "lethedb" => Engine::Lethe(Box::new(Db::open(
                path,
                // The master key is fixed so the store can be reopened for
                // the cold-cache phase; it never leaves this process.
                &MemoryKeyProvider::from_bytes([0x42; 32]),
                Options::new()
                    .create_if_missing(create)
                    .schema(synth::schema())
                    .block_cache_bytes(BLOCK_CACHE)
                    .write_buffer_bytes(WRITE_BUFFER),
            )?)),
            "baseline" => Engine::Plain(Box::new(PlainStore::open(
                path,
                BLOCK_CACHE,
                WRITE_BUFFER,
                create,
            )?)),
            other => return Err(format!("unknown engine {other}").into()),
        })
    }

    fn resolve(&self, ids: &[Identifier], fields: Vec<(String, Value)>) -> Res<ProfileId> {
        match self {
            Engine::Lethe(db) => {
                let out = db.resolve(ids, fields.into_iter().collect::<Update>())?;
                if !out.rejected.is_empty() {
                    return Err(format!("identifiers rejected: {:?}", out.rejected).into());
                }
                Ok(out.profile.ok_or("resolve wrote no profile")?)
            }
            Engine::Plain(p) => Ok(p.resolve(ids, &fields)?),
        }
    }

    fn get(&self, id: &ProfileId) -> Res<BTreeMap<String, Value>> {
        match self {
            Engine::Lethe(db) => Ok(db.get(id)?.fields),
            Engine::Plain(p) => Ok(p.get(id)?.ok_or("baseline profile missing")?),
        }
    }

    fn lookup(&self, id: &Identifier) -> Res<Option<ProfileId>> {
        match self {
            Engine::Lethe(db) => Ok(db.lookup(id)?),
            Engine::Plain(p) => Ok(p.lookup(id)?),
        }
    }

    /// RocksDB's own memory figures, in bytes.
    fn memory(&self) -> Res<Json> {
        let m = match self {
            Engine::Lethe(db) => db.stats()?.memory,
            Engine::Plain(p) => p.memory()?,
        };
        Ok(json!({
            "block_cache": m.block_cache,
            "block_cache_pinned": m.block_cache_pinned,
            "table_readers": m.table_readers,
            "memtables": m.memtables,
        }))
    }

    fn compact(&self) -> Res<()> {
        match self {
            Engine::Lethe(db) => db.compact()?,
            Engine::Plain(p) => p.compact()?,
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ histogram

/// Log-bucketed latency histogram (≤ 1/32 relative error), so memory does
/// not grow with the number of operations measured.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    const SUB: u32 = 5;

    fn new() -> Self {
        Histogram {
            counts: vec![0; 64 << Self::SUB],
            total: 0,
        }
    }

    fn bucket(ns: u64) -> usize {
        let ns = ns.max(1);
        let msb = 63 - ns.leading_zeros();
        if msb < Self::SUB {
            return ns as usize;
        }
        let sub = (ns >> (msb - Self::SUB)) & ((1 << Self::SUB) - 1);
        ((msb << Self::SUB) as u64 + sub) as usize
    }

    /// Lower bound of a bucket, in nanoseconds.
    fn value(bucket: usize) -> u64 {
        let msb = (bucket >> Self::SUB) as u32;
        if msb < Self::SUB {
            return bucket as u64;
        }
        let sub = (bucket as u64) & ((1 << Self::SUB) - 1);
        (1u64 << msb) | (sub << (msb - Self::SUB))
    }

    fn record(&mut self, d: Duration) {
        self.counts[Self::bucket(d.as_nanos() as u64)] += 1;
        self.total += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    fn quantile_us(&self, q: f64) -> f64 {
        let want = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Self::value(i) as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// Runs `op` on `threads` threads, `per_thread` times each; `op` returns
/// the time of the measured part of its call (`None`: nothing done).
fn measure<F>(threads: u64, per_thread: u64, op: F) -> Res<Json>
where
    F: Fn(u64, &mut rand::rngs::StdRng) -> Res<Option<Duration>> + Sync,
{
    let started = Instant::now();
    let hists = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                s.spawn(move || -> Res<Histogram> {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED + 977 * t);
                    let mut h = Histogram::new();
                    for _ in 0..per_thread {
                        if let Some(d) = op(t, &mut rng)? {
                            h.record(d);
                        }
                    }
                    Ok(h)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "worker panicked")?)
            .collect::<Res<Vec<_>>>()
    })?;
    let wall = started.elapsed().as_secs_f64();
    let mut all = Histogram::new();
    for h in &hists {
        all.merge(h);
    }
    Ok(json!({
        "ops": all.total,
        "seconds": wall,
        "ops_per_s": all.total as f64 / wall,
        "p50_us": all.quantile_us(0.50),
        "p99_us": all.quantile_us(0.99),
    }))
}

// ------------------------------------------------------------------ child

/// Peak resident set so far (`VmHWM`).
fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// Resident set now (`VmRSS`).
fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn sst_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "sst"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Drops the OS page cache (needs root); false when not allowed.
fn drop_page_cache() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Reads every SST file once so the OS page cache holds them ("warm").
fn prefetch(dir: &Path) -> Res<()> {
    let mut buf = vec![0u8; 1 << 20];
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.path().extension().is_some_and(|x| x == "sst") {
            let mut f = std::fs::File::open(e.path())?;
            while f.read(&mut buf)? > 0 {}
        }
    }
    Ok(())
}

fn person(i: u64) -> (Vec<Identifier>, Vec<(String, Value)>) {
    let p = synth::profile(SEED, i);
    let ids = synth::identifiers(SEED, i, &p);
    (ids, p.fields)
}

fn email_of(i: u64) -> Res<Identifier> {
    let (ids, _) = person(i);
    ids.into_iter()
        .find(|x| x.id_type == lethedb::IdType::Email)
        .ok_or_else(|| "synthetic person without e-mail".into())
}

fn read_id(ids: &std::fs::File, i: u64) -> Res<ProfileId> {
    let mut b = [0u8; 16];
    ids.read_exact_at(&mut b, i * 16)?;
    Ok(ProfileId::from_bytes(b))
}

/// The measured read and update operations on random loaded people.
struct Ctx<'a> {
    n: u64,
    ids: &'a std::fs::File,
}

impl Ctx<'_> {
    fn get(&self, engine: &Engine, rng: &mut rand::rngs::StdRng) -> Res<Option<Duration>> {
        let id = read_id(self.ids, rng.gen_range(0..self.n))?;
        let t = Instant::now();
        let p = engine.get(&id)?;
        let d = t.elapsed();
        std::hint::black_box(p);
        Ok(Some(d))
    }

    fn lookup(&self, engine: &Engine, rng: &mut rand::rngs::StdRng) -> Res<Option<Duration>> {
        let email = email_of(rng.gen_range(0..self.n))?;
        let t = Instant::now();
        let found = engine.lookup(&email)?;
        let d = t.elapsed();
        if found.is_none() {
            return Err("lookup of a loaded person found nothing".into());
        }
        Ok(Some(d))
    }

    /// Resolve by e-mail of an existing person, changing two fields.
    fn update(&self, engine: &Engine, rng: &mut rand::rngs::StdRng) -> Res<Option<Duration>> {
        let email = email_of(rng.gen_range(0..self.n))?;
        let fields = vec![
            (
                "loyalty_points".to_string(),
                Value::Int(rng.gen_range(0..250_000)),
            ),
            ("city".to_string(), Value::from("Porto")),
        ];
        let t = Instant::now();
        engine.resolve(&[email], fields)?;
        Ok(Some(t.elapsed()))
    }
}

fn store_root(kind: &str, n: u64, s: &Settings) -> PathBuf {
    s.dir.join(format!("{kind}-{n}"))
}

/// Loads N people into a new store of `kind`, compacts it and checks a
/// sample reads back; the store is kept for the rounds.
fn child_load(kind: &str, n: u64, s: &Settings) -> Res<Json> {
    let root = store_root(kind, n, s);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let store = root.join("store");
    let id_path = root.join("ids.bin");
    let id_file = std::fs::File::create(&id_path)?;
    id_file.set_len(n * 16)?;
    let engine = Engine::open(kind, &store, true)?;
    let mut out = json!({ "engine": kind, "n": n, "threads": s.threads });

    // Load: every person written through resolve on `threads` threads
    // (person i on thread i mod threads); ids kept on disk, not in memory,
    // so RSS measures the engine.
    let step = (n / 10).max(1);
    let load_started = Instant::now();
    out["load"] = upsert_people(&engine, 0, n, s.threads, |i, id| {
        id_file.write_all_at(id.as_bytes(), i * 16)?;
        if i.is_multiple_of(step) && i > 0 {
            eprintln!(
                "  {kind} N={n}: {i} loaded, {:.0}/s so far",
                i as f64 / load_started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })?;
    out["rss_after_load_bytes"] = json!(rss_bytes());
    out["memory_after_load"] = engine.memory()?;
    drop(id_file);
    let id_file = std::fs::File::open(&id_path)?;

    let t = Instant::now();
    engine.compact()?;
    out["compact_seconds"] = json!(t.elapsed().as_secs_f64());
    out["rss_after_compaction_bytes"] = json!(rss_bytes());
    out["memory_after_compaction"] = engine.memory()?;
    out["peak_rss_through_compaction_bytes"] = json!(peak_rss_bytes());
    let bytes = sst_bytes(&store);
    out["sst_bytes"] = json!(bytes);
    out["bytes_per_profile"] = json!(bytes as f64 / n as f64);
    if let Engine::Lethe(db) = &engine {
        // Where the bytes go, per column family.
        let per_cf: serde_json::Map<String, Json> = db
            .stats()?
            .columns
            .into_iter()
            .filter(|c| c.sst_bytes > 0)
            .map(|c| (c.name, json!(c.sst_bytes as f64 / n as f64)))
            .collect();
        out["bytes_per_profile_by_column_family"] = Json::Object(per_cf);
    }

    // Every engine must return what was written: check a sample.
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    for _ in 0..200 {
        let i = rng.gen_range(0..n);
        let id = read_id(&id_file, i)?;
        let want: BTreeMap<String, Value> = person(i).1.into_iter().collect();
        if engine.get(&id)? != want {
            return Err(format!("{kind}: person {i} reads back different fields").into());
        }
        if engine.lookup(&email_of(i)?)? != Some(id) {
            return Err(format!("{kind}: person {i}'s e-mail resolves elsewhere").into());
        }
    }
    Ok(out)
}

/// Upserts people `from..to` (new people, through resolve) on `threads`
/// threads, timing each call; `each` gets every person's index and id.
fn upsert_people(
    engine: &Engine,
    from: u64,
    to: u64,
    threads: u64,
    each: impl Fn(u64, ProfileId) -> Res<()> + Sync,
) -> Res<Json> {
    let per_thread = (to - from).div_ceil(threads);
    let counters: Vec<std::sync::atomic::AtomicU64> = (0..threads)
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    measure(threads, per_thread, |t, _| {
        let k = counters[t as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let i = from + k * threads + t;
        if i >= to {
            // Uneven split: the last round of a thread has nothing to do.
            return Ok(None);
        }
        let (ids, fields) = person(i);
        let started = Instant::now();
        let id = engine.resolve(&ids, fields)?;
        let d = started.elapsed();
        each(i, id)?;
        Ok(Some(d))
    })
}

/// Round `round` (1-based) on the loaded store of `kind`: cold get and
/// lookup, warm get and lookup, update, and upsert of `round_upserts` new
/// people (their own range per round, the same for both engines).
fn child_round(kind: &str, n: u64, round: u64, s: &Settings) -> Res<Json> {
    let root = store_root(kind, n, s);
    let store = root.join("store");
    let id_file = std::fs::File::open(root.join("ids.bin"))?;
    let ctx = Ctx { n, ids: &id_file };
    let mut out = json!({ "engine": kind, "n": n, "round": round, "threads": s.threads });
    // Cold: page cache dropped, store reopened (empty block cache).
    let dropped = drop_page_cache();
    out["cold_cache_dropped"] = json!(dropped);
    let per_cold = (s.cold_samples / s.threads).max(1);
    let engine = Engine::open(kind, &store, false)?;
    out["get_cold"] = measure(s.threads, per_cold, |_, r| ctx.get(&engine, r))?;
    drop(engine);
    drop_page_cache();
    let engine = Engine::open(kind, &store, false)?;
    out["lookup_cold"] = measure(s.threads, per_cold, |_, r| ctx.lookup(&engine, r))?;

    // Warm: every SST file in the OS page cache, block cache as configured,
    // one unmeasured pass first.
    prefetch(&store)?;
    let per = (s.samples / s.threads).max(1);
    measure(s.threads, per, |_, r| ctx.get(&engine, r))?;
    out["get_warm"] = measure(s.threads, per, |_, r| ctx.get(&engine, r))?;
    measure(s.threads, per, |_, r| ctx.lookup(&engine, r))?;
    out["lookup_warm"] = measure(s.threads, per, |_, r| ctx.lookup(&engine, r))?;
    out["rss_after_reads_bytes"] = json!(rss_bytes());
    out["memory_after_reads"] = engine.memory()?;
    out["update_warm"] = measure(s.threads, per / 4, |_, r| ctx.update(&engine, r))?;
    let from = n + (round - 1) * s.round_upserts;
    out["upsert"] = upsert_people(&engine, from, from + s.round_upserts, s.threads, |_, _| {
        Ok(())
    })?;
    out["peak_rss_bytes"] = json!(peak_rss_bytes());
    Ok(out)
}

// ------------------------------------------------------------------ parent

const ENGINES: [&str; 2] = ["baseline", "lethedb"];

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        // --child load KIND N … | --child round KIND N ROUND …
        let phase = args.get(1).ok_or("--child needs a phase")?.clone();
        let kind = args.get(2).ok_or("--child needs an engine")?.clone();
        let n: u64 = args.get(3).ok_or("--child needs N")?.parse()?;
        let result = match phase.as_str() {
            "load" => child_load(&kind, n, &settings(&args[4..])?)?,
            "round" => {
                let round: u64 = args.get(4).ok_or("--child round needs a round")?.parse()?;
                child_round(&kind, n, round, &settings(&args[5..])?)?
            }
            other => return Err(format!("unknown phase {other}").into()),
        };
        println!("{result}");
        return Ok(());
    }
    let mut s = settings(&args)?;
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs this binary without `--bench`:
        // a small run of both engines, whose built-in read-back check
        // fails the test if either engine returns other data.
        let tmp = std::env::temp_dir().join(format!("lethedb-scale-test-{}", std::process::id()));
        s.sizes = vec![2_000];
        s.samples = 2_000;
        s.cold_samples = 200;
        s.rounds = 2;
        s.round_upserts = 200;
        s.dir = tmp.join("stores");
        s.out = tmp.join("report");
        s.reuse = false;
        let result = run(&s);
        let _ = std::fs::remove_dir_all(&tmp);
        return result;
    }
    run(&s)
}

/// Runs one child phase and returns its JSON; saved under `OUT/runs/` and,
/// with `--reuse`, taken from there instead of measured again (a long run
/// resumes after an interruption).
fn run_child(s: &Settings, phase_args: &[String], saved: &Path) -> Res<Json> {
    if s.reuse {
        if let Ok(text) = std::fs::read_to_string(saved) {
            eprintln!(
                "scale: {}: reusing {}",
                phase_args.join(" "),
                saved.display()
            );
            return Ok(serde_json::from_str::<Json>(&text)?);
        }
    }
    eprintln!("scale: {}", phase_args.join(" "));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--child").args(phase_args);
    cmd.args(pass_through(s));
    let output = cmd.stderr(std::process::Stdio::inherit()).output()?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", phase_args.join(" "), output.status).into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().ok_or("child printed nothing")?;
    std::fs::write(saved, line)?;
    Ok(serde_json::from_str::<Json>(line)?)
}

/// The whole scale run for `s`: for each N both stores loaded (a child
/// each), then `rounds` interleaved measurement rounds (baseline, lethedb,
/// baseline, …, a child each, on the same loaded stores); then the report.
fn run(s: &Settings) -> Res<()> {
    std::fs::create_dir_all(&s.out)?;
    let runs_dir = s.out.join("runs");
    std::fs::create_dir_all(&runs_dir)?;
    let mut sizes = Vec::new();
    for &n in &s.sizes {
        let mut loads = serde_json::Map::new();
        for kind in ENGINES {
            let saved = runs_dir.join(format!("{kind}-{n}-load.json"));
            let args = ["load".to_string(), kind.to_string(), n.to_string()];
            loads.insert(kind.to_string(), run_child(s, &args, &saved)?);
        }
        let mut rounds: Vec<serde_json::Map<String, Json>> = Vec::new();
        for round in 1..=s.rounds {
            let mut r = serde_json::Map::new();
            for kind in ENGINES {
                let saved = runs_dir.join(format!("{kind}-{n}-round{round}.json"));
                let args = [
                    "round".to_string(),
                    kind.to_string(),
                    n.to_string(),
                    round.to_string(),
                ];
                r.insert(kind.to_string(), run_child(s, &args, &saved)?);
            }
            rounds.push(r);
        }
        if !s.keep {
            for kind in ENGINES {
                let _ = std::fs::remove_dir_all(store_root(kind, n, s));
            }
        }
        sizes.push(size_report(n, &loads, &rounds));
    }
    let report = report(s, sizes);
    std::fs::write(
        s.out.join("scale.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let md = markdown(&report);
    std::fs::write(s.out.join("scale.md"), &md)?;
    print!("{md}");
    match plot(&report, &s.out.join("scale.png")) {
        Ok(()) => eprintln!("plot: {}", s.out.join("scale.png").display()),
        Err(e) => eprintln!("plot skipped: {e}"),
    }
    eprintln!("report: {}", s.out.display());
    Ok(())
}

fn pass_through(s: &Settings) -> Vec<String> {
    let mut v = vec![
        "--threads".into(),
        s.threads.to_string(),
        "--samples".into(),
        s.samples.to_string(),
        "--cold-samples".into(),
        s.cold_samples.to_string(),
        "--dir".into(),
        s.dir.display().to_string(),
        "--round-upserts".into(),
        s.round_upserts.to_string(),
    ];
    if s.keep {
        v.push("--keep".into());
    }
    v
}

/// The measured figures: (JSON path, label, higher is better).
const FIGURES: &[(&str, &str, bool)] = &[
    (
        "load.ops_per_s",
        "load (resolve, N new people, one run) ops/s",
        true,
    ),
    ("load.p99_us", "load p99 µs (one run)", false),
    (
        "upsert.ops_per_s",
        "upsert (resolve, new person) ops/s",
        true,
    ),
    ("upsert.p50_us", "upsert p50 µs", false),
    ("upsert.p99_us", "upsert p99 µs", false),
    (
        "update_warm.ops_per_s",
        "update (resolve, existing) ops/s",
        true,
    ),
    ("get_warm.ops_per_s", "get ops/s, warm", true),
    ("get_warm.p50_us", "get p50 µs, warm", false),
    ("get_warm.p99_us", "get p99 µs, warm", false),
    ("get_cold.ops_per_s", "get ops/s, cold", true),
    ("get_cold.p50_us", "get p50 µs, cold", false),
    ("get_cold.p99_us", "get p99 µs, cold", false),
    ("lookup_warm.ops_per_s", "lookup ops/s, warm", true),
    ("lookup_warm.p50_us", "lookup p50 µs, warm", false),
    ("lookup_warm.p99_us", "lookup p99 µs, warm", false),
    ("lookup_cold.ops_per_s", "lookup ops/s, cold", true),
    ("lookup_cold.p50_us", "lookup p50 µs, cold", false),
    ("lookup_cold.p99_us", "lookup p99 µs, cold", false),
    ("bytes_per_profile", "bytes on disk per profile", false),
    ("peak_rss_mib", "peak RSS MiB", false),
    (
        "rss_after_reads_mib",
        "RSS after the read phases MiB",
        false,
    ),
];

fn field(run: &Json, path: &str) -> Option<f64> {
    if let Some(stem) = path.strip_suffix("_mib") {
        return run[format!("{stem}_bytes")]
            .as_f64()
            .map(|b| b / (1 << 20) as f64);
    }
    path.split('.')
        .try_fold(run, |v, k| v.get(k))
        .and_then(Json::as_f64)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One N: per engine, the load's figures and the median over rounds of
/// each round figure; per figure, the ratio of every round (lethedb /
/// baseline of the same round), their median, min and max. Figures of the
/// load (bytes, load throughput) are one ratio.
fn size_report(
    n: u64,
    loads: &serde_json::Map<String, Json>,
    rounds: &[serde_json::Map<String, Json>],
) -> Json {
    let mut engines = serde_json::Map::new();
    for kind in ENGINES {
        let mut e = loads.get(kind).cloned().unwrap_or(Json::Null);
        for (path, _, _) in FIGURES {
            let values: Vec<f64> = rounds
                .iter()
                .filter_map(|r| field(&r[kind], path))
                .collect();
            if let Some(m) = median(values) {
                set_field(&mut e, path, m);
            }
        }
        engines.insert(kind.to_string(), e);
    }
    let mut ratios = serde_json::Map::new();
    let mut spreads = serde_json::Map::new();
    for (path, _, _) in FIGURES {
        let per_round: Vec<f64> = rounds
            .iter()
            .filter_map(|r| Some(field(&r["lethedb"], path)? / field(&r["baseline"], path)?))
            .collect();
        let ratio = if per_round.is_empty() {
            field(&engines["lethedb"], path)
                .zip(field(&engines["baseline"], path))
                .map(|(l, b)| l / b)
        } else {
            let lo = per_round.iter().cloned().fold(f64::MAX, f64::min);
            let hi = per_round.iter().cloned().fold(f64::MIN, f64::max);
            spreads.insert(
                path.to_string(),
                json!({ "min": lo, "max": hi, "rounds": per_round }),
            );
            median(per_round.clone())
        };
        if let Some(r) = ratio {
            ratios.insert(path.to_string(), json!(r));
        }
    }
    json!({
        "n": n,
        "rounds": rounds.len(),
        "baseline": engines["baseline"],
        "lethedb": engines["lethedb"],
        "ratio_lethedb_over_baseline": ratios,
        "ratio_spread": spreads,
        "raw_rounds": rounds,
    })
}

/// Sets `path` (dotted) of `v` to `x`, creating objects on the way.
fn set_field(v: &mut Json, path: &str, x: f64) {
    if let Some(stem) = path.strip_suffix("_mib") {
        v[format!("{stem}_bytes")] = json!(x * (1 << 20) as f64);
        return;
    }
    let mut cur = v;
    for k in path.split('.') {
        cur = &mut cur[k];
    }
    *cur = json!(x);
}

fn report(s: &Settings, sizes: Vec<Json>) -> Json {
    json!({
        "seed": SEED,
        "threads": s.threads,
        "warm_samples": s.samples,
        "cold_samples": s.cold_samples,
        "rounds": s.rounds,
        "round_upserts": s.round_upserts,
        "block_cache_bytes": BLOCK_CACHE,
        "write_buffer_bytes": WRITE_BUFFER,
        "machine": { "cpus": std::thread::available_parallelism().map_or(0, |p| p.get()) },
        "sizes": sizes,
    })
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(x) if x >= 1000.0 => format!("{:.0}", x),
        Some(x) if x >= 10.0 => format!("{:.1}", x),
        Some(x) => format!("{:.2}", x),
    }
}

fn markdown(report: &Json) -> String {
    let sizes = report["sizes"].as_array().cloned().unwrap_or_default();
    let mut md = String::new();
    let _ = write!(md, "| figure |");
    for s in &sizes {
        let n = s["n"].as_u64().unwrap_or(0);
        let _ = write!(md, " baseline N={n} | lethedb N={n} | ratio N={n} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|---:|---:|".repeat(sizes.len()));
    md.push('\n');
    for (path, label, higher_better) in FIGURES {
        let _ = write!(md, "| {label} |");
        for s in &sizes {
            let r = s["ratio_lethedb_over_baseline"][*path].as_f64();
            let spread = &s["ratio_spread"][*path];
            let range = match (spread["min"].as_f64(), spread["max"].as_f64()) {
                (Some(lo), Some(hi)) => format!(" ({lo:.2}–{hi:.2})"),
                _ => String::new(),
            };
            let _ = write!(
                md,
                " {} | {} | {}{}{} |",
                fmt(field(&s["baseline"], path)),
                fmt(field(&s["lethedb"], path)),
                r.map_or("–".into(), |r| format!("{r:.2}×")),
                range,
                if *higher_better { "" } else { " ↓" }
            );
        }
        md.push('\n');
    }
    md.push_str(
        "\nratio = lethedb / baseline, the median of the per-round ratios of interleaved rounds (min–max in brackets); engine columns are medians over rounds. Load and bytes are one run each. For rows marked ↓ lower is better (a ratio above 1 is a cost).\n",
    );
    md
}

use std::fmt::Write as _;

/// `1e6`-style label for a power of ten, empty for any other tick.
fn power_of_ten_label(v: f64) -> String {
    let e = v.log10();
    if v > 0.0 && (e - e.round()).abs() < 1e-6 {
        format!("1e{}", e.round() as i64)
    } else {
        String::new()
    }
}

/// One plot panel: title, unit, and the (figure, label) pairs drawn.
type Panel<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Throughput and latency against N, lethedb solid, baseline dashed.
fn plot(report: &Json, path: &Path) -> Res<()> {
    use plotters::prelude::*;
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no DejaVuSans.ttf (apt-get install fonts-dejavu-core)")?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| "font not usable")?;
    let sizes = report["sizes"].as_array().cloned().unwrap_or_default();
    let ns: Vec<f64> = sizes.iter().filter_map(|s| s["n"].as_f64()).collect();
    let (lo, hi) = (
        ns.iter().cloned().fold(f64::MAX, f64::min) / 2.0,
        ns.iter().cloned().fold(0.0, f64::max) * 2.0,
    );
    let series = |engine: &str, path: &str| -> Vec<(f64, f64)> {
        sizes
            .iter()
            .filter_map(|s| Some((s["n"].as_f64()?, field(&s[engine], path)?)))
            .collect()
    };
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let groups: [Panel; 2] = [
        (
            "throughput (ops/s, 2 threads): ● lethedb, ▲ baseline",
            "ops/s",
            &[
                ("upsert.ops_per_s", "upsert"),
                ("get_warm.ops_per_s", "get warm"),
                ("get_cold.ops_per_s", "get cold"),
                ("lookup_warm.ops_per_s", "lookup warm"),
                ("lookup_cold.ops_per_s", "lookup cold"),
            ],
        ),
        (
            "latency p99 (µs): ● lethedb, ▲ baseline",
            "µs",
            &[
                ("upsert.p99_us", "upsert"),
                ("get_warm.p99_us", "get warm"),
                ("get_cold.p99_us", "get cold"),
                ("lookup_warm.p99_us", "lookup warm"),
                ("lookup_cold.p99_us", "lookup cold"),
            ],
        ),
    ];
    for (panel, (title, unit, metrics)) in panels.iter().zip(groups) {
        let values: Vec<f64> = metrics
            .iter()
            .flat_map(|(p, _)| ENGINES.iter().flat_map(move |e| series(e, p)))
            .map(|(_, v)| v)
            .filter(|v| *v > 0.0)
            .collect();
        let ymin = values.iter().cloned().fold(f64::MAX, f64::min) / 2.0;
        let ymax = values.iter().cloned().fold(0.0, f64::max) * 2.0;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (lo..hi).log_scale(),
                (ymin.max(1e-3)..ymax.max(1.0)).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("profiles (N)")
            .y_desc(unit)
            // Log axes: only powers of ten are labelled, so labels never
            // crowd into one another.
            .x_labels(12)
            .y_labels(12)
            .x_label_formatter(&|x| power_of_ten_label(*x))
            .y_label_formatter(&|y| power_of_ten_label(*y))
            .label_style(("sans-serif", 14))
            .draw()?;
        for (k, (metric, label)) in metrics.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let lethe = series("lethedb", metric);
            chart
                .draw_series(LineSeries::new(lethe.clone(), color.stroke_width(3)))?
                .label(format!("{label} lethedb"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart.draw_series(lethe.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
            let base = series("baseline", metric);
            chart
                .draw_series(DashedLineSeries::new(
                    base.clone(),
                    8,
                    5,
                    color.stroke_width(1),
                ))?
                .label(format!("{label} baseline"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
                });
            chart.draw_series(
                base.iter()
                    .map(|&p| TriangleMarker::new(p, 5, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
