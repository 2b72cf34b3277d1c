//! Operation benchmarks: field sealing, upsert, get, and a plaintext RocksDB
//! baseline doing the same job in the same run (report ratios, not timings).
//!
//! Run: `cargo bench --bench ops`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lethedb::{
    bench_support, synth, Db, MemoryKeyProvider, Options, ProfileBatch, ProfileId, Update,
};
use rand::{Rng, SeedableRng};

const PROFILES: u64 = 20_000;
const SEED: u64 = 42;

fn crypto(c: &mut Criterion) {
    let key = [7u8; 32];
    let plain = b"ada.lovelace1815@example.com";
    let sealed = bench_support::seal(&key, b"ad", plain);
    c.bench_function("field/seal_32B", |b| {
        b.iter(|| black_box(bench_support::seal(&key, b"ad", plain)))
    });
    c.bench_function("field/open_32B", |b| {
        b.iter(|| black_box(bench_support::open(&key, b"ad", &sealed)))
    });
    c.bench_function("field/derive_key", |b| {
        b.iter(|| black_box(bench_support::derive_field_key([1; 32], 3)))
    });
}

fn populated() -> (tempfile::TempDir, Db, Vec<ProfileId>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(
        dir.path(),
        &MemoryKeyProvider::from_bytes([1; 32]),
        Options::new()
            .create_if_missing(true)
            .schema(synth::schema()),
    )
    .expect("open");
    let mut ids = Vec::new();
    for chunk in 0..PROFILES / 500 {
        let mut batch = ProfileBatch::new();
        for i in chunk * 500..(chunk + 1) * 500 {
            ids.push(
                batch
                    .create(
                        synth::profile(SEED, i)
                            .fields
                            .into_iter()
                            .collect::<Update>(),
                    )
                    .expect("id"),
            );
        }
        db.apply(batch).expect("apply");
    }
    db.compact().expect("compact");
    (dir, db, ids)
}

fn baseline() -> (tempfile::TempDir, rocksdb::DB) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = rocksdb::Options::default();
    o.create_if_missing(true);
    let db = rocksdb::DB::open(&o, dir.path()).expect("open");
    for i in 0..PROFILES {
        db.put(i.to_be_bytes(), profile_json(i)).expect("put");
    }
    db.compact_range(None::<&[u8]>, None::<&[u8]>);
    (dir, db)
}

fn profile_json(i: u64) -> Vec<u8> {
    let p = synth::profile(SEED, i);
    let m: serde_json::Map<String, serde_json::Value> = p
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    serde_json::to_vec(&m).expect("json")
}

fn profiles(c: &mut Criterion) {
    let (_d1, db, ids) = populated();
    let (_d2, base) = baseline();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);

    c.bench_function("get/lethedb", |b| {
        b.iter(|| black_box(db.get(&ids[rng.gen_range(0..ids.len())]).expect("get")))
    });
    c.bench_function("get/baseline_rocksdb_json", |b| {
        b.iter(|| {
            let i: u64 = rng.gen_range(0..PROFILES);
            let v = base.get(i.to_be_bytes()).expect("get").expect("present");
            black_box(serde_json::from_slice::<serde_json::Value>(&v).expect("json"))
        })
    });
    c.bench_function("upsert_one_field/lethedb", |b| {
        b.iter(|| {
            let id = ids[rng.gen_range(0..ids.len())];
            db.upsert(&id, Update::new().set("city", "Lisbon"))
                .expect("upsert")
        })
    });
    c.bench_function("upsert_one_field/baseline_rocksdb_json", |b| {
        b.iter(|| {
            // Same job: read-modify-write of the serialised profile.
            let i: u64 = rng.gen_range(0..PROFILES);
            let v = base.get(i.to_be_bytes()).expect("get").expect("present");
            let mut m: serde_json::Value = serde_json::from_slice(&v).expect("json");
            m["city"] = "Lisbon".into();
            base.put(i.to_be_bytes(), serde_json::to_vec(&m).expect("json"))
                .expect("put")
        })
    });
    let mut n = PROFILES;
    c.bench_function("create/lethedb", |b| {
        b.iter_batched(
            || {
                n += 1;
                synth::profile(SEED, n)
                    .fields
                    .into_iter()
                    .collect::<Update>()
            },
            |u| db.create(u).expect("create"),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("create/baseline_rocksdb_json", |b| {
        b.iter_batched(
            || {
                n += 1;
                (n, profile_json(n))
            },
            |(i, v)| base.put(i.to_be_bytes(), v).expect("put"),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, crypto, profiles);
criterion_main!(benches);
