//! Consent benchmarks: consent point read and purpose-bound read against a
//! plain `get` of the same profiles, in the same run.
//!
//! Run: `cargo bench --bench consent`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lethedb::{
    synth, ConsentRecord, ConsentStatus, Db, MemoryKeyProvider, Options, ProfileBatch, Update,
};
use rand::{Rng, SeedableRng};

const PROFILES: u64 = 20_000;

fn consent(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = synth::schema()
        .allow("email", "email_marketing")
        .allow("first_name", "email_marketing")
        .allow("last_name", "email_marketing")
        .allow("preferences", "email_marketing");
    let db = Db::open(
        dir.path(),
        &MemoryKeyProvider::from_bytes([1; 32]),
        Options::new().create_if_missing(true).schema(schema),
    )
    .expect("open");
    let mut ids = Vec::new();
    for chunk in 0..PROFILES / 500 {
        let mut batch = ProfileBatch::new();
        for i in chunk * 500..(chunk + 1) * 500 {
            ids.push(
                batch
                    .create(synth::profile(7, i).fields.into_iter().collect::<Update>())
                    .expect("id"),
            );
        }
        db.apply(batch).expect("apply");
    }
    for (i, id) in ids.iter().enumerate() {
        let status = if i % 2 == 0 {
            ConsentStatus::Granted
        } else {
            ConsentStatus::Denied
        };
        db.record_consents(
            id,
            &[
                ConsentRecord::new("email_marketing", status),
                ConsentRecord::new("analytics", ConsentStatus::Granted),
            ],
        )
        .expect("consent");
    }
    db.compact().expect("compact");
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    c.bench_function("consent/get_plain", |b| {
        b.iter(|| black_box(db.get(&ids[rng.gen_range(0..ids.len())]).expect("get")))
    });
    c.bench_function("consent/point_read", |b| {
        b.iter(|| {
            black_box(
                db.consent(&ids[rng.gen_range(0..ids.len())], "email_marketing")
                    .expect("consent"),
            )
        })
    });
    c.bench_function("consent/get_for_purpose", |b| {
        b.iter(|| {
            black_box(
                db.get_for_purpose(&ids[rng.gen_range(0..ids.len())], "email_marketing")
                    .expect("read"),
            )
        })
    });
    c.bench_function("consent/record", |b| {
        b.iter(|| {
            db.record_consent(
                &ids[rng.gen_range(0..ids.len())],
                ConsentRecord::new("analytics", ConsentStatus::Granted),
            )
            .expect("record")
        })
    });
}

criterion_group!(benches, consent);
criterion_main!(benches);
