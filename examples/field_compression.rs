//! Would compressing each field's plaintext before encryption pay?
//! (docs/performance.md, "Record format v2": compression decision.)
//!
//! For N synthetic people (the scale run's data), every field's encoded
//! value is compressed on its own — per field, so no field's length depends
//! on another's content — with LZ4 and with DEFLATE (level 6), keeping the
//! smaller of compressed + 1 flag byte and raw + 1 flag byte, as a format
//! would. Prints bytes per profile, per field name, and how many distinct
//! lengths the compressed form takes per field (what a length leaks).
//!
//! `cargo run --release --example field_compression -- 100000`

use std::collections::{BTreeMap, BTreeSet};

/// Per field: raw, LZ4 best, DEFLATE best bytes; distinct raw and deflated lengths.
type Sizes = (u64, u64, u64, BTreeSet<usize>, BTreeSet<usize>);

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut per: BTreeMap<String, Sizes> = BTreeMap::new();
    for i in 0..n {
        for (name, v) in lethedb::bench_support::encoded_fields(0x5ca1e, i) {
            let lz4 = lz4_flex::block::compress(&v).len();
            let def = miniz_oxide::deflate::compress_to_vec(&v, 6).len();
            let e = per.entry(name).or_default();
            e.0 += v.len() as u64;
            e.1 += (lz4.min(v.len()) + 1) as u64;
            e.2 += (def.min(v.len()) + 1) as u64;
            e.3.insert(v.len());
            e.4.insert(def.min(v.len()));
        }
    }
    let (mut raw, mut lz4, mut def) = (0u64, 0u64, 0u64);
    println!(
        "| field | raw B | LZ4 (+flag) B | DEFLATE (+flag) B | distinct lengths raw → deflated |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, (r, l, d, lr, ld)) in &per {
        raw += r;
        lz4 += l;
        def += d;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {} → {} |",
            *r as f64 / n as f64,
            *l as f64 / n as f64,
            *d as f64 / n as f64,
            lr.len(),
            ld.len()
        );
    }
    println!(
        "| **all** | {:.1} | {:.1} | {:.1} | |",
        raw as f64 / n as f64,
        lz4 as f64 / n as f64,
        def as f64 / n as f64
    );
}
