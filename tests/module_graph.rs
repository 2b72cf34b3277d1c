//! The module graph of the library, read from the source: which file uses
//! which through `crate::` and `super::` paths (test modules at the end of
//! a file excluded). Checks the layering rules of docs/design.md
//! ("Layers"): nothing below `db.rs` uses it, no two files import each
//! other through any chain, and no file is longer than 600 lines unless
//! its module documentation says why. Run with `--nocapture` to print the
//! graph's cycles; `print_edges` prints every edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file (not the binary's `cli/` and `main.rs`), by
/// module path.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src()).unwrap().to_string_lossy().to_string();
        // The binary, and test-only files (`#[cfg(test)] mod tests;`).
        if rel == "main.rs"
            || rel.starts_with("cli/")
            || rel.ends_with("/tests.rs")
            || rel.ends_with("_tests.rs")
        {
            continue;
        }
        let trimmed = rel.trim_end_matches(".rs");
        let module = match trimmed {
            "lib" => "crate".to_string(),
            t => {
                let t = t.strip_suffix("/mod").unwrap_or(t);
                format!("crate::{}", t.replace('/', "::"))
            }
        };
        out.insert(module, f);
    }
    out
}

/// The file's code without its trailing `#[cfg(test)] mod …` block and
/// without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    // An inline test module (`#[cfg(test)] mod name {`) ends the file's
    // code; a declaration of a test file (`mod tests;`) does not.
    let inline_test = text.match_indices("#[cfg(test)]\nmod ").find(|(i, m)| {
        let rest = &text[i + m.len()..];
        let end = rest.find(['{', ';', '\n']).unwrap_or(rest.len());
        rest[end..].starts_with('{')
    });
    let text = match inline_test {
        Some((i, _)) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands the use-tree at the start of `text` (`a::b`, `a::{b, c::{d}}`,
/// `a::*`) under `prefix` into full paths.
fn expand(prefix: &str, text: &str, out: &mut Vec<String>) {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let head = text[..end].trim_end_matches(':');
    let path = if head.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}::{head}")
    };
    let rest = &text[end..];
    let Some(group) = rest
        .strip_prefix('{')
        .filter(|_| end == 0 || text[..end].ends_with("::"))
    else {
        out.push(path);
        return;
    };
    // Top-level items of the group, each expanded in turn.
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                expand(&path, group[start..i].trim_start(), out);
                return;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&path, group[start..i].trim_start(), out);
                start = i + 1;
            }
            _ => {}
        }
    }
}

/// Paths a file names, written out in full: `crate::…`, `super::…` (any
/// number of them), `self::…`, and paths through the file's own child
/// modules (`mod x;` then `x::…`), brace groups expanded at any depth.
fn paths(module: &str, is_mod_file: bool, code: &str) -> Vec<String> {
    let parent = |m: &str| {
        m.rsplit_once("::")
            .map_or("crate".to_string(), |(p, _)| p.to_string())
    };
    // The module a `mod x;` here would declare children of: the file's own
    // module for lib.rs / mod.rs files and plain files alike (Rust 2018).
    let own = module.to_string();
    let _ = is_mod_file;
    let children: Vec<String> = code
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub(crate) mod ")
                .or_else(|| l.strip_prefix("pub mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_string)
        })
        .collect();
    let mut roots: Vec<(String, String)> = vec![
        ("crate::".into(), "crate".into()),
        ("self::".into(), own.clone()),
    ];
    for c in &children {
        roots.push((format!("{c}::"), format!("{own}::{c}")));
    }
    // Declaring a child module depends on it.
    let mut out: Vec<String> = children.iter().map(|c| format!("{own}::{c}")).collect();
    let bytes = code.as_bytes();
    let boundary = |at: usize| {
        at == 0
            || !(bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b':')
    };
    for (start, root) in &roots {
        let mut from = 0;
        while let Some(i) = code[from..].find(start.as_str()) {
            let at = from + i;
            from = at + start.len();
            if boundary(at) {
                expand(root, &code[from..], &mut out);
            }
        }
    }
    // `super::super::…`: each `super` one level up from this file's module.
    let mut from = 0;
    while let Some(i) = code[from..].find("super::") {
        let at = from + i;
        from = at + "super::".len();
        if !boundary(at) {
            continue;
        }
        let mut base = parent(module);
        let mut rest = &code[from..];
        while let Some(r) = rest.strip_prefix("super::") {
            base = parent(&base);
            rest = r;
        }
        from = code.len() - rest.len();
        expand(&base, rest, &mut out);
    }
    out
}

/// The crate root's re-exports: item name → the module it comes from.
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut from = 0;
    while let Some(i) = lib[from..].find("pub use ") {
        let at = from + i + "pub use ".len();
        let end = lib[at..].find(';').map_or(lib.len(), |e| at + e);
        let stmt: String = lib[at..end].split_whitespace().collect();
        from = end;
        let (base, items) = match stmt.split_once("::{") {
            Some((b, rest)) => (b.to_string(), rest.trim_end_matches('}').to_string()),
            None => match stmt.rsplit_once("::") {
                Some((b, item)) => (b.to_string(), item.to_string()),
                None => continue,
            },
        };
        for item in items.split(',').filter(|s| !s.is_empty()) {
            let name = item.rsplit("::").next().unwrap_or(item);
            let path = item
                .rsplit_once("::")
                .map_or(base.clone(), |(p, _)| format!("{base}::{p}"));
            out.insert(name.to_string(), format!("crate::{path}"));
        }
    }
    out
}

