//! Stage 2: raw YAML types → [`Config`], checking every cross-field rule.
//!
//! Validation never stops at the first problem: an operator fixing a file
//! wants the whole list at once. Each problem carries its key path; the line
//! comes from the [`LineIndex`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::duration::{ConfDuration, format_duration};
use super::error::Problem;
use super::lines::LineIndex;
use super::model::*;
use super::raw::*;

/// Defaults, in one place so `maglev.yaml(5)` and the code cannot disagree.
pub mod defaults {
    use std::time::Duration;

    /// `healthchecker.transition-history`.
    pub const TRANSITION_HISTORY: u64 = 5;
    /// `healthchecker.threads`.
    pub const THREADS: u64 = 1;
    /// `vpp.api-socket`.
    pub const API_SOCKET: &str = "/run/vpp/api.sock";
    /// `vpp.stats-socket`.
    pub const STATS_SOCKET: &str = "/run/vpp/stats.sock";
    /// `vpp.stats-interval`.
    pub const STATS_INTERVAL: Duration = Duration::from_secs(5);
    /// `vpp.lb.sticky-buckets-per-core`.
    pub const STICKY_BUCKETS_PER_CORE: u64 = 65536;
    /// `vpp.lb.flow-timeout`.
    pub const FLOW_TIMEOUT: Duration = Duration::from_secs(40);
    /// `vpp.lb.sync-interval`.
    pub const SYNC_INTERVAL: Duration = Duration::from_secs(30);
    /// `vpp.lb.startup-min-delay`.
    pub const STARTUP_MIN_DELAY: Duration = Duration::from_secs(5);
    /// `vpp.lb.startup-max-delay`.
    pub const STARTUP_MAX_DELAY: Duration = Duration::from_secs(30);
    /// `healthchecks.*.interval`.
    pub const INTERVAL: Duration = Duration::from_secs(2);
    /// `healthchecks.*.timeout`.
    pub const TIMEOUT: Duration = Duration::from_secs(1);
    /// `healthchecks.*.rise`.
    pub const RISE: u64 = 2;
    /// `healthchecks.*.fall`.
    pub const FALL: u64 = 3;
    /// `healthchecks.*.params.expect-status`.
    pub const EXPECT_STATUS: (u16, u16) = (200, 399);
    /// `healthchecks.*.params.reuse-lifetime`.
    pub const REUSE_LIFETIME: Duration = Duration::from_secs(30);
    /// `frontends.*.pools[].backends.*.weight`.
    pub const WEIGHT: u64 = 100;
    /// Shortest interval or timeout accepted: faster probing is a storm.
    pub const MIN_PERIOD: Duration = Duration::from_millis(10);
    /// Longest probe interval or timeout accepted: slower is not health
    /// checking any more (and far larger values would overflow timers).
    pub const MAX_PERIOD: Duration = Duration::from_secs(3600);
    /// Longest `stats-interval` and startup delay accepted.
    pub const MAX_HOUR: Duration = Duration::from_secs(3600);
    /// `frontends.*.new-flows-table-length` (the original's fixed value).
    pub const NEW_FLOWS_TABLE_LENGTH: u64 = 1024;
    /// Longest `slow-start` accepted (one step a second: an hour of steps).
    pub const MAX_SLOW_START: Duration = Duration::from_secs(3600);
    /// Longest `sync-interval` accepted.
    pub const MAX_SYNC_INTERVAL: Duration = Duration::from_secs(24 * 3600);
    /// `announce.bird.ipv4-set`.
    pub const IPV4_SET: &str = "MAGLEV_VIPS4";
    /// `announce.bird.ipv6-set`.
    pub const IPV6_SET: &str = "MAGLEV_VIPS6";
    /// `announce.bird.reload`.
    pub const RELOAD: [&str; 2] = ["birdc", "configure"];
    /// `announce.bird.reload-timeout`.
    pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);
    /// `announce.hold-down`.
    pub const HOLD_DOWN: Duration = Duration::from_secs(5);
}

/// Highest rise/fall accepted; beyond this a backend would never change state.
const MAX_RISE_FALL: u64 = 1000;
/// Highest number of prober threads accepted.
const MAX_THREADS: u64 = 64;
/// Highest transition history accepted (memory per backend).
const MAX_HISTORY: u64 = 1000;
/// Longest name accepted.
const MAX_NAME: usize = 64;

