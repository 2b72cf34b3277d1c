//! Issue 20's figures: GPP decode throughput, the vendor query beside
//! `get_for_purpose` (interleaved rounds, median ratio and range), and
//! request listings over a store of many requests.
//!
//! Run: `cargo bench --bench privacy` (1,000,000 requests, 7 rounds);
//! `cargo bench --bench privacy -- --requests 100000 --rounds 5`.

use std::hint::black_box;
use std::time::Instant;

use lethedb::{
    gpp, synth, Db, MemoryKeyProvider, NewRequest, Options, ProfileBatch, RequestFilter,
    RequestKind, Timestamp, Update,
};
use rand::{Rng, SeedableRng};

const DAY: i64 = 86_400_000_000;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// A TC string like a large CMP's today: purposes 1–10 consented, 2 and
/// 7–10 with legitimate interest, `vendors` vendors in a bitfield (every
/// third one consented, every fifth with legitimate interest), bytes
/// padded as the IAB encoders do.
fn tc_string(vendors: u16) -> String {
    let mut bits: Vec<bool> = Vec::new();
    let int = |v: u64, n: usize, bits: &mut Vec<bool>| {
        for i in (0..n).rev() {
            bits.push((v >> i) & 1 == 1);
        }
    };
    let now = Timestamp::now().as_micros() as u64 / 100_000;
    for (v, n) in [
        (2, 6),
        (now, 36),
        (now, 36),
        (10, 12),
        (1, 12),
        (1, 6),
        (4, 6),
        (13, 6),
    ] {
        int(v, n, &mut bits);
    }
    for (v, n) in [(150, 12), (4, 6), (0, 1), (0, 1), (0, 12)] {
        int(v, n, &mut bits);
    }
    for p in 1..=24u64 {
        int(u64::from(p <= 10), 1, &mut bits);
    }
    for p in 1..=24u64 {
        int(u64::from(p == 2 || (7..=10).contains(&p)), 1, &mut bits);
    }
    for (v, n) in [(0, 1), (3, 6), (4, 6)] {
        int(v, n, &mut bits);
    }
    for every in [3u16, 5] {
        int(u64::from(vendors), 16, &mut bits);
        int(0, 1, &mut bits);
        for v in 1..=vendors {
            int(u64::from(v % every == 0), 1, &mut bits);
        }
    }
    int(0, 12, &mut bits);
    while !bits.len().is_multiple_of(24) {
        bits.push(false);
    }
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    bits.chunks(6)
        .map(|c| A[c.iter().fold(0usize, |a, b| (a << 1) | usize::from(*b))] as char)
        .collect()
}

fn gpp_throughput(rounds: u64, small: bool) {
    let tc = tc_string(1000);
    let strings = [
        ("usca", "DBABBg~BVVVVVVY".to_string()),
        ("usnat v2 + GPC", "DBABLA~BVVVkkkkkpFY.YA".to_string()),
        (
            "six US sections",
            "DBABrGA~BVVqAAEABCA~BVoYYZoI~BVoYYYI~BVoYYQg~BVaGGGCA~BVoYYYQg".to_string(),
        ),
        ("tcfeuv2, 1,000 vendors", format!("DBABMA~{tc}")),
    ];
    println!("GPP decode (gpp::decode), median of {rounds} rounds:");
    for (name, s) in &strings {
        let n = match (small, s.len() > 200) {
            (true, _) => 1_000,
            (false, true) => 20_000,
            (false, false) => 200_000,
        };
        let mut per: Vec<f64> = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..n {
                black_box(gpp::decode(black_box(s)).expect("decode"));
            }
            per.push(t.elapsed().as_nanos() as f64 / n as f64);
        }
        let (lo, hi) = range(&per);
        let m = median(per);
        println!(
            "  {name:<24} {m:>8.0} ns/string ({lo:.0}–{hi:.0}), {:.2} M strings/s, {} bytes",
            1e3 / m,
            s.len()
        );
    }
}

