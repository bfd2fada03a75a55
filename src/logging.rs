//! Log output for a daemon that usually runs under systemd.
//!
//! When stderr is connected to the journal (`JOURNAL_STREAM` names stderr's
//! device and inode), each line starts with a `<N>` syslog priority so
//! journald keeps the level, and carries no timestamp (journald adds its
//! own). Otherwise lines start with an RFC 3339 UTC timestamp and the level.
//! Messages themselves are `event key=value ...` so they grep well.
//!
//! `--log-format json` writes one JSON object per line on stdout instead,
//! in the shape of the original's Go `log/slog` output: `time`, `level`,
//! `msg` (the event), then each `key=value` as a field.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter};

/// Parses a `--log-level` word.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(LevelFilter::Error),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        "off" => Some(LevelFilter::Off),
        _ => None,
    }
}

/// syslog priority of a level (`<3>` error … `<7>` debug).
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Whether stderr is the journal stream systemd gave us.
pub fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // st_dev/st_ino are narrower than u64 on some 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    match nix::sys::stat::fstat(std::io::stderr().as_fd()) {
        Ok(st) => st.st_dev as u64 == dev && st.st_ino as u64 == ino,
        Err(_) => false,
    }
}

/// Log lines offered to `watch events log` subscribers: (level, message),
/// each subscriber with the most verbose level it wants. Never blocks
/// logging: a full subscriber queue loses lines.
type Tap = (LevelFilter, crossbeam_channel::Sender<(Level, String)>);
static TAPS: std::sync::Mutex<Vec<Tap>> = std::sync::Mutex::new(Vec::new());
/// The most verbose level a subscriber wants (as `LevelFilter as usize`;
/// 0: no subscriber).
static TAP_LEVEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// The level the log output was configured at.
static OUTPUT_LEVEL: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(LevelFilter::Info as usize);

fn level_of(n: usize) -> LevelFilter {
    LevelFilter::iter().nth(n).unwrap_or(LevelFilter::Off)
}

/// Recomputes what the logger must produce: the output's level, or a
/// subscriber's if more verbose (a dashboard watching at `debug` gets the
/// probe results while the journal stays at `info`).
fn update_levels(taps: &[Tap]) {
    use std::sync::atomic::Ordering;
    let tap = taps.iter().map(|t| t.0).max().unwrap_or(LevelFilter::Off);
    TAP_LEVEL.store(tap as usize, Ordering::Relaxed);
    log::set_max_level(tap.max(level_of(OUTPUT_LEVEL.load(Ordering::Relaxed))));
}

/// Subscribes to log lines up to `level` (whatever the output's level)
/// with a queue of `cap`.
pub fn tap(cap: usize, level: LevelFilter) -> crossbeam_channel::Receiver<(Level, String)> {
    let (tx, rx) = crossbeam_channel::bounded(cap.max(1));
    let mut t = TAPS.lock().unwrap_or_else(|e| e.into_inner());
    t.push((level, tx));
    update_levels(&t);
    rx
}

fn offer(level: Level, args: &std::fmt::Arguments<'_>) {
    if (level as usize) > TAP_LEVEL.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut t = TAPS.lock().unwrap_or_else(|e| e.into_inner());
    let msg = args.to_string();
    let before = t.len();
    t.retain(|(want, tx)| {
        level > *want
            || !matches!(
                tx.try_send((level, msg.clone())),
                Err(crossbeam_channel::TrySendError::Disconnected(_))
            )
    });
    if t.len() != before {
        update_levels(&t);
    }
}

/// The global logger: the output (env_logger, at the configured level)
/// and the subscribers (at theirs).
struct Logger {
    output: env_logger::Logger,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.output.enabled(m)
            || (m.level() as usize) <= TAP_LEVEL.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record<'_>) {
        offer(record.level(), record.args());
        if self.output.enabled(record.metadata()) {
            self.output.log(record);
        }
    }

    fn flush(&self) {
        self.output.flush();
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `event key=value` lines on stderr (journald-aware).
    Text,
    /// One slog-shaped JSON object per line on stdout.
    Json,
}

