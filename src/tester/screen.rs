//! maglevt's output: the full screen (plain ANSI escapes, redrawn in
//! place) and the JSON lines written when stdout is not a terminal. Pure:
//! figures and the terminal's size in, text out.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::stats::{ErrorKind, VipStats, WINDOW, ms};
use super::target::Target;

/// Everything one frame shows.
pub struct Frame<'a> {
    /// The host's FQDN.
    pub host: &'a str,
    /// The VIPs, in order.
    pub targets: &'a [Target],
    /// Their figures (same order).
    pub stats: &'a [VipStats],
    /// The tallied header's name.
    pub header: &'a str,
    /// Now, monotonic (ages) and wall clock (what is printed).
    pub now: Instant,
    /// Now, wall clock.
    pub wall: SystemTime,
}

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// Enter: alternate screen, cursor hidden, screen cleared.
pub const ENTER: &str = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
/// Leave: cursor shown, main screen back.
pub const LEAVE: &str = "\x1b[0m\x1b[?25h\x1b[?1049l";

/// A line being built: text with styles, cut at the terminal's width.
struct Line {
    out: String,
    width: usize,
    used: usize,
}

impl Line {
    fn new(width: usize) -> Line {
        Line {
            out: String::new(),
            width,
            used: 0,
        }
    }

    /// Appends `text` in `style` (""= plain), as much as fits.
    fn push(&mut self, style: &str, text: &str) {
        let room = self.width.saturating_sub(self.used);
        let t: String = text.chars().take(room).collect();
        if t.is_empty() {
            return;
        }
        self.used += t.chars().count();
        if style.is_empty() {
            self.out.push_str(&t);
        } else {
            self.out.push_str(style);
            self.out.push_str(&t);
            self.out.push_str(RESET);
        }
    }
}

/// The wall-clock time of `at`, given that `now` is `wall`.
fn wall_of(at: Instant, now: Instant, wall: SystemTime) -> SystemTime {
    wall.checked_sub(now.saturating_duration_since(at))
        .unwrap_or(wall)
}

/// `HH:MM:SS.mmm` (UTC).
fn clock(t: SystemTime) -> String {
    let full = crate::logging::rfc3339_utc(t);
    // 2026-12-01T10:00:00.123Z → 10:00:00.123
    full.get(11..23).unwrap_or(&full).to_string()
}

fn row_cells(t: &Target, s: &VipStats) -> [String; 10] {
    let p = s.percentiles();
    let lat = |d: Duration| if p.samples == 0 { "-".into() } else { ms(d) };
    [
        t.frontend.clone(),
        t.addr.to_string(),
        t.kind.as_str().into(),
        lat(p.p50),
        lat(p.p95),
        lat(p.p99),
        lat(p.max),
        s.probes.to_string(),
        s.failures.to_string(),
        s.last.clone().unwrap_or_else(|| "-".into()),
    ]
}

const HEADS: [&str; 10] = [
    "FRONTEND", "VIP", "KIND", "P50ms", "P95ms", "P99ms", "MAXms", "N", "FAIL", "LAST",
];

