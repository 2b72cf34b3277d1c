//! Identity benchmarks: lookup and resolve (attach-only, create, merge)
//! against the foundation's one-field upsert, in the same run.
//!
//! Run: `cargo bench --bench identity`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lethedb::{Db, Identifier, MemoryKeyProvider, Options, ProfileId, Update};
use rand::{Rng, SeedableRng};

const PEOPLE: u64 = 20_000;

fn email(i: u64) -> Identifier {
    Identifier::email(format!("person{i}@example.com"))
}

fn setup() -> (tempfile::TempDir, Db, Vec<ProfileId>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(
        dir.path(),
        &MemoryKeyProvider::from_bytes([1; 32]),
        Options::new().create_if_missing(true),
    )
    .expect("open");
    let mut ids = Vec::new();
    for i in 0..PEOPLE {
        let out = db
            .resolve(
                &[
                    email(i),
                    Identifier::phone(format!("+1415{:07}", i)),
                    Identifier::user_id(format!("user-{i}")),
                ],
                Update::new()
                    .set("name", format!("Person {i}"))
                    .set("city", "Lisbon"),
            )
            .expect("resolve");
        ids.push(out.profile.expect("profile"));
    }
    db.compact().expect("compact");
    (dir, db, ids)
}

fn identity(c: &mut Criterion) {
    let (_dir, db, ids) = setup();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    c.bench_function("identity/lookup_email", |b| {
        b.iter(|| black_box(db.lookup(&email(rng.gen_range(0..PEOPLE))).expect("lookup")))
    });
    c.bench_function("identity/upsert_one_field", |b| {
        b.iter(|| {
            db.upsert(
                &ids[rng.gen_range(0..ids.len())],
                Update::new().set("city", "Porto"),
            )
            .expect("upsert")
        })
    });
    c.bench_function("identity/resolve_known_one_field", |b| {
        b.iter(|| {
            db.resolve(
                &[email(rng.gen_range(0..PEOPLE))],
                Update::new().set("city", "Porto"),
            )
            .expect("resolve")
        })
    });
    let mut next = PEOPLE;
    c.bench_function("identity/resolve_new_profile", |b| {
        b.iter(|| {
            next += 1;
            db.resolve(
                &[email(next), Identifier::device_id(format!("d-{next}"))],
                Update::new().set("city", "Faro"),
            )
            .expect("resolve")
        })
    });
    c.bench_function("identity/resolve_merge_two", |b| {
        b.iter_batched(
            || {
                next += 2;
                db.resolve(
                    &[Identifier::device_id(format!("m-{next}"))],
                    Update::new().set("a", 1),
                )
                .expect("a");
                db.resolve(
                    &[Identifier::anonymous_id(format!("m-{next}"))],
                    Update::new().set("b", 2),
                )
                .expect("b");
                next
            },
            |n| {
                let out = db
                    .resolve(
                        &[
                            Identifier::device_id(format!("m-{n}")),
                            Identifier::anonymous_id(format!("m-{n}")),
                        ],
                        Update::new(),
                    )
                    .expect("merge");
                assert_eq!(out.merges.len(), 1);
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, identity);
criterion_main!(benches);
