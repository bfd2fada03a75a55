//! Dependencies point down: every `crate::` path in a module names a module
//! of its own layer or a lower one. The layers, lowest first, are the
//! architecture's: base utilities → config → probe → health → checker →
//! vpp → announce → control/metrics → daemon. Test code (`#[cfg(test)]` modules) is
//! held to the same rule.

use std::path::Path;

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
        "daemon" => 8,
        // The crate root's constants (VERSION, GIT_COMMIT).
        "VERSION" | "GIT_COMMIT" => 0,
        _ => return None,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_dependency_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
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
        let Some(own) = layer(&top) else {
            continue; // lib.rs, bin/
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + 7..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                checked += 1;
                match layer(&name) {
                    Some(l) if l <= own => {}
                    Some(l) if name != top => violations.push(format!(
                        "{}:{}: {top} (layer {own}) uses {name} (layer {l})",
                        rel.display(),
                        n + 1
                    )),
                    Some(_) => {}
                    None => violations.push(format!(
                        "{}:{}: {top} uses {name}, which has no layer here",
                        rel.display(),
                        n + 1
                    )),
                }
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