/// The whole screen for a terminal of `width` × `height`: to be written
/// after moving the cursor home; every line clears its rest.
pub fn render(f: &Frame, width: usize, height: usize) -> String {
    let width = width.max(20);
    let height = height.max(4);
    let mut lines: Vec<String> = Vec::new();
    let mut l = Line::new(width);
    l.push(BOLD, "maglevt");
    l.push("", &format!("  {}  ", f.host));
    l.push(
        "",
        &format!(
            "{} UTC",
            crate::logging::rfc3339_utc(f.wall)
                .get(..19)
                .unwrap_or_default()
                .replace('T', " ")
        ),
    );
    l.push(
        DIM,
        &format!("  window {}s  header {}", WINDOW.as_secs(), f.header),
    );
    lines.push(l.out);
    // Column widths from the content.
    let rows: Vec<[String; 10]> = f
        .targets
        .iter()
        .zip(f.stats)
        .map(|(t, s)| row_cells(t, s))
        .collect();
    let mut w: Vec<usize> = HEADS.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let cells = |r: &[String]| {
        r.iter()
            .enumerate()
            .map(|(i, c)| {
                // Numbers right-aligned, text left.
                if (3..9).contains(&i) {
                    format!("{c:>0$}", w[i])
                } else if i + 1 == r.len() {
                    c.clone()
                } else {
                    format!("{c:<0$}", w[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut l = Line::new(width);
    let heads: Vec<String> = HEADS.iter().map(|h| h.to_string()).collect();
    l.push(BOLD, &cells(&heads));
    lines.push(l.out);
    for ((r, s), _t) in rows.iter().zip(f.stats).zip(f.targets) {
        let mut l = Line::new(width);
        let failed_last = s.last.as_deref().is_some_and(|x| {
            ErrorKind::ALL
                .iter()
                .any(|k| x.starts_with(&format!("{}:", k.as_str())))
        });
        l.push(if failed_last { RED } else { "" }, &cells(r));
        lines.push(l.out);
        if !s.tally().is_empty() {
            let mut l = Line::new(width);
            l.push("", "    ");
            for (v, e) in s.tally() {
                let active = e.recent > 0;
                l.push(if active { BOLD } else { DIM }, &format!("{v} {}", e.count));
                l.push("", "  ");
            }
            lines.push(l.out);
        }
    }
    // The error panel gets what is left.
    let room = height.saturating_sub(lines.len() + 2);
    if room > 0 {
        lines.push(String::new());
        let mut l = Line::new(width);
        let counts: Vec<String> = ErrorKind::ALL
            .iter()
            .map(|k| {
                let n: u64 = f
                    .stats
                    .iter()
                    .map(|s| s.by_kind.get(k).copied().unwrap_or(0))
                    .sum();
                format!("{} {n}", k.as_str())
            })
            .collect();
        l.push(BOLD, "errors");
        l.push(DIM, &format!("  {}", counts.join("  ")));
        lines.push(l.out);
        let mut all: Vec<(Instant, &str, ErrorKind, &str)> = f
            .targets
            .iter()
            .zip(f.stats)
            .flat_map(|(t, s)| {
                s.errors()
                    .take(room)
                    .map(move |e| (e.at, t.frontend.as_str(), e.kind, e.detail.as_str()))
            })
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (at, fe, kind, detail) in all.into_iter().take(room) {
            let mut l = Line::new(width);
            l.push(DIM, &clock(wall_of(at, f.now, f.wall)));
            l.push("", &format!("  {fe}  "));
            l.push(
                if kind == ErrorKind::Spike { BOLD } else { RED },
                kind.as_str(),
            );
            l.push("", &format!("  {detail}"));
            lines.push(l.out);
        }
    }
    lines.truncate(height);
    let mut out = String::from("\x1b[H");
    for l in lines {
        out.push_str(&l);
        out.push_str("\x1b[K\r\n");
    }
    out.push_str("\x1b[J");
    out
}

/// One JSON object (one line) with the figures of one VIP.
pub fn json_line(t: &Target, s: &VipStats, wall: SystemTime) -> String {
    let p = s.percentiles();
    let lat = |d: Duration| (p.samples > 0).then(|| (d.as_secs_f64() * 1e6).round() / 1e3);
    let tally: serde_json::Map<String, serde_json::Value> = s
        .tally()
        .iter()
        .map(|(v, e)| {
            (
                v.clone(),
                json!({"count": e.count, "recent": e.recent, "active": e.recent > 0}),
            )
        })
        .collect();
    let errors: serde_json::Map<String, serde_json::Value> = ErrorKind::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_string(),
                json!(s.by_kind.get(k).copied().unwrap_or(0)),
            )
        })
        .collect();
    json!({
        "time": crate::logging::rfc3339_utc(wall),
        "frontend": t.frontend,
        "vip": t.addr.to_string(),
        "kind": t.kind.as_str(),
        "probes": s.probes,
        "failures": s.failures,
        "window_probes": s.recent_probes(),
        "window_samples": p.samples,
        "p50_ms": lat(p.p50),
        "p95_ms": lat(p.p95),
        "p99_ms": lat(p.p99),
        "max_ms": lat(p.max),
        "last": s.last,
        "tally": tally,
        "errors": errors,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tester::stats::{Answer, Failure, Sample};
    use crate::tester::target::Kind;

    fn target(name: &str) -> Target {
        Target {
            frontend: name.into(),
            addr: "192.0.2.1:80".parse().unwrap(),
            kind: Kind::Http,
            server_name: None,
        }
    }

    fn stats(now: Instant) -> VipStats {
        let mut s = VipStats::default();
        for i in 0..20u64 {
            let t = now - Duration::from_millis(2000 - i * 100);
            s.record(
                t,
                Sample {
                    latency: Duration::from_millis(2),
                    result: Ok(Answer {
                        status: "HTTP 200".into(),
                        backend: Some(if i < 10 { "old" } else { "new" }.into()),
                    }),
                },
            );
        }
        s.record(
            now,
            Sample {
                latency: Duration::from_secs(1),
                result: Err(Failure {
                    kind: ErrorKind::Timeout,
                    detail: "response timed out".into(),
                }),
            },
        );
        s
    }

    fn plain(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, c) if c.is_ascii_alphabetic() => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn a_frame_has_the_header_rows_tally_and_errors_within_the_window() {
        let now = Instant::now() + Duration::from_secs(10);
        let targets = [target("web"), target("api")];
        let st = [stats(now), VipStats::default()];
        let f = Frame {
            host: "lb1.example.net",
            targets: &targets,
            stats: &st,
            header: "X-Served-By",
            now,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        let out = render(&f, 100, 30);
        let text = plain(&out);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(
            lines[0].contains("lb1.example.net") && lines[0].contains("2027-01-15 08:00:00 UTC")
        );
        assert!(lines[1].starts_with("FRONTEND"));
        assert!(lines[2].starts_with("web ") && lines[2].contains("timeout: response timed out"));
        assert!(lines[3].contains("new 10") && lines[3].contains("old 10"));
        assert!(lines[4].starts_with("api "));
        assert!(text.contains("errors  timeout 1  http-err 0  net-err 0  spike 0"));
        assert!(text.contains("web  timeout  response timed out"));
        for l in &lines {
            assert!(l.chars().count() <= 100, "{l}");
        }
        // Narrow and short: cut, never wrapped.
        let small = plain(&render(&f, 30, 5));
        assert!(small.split("\r\n").all(|l| l.chars().count() <= 30));
        assert!(small.split("\r\n").count() <= 6);
    }

    #[test]
    fn json_has_the_same_figures() {
        let now = Instant::now() + Duration::from_secs(10);
        let s = stats(now);
        let v: serde_json::Value =
            serde_json::from_str(&json_line(&target("web"), &s, SystemTime::now())).unwrap();
        assert_eq!(v["frontend"], "web");
        assert_eq!(v["probes"], 21);
        assert_eq!(v["failures"], 1);
        assert_eq!(v["p50_ms"], 2.0);
        assert_eq!(v["tally"]["new"]["recent"], 10);
        assert_eq!(v["tally"]["old"]["active"], true);
        assert_eq!(v["errors"]["timeout"], 1);
        assert_eq!(v["errors"]["spike"], 0);
    }
}