struct Checker<'a> {
    lines: &'a LineIndex,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Checker<'_> {
    /// Accepted, but worth a word (see [`Config::warnings`]).
    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let line = self.lines.line_of(&path);
        self.warnings.push(Problem {
            path,
            line,
            message: message.into(),
        });
    }

    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let line = self.lines.line_of(&path);
        self.problems.push(Problem {
            path,
            line,
            message: message.into(),
        });
    }

    fn problem_at(&mut self, path: String, nth: usize, message: String) {
        let line = self.lines.nth_line_of(&path, nth);
        self.problems.push(Problem {
            path,
            line,
            message,
        });
    }

    /// Checks a name's spelling and uniqueness; returns the unique entries.
    fn names<'v, V>(&mut self, section: &str, map: &'v NamedMap<V>) -> Vec<(&'v str, &'v V)> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for (name, value) in &map.0 {
            let path = format!("{section}.{name}");
            let count = seen.entry(name).or_insert(0);
            *count += 1;
            if *count > 1 {
                let first = self.lines.nth_line_of(&path, 0);
                let where_ = first
                    .map(|l| format!(" (first on line {l})"))
                    .unwrap_or_default();
                self.problem_at(
                    path,
                    *count - 1,
                    format!("duplicate name `{name}`{where_}; names must be unique"),
                );
                continue;
            }
            if let Err(why) = check_name(name) {
                self.problem(path, why);
            }
            out.push((name.as_str(), value));
        }
        out
    }

    fn period(&mut self, path: String, value: Option<ConfDuration>, default: Duration) -> Duration {
        let d = value.map_or(default, |v| v.0);
        self.within(path, d, defaults::MIN_PERIOD, defaults::MAX_PERIOD)
    }

    /// Checks that `d` is within `min..=max`; returns it clamped there, so
    /// nothing downstream ever computes with an absurd time even while
    /// the problem list is being collected.
    fn within(&mut self, path: String, d: Duration, min: Duration, max: Duration) -> Duration {
        if d < min || d > max {
            self.problem(
                path,
                format!(
                    "{} is outside {}..{}",
                    format_duration(d),
                    format_duration(min),
                    format_duration(max)
                ),
            );
        }
        d.clamp(min, max)
    }
}

/// Names become CLI words, metric labels and log fields: keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("name is longer than {MAX_NAME} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(format!(
            "name `{name}` contains {c:?}; use letters, digits and - _ . : only"
        ));
    }
    Ok(())
}

/// Why VPP's lb plugin takes an IPv6 `addr` for IPv4, if it does: it keeps
/// addresses in 16 bytes and `ip46_address_is_ip4` calls every one whose
/// first 96 bits are zero IPv4 (`::1` is 0.0.0.1 to it).
pub fn vpp_reads_as_ipv4(addr: &IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V6(a) if a.octets()[..12].iter().all(|&b| b == 0) => {
            Some("it is in ::/96, which VPP's lb plugin reads as IPv4 (ip46_address_is_ip4)")
        }
        _ => None,
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// Why `ip` cannot be a VIP or backend address, if it cannot.
fn unusable_address(ip: &IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_multicast() {
        return Some("a multicast address");
    }
    if let IpAddr::V4(v4) = ip {
        if v4.is_broadcast() {
            return Some("the broadcast address");
        }
    }
    None
}

/// Turns the parsed file into a [`Config`], or lists every problem.
pub fn validate(raw: RawFile, lines: &LineIndex) -> Result<Config, Vec<Problem>> {
    let mut c = Checker {
        lines,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let m = raw.maglev;

    let healthchecker = healthchecker(&mut c, &m.healthchecker);
    let healthchecks = healthchecks(&mut c, &m.healthchecks);
    let backends = backends(&mut c, &m.backends, &healthchecks);
    let frontends = frontends(&mut c, &m.frontends, &backends);
    let vpp = vpp(&mut c, &m.vpp, &frontends, &backends);
    let announce = m.announce.as_ref().and_then(|a| announce(&mut c, a));

    if c.problems.is_empty() {
        Ok(Config {
            healthchecker,
            vpp,
            healthchecks,
            backends,
            frontends,
            announce,
            warnings: c.warnings,
        })
    } else {
        let mut problems = c.problems;
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(problems)
    }
}

/// Whether `name` can name a BIRD constant: a letter or `_`, then
/// letters, digits and `_` (BIRD 2's symbol syntax), not too long.
fn bird_symbol(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 64 {
        return Err(format!(
            "`{name}` is not a BIRD symbol (a letter or _, then letters, digits and _; at most 64)"
        ));
    }
    // A few words BIRD's grammar owns, most likely to be tried.
    const KEYWORDS: [&str; 12] = [
        "define", "filter", "function", "protocol", "table", "template", "include", "if", "then",
        "else", "accept", "reject",
    ];
    if KEYWORDS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("`{name}` is a BIRD keyword"));
    }
    Ok(())
}

