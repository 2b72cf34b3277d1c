//! Crypto of one profile record, format v2 against v1 (docs/performance.md,
//! "Record format v2"): per field and per record, read and write. 17
//! fields of 24 bytes, the shape of the scale run's profiles.
//!
//! `cargo bench --bench record`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lethedb::bench_support::RecordCrypto;

const FIELDS: usize = 17;
const LEN: usize = 24;

fn record(c: &mut Criterion) {
    let r = RecordCrypto::new(FIELDS, LEN).expect("bench data");
    let keys = r.v2_keys().expect("keys");
    let mut g = c.benchmark_group("record");
    g.bench_function("v2/open_field", |b| {
        b.iter(|| black_box(r.v2_open_field(&keys, black_box(5))))
    });
    g.bench_function("v2/derive_keys", |b| b.iter(|| black_box(r.v2_keys())));
    g.bench_function("v2/verify_tag", |b| {
        b.iter(|| black_box(r.v2_verify(&keys)))
    });
    g.bench_function("v2/open_record", |b| {
        b.iter(|| black_box(r.v2_open_record()))
    });
    g.bench_function("v2/seal_record", |b| {
        b.iter(|| black_box(r.v2_seal_record()))
    });
    g.bench_function("v1/open_field", |b| {
        b.iter(|| black_box(r.v1_open_field(black_box(5))))
    });
    g.bench_function("v1/open_record", |b| {
        b.iter(|| black_box(r.v1_open_record()))
    });
    g.bench_function("entry_mac/tag_and_verify", |b| {
        b.iter(|| black_box(r.entry_mac()))
    });
    g.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
