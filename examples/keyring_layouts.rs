//! Measures on-disk bytes per profile of the two keyring layouts considered
//! for per-field keys (see docs/design.md, "Field keys: derived, not stored"):
//!
//! * stored: one wrapped record holding a random 32-byte key per sealed field;
//! * derived: one wrapped 32-byte seed; field keys are HKDF outputs.
//!
//! Both are written as random bytes of the exact encoded size (wrapped keys
//! are ciphertext, so incompressible) into RocksDB with lethedb's options,
//! then compacted. Run: `cargo run --release --example keyring_layouts [N] [FIELDS]`

use rand::RngCore;

fn measure(n: u64, value_len: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = rocksdb::Options::default();
    o.create_if_missing(true);
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_bottommost_compression_type(rocksdb::DBCompressionType::Zstd);
    let mut t = rocksdb::BlockBasedOptions::default();
    t.set_bloom_filter(10.0, false);
    o.set_block_based_table_factory(&t);
    let db = rocksdb::DB::open(&o, dir.path()).expect("open");
    let mut rng = rand::thread_rng();
    let mut batch = rocksdb::WriteBatch::default();
    for _ in 0..n {
        let mut key = [0u8; 17];
        key[0] = b'k';
        rng.fill_bytes(&mut key[1..]);
        let mut value = vec![0u8; value_len];
        rng.fill_bytes(&mut value);
        batch.put(key, value);
        if batch.len() >= 1000 {
            db.write(std::mem::take(&mut batch)).expect("write");
        }
    }
    db.write(batch).expect("write");
    db.compact_range(None::<&[u8]>, None::<&[u8]>);
    let sst = db
        .property_int_value("rocksdb.live-sst-files-size")
        .expect("property")
        .unwrap_or(0);
    sst as f64 / n as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let fields: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(14);
    // WrappedKey v1: version 1 + parent version 4 + version 4 + nonce 12 + 32 + tag 16.
    let derived = 1 + 4 + 4 + 12 + 32 + 16;
    // Stored keys: same header, AEAD over fields x (field id 4 + key 32).
    let stored = 1 + 4 + 4 + 12 + fields * 36 + 16;
    let d = measure(n, derived);
    let s = measure(n, stored);
    println!("keyring layouts, {n} profiles, {fields} sealed fields each");
    println!("  derived (seed):      value {derived:>4} B  -> {d:.1} B/profile on disk");
    println!("  stored (field keys): value {stored:>4} B  -> {s:.1} B/profile on disk");
    println!("  stored / derived = {:.2}x", s / d);
}
