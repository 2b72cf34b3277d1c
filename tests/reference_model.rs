//! The independent reference model of issue 17 (body in `tests/model/`,
//! shared with the fuzz target `model` and the corpus replay), run over
//! seeded random sequences.
//!
//! `cargo test --release --test reference_model` runs a fixed budget of
//! seeds; `LETHEDB_MODEL_SEEDS=N` runs N (from `LETHEDB_MODEL_FIRST`,
//! default 0); `LETHEDB_MODEL_SEED=S` replays one, and
//! `LETHEDB_MODEL_TRACE=1` prints its steps.

mod model;

const STEPS: u64 = 120;

#[test]
fn the_engine_answers_as_the_reference_model() {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    if let Some(seed) = var("LETHEDB_MODEL_SEED") {
        model::run_seed(seed, STEPS);
        return;
    }
    let first = var("LETHEDB_MODEL_FIRST").unwrap_or(0);
    let seeds = var("LETHEDB_MODEL_SEEDS").unwrap_or(12);
    for seed in first..first + seeds {
        model::run_seed(seed, STEPS);
    }
    println!("{seeds} seeds x {STEPS} steps: 0 failures");
}
