#!/bin/sh
# Quickstart 2: run the whole test suite (unit, integration, CLI, doc tests,
# fuzz-corpus replay, and the benches and examples in test mode).
# One build profile (release) for everything, so RocksDB compiles once.
set -eu
cd "$(dirname "$0")/.."
# --softhsm: the tests keep key-tree roots in a SoftHSM2 token (each test
# process makes its own configuration and token directory).
t0=$(date +%s)
./scripts/prereqs.sh --softhsm
echo "prerequisites (with SoftHSM2) ready in $(( $(date +%s) - t0 )) s"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lethedb-target}"
cargo test --release --all-targets
cargo test --release --doc
