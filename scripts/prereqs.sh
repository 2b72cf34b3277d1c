#!/bin/sh
# Installs what building lethedb needs beyond Rust itself, when missing:
# a C++ compiler for the bundled RocksDB, libclang for bindgen, and make for
# the bundled jemalloc (its configure script and Makefile). Then checks again
# and fails with a clear message if something is still missing.
#
# libclang detection mirrors what bindgen loads through clang-sys 1.x
# (build/common.rs and build/dynamic.rs):
#   * file names libclang.so, libclang.so.*, libclang-*.so, libclang-*.so.*,
#     except names containing "-cpp." — libclang-cpp.so.<N>, the C++
#     interface library that Debian images often ship alone, is NOT it;
#   * only an ELF shared object of this machine's word size counts;
#   * when LIBCLANG_PATH is set, only it is searched (a directory, or the
#     library file itself);
#   * otherwise `llvm-config --prefix` (or $LLVM_CONFIG_PATH) /bin, /lib,
#     /lib64, then $LD_LIBRARY_PATH, $LIBRARY_PATH, then the system
#     directories /usr/local/llvm*/lib*, /usr/local/lib*[/*[/*]],
#     /usr/lib*[/*[/*]]. LETHEDB_LIBCLANG_DIRS (space-separated) replaces
#     all of these, for tests.
#
#   scripts/prereqs.sh           check, install what is missing, check again
#   scripts/prereqs.sh --softhsm the same, plus SoftHSM2 (softhsm2-util and
#                                libsofthsm2.so): the PKCS#11 token the tests
#                                keep key-tree roots in
#   scripts/prereqs.sh --check   report on libclang only (not c++ or make):
#                                exit 0 when found, 1 when it would install
#                                clang libclang-dev (no root needed)
set -eu

mode="install"
softhsm=""
case "${1:-}" in
    --check) mode="check" ;;
    --softhsm) softhsm="yes" ;;
    "") ;;
    *) echo "usage: $0 [--check | --softhsm]" >&2; exit 2 ;;
esac

# ELF magic, and class 1 (32-bit) or 2 (64-bit) matching this machine.
is_elf_for_this_machine() {
    want="02"
    [ "$(getconf LONG_BIT 2>/dev/null || echo 64)" = "32" ] && want="01"
    head=$(od -An -tx1 -N5 "$1" 2>/dev/null | tr -d ' \n')
    [ "$head" = "7f454c46$want" ]
}

# Prints the first loadable libclang in directory $1 (or nothing).
search_dir() {
    [ -d "$1" ] || return 0
    for f in "$1"/libclang.so "$1"/libclang.so.* "$1"/libclang-*.so "$1"/libclang-*.so.*; do
        case "${f##*/}" in *-cpp.*) continue ;; esac
        # An unmatched glob stays literal; -f follows symlinks, so a dangling
        # one is not a library either.
        if [ -f "$f" ] && is_elf_for_this_machine "$f"; then
            echo "$f"
            return 0
        fi
    done
}

# Prints the path of a libclang bindgen would load, or nothing.
find_libclang() {
    # Set, even to nothing, means "only there" to clang-sys.
    if [ -n "${LIBCLANG_PATH+set}" ]; then
        case "$(basename "$LIBCLANG_PATH")" in
            *-cpp.*) ;;
            libclang.so | libclang.so.* | libclang-*.so | libclang-*.so.*)
                if [ -f "$LIBCLANG_PATH" ] && is_elf_for_this_machine "$LIBCLANG_PATH"; then
                    echo "$LIBCLANG_PATH"
                    return 0
                fi ;;
        esac
        search_dir "$LIBCLANG_PATH"
        return 0
    fi
    if [ -n "${LETHEDB_LIBCLANG_DIRS:-}" ]; then
        dirs="$LETHEDB_LIBCLANG_DIRS"
    else
        dirs=""
        prefix=$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null | head -n 1 || true)
        [ -n "$prefix" ] && dirs="$prefix/bin $prefix/lib $prefix/lib64"
        dirs="$dirs $(echo "${LD_LIBRARY_PATH:-}" | tr ':' ' ') $(echo "${LIBRARY_PATH:-}" | tr ':' ' ')"
        dirs="$dirs /usr/local/llvm*/lib* /usr/local/lib*/*/* /usr/local/lib*/* /usr/local/lib* /usr/lib*/*/* /usr/lib*/* /usr/lib*"
    fi
    for d in $dirs; do
        found=$(search_dir "$d")
        if [ -n "$found" ]; then
            echo "$found"
            return 0
        fi
    done
}

# Prints the SoftHSM2 module's path, or nothing.
find_softhsm() {
    for f in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so \
             /usr/local/lib/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so; do
        if [ -f "$f" ]; then
            echo "$f"
            return 0
        fi
    done
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
if [ -n "$softhsm" ]; then
    if [ -z "$(find_softhsm)" ] || ! command -v softhsm2-util >/dev/null 2>&1; then
        need="$need softhsm2"
    fi
fi

if [ -n "$need" ]; then
    echo "installing:$need" >&2
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing:$need, and there is no apt-get to install it with." >&2
        echo "       Install the equivalents with your package manager (bindgen needs" >&2
        echo "       libclang.so; set LIBCLANG_PATH if it is in an unusual place)." >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: missing:$need; run as root or install sudo to install it" >&2
            exit 1
        fi
        SUDO="sudo"
    fi
    # `env` inside sudo: sudo's env_reset would drop a plain assignment.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        { echo "error: apt-get update failed; cannot install:$need" >&2; exit 1; }
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null ||
        { echo "error: apt-get install$need failed" >&2; exit 1; }
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
if [ -n "$softhsm" ]; then
    if [ -z "$(find_softhsm)" ] || ! command -v softhsm2-util >/dev/null 2>&1; then
        echo "error: SoftHSM2 still missing after installing softhsm2 (need softhsm2-util" >&2
        echo "       and libsofthsm2.so; set LETHEDB_SOFTHSM_MODULE if it is elsewhere)" >&2
        exit 1
    fi
fi
