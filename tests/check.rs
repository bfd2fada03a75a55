//! `maglevd --check`: exit status and messages an operator or script relies on.

mod common;

use std::process::Command;

use common::{TempDir, maglevd_bin, repo_path};

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(maglevd_bin())
        .arg("--check")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_config_is_valid() {
    let (code, out, _) = check(&repo_path("examples/maglev.yaml"));
    assert_eq!(code, 0);
    assert!(out.contains("configuration OK"), "{out}");
}

#[test]
fn parse_error_exits_1_with_line_and_path() {
    let dir = TempDir::new("check");
    let f = dir.write(
        "bad.yaml",
        "maglev:\n  backends:\n    a: { address: 192.0.2.1, healthcheck: x, weight: 5 }\n",
    );
    let (code, _, err) = check(&f);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{}:3:", f.display())) && err.contains("maglev.backends.a.weight"),
        "{err}"
    );
}

#[test]
fn semantic_errors_exit_2_listing_all() {
    let dir = TempDir::new("check");
    let f = dir.write(
        "bad.yaml",
        "maglev:\n  vpp: { api-socket: \"\" }\n  healthchecks:\n    p: { type: icmp, rise: 0 }\n  backends:\n    a: { address: 192.0.2.1, healthcheck: q }\n",
    );
    let (code, _, err) = check(&f);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(":4: maglev.healthchecks.p.rise:"), "{err}");
    assert!(err.contains(":6: maglev.backends.a.healthcheck:"), "{err}");
    assert!(err.contains("2 semantic error(s)"), "{err}");
}

#[test]
fn missing_file_exits_1() {
    let (code, _, err) = check(std::path::Path::new("/nonexistent/maglev.yaml"));
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn usage_errors_exit_2_as_the_originals() {
    let out = Command::new(maglevd_bin())
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option `--no-such-flag`"));
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(maglevd_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("maglevd ") && text.contains("commit "),
        "{text}"
    );
}

#[test]
fn configs_in_the_originals_style_load_with_the_expected_warnings() {
    let dir = repo_path("tests/data/original");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let (code, out, err) = check(&path);
        assert_eq!(code, 0, "{}: {out}{err}", path.display());
        let want = std::fs::read_to_string(path.with_extension("warnings")).unwrap();
        let got: Vec<&str> = err.lines().filter(|l| l.contains(": warning: ")).collect();
        let want: Vec<&str> = want.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(got.len(), want.len(), "{}: {err}", path.display());
        for (g, w) in got.iter().zip(&want) {
            assert!(g.contains(w), "{}: {g:?} lacks {w:?}", path.display());
        }
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn a_netns_the_process_cannot_enter_fails_the_check_loudly() {
    let dir = TempDir::new("netns-cap");
    let cfg = dir.write(
        "m.yaml",
        "maglev:
  healthchecker: { netns: dataplane }
  vpp: { api-socket: \"\" }
  healthchecks:
    t: { type: tcp, port: 80 }
  backends:
    web0: { address: 192.0.2.10, healthcheck: t }
",
    );
    // As the packaged unit runs it: without CAP_SYS_ADMIN (root drops it;
    // an ordinary user has none to drop).
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--inh-caps=-sys_admin",
            "--bounding-set=-sys_admin",
            maglevd_bin(),
        ]);
        c
    } else {
        Command::new(maglevd_bin())
    };
    let out = cmd
        .arg("--check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("backend web0 uses netns dataplane but the process lacks CAP_SYS_ADMIN"),
        "{err}"
    );
    assert!(err.contains("maglevd(8)"), "{err}");
}

#[test]
fn a_table_too_small_for_the_weights_is_a_warning_naming_the_size_that_fits() {
    let dir = TempDir::new("table-fit");
    // Eleven backends, six at weight 100 and five at 50 (850 replicas),
    // in a 512-bucket table: the shares flatten towards 1:1.
    let mut y = String::from(
        "maglev:\n  vpp:\n    lb: { ipv4-src-address: 192.0.2.254 }\n  healthchecks:\n    t: { type: tcp, port: 80 }\n  backends:\n",
    );
    let mut pool = String::new();
    for i in 1..=11 {
        y.push_str(&format!(
            "    b{i}: {{ address: 10.0.0.{i}, healthcheck: t }}\n"
        ));
        pool.push_str(&format!(
            "b{i}: {{ weight: {} }}, ",
            if i <= 6 { 100 } else { 50 }
        ));
    }
    let fe = |extra: &str| {
        format!(
            "  frontends:\n    web:\n      address: 192.0.2.1\n      protocol: tcp\n      port: 80\n{extra}      pools:\n        - name: main\n          backends: {{ {pool} }}\n"
        )
    };
    let small = dir.write(
        "small.yaml",
        &format!("{y}{}", fe("      new-flows-table-length: 512\n")),
    );
    let (code, out, err) = check(&small);
    assert_eq!(code, 0, "a warning, not an error: {err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(
        err.contains("maglev.frontends.web.new-flows-table-length")
            && err.contains("pool main: with 512 buckets")
            && err.contains("percentage points off its weight share")
            && err.contains("new-flows-table-length: "),
        "{err}"
    );
    let fits: u32 = err
        .rsplit("new-flows-table-length: ")
        .next()
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(fits > 512 && fits.is_power_of_two(), "{fits}");
    // With the table it names, no warning.
    let big = dir.write(
        "big.yaml",
        &format!(
            "{y}{}",
            fe(&format!("      new-flows-table-length: {fits}\n"))
        ),
    );
    let (code, _, err) = check(&big);
    assert_eq!(code, 0);
    assert!(!err.contains("new-flows-table-length"), "{err}");
    // Not a power of two: an error naming the key.
    let bad = dir.write(
        "bad.yaml",
        &format!("{y}{}", fe("      new-flows-table-length: 1000\n")),
    );
    let (code, _, err) = check(&bad);
    assert_eq!(code, 2);
    assert!(
        err.contains("new-flows-table-length") && err.contains("power of two"),
        "{err}"
    );
}
