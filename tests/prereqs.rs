//! `scripts/prereqs.sh`: libclang detection decides exactly as bindgen
//! loads (libclang.so / libclang-<N>.so, never libclang-cpp), and a failed
//! install stops with a clear message. Runs without root: the search
//! directories are fakes, and so is `apt-get`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/prereqs.sh")
}

fn run(args: &[&str], lib_dirs: &str, libclang_path: Option<&Path>, path: Option<&str>) -> Output {
    let mut c = Command::new("sh");
    c.arg(script())
        .args(args)
        .env("LETHEDB_LIBCLANG_DIRS", lib_dirs)
        .env_remove("LIBCLANG_PATH");
    if let Some(p) = libclang_path {
        c.env("LIBCLANG_PATH", p);
    }
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().expect("run sh")
}

fn check(dir: &Path) -> (bool, String) {
    let o = run(&["--check"], dir.to_str().unwrap(), None, None);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    match o.status.code() {
        Some(0) => (true, text),
        Some(1) => (false, text),
        other => panic!("unexpected exit {other:?}: {text}"),
    }
}

/// The start of a 64-bit little-endian ELF file: what clang-sys checks
/// before it will load a library (magic and class).
const ELF64: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00";
const ELF32: &[u8] = b"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00";

fn dir_with(files: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::write(d.path().join(f), ELF64).unwrap();
    }
    d
}

#[test]
fn libclang_cpp_alone_means_install() {
    for files in [
        &["libclang-cpp.so.14"][..],
        &["libclang-cpp.so.14", "libclang-cpp.so"],
        &["libclangBasic.a", "libclangAST.a", "libclang-cpp.so.14"],
        &[],
    ] {
        let d = dir_with(files);
        let (found, text) = check(d.path());
        assert!(!found, "{files:?} must not count as libclang: {text}");
        assert!(text.contains("would install clang libclang-dev"), "{text}");
    }
}

#[test]
fn the_libraries_bindgen_loads_are_found() {
    for name in [
        "libclang-14.so.1",
        "libclang-14.so",
        "libclang.so",
        "libclang.so.1",
        "libclang-14.0.6.so",
    ] {
        let d = dir_with(&["libclang-cpp.so.14", name]);
        let (found, text) = check(d.path());
        assert!(found, "{name} must count as libclang: {text}");
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn only_elf_libraries_of_this_word_size_count() {
    let d = dir_with(&["libclang-cpp.so.14"]);
    std::os::unix::fs::symlink(d.path().join("gone.so.1"), d.path().join("libclang.so")).unwrap();
    assert!(!check(d.path()).0, "dangling symlink");
    std::fs::write(d.path().join("libclang.so.1"), b"not really a library").unwrap();
    assert!(!check(d.path()).0, "not an ELF file");
    std::fs::write(d.path().join("libclang-14.so.1"), ELF32).unwrap();
    assert!(!check(d.path()).0, "32-bit ELF");
    std::fs::write(d.path().join("libclang-15.so.1"), ELF64).unwrap();
    assert!(check(d.path()).0, "64-bit ELF");
    // A symlink to a real library counts (Debian's libclang.so is one).
    let e = dir_with(&[]);
    std::os::unix::fs::symlink(
        d.path().join("libclang-15.so.1"),
        e.path().join("libclang.so"),
    )
    .unwrap();
    assert!(check(e.path()).0);
}

#[test]
fn libclang_path_is_the_only_place_searched_when_set() {
    let system = dir_with(&["libclang-14.so.1"]);
    let system = system.path().to_str().unwrap();
    let empty = dir_with(&[]);
    let custom = dir_with(&["libclang-17.so"]);
    // Set to a directory with the library: found.
    let o = run(&["--check"], system, Some(custom.path()), None);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // Set to an empty directory: missing, although the system has one
    // (clang-sys would not look there either).
    let o = run(&["--check"], system, Some(empty.path()), None);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    // Set to the library file itself: found; to libclang-cpp: missing.
    let o = run(
        &["--check"],
        "",
        Some(&custom.path().join("libclang-17.so")),
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let cpp = dir_with(&["libclang-cpp.so.17"]);
    let o = run(
        &["--check"],
        system,
        Some(&cpp.path().join("libclang-cpp.so.17")),
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

#[test]
fn several_directories_are_searched_in_order() {
    let a = dir_with(&["libclang-cpp.so.14"]);
    let b = dir_with(&["libclang-16.so.16"]);
    let dirs = format!(
        "{} {}/nonexistent {}",
        a.path().display(),
        b.path().display(),
        b.path().display()
    );
    let o = run(&["--check"], &dirs, None, None);
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
}

#[test]
fn an_install_that_does_not_provide_libclang_fails_clearly() {
    // Fake apt-get and sudo that install nothing: the script must verify
    // again and stop with a message, not leave the failure to bindgen.
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("apt.log");
    for name in ["apt-get", "sudo"] {
        let p = bin.path().join(name);
        let body = if name == "sudo" {
            "#!/bin/sh\nexec \"$@\"\n".to_string()
        } else {
            format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display())
        };
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let libs = dir_with(&["libclang-cpp.so.14"]);
    let o = run(&[], libs.path().to_str().unwrap(), None, Some(&path));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("installing: clang libclang-dev"), "{err}");
    assert!(
        err.contains("libclang.so not found after installing"),
        "{err}"
    );
    let apt = std::fs::read_to_string(&log).unwrap();
    assert!(
        apt.contains("install") && apt.contains("libclang-dev"),
        "{apt}"
    );

    // With the library present nothing is installed and it succeeds.
    std::fs::remove_file(&log).unwrap();
    let libs = dir_with(&["libclang-14.so.1"]);
    let o = run(&[], libs.path().to_str().unwrap(), None, Some(&path));
    assert_eq!(o.status.code(), Some(0), "{:?}", o);
    assert!(!log.exists(), "apt-get ran although libclang was there");
}

#[test]
fn only_file_names_are_checked_for_cpp() {
    // A directory whose name contains "-cpp." does not hide a libclang in it.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("llvm-cpp.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("libclang.so.1"), ELF64).unwrap();
    assert!(check(&dir).0);
    // Set but empty LIBCLANG_PATH means "only there" to clang-sys: nothing.
    let libs = dir_with(&["libclang-14.so.1"]);
    let o = run(
        &["--check"],
        libs.path().to_str().unwrap(),
        Some(Path::new("")),
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}
