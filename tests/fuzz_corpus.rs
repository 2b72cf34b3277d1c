//! Replays the checked-in fuzz corpus on stable, so every input that ever
//! found a bug keeps being tested by `cargo test`.

use std::path::Path;

#[test]
fn replay_decode_records_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_records");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        lethedb::fuzz_support::decode_records(&data);
        n += 1;
    }
    assert!(n >= 5, "corpus has {n} inputs");
}
