//! Erasure benchmarks: `forget` and `forget_field` (re-key) against a plain
//! upsert of the same profiles, in the same run. Each iteration erases a
//! fresh person; purge is left to the scale example (`erasure_scale`).
//!
//! Run: `cargo bench --bench erasure`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lethedb::{synth, Db, Identifier, MemoryKeyProvider, Options, ProfileId, Update};

const PROFILES: u64 = 80_000;

fn erasure(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(
        dir.path(),
        &MemoryKeyProvider::from_bytes([1; 32]),
        Options::new()
            .create_if_missing(true)
            .schema(synth::schema())
            .purge_after_erasures(0)
            .purge_deadline(Duration::from_secs(24 * 3600)),
    )
    .expect("open");
    let ids: Vec<ProfileId> = (0..PROFILES)
        .map(|i| {
            let update: Update = synth::profile(7, i).fields.into_iter().collect();
            db.resolve(
                &[
                    Identifier::user_id(format!("user-{i:09}")),
                    Identifier::device_id(format!("device-{i:09}")),
                ],
                update,
            )
            .expect("resolve")
            .profile
            .expect("profile")
        })
        .collect();
    db.compact().expect("compact");
    // Each erasure bench walks the ids with its own cursor, so every
    // iteration erases something real (a wrap would measure the no-op path).
    let cursor = |name: &'static str| {
        let mut next = 0usize;
        let ids = &ids;
        move || {
            let id = *ids
                .get(next)
                .unwrap_or_else(|| panic!("{name}: more iterations than profiles; raise PROFILES"));
            next += 1;
            id
        }
    };
    let mut any = 0usize;
    c.bench_function("erasure/upsert_one_field", |b| {
        b.iter(|| {
            any = (any + 1) % ids.len();
            db.upsert(&ids[any], Update::new().set("city", "Lisbon"))
                .expect("upsert")
        })
    });
    let mut take = cursor("forget_field");
    c.bench_function("erasure/forget_field", |b| {
        b.iter(|| black_box(db.forget_field(&take(), "city").expect("forget_field")))
    });
    let mut take = cursor("forget");
    c.bench_function("erasure/forget", |b| {
        b.iter(|| black_box(db.forget(&take()).expect("forget")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = erasure
}
criterion_main!(benches);
