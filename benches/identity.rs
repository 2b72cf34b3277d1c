//! Identity benchmarks: lookup and resolve (attach-only, create, merge)
//! against the foundation's one-field upsert, and lookup and resolve of the
//! plaintext baseline (`bench_support::PlainStore`, same RocksDB options,
//! same people), in the same run.
//!
//! Run: `cargo bench --bench identity`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lethedb::bench_support::PlainStore;
use lethedb::{Db, Identifier, MemoryKeyProvider, Options, ProfileId, Update, Value};
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
                &ids_of(i),
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

fn ids_of(i: u64) -> Vec<Identifier> {
    vec![
        email(i),
        Identifier::phone(format!("+1415{:07}", 2_000_000 + i % 8_000_000)),
        Identifier::user_id(format!("user-{i}")),
    ]
}

fn baseline() -> (tempfile::TempDir, PlainStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = PlainStore::open(dir.path(), 64 << 20, 32 << 20, true).expect("open");
    for i in 0..PEOPLE {
        plain
            .resolve(
                &ids_of(i),
                &[
                    ("name".to_string(), Value::from(format!("Person {i}"))),
                    ("city".to_string(), Value::from("Lisbon")),
                ],
            )
            .expect("resolve");
    }
    plain.compact().expect("compact");
    (dir, plain)
}

fn identity(c: &mut Criterion) {
    let (_dir, db, ids) = setup();
    let (_pdir, plain) = baseline();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    c.bench_function("identity/lookup_email", |b| {
        b.iter(|| black_box(db.lookup(&email(rng.gen_range(0..PEOPLE))).expect("lookup")))
    });
    c.bench_function("identity/lookup_email_baseline", |b| {
        b.iter(|| {
            black_box(
                plain
                    .lookup(&email(rng.gen_range(0..PEOPLE)))
                    .expect("lookup"),
            )
        })
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
    c.bench_function("identity/resolve_known_one_field_baseline", |b| {
        b.iter(|| {
            plain
                .resolve(
                    &[email(rng.gen_range(0..PEOPLE))],
                    &[("city".to_string(), Value::from("Porto"))],
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
    let mut next_plain = PEOPLE;
    c.bench_function("identity/resolve_new_profile_baseline", |b| {
        b.iter(|| {
            next_plain += 1;
            plain
                .resolve(
                    &[
                        email(next_plain),
                        Identifier::device_id(format!("d-{next_plain}")),
                    ],
                    &[("city".to_string(), Value::from("Faro"))],
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
