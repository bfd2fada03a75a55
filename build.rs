//! Records the git commit the binaries are built from, for `--version`.
//!
//! `MAGLEV_GIT_COMMIT` overrides it (package builds from a tarball have no
//! `.git`); without either, the commit is reported as `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MAGLEV_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
    let commit = std::env::var("MAGLEV_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MAGLEV_GIT_COMMIT={commit}");
}
