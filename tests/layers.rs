//! Dependencies point down: every `crate::` path in a module names a module
//! of its own layer or a lower one. The layers, lowest first, are the
//! architecture's: base utilities → config → probe → health → checker →
//! vpp → announce → control/metrics → daemon and dashboard. Test code
//! (`#[cfg(test)]` modules) is held to the same rule. Every module of the
//! library has a layer (a new one fails here until it is given one), and
//! inside a module its files use each other without circles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module of the library.
fn layer(module: &str) -> Option<u32> {
    Some(match module {
        "wake" | "heartbeat" | "snapshot" | "limits" | "logging" | "httpd" | "cli" => 0,
        "config" => 1,
        "probe" => 2,
        "health" => 3,
        "checker" => 4,
        "vpp" => 5,
        "announce" => 6,
        "control" | "metrics" | "tester" => 7,
        // The dashboard is a client of control's protocol, as maglevc is.
        "daemon" | "dashboard" => 8,
        // The crate root's constants (VERSION, GIT_COMMIT).
        "VERSION" | "GIT_COMMIT" => 0,
        _ => return None,
    })
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a line (comments cut).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// The identifiers after each `prefix` in `text`'s code.
fn names_after(text: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = code(line);
        while let Some(i) = rest.find(prefix) {
            // Not the tail of a longer path (`foo_crate::`).
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((n + 1, name));
        }
    }
    out
}

#[test]
fn every_module_has_a_layer() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: Vec<String> = lib
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or(l.trim().strip_prefix("mod "))
        })
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    assert!(declared.len() > 10, "{declared:?}");
    let on_disk: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lib.rs" && n != "bin")
        .map(|n| n.trim_end_matches(".rs").to_string())
        .collect();
    for m in declared.iter().chain(&on_disk) {
        assert!(
            layer(m).is_some(),
            "module `{m}` has no layer: give it one in tests/layers.rs"
        );
    }
}

#[test]
fn every_dependency_points_down() {
    let src = src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "bin" {
            continue;
        }
        let own = layer(&top).unwrap_or_else(|| panic!("{top} has no layer"));
        let text = std::fs::read_to_string(f).unwrap();
        for (n, name) in names_after(&text, "crate::") {
            checked += 1;
            match layer(&name) {
                Some(l) if l <= own => {}
                Some(l) if name != top => violations.push(format!(
                    "{}:{n}: {top} (layer {own}) uses {name} (layer {l})",
                    rel.display(),
                )),
                Some(_) => {}
                None => violations.push(format!(
                    "{}:{n}: {top} uses {name}, which has no layer here",
                    rel.display(),
                )),
            }
        }
    }
    assert!(checked > 100, "only {checked} paths seen");
    assert!(
        violations.is_empty(),
        "dependencies pointing up:\n{}",
        violations.join("\n")
    );
}

/// Inside each module directory, the files (`mod.rs`, the module's face,
/// aside) use each other without a circle: each can be read, changed and
/// tested with only what is below it.
#[test]
fn no_circles_between_the_files_of_a_module() {
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(src()).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && p.file_name().unwrap() != "bin" {
            dirs.push(p);
        }
    }
    let mut circles = Vec::new();
    for dir in dirs {
        let top = dir.file_name().unwrap().to_string_lossy().into_owned();
        let files: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|n| n != "mod")
            .collect();
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let text = std::fs::read_to_string(dir.join(format!("{f}.rs"))).unwrap();
            let mut to: BTreeSet<String> = BTreeSet::new();
            for prefix in ["super::".to_string(), format!("crate::{top}::")] {
                for (_, name) in names_after(&text, &prefix) {
                    if files.contains(&name) && &name != f {
                        to.insert(name);
                    }
                }
            }
            uses.insert(f.clone(), to);
        }
        // Depth-first search for a back edge.
        fn visit(
            n: &str,
            uses: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
            out: &mut Vec<String>,
        ) {
            if let Some(i) = path.iter().position(|p| p == n) {
                out.push(format!("{} -> {n}", path[i..].join(" -> ")));
                return;
            }
            if !done.insert(n.to_string()) {
                return;
            }
            path.push(n.to_string());
            for m in &uses[n] {
                visit(m, uses, path, done, out);
            }
            path.pop();
        }
        let mut done = BTreeSet::new();
        for f in &files {
            let mut found = Vec::new();
            visit(f, &uses, &mut Vec::new(), &mut done, &mut found);
            circles.extend(found.into_iter().map(|c| format!("{top}: {c}")));
        }
    }
    assert!(circles.is_empty(), "circles:\n{}", circles.join("\n"));
}