impl Format {
    /// Parses a `--log-format` word.
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Splits `event key=value key="quoted value" word` into the event and its
/// fields; words without `=` are gathered in a `detail` field.
pub fn fields(msg: &str) -> (String, Vec<(String, String)>) {
    let mut rest = msg.trim();
    let event_end = rest.find(' ').unwrap_or(rest.len());
    let event = rest[..event_end].to_string();
    rest = &rest[event_end..];
    let mut out = Vec::new();
    let mut loose: Vec<String> = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let word_end = rest.find(' ').unwrap_or(rest.len());
        let eq = rest[..word_end].find('=').filter(|&i| i > 0);
        let Some(eq) = eq else {
            loose.push(rest[..word_end].to_string());
            rest = &rest[word_end..];
            continue;
        };
        let key = rest[..eq].to_string();
        let after = &rest[eq + 1..];
        if let Some(q) = after.strip_prefix('"') {
            // A Rust-quoted value: read to the closing quote, unescaping.
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => v.push('\n'),
                        Some((_, 't')) => v.push('\t'),
                        Some((_, o)) => v.push(o),
                        None => {}
                    },
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            out.push((key, v));
            rest = &q[end.min(q.len())..];
        } else {
            let vend = after.find(' ').unwrap_or(after.len());
            out.push((key, after[..vend].to_string()));
            rest = &after[vend..];
        }
    }
    if !loose.is_empty() {
        out.push(("detail".into(), loose.join(" ")));
    }
    (event, out)
}

/// A log line as the original's slog JSON handler wrote it.
pub fn json_line(level: Level, at: SystemTime, msg: &str) -> String {
    use serde_json::{Map, Value};
    let (event, fields) = fields(msg);
    let mut m = Map::new();
    m.insert("time".into(), Value::String(rfc3339_utc(at)));
    let level = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    };
    m.insert("level".into(), Value::String(level.into()));
    m.insert("msg".into(), Value::String(event));
    for (k, v) in fields {
        let value = if let Ok(n) = v.parse::<i64>() {
            Value::from(n)
        } else if let Ok(n) = v.parse::<u64>() {
            Value::from(n)
        } else if v.contains('.') && v.parse::<f64>().is_ok_and(f64::is_finite) {
            Value::from(v.parse::<f64>().unwrap_or(0.0))
        } else {
            Value::String(v)
        };
        m.insert(k, value);
    }
    Value::Object(m).to_string()
}

/// Installs the global logger at `level`; later calls are ignored.
pub fn init(level: LevelFilter) {
    init_with(level, Format::Text);
}

/// Installs the global logger at `level` writing `format`.
pub fn init_with(level: LevelFilter, format: Format) {
    let journal = stderr_is_journal();
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    b.target(match format {
        Format::Text => env_logger::Target::Stderr,
        Format::Json => env_logger::Target::Stdout,
    });
    b.format(move |buf, record| {
        if format == Format::Json {
            let msg = record.args().to_string();
            writeln!(
                buf,
                "{}",
                json_line(record.level(), SystemTime::now(), &msg)
            )
        } else if journal {
            writeln!(
                buf,
                "<{}>{}",
                syslog_priority(record.level()),
                record.args()
            )
        } else {
            writeln!(
                buf,
                "{} {:<5} {}",
                rfc3339_utc(SystemTime::now()),
                record.level(),
                record.args()
            )
        }
    });
    let output = b.build();
    OUTPUT_LEVEL.store(level as usize, std::sync::atomic::Ordering::Relaxed);
    if log::set_boxed_logger(Box::new(Logger { output })).is_ok() {
        update_levels(&TAPS.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// `2026-11-25T12:00:00.123Z`: millisecond UTC timestamp, no dependencies.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Quotes a log field value when it has spaces, quotes or is empty.
pub fn quote(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_608_000_123);
        assert_eq!(rfc3339_utc(t), "2026-11-25T12:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level("DEBUG"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("warning"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(syslog_priority(Level::Error), 3);
        assert_eq!(syslog_priority(Level::Info), 6);
        assert_eq!(syslog_priority(Level::Trace), 7);
    }

    #[test]
    fn fields_and_json_lines() {
        let (e, f) = fields(
            "backend-transition backend=web0 from=up to=down code=L4CON detail=\"connection refused\"",
        );
        assert_eq!(e, "backend-transition");
        assert_eq!(f[0], ("backend".into(), "web0".into()));
        assert_eq!(f[4], ("detail".into(), "connection refused".into()));
        let (_, f) = fields("vpp-lbsync-failed error=\"a \\\"q\\\" b\" took_ms=1.5 extra words");
        assert_eq!(f[0].1, "a \"q\" b");
        assert_eq!(f[2], ("detail".into(), "extra words".into()));
        let j = json_line(
            Level::Info,
            UNIX_EPOCH,
            "vpp-lbsync-done ops=3 took_ms=1.5 scope=all",
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["msg"], "vpp-lbsync-done");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["ops"], 3);
        assert_eq!(v["took_ms"], 1.5);
        assert_eq!(v["scope"], "all");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("xml"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("web0"), "web0");
        assert_eq!(quote("HTTP 503"), "\"HTTP 503\"");
        assert_eq!(quote(""), "\"\"");
    }
}