/// Whether `argv[0]` names a program this machine has: a path that is an
/// executable file, or a name found on `PATH`.
fn program_exists(prog: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if prog.contains('/') {
        return runnable(std::path::Path::new(prog));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|d| runnable(&d.join(prog)))
}

/// An argv key: not empty, and its program exists.
fn argv(c: &mut Checker, path: String, argv: &[String]) -> Vec<String> {
    match argv.first() {
        None => c.problem(path, "an argv needs at least the program"),
        Some(p) if p.is_empty() => c.problem(path, "the program is empty"),
        Some(p) if !program_exists(p) => c.problem(
            path,
            format!("program `{p}` is not an executable file here (nor on PATH)"),
        ),
        Some(_) => {}
    }
    argv.to_vec()
}

fn announce(c: &mut Checker, raw: &RawAnnounce) -> Option<Announce> {
    const P: &str = "maglev.announce";
    let Some(bird) = &raw.bird else {
        c.problem(
            format!("{P}.bird"),
            "bird.file is required to enable announcing",
        );
        return None;
    };
    let file = match bird.file.as_deref() {
        None | Some("") => {
            c.problem(
                format!("{P}.bird"),
                "bird.file is required to enable announcing",
            );
            return None;
        }
        Some(f) => PathBuf::from(f),
    };
    if !file.is_absolute() {
        c.problem(format!("{P}.bird.file"), "must be an absolute path");
    } else if file.file_name().is_none() {
        c.problem(format!("{P}.bird.file"), "must name a file");
    } else if let Some(dir) = file.parent() {
        // Known now only on the machine that runs maglevd (a runtime
        // directory may be made at start): a warning, and at run time a
        // logged error with every address withdrawn.
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => c.problem(
                format!("{P}.bird.file"),
                format!("{} is not a directory", dir.display()),
            ),
            Err(e) => c.warn(
                format!("{P}.bird.file"),
                format!(
                    "directory {}: {e} (maglevd cannot write the file until it exists)",
                    dir.display()
                ),
            ),
        }
    }
    let set = |c: &mut Checker, key: &str, v: &Option<String>, default: &str| {
        let name = v.clone().unwrap_or_else(|| default.to_string());
        if let Err(why) = bird_symbol(&name) {
            c.problem(format!("{P}.bird.{key}"), why);
        }
        name
    };
    let ipv4_set = set(c, "ipv4-set", &bird.ipv4_set, defaults::IPV4_SET);
    let ipv6_set = set(c, "ipv6-set", &bird.ipv6_set, defaults::IPV6_SET);
    if ipv4_set == ipv6_set {
        c.problem(
            format!("{P}.bird.ipv6-set"),
            format!("`{ipv6_set}` is also the ipv4-set; the two sets need two names"),
        );
    }
    let default_reload: Vec<String> = defaults::RELOAD.iter().map(|s| s.to_string()).collect();
    let reload = argv(
        c,
        format!("{P}.bird.reload"),
        bird.reload.as_ref().unwrap_or(&default_reload),
    );
    let reload_timeout = c.within(
        format!("{P}.bird.reload-timeout"),
        bird.reload_timeout
            .map_or(defaults::RELOAD_TIMEOUT, |d| d.0),
        Duration::from_millis(100),
        Duration::from_secs(60),
    );
    let hold_down = c.within(
        format!("{P}.hold-down"),
        raw.hold_down.map_or(defaults::HOLD_DOWN, |d| d.0),
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    let notify = raw
        .notify
        .as_ref()
        .map(|n| argv(c, format!("{P}.notify"), n));
    Some(Announce {
        bird: Bird {
            file,
            ipv4_set,
            ipv6_set,
            reload,
            reload_timeout,
        },
        hold_down,
        notify,
    })
}