/// The module file a path lands in: its longest prefix that is a module,
/// following the crate root's re-exports.
fn target(
    path: &str,
    mods: &BTreeMap<String, PathBuf>,
    exports: &BTreeMap<String, String>,
) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    if parts.len() >= 2
        && parts[0] == "crate"
        && !mods.contains_key(&format!("crate::{}", parts[1]))
    {
        let m = exports.get(parts[1])?;
        return target(m, mods, exports);
    }
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|p| mods.contains_key(p) && p != "crate")
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let exports = root_exports(&std::fs::read_to_string(src().join("lib.rs")).unwrap());
    let mut g = BTreeMap::new();
    for (m, f) in &mods {
        if m == "crate" {
            continue;
        }
        let is_mod_file = f.ends_with("mod.rs") || f.ends_with("lib.rs");
        let deps: BTreeSet<String> = paths(m, is_mod_file, &code(f))
            .iter()
            .filter_map(|p| target(p, &mods, &exports))
            .filter(|t| t != m)
            .collect();
        g.insert(m.clone(), deps);
    }
    g
}

/// Strongly connected groups of more than one file (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !g.contains_key(w) {
                continue;
            }
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = BTreeSet::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                group.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                t.out.push(group);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn nothing_below_the_facade_uses_it() {
    let g = graph();
    let users: Vec<&String> = g
        .iter()
        .filter(|(m, deps)| {
            deps.contains("crate::db")
                && !matches!(
                    m.as_str(),
                    "crate::ingest"
                        | "crate::db_privacy"
                        | "crate::bench_support"
                        | "crate::fuzz_support::model"
                )
        })
        .map(|(m, _)| m)
        .collect();
    assert!(
        users.is_empty(),
        "modules below db.rs that use it: {users:?}"
    );
    // The check sees real edges (it would pass vacuously otherwise).
    assert!(
        g["crate::engine"].contains("crate::storage::columns"),
        "{:?}",
        g["crate::engine"]
    );
    assert!(
        g["crate::ingest"].contains("crate::db"),
        "{:?}",
        g["crate::ingest"]
    );
}

#[test]
fn no_import_cycles() {
    let g = graph();
    let found = cycles(&g);
    for c in &found {
        println!(
            "cycle: {}",
            c.iter().cloned().collect::<Vec<_>>().join(" <-> ")
        );
    }
    println!(
        "{} files, {} edges, {} cycle group(s)",
        g.len(),
        g.values().map(BTreeSet::len).sum::<usize>(),
        found.len()
    );
    assert!(found.is_empty(), "import cycles between files: {found:?}");
    // The check sees edges inside a folder and across layers (it would pass
    // vacuously otherwise), and finds a cycle when there is one.
    assert!(g["crate::keytree::rotation"].contains("crate::keytree::tree"));
    assert!(g["crate::domain::erasure::erase"].contains("crate::domain::erasure::purge"));
    let mut looped = g.clone();
    looped
        .get_mut("crate::keytree::tree")
        .unwrap()
        .insert("crate::keytree::rotation".to_string());
    assert_eq!(cycles(&looped).len(), 1);
}

/// The longest a source file may be without saying why in its module
/// documentation (a `//!` line containing "Longer than 600 lines").
const MAX_LINES: usize = 600;

#[test]
fn long_files_say_why() {
    let mut long = Vec::new();
    for f in modules().into_values().chain(
        std::fs::read_dir(src().join("cli"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    ) {
        let text = std::fs::read_to_string(&f).unwrap();
        let n = text.lines().count();
        let says_why = text
            .lines()
            .take_while(|l| l.starts_with("//!") || l.is_empty())
            .any(|l| l.contains("Longer than 600 lines"));
        println!("{n:5} {}", f.display());
        if n > MAX_LINES && !says_why {
            long.push((f, n));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines without a reason: {long:?}"
    );
}

/// `cargo test --release --test module_graph print_edges -- --ignored --nocapture`
/// prints every file's dependencies.
#[test]
#[ignore]
fn print_edges() {
    for (m, deps) in graph() {
        println!("{m} -> {}", deps.into_iter().collect::<Vec<_>>().join(", "));
    }
}

#[test]
fn the_parser_sees_every_kind_of_path() {
    let code = "mod child;\nuse super::super::db::Db;\nuse crate::{Error, types::Value};\nuse crate::domain::{consent, identity::{engine, ids}};\nuse self::child::X;\npub use child::Y;\nfn f() { crate::storage::Store::open(); }";
    let mut p = paths("crate::domain::profiles", false, code);
    p.sort();
    for want in [
        "crate::db::Db",
        "crate::domain::consent",
        "crate::domain::identity::engine",
        "crate::domain::identity::ids",
        "crate::domain::profiles::child::X",
        "crate::domain::profiles::child::Y",
        "crate::storage::Store::open",
        "crate::Error",
        "crate::types::Value",
        // The declaration itself.
        "crate::domain::profiles::child",
    ] {
        assert!(p.iter().any(|x| x == want), "{want} missing from {p:?}");
    }
}

/// A declared test file does not end a file's code (re-exports after it
/// still count); an inline test module does.
#[test]
fn only_inline_test_modules_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mod.rs");
    std::fs::write(
        &f,
        "mod a;\n#[cfg(test)]\nmod tests;\npub(crate) use a::*;\nfn x() {}\n#[cfg(test)]\nmod inline {\n    use crate::db::Db;\n}\n",
    )
    .unwrap();
    let c = code(&f);
    assert!(c.contains("pub(crate) use a::*;"), "{c}");
    assert!(!c.contains("crate::db::Db"), "{c}");
}