fn vendor_query(rounds: u64, small: bool) {
    let (profiles, queries): (u64, usize) = if small {
        (500, 1_000)
    } else {
        (10_000, 20_000)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = synth::schema()
        .allow("email", "tcf:1")
        .allow("first_name", "tcf:1");
    let db = Db::open(
        dir.path(),
        &MemoryKeyProvider::from_bytes([3; 32]),
        Options::new().create_if_missing(true).schema(schema),
    )
    .expect("open");
    let mut ids = Vec::new();
    for chunk in 0..profiles / 500 {
        let mut batch = ProfileBatch::new();
        for i in chunk * 500..(chunk + 1) * 500 {
            ids.push(
                batch
                    .create(synth::profile(9, i).fields.into_iter().collect::<Update>())
                    .expect("id"),
            );
        }
        db.apply(batch).expect("apply");
    }
    let tc = tc_string(1000);
    for id in &ids {
        db.import_tcf(id, &tc).expect("import");
    }
    db.compact().expect("compact");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let picks: Vec<(usize, u16)> = (0..queries)
        .map(|_| (rng.gen_range(0..ids.len()), rng.gen_range(1..=1000)))
        .collect();
    let time = |f: &dyn Fn(usize, u16)| {
        let t = Instant::now();
        for &(i, v) in &picks {
            f(i, v);
        }
        t.elapsed().as_nanos() as f64 / queries as f64
    };
    let purpose = |i: usize, _v: u16| {
        black_box(db.get_for_purpose(&ids[i], "tcf:1").expect("purpose read"));
    };
    let vendor = |i: usize, v: u16| {
        black_box(db.vendor_may_process(&ids[i], v, 1).expect("vendor"));
    };
    let consent = |i: usize, _v: u16| {
        black_box(db.consent(&ids[i], "tcf:1").expect("consent"));
    };
    // Warm both paths, then interleave: baseline, vendor, baseline, …
    time(&purpose);
    time(&vendor);
    let (mut base, mut ven, mut cons, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let b = time(&purpose);
        let v = time(&vendor);
        let c = time(&consent);
        ratios.push(v / b);
        base.push(b);
        ven.push(v);
        cons.push(c);
    }
    let (lo, hi) = range(&ratios);
    println!(
        "Vendor query ({profiles} profiles, TC string of 1,000 vendors, {queries} queries a round, {rounds} interleaved rounds):"
    );
    println!(
        "  get_for_purpose(tcf:1) {:.2} µs, vendor_may_process {:.2} µs, consent(tcf:1) {:.2} µs",
        median(base) / 1e3,
        median(ven) / 1e3,
        median(cons) / 1e3
    );
    println!(
        "  vendor_may_process / get_for_purpose: median {:.2}x ({lo:.2}–{hi:.2})",
        median(ratios)
    );
}

fn request_listing(n: u64, rounds: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(
        dir.path(),
        &MemoryKeyProvider::from_bytes([4; 32]),
        // Loading only: a million audited writes without an fsync each.
        Options::new().create_if_missing(true).sync_writes(false),
    )
    .expect("open");
    let people: Vec<_> = (0..1000)
        .map(|_| db.create(Update::new()).expect("create"))
        .collect();
    let now = Timestamp::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let t = Instant::now();
    // Received over the last 200 days under a 45-day rule; 97 % are closed
    // (completed or rejected), as in a desk that keeps up: the rest are
    // open, about a quarter of those overdue.
    for i in 0..n {
        let received = Timestamp(now.0 - rng.gen_range(0..200 * DAY));
        let kind = [
            RequestKind::Access,
            RequestKind::Erasure,
            RequestKind::OptOutOfSale,
        ][i as usize % 3];
        let jurisdiction = if kind == RequestKind::OptOutOfSale {
            "US-VA"
        } else {
            "US-CA"
        };
        let r = db
            .open_request(
                &people[i as usize % people.len()],
                NewRequest::new(kind, jurisdiction).received_at(received),
            )
            .expect("open");
        let open = rng.gen_range(0..100) < 3 && received.0 > now.0 - 60 * DAY;
        if !open {
            db.reject_request(r.id, "bench", "closed").expect("close");
        }
    }
    let load = t.elapsed();
    db.compact().expect("compact");
    let open_count = db
        .requests(&RequestFilter {
            status: Some(lethedb::RequestStatus::Open),
            ..Default::default()
        })
        .expect("list")
        .len();
    println!(
        "Requests: {n} stored ({open_count} open), loaded in {:.1} s ({:.1} µs a request: open + close, each audited)",
        load.as_secs_f64(),
        load.as_secs_f64() * 1e6 / (n as f64 * 1.97)
    );
    let cases: [(&str, RequestFilter); 3] = [
        (
            "--overdue",
            RequestFilter {
                due_before: Some(Timestamp::now()),
                ..Default::default()
            },
        ),
        (
            "--due-within 7d",
            RequestFilter {
                due_before: Some(Timestamp(Timestamp::now().0 + 7 * DAY)),
                ..Default::default()
            },
        ),
        ("all (no filter)", RequestFilter::default()),
    ];
    for (name, f) in &cases {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            found = black_box(db.requests(f).expect("list")).len();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (lo, hi) = range(&times);
        println!(
            "  list {name:<16} {found:>8} requests in {:.1} ms (median of {rounds}; {lo:.1}–{hi:.1})",
            median(times)
        );
    }
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: a
    // small run of every part, so the bench keeps compiling and working
    // without costing the test suite a million requests.
    let bench = std::env::args().any(|a| a == "--bench");
    let rounds = arg("--rounds", if bench { 7 } else { 1 });
    let requests = arg("--requests", if bench { 1_000_000 } else { 2_000 });
    gpp_throughput(rounds, !bench);
    vendor_query(rounds, !bench);
    request_listing(requests, rounds);
}