fn healthchecker(c: &mut Checker, raw: &RawHealthChecker) -> HealthChecker {
    const P: &str = "maglev.healthchecker";
    let history = raw
        .transition_history
        .unwrap_or(defaults::TRANSITION_HISTORY);
    if !(1..=MAX_HISTORY).contains(&history) {
        c.problem(
            format!("{P}.transition-history"),
            format!("{history} is outside 1..{MAX_HISTORY}"),
        );
    }
    let threads = raw.threads.unwrap_or(defaults::THREADS);
    if !(1..=MAX_THREADS).contains(&threads) {
        c.problem(
            format!("{P}.threads"),
            format!("{threads} is outside 1..{MAX_THREADS}"),
        );
    }
    let netns = match raw.netns.as_deref() {
        None | Some("") => None,
        Some(ns) => {
            if ns.contains('/') || ns == "." || ns == ".." || ns.chars().any(char::is_whitespace) {
                c.problem(
                    format!("{P}.netns"),
                    format!("`{ns}` is not a namespace name (as in /run/netns/<name>)"),
                );
            }
            Some(ns.to_string())
        }
    };
    HealthChecker {
        transition_history: history as usize,
        netns,
        threads: threads as usize,
    }
}

fn healthchecks(c: &mut Checker, raw: &NamedMap<RawHealthCheck>) -> BTreeMap<String, HealthCheck> {
    const P: &str = "maglev.healthchecks";
    let mut out = BTreeMap::new();
    for (name, hc) in c.names(P, raw) {
        let p = format!("{P}.{name}");
        let kind = hc.kind;
        let port = match (kind, hc.port) {
            (CheckType::Icmp, Some(_)) => {
                // The original accepted it (and ignored it).
                c.warn(
                    format!("{p}.port"),
                    "type icmp does not use a port; ignored",
                );
                0
            }
            (CheckType::Icmp, None) => 0,
            (_, None) => {
                c.problem(format!("{p}.port"), format!("type {kind} needs a port"));
                0
            }
            (_, Some(0)) => {
                c.problem(format!("{p}.port"), "port 0 cannot be probed (1..65535)");
                0
            }
            (_, Some(port)) => port,
        };
        let interval = c.period(format!("{p}.interval"), hc.interval, defaults::INTERVAL);
        let fast_interval = c.period(format!("{p}.fast-interval"), hc.fast_interval, interval);
        let down_interval = c.period(format!("{p}.down-interval"), hc.down_interval, interval);
        let timeout = c.period(
            format!("{p}.timeout"),
            hc.timeout,
            defaults::TIMEOUT.min(interval),
        );
        if timeout > interval {
            // The original's own README has interval 2s, timeout 3s. A
            // backend never has two probes in flight: the next one starts
            // when the previous one ends.
            c.warn(
                format!("{p}.timeout"),
                format!(
                    "timeout {} exceeds interval {}: a probe still running delays the next",
                    format_duration(timeout),
                    format_duration(interval)
                ),
            );
        }
        let mut count = |key: &str, v: Option<u64>, default: u64| -> u32 {
            let v = v.unwrap_or(default);
            if !(1..=MAX_RISE_FALL).contains(&v) {
                c.problem(
                    format!("{p}.{key}"),
                    format!("{v} is outside 1..{MAX_RISE_FALL}"),
                );
            }
            v.min(MAX_RISE_FALL) as u32
        };
        let rise = count("rise", hc.rise, defaults::RISE);
        let fall = count("fall", hc.fall, defaults::FALL);
        let probe_ipv4_src = match hc.probe_ipv4_src {
            None => None,
            Some(IpAddr::V4(a)) => Some(a),
            Some(other) => {
                c.problem(
                    format!("{p}.probe-ipv4-src"),
                    format!("{other} is not an IPv4 address"),
                );
                None
            }
        };
        let probe_ipv6_src = match hc.probe_ipv6_src {
            None => None,
            Some(IpAddr::V6(a)) => Some(a),
            Some(other) => {
                c.problem(
                    format!("{p}.probe-ipv6-src"),
                    format!("{other} is not an IPv6 address"),
                );
                None
            }
        };
        let probe = probe(c, &p, kind, port, interval, hc.params.as_ref());
        out.insert(
            name.to_string(),
            HealthCheck {
                probe,
                interval,
                fast_interval,
                down_interval,
                timeout,
                rise,
                fall,
                probe_ipv4_src,
                probe_ipv6_src,
            },
        );
    }
    out
}

