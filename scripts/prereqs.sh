#!/bin/sh
# Installs what building lethedb needs beyond Rust itself, when missing:
# a C++ compiler for the bundled RocksDB, libclang for bindgen, and make for
# the bundled jemalloc (its configure script and Makefile). Then checks again
# and fails with a clear message if something is still missing.
#
# libclang detection follows what bindgen (through clang-sys) actually loads:
# a file named libclang.so, libclang.so.<V>, libclang-<N>.so or
# libclang-<N>.so.<V>, where <N> starts with a digit. libclang-cpp.so.<N>
# (the C++ interface library that Debian images often ship alone) is NOT it.
# Directories searched: $LIBCLANG_PATH, `llvm-config --libdir`, then the
# system library directories. LETHEDB_LIBCLANG_DIRS (space-separated)
# replaces the system directories, for tests.
#
#   scripts/prereqs.sh           check, install what is missing, check again
#   scripts/prereqs.sh --check   only report; exit 0 when libclang is found,
#                                1 when it would install (no root needed)
set -eu

mode="install"
case "${1:-}" in
    --check) mode="check" ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# Prints the first libclang bindgen would load, or nothing.
find_libclang() {
    dirs="${LIBCLANG_PATH:-}"
    if [ -z "${LETHEDB_LIBCLANG_DIRS:-}" ] && command -v llvm-config >/dev/null 2>&1; then
        dirs="$dirs $(llvm-config --libdir 2>/dev/null || true)"
    fi
    dirs="$dirs ${LETHEDB_LIBCLANG_DIRS:-/usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib64 /usr/lib /usr/local/lib /usr/local/lib64 /lib/*-linux-gnu}"
    for d in $dirs; do
        [ -d "$d" ] || continue
        for f in "$d"/libclang.so "$d"/libclang.so.* "$d"/libclang-[0-9]*.so "$d"/libclang-[0-9]*.so.*; do
            # An unmatched glob stays literal; a dangling symlink is not a library.
            if [ -e "$f" ]; then
                echo "$f"
                return 0
            fi
        done
    done
    return 0
}

libclang="$(find_libclang)"

if [ "$mode" = "check" ]; then
    if [ -n "$libclang" ]; then
        echo "libclang: found $libclang"
        exit 0
    fi
    echo "libclang: missing (would install clang libclang-dev)"
    exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: Rust is not installed; see https://rustup.rs" >&2
    exit 1
fi

need=""
[ -n "$libclang" ] || need="$need clang libclang-dev"
command -v c++ >/dev/null 2>&1 || need="$need g++"
command -v make >/dev/null 2>&1 || need="$need make"

if [ -n "$need" ]; then
    echo "installing:$need" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi

# Verify again: a package that installed but did not provide the library
# (another distribution's layout, a broken mirror) must stop here, not 3
# minutes into the build inside bindgen.
libclang="$(find_libclang)"
if [ -z "$libclang" ]; then
    echo "error: libclang.so not found after installing clang libclang-dev." >&2
    echo "       bindgen needs libclang.so or libclang-<N>.so (libclang-cpp is not it)." >&2
    echo "       Install it and/or set LIBCLANG_PATH to the directory holding it." >&2
    exit 1
fi
for tool in c++ make; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' still missing after installing; install it and retry" >&2
        exit 1
    fi
done
