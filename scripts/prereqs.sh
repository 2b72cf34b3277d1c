#!/bin/sh
# Installs what building lethedb needs beyond Rust itself, when missing:
# a C++ compiler for the bundled RocksDB, libclang for bindgen, and make for
# the bundled jemalloc (its configure script and Makefile).
set -eu

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: Rust is not installed; see https://rustup.rs" >&2
    exit 1
fi

need=""
if ! ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
    need="$need clang libclang-dev"
fi
command -v c++ >/dev/null 2>&1 || need="$need g++"
command -v make >/dev/null 2>&1 || need="$need make"

if [ -n "$need" ]; then
    echo "installing:$need" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