fn probe(
    c: &mut Checker,
    p: &str,
    kind: CheckType,
    port: u16,
    interval: Duration,
    params: Option<&RawParams>,
) -> Probe {
    let empty = RawParams::default();
    let params = params.unwrap_or(&empty);
    // Which check types take each key.
    const TCP: &[CheckType] = &[CheckType::Tcp];
    const HTTP: &[CheckType] = &[CheckType::Http, CheckType::Https];
    const HTTPS: &[CheckType] = &[CheckType::Https];
    let present: [(&str, bool, &[CheckType]); 10] = [
        // (key, given, the types it belongs to)
        ("mode", params.mode.is_some(), TCP),
        ("path", params.path.is_some(), HTTP),
        ("host", params.host.is_some(), HTTP),
        ("method", params.method.is_some(), HTTP),
        ("expect-status", params.expect_status.is_some(), HTTP),
        ("expect-body", params.expect_body.is_some(), HTTP),
        ("tls-server-name", params.tls_server_name.is_some(), HTTPS),
        ("tls-verify", params.tls_verify.is_some(), HTTPS),
        ("reuse-connection", params.reuse_connection.is_some(), HTTP),
        ("reuse-lifetime", params.reuse_lifetime.is_some(), HTTP),
    ];
    for (key, given, types) in present {
        if !given {
            continue;
        }
        let allowed = types.contains(&kind);
        if !allowed {
            c.problem(
                format!("{p}.params.{key}"),
                format!("`{key}` is not a parameter of type {kind}"),
            );
        }
    }
    match kind {
        CheckType::Icmp => Probe::Icmp,
        CheckType::Tcp => Probe::Tcp {
            port,
            mode: params.mode.unwrap_or_default(),
        },
        CheckType::Http | CheckType::Https => {
            let path = params.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/')
                || path.chars().any(|ch| ch.is_whitespace() || ch.is_control())
            {
                c.problem(
                    format!("{p}.params.path"),
                    format!(
                        "`{path}` is not a request path (must start with / and have no spaces)"
                    ),
                );
            }
            let header_ok = |s: &str| {
                !s.is_empty() && !s.chars().any(|ch| ch.is_whitespace() || ch.is_control())
            };
            if let Some(host) = &params.host {
                if !header_ok(host) {
                    c.problem(
                        format!("{p}.params.host"),
                        format!("`{host}` is not a host name"),
                    );
                }
            }
            let method = params.method.unwrap_or(HttpMethod::Get);
            if method == HttpMethod::Head && params.expect_body.is_some() {
                c.problem(
                    format!("{p}.params.expect-body"),
                    "a HEAD response has no body to match; use method GET",
                );
            }
            if params.expect_body.as_deref() == Some("") {
                c.problem(format!("{p}.params.expect-body"), "expect-body is empty");
            }
            let expect_status = match &params.expect_status {
                Some(StatusList(list)) if list.is_empty() => {
                    c.problem(
                        format!("{p}.params.expect-status"),
                        "expect-status is empty",
                    );
                    Vec::new()
                }
                Some(StatusList(list)) => list.clone(),
                None => {
                    let (lo, hi) = defaults::EXPECT_STATUS;
                    vec![StatusRange { lo, hi }]
                }
            };
            let tls = (kind == CheckType::Https).then(|| {
                if let Some(sni) = &params.tls_server_name {
                    if !header_ok(sni) {
                        c.problem(
                            format!("{p}.params.tls-server-name"),
                            format!("`{sni}` is not a server name"),
                        );
                    }
                }
                TlsSettings {
                    server_name: params.tls_server_name.clone(),
                    verify: params.tls_verify.unwrap_or(true),
                }
            });
            let lifetime = c.period(
                format!("{p}.params.reuse-lifetime"),
                params.reuse_lifetime,
                defaults::REUSE_LIFETIME,
            );
            let reuse = params.reuse_connection.unwrap_or(false).then_some(lifetime);
            if reuse.is_none() && params.reuse_lifetime.is_some() {
                c.warn(
                    format!("{p}.params.reuse-lifetime"),
                    "has no effect without reuse-connection: true",
                );
            }
            if reuse.is_some_and(|l| l <= interval) {
                c.warn(
                    format!("{p}.params.reuse-lifetime"),
                    format!(
                        "{} is not longer than interval {}: every check makes a new connection",
                        format_duration(lifetime),
                        format_duration(interval)
                    ),
                );
            }
            Probe::Http(HttpProbe {
                port,
                path,
                host: params.host.clone(),
                method,
                expect_status,
                expect_body: params.expect_body.clone(),
                tls,
                reuse,
            })
        }
    }
}

