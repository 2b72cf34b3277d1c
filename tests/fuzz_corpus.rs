//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the
//! shared target bodies on stable, so every input that ever found a bug, and
//! every seed, keeps being tested by `cargo test`.

use std::path::Path;

mod model;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        body(&data);
        n += 1;
    }
    assert!(n >= 3, "{target}: corpus has {n} inputs");
}

#[test]
fn replay_decode_records_corpus() {
    replay("decode_records", lethedb::fuzz_support::decode_records);
}

#[test]
fn replay_ingest_line_corpus() {
    replay("ingest_line", lethedb::fuzz_support::ingest_line);
}

#[test]
fn replay_tc_string_corpus() {
    replay("tc_string", lethedb::fuzz_support::tc_string);
}

#[test]
fn replay_gpp_string_corpus() {
    replay("gpp_string", lethedb::fuzz_support::gpp_string);
}

#[test]
fn replay_normalize_identifier_corpus() {
    replay(
        "normalize_identifier",
        lethedb::fuzz_support::normalize_identifier,
    );
}

#[test]
fn replay_model_corpus() {
    replay("model", lethedb::fuzz_support::model);
}

#[test]
fn replay_reference_model_corpus() {
    replay("reference_model", model::run_bytes);
}

#[test]
fn replay_verify_certificate_corpus() {
    replay(
        "verify_certificate",
        lethedb::fuzz_support::verify_certificate,
    );
}
