#!/bin/sh
# Quickstart 1: build lethedb and run its demo. Extra arguments go to
# `lethedb demo` (for example --profiles 1000000).
set -eu
cd "$(dirname "$0")/.."
./scripts/prereqs.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lethedb-target}"
cargo run --release --bin lethedb -- demo "$@"
