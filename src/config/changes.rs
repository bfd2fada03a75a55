//! What a reload changes, in words for the log.

use std::collections::BTreeMap;

use super::Config;

fn section<V: PartialEq>(
    out: &mut Vec<String>,
    what: &str,
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
) {
    for (name, v) in new {
        match old.get(name) {
            None => out.push(format!("+{what}:{name}")),
            Some(o) if o != v => out.push(format!("~{what}:{name}")),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        out.push(format!("-{what}:{name}"));
    }
}

/// Added (`+`), changed (`~`) and removed (`-`) objects, e.g.
/// `+backend:web3 ~frontend:web -healthcheck:old`; empty when identical.
pub fn describe(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.healthchecker != new.healthchecker {
        out.push("~healthchecker".into());
    }
    if old.vpp != new.vpp {
        out.push("~vpp".into());
    }
    section(
        &mut out,
        "healthcheck",
        &old.healthchecks,
        &new.healthchecks,
    );
    section(&mut out, "backend", &old.backends, &new.backends);
    section(&mut out, "frontend", &old.frontends, &new.frontends);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const A: &str = "maglev:\n  vpp: { api-socket: \"\" }\n  healthchecks:\n    p: { type: icmp }\n  backends:\n    a: { address: 192.0.2.1, healthcheck: p }\n    b: { address: 192.0.2.2, healthcheck: p }\n";

    #[test]
    fn lists_changes() {
        let old = super::super::parse(A, Path::new("a")).unwrap();
        assert!(describe(&old, &old).is_empty());
        let text = A.replace("192.0.2.2", "192.0.2.3").replace(
            "    a: { address: 192.0.2.1, healthcheck: p }\n",
            "    c: { address: 192.0.2.1, healthcheck: p }\n",
        );
        let new = super::super::parse(&text, Path::new("b")).unwrap();
        assert_eq!(
            describe(&old, &new),
            vec!["~backend:b", "+backend:c", "-backend:a"]
        );
    }
}