fn backends(
    c: &mut Checker,
    raw: &NamedMap<RawBackend>,
    healthchecks: &BTreeMap<String, HealthCheck>,
) -> BTreeMap<String, Backend> {
    const P: &str = "maglev.backends";
    let mut out = BTreeMap::new();
    for (name, b) in c.names(P, raw) {
        let p = format!("{P}.{name}");
        if let Some(why) = unusable_address(&b.address) {
            c.problem(format!("{p}.address"), format!("{} is {why}", b.address));
        }
        if !healthchecks.contains_key(&b.healthcheck) {
            let known: Vec<&str> = healthchecks.keys().map(String::as_str).collect();
            c.problem(
                format!("{p}.healthcheck"),
                format!(
                    "health check `{}` does not exist (defined: {})",
                    b.healthcheck,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        out.insert(
            name.to_string(),
            Backend {
                address: b.address,
                healthcheck: b.healthcheck.clone(),
                enabled: b.enabled.unwrap_or(true),
            },
        );
    }
    out
}

fn frontends(
    c: &mut Checker,
    raw: &NamedMap<RawFrontend>,
    backends: &BTreeMap<String, Backend>,
) -> BTreeMap<String, Frontend> {
    const P: &str = "maglev.frontends";
    let mut out = BTreeMap::new();
    // VIP address → (frontend, backend family) of the first frontend seen there.
    let mut vip_family: HashMap<IpAddr, (&str, &'static str)> = HashMap::new();
    let mut vips: HashMap<(IpAddr, Option<Protocol>, u16), &str> = HashMap::new();
    for (name, f) in c.names(P, raw) {
        let p = format!("{P}.{name}");
        if let Some(why) = unusable_address(&f.address) {
            c.problem(format!("{p}.address"), format!("{} is {why}", f.address));
        }
        let port = f.port.unwrap_or(0);
        match (f.protocol, port) {
            (Some(proto), 0) => c.problem(
                format!("{p}.protocol"),
                format!(
                    "protocol {} needs a port; an all-port VIP (port 0) carries every protocol",
                    proto.as_str()
                ),
            ),
            (None, port) if port != 0 => c.problem(
                format!("{p}.protocol"),
                format!("port {port} needs a protocol (tcp or udp)"),
            ),
            _ => {}
        }
        if let Some(other) = vips.insert((f.address, f.protocol, port), name) {
            c.problem(
                format!("{p}.address"),
                format!(
                    "frontend `{other}` already defines this VIP (same address, protocol and port)"
                ),
            );
        }
        if f.pools.is_empty() {
            c.problem(format!("{p}.pools"), "a frontend needs at least one pool");
        }
        let table = f
            .new_flows_table_length
            .unwrap_or(defaults::NEW_FLOWS_TABLE_LENGTH);
        if !table.is_power_of_two() || !(16..=65536).contains(&table) {
            c.problem(
                format!("{p}.new-flows-table-length"),
                format!(
                    "{table} is not a power of two in 16..65536 (VPP's dump reports at most 65536)"
                ),
            );
        }
        let min_healthy = match f.min_healthy {
            None => None,
            Some(super::raw::Percent(n)) if (1..=100).contains(&n) => Some(n as u8),
            Some(super::raw::Percent(n)) => {
                c.problem(
                    format!("{p}.min-healthy"),
                    format!("{n}% is outside 1%..100%"),
                );
                None
            }
        };
        let mut pools = Vec::new();
        let mut pool_names: HashSet<&str> = HashSet::new();
        // backend name → pool index it first appeared in
        let mut placed: HashMap<&str, usize> = HashMap::new();
        // address → backend name, to catch two names for one AS
        let mut by_address: HashMap<IpAddr, &str> = HashMap::new();
        // family of the first backend, with its name
        let mut fe_family: Option<(&'static str, &str)> = None;
        for (i, pool) in f.pools.iter().enumerate() {
            let pp = format!("{p}.pools[{i}]");
            if let Err(why) = check_name(&pool.name) {
                c.problem(format!("{pp}.name"), why);
            } else if !pool_names.insert(&pool.name) {
                c.problem(
                    format!("{pp}.name"),
                    format!("pool name `{}` is used twice in this frontend", pool.name),
                );
            }
            if pool.backends.0.is_empty() {
                c.problem(
                    format!("{pp}.backends"),
                    "a pool needs at least one backend",
                );
            }
            let mut members = BTreeMap::new();
            let mut slow = BTreeMap::new();
            let pool_slow = pool.slow_start.map(|d| {
                c.within(
                    format!("{pp}.slow-start"),
                    d.0,
                    Duration::ZERO,
                    defaults::MAX_SLOW_START,
                )
            });
            for (bname, settings) in c.names(&format!("{pp}.backends"), &pool.backends) {
                let bp = format!("{pp}.backends.{bname}");
                let own_slow = settings.as_ref().and_then(|s| s.slow_start).map(|d| {
                    c.within(
                        format!("{bp}.slow-start"),
                        d.0,
                        Duration::ZERO,
                        defaults::MAX_SLOW_START,
                    )
                });
                if let Some(d) = own_slow.or(pool_slow).filter(|d| !d.is_zero()) {
                    slow.insert(bname.to_string(), d);
                }
                let weight = settings
                    .as_ref()
                    .and_then(|s| s.weight)
                    .unwrap_or(defaults::WEIGHT);
                if weight > 100 {
                    c.problem(
                        format!("{bp}.weight"),
                        format!("weight {weight} is outside 0..100"),
                    );
                }
                members.insert(bname.to_string(), weight.min(100) as u8);
                let Some(backend) = backends.get(bname) else {
                    c.problem(bp, format!("backend `{bname}` does not exist"));
                    continue;
                };
                if let Some(&first) = placed.get(bname) {
                    c.problem(
                        bp,
                        format!("backend `{bname}` is already in pools[{first}]; a backend can be in one pool of a frontend"),
                    );
                    continue;
                }
                placed.insert(bname, i);
                if let Some(other) = by_address.insert(backend.address, bname) {
                    c.problem(
                        bp.clone(),
                        format!(
                            "backends `{other}` and `{bname}` have the same address {}; VPP would see one application server",
                            backend.address
                        ),
                    );
                }
                let fam = family(&backend.address);
                if let Some(why) = vpp_reads_as_ipv4(&backend.address) {
                    c.warn(
                        bp.clone(),
                        format!(
                            "backend `{bname}` address {}: {why}, so VPP refuses it as an application server of this IPv6 VIP (lb_add_del_as_v2 -97, INVALID_ADDRESS_FAMILY); use an address outside ::/96 (a global or unique-local one such as fd00::1; ::ffff:a.b.c.d for the IPv4 host a.b.c.d)",
                            backend.address
                        ),
                    );
                }
                match fe_family {
                    None => fe_family = Some((fam, bname)),
                    Some((first_fam, first_name)) if first_fam != fam => c.problem(
                        bp,
                        format!(
                            "backend `{bname}` is {fam} but `{first_name}` is {first_fam}; all backends of a frontend must share one address family"
                        ),
                    ),
                    _ => {}
                }
            }
            pools.push(Pool {
                name: pool.name.clone(),
                backends: members,
                slow_start: slow,
            });
        }
        if let Some(why) = vpp_reads_as_ipv4(&f.address) {
            c.warn(
                format!("{p}.address"),
                format!(
                    "VIP {}: {why}, so VPP would hold it as an IPv4 VIP and never as this one; use an address outside ::/96",
                    f.address
                ),
            );
        }
        if let Some((fam, _)) = fe_family {
            match vip_family.get(&f.address) {
                Some(&(other, other_fam)) if other_fam != fam => c.problem(
                    format!("{p}.address"),
                    format!(
                        "frontend `{other}` uses VIP {} with {other_fam} backends but this one has {fam} backends; VPP needs one encapsulation per VIP address",
                        f.address
                    ),
                ),
                Some(_) => {}
                None => {
                    vip_family.insert(f.address, (name, fam));
                }
            }
        }
        out.insert(
            name.to_string(),
            Frontend {
                description: f.description.clone().unwrap_or_default(),
                address: f.address,
                protocol: f.protocol,
                port,
                src_ip_sticky: f.src_ip_sticky.unwrap_or(false),
                flush_on_down: f.flush_on_down.unwrap_or(true),
                pools,
                min_healthy,
                new_flows_table_length: if table.is_power_of_two() && (16..=65536).contains(&table)
                {
                    table as u32
                } else {
                    defaults::NEW_FLOWS_TABLE_LENGTH as u32
                },
                announce: f.announce.unwrap_or_default(),
            },
        );
    }
    out
}

fn vpp(
    c: &mut Checker,
    raw: &RawVpp,
    frontends: &BTreeMap<String, Frontend>,
    backends: &BTreeMap<String, Backend>,
) -> Vpp {
    const P: &str = "maglev.vpp";
    let socket =
        |c: &mut Checker, key: &str, v: &Option<String>, default: &str| -> Option<PathBuf> {
            match v.as_deref().unwrap_or(default) {
                "" => None,
                s if s.starts_with('/') => Some(PathBuf::from(s)),
                s => {
                    c.problem(
                        format!("{P}.{key}"),
                        format!("`{s}` is not an absolute path"),
                    );
                    None
                }
            }
        };
    let api_socket = socket(c, "api-socket", &raw.api_socket, defaults::API_SOCKET);
    let stats_socket = socket(c, "stats-socket", &raw.stats_socket, defaults::STATS_SOCKET);
    let stats_interval = c.within(
        format!("{P}.stats-interval"),
        raw.stats_interval.map_or(defaults::STATS_INTERVAL, |d| d.0),
        Duration::from_secs(1),
        defaults::MAX_HOUR,
    );

    let l = &raw.lb;
    let lp = format!("{P}.lb");
    let ipv4_src_address = match l.ipv4_src_address {
        None => None,
        Some(IpAddr::V4(a)) => Some(a),
        Some(other) => {
            c.problem(
                format!("{lp}.ipv4-src-address"),
                format!("{other} is not an IPv4 address"),
            );
            Some(Ipv4Addr::UNSPECIFIED)
        }
    };
    let ipv6_src_address = match l.ipv6_src_address {
        None => None,
        Some(IpAddr::V6(a)) => Some(a),
        Some(other) => {
            c.problem(
                format!("{lp}.ipv6-src-address"),
                format!("{other} is not an IPv6 address"),
            );
            Some(Ipv6Addr::UNSPECIFIED)
        }
    };
    if api_socket.is_some() {
        // GRE encapsulation toward the backends needs an outer source of
        // the backends' family; the VIP's own family needs none (an IPv4
        // VIP in front of IPv6 backends is ip4-gre6 and needs only the GRE6
        // source). A source left out keeps VPP's current one.
        let mut need_v4: Option<&str> = None;
        let mut need_v6: Option<&str> = None;
        for (name, f) in frontends {
            let fams: Vec<bool> = f
                .backend_names()
                .iter()
                .filter_map(|b| backends.get(*b))
                .map(|b| b.address.is_ipv4())
                .collect();
            for v4 in fams {
                let slot = if v4 { &mut need_v4 } else { &mut need_v6 };
                slot.get_or_insert(name);
            }
        }
        if let (Some(fe), None) = (need_v4, ipv4_src_address) {
            c.problem(
                format!("{lp}.ipv4-src-address"),
                format!("required: frontend `{fe}` has IPv4 backends (GRE4 encapsulation source)"),
            );
        }
        if let (Some(fe), None) = (need_v6, ipv6_src_address) {
            c.problem(
                format!("{lp}.ipv6-src-address"),
                format!("required: frontend `{fe}` has IPv6 backends (GRE6 encapsulation source)"),
            );
        }
    }
    let buckets = l
        .sticky_buckets_per_core
        .unwrap_or(defaults::STICKY_BUCKETS_PER_CORE);
    if buckets == 0 || !buckets.is_power_of_two() || buckets > 1 << 31 {
        c.problem(
            format!("{lp}.sticky-buckets-per-core"),
            format!("{buckets} is not a power of two between 1 and 2^31"),
        );
    }
    let flow_timeout = l.flow_timeout.map_or(defaults::FLOW_TIMEOUT, |d| d.0);
    if flow_timeout.subsec_nanos() != 0 || !(1..=120).contains(&flow_timeout.as_secs()) {
        c.problem(
            format!("{lp}.flow-timeout"),
            format!(
                "{} is not a whole number of seconds between 1s and 120s",
                format_duration(flow_timeout)
            ),
        );
    }
    let sync_interval = c.within(
        format!("{lp}.sync-interval"),
        l.sync_interval.map_or(defaults::SYNC_INTERVAL, |d| d.0),
        Duration::from_secs(1),
        defaults::MAX_SYNC_INTERVAL,
    );
    let min = c.within(
        format!("{lp}.startup-min-delay"),
        l.startup_min_delay
            .map_or(defaults::STARTUP_MIN_DELAY, |d| d.0),
        Duration::ZERO,
        defaults::MAX_HOUR,
    );
    let max = c.within(
        format!("{lp}.startup-max-delay"),
        l.startup_max_delay
            .map_or(defaults::STARTUP_MAX_DELAY, |d| d.0),
        Duration::ZERO,
        defaults::MAX_HOUR,
    );
    if min > max {
        c.problem(
            format!("{lp}.startup-min-delay"),
            format!(
                "startup-min-delay {} exceeds startup-max-delay {}",
                format_duration(min),
                format_duration(max)
            ),
        );
    }
    Vpp {
        api_socket,
        stats_socket,
        stats_interval,
        lb: LbSettings {
            ipv4_src_address,
            ipv6_src_address,
            sticky_buckets_per_core: buckets.min(1 << 31) as u32,
            flow_timeout,
            sync_interval,
            startup_min_delay: min,
            startup_max_delay: max,
        },
    }
}
