//! What maglevt knows about one VIP: lifetime counts, a rolling 5-second
//! latency window, the tally of the header that names the answering
//! backend, and the anomalies, classified. Pure: results and the time come
//! in, figures go out.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The rolling window of latencies and of "which backend answered".
pub const WINDOW: Duration = Duration::from_secs(5);
/// A success slower than this many times the rolling p50 is a spike.
pub const SPIKE_FACTOR: f64 = 5.0;
/// A p50 needs this many samples before spikes are judged against it.
const SPIKE_MIN_SAMPLES: usize = 10;
/// Anomalies kept for the error panel.
pub const ERRORS_KEPT: usize = 200;

/// How an anomaly is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No answer within `--timeout` (connect or response).
    Timeout,
    /// An answer that is not a success (status 400 and up, or not HTTP).
    HttpErr,
    /// The connection failed: refused, reset, closed without an answer,
    /// TLS handshake failed, no route.
    NetErr,
    /// A success, but slower than [`SPIKE_FACTOR`] × the rolling p50.
    Spike,
}

impl ErrorKind {
    /// All of them, in display order.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Timeout,
        ErrorKind::HttpErr,
        ErrorKind::NetErr,
        ErrorKind::Spike,
    ];

    /// The label (`timeout`, `http-err`, `net-err`, `spike`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::HttpErr => "http-err",
            ErrorKind::NetErr => "net-err",
            ErrorKind::Spike => "spike",
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Time from start to answer (or to failure).
    pub latency: Duration,
    /// What happened.
    pub result: Result<Answer, Failure>,
}

/// A successful probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `HTTP 200`, or `connected` for a TCP VIP.
    pub status: String,
    /// The value of the `--header` response header, if present.
    pub backend: Option<String>,
}

/// A failed probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its class (never [`ErrorKind::Spike`]).
    pub kind: ErrorKind,
    /// Human detail.
    pub detail: String,
}

/// An anomaly for the error panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// When it ended.
    pub at: Instant,
    /// Its class.
    pub kind: ErrorKind,
    /// Human detail.
    pub detail: String,
}

/// One value of the tally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TallyEntry {
    /// Answers since maglevt started.
    pub count: u64,
    /// Answers within the window.
    pub recent: u64,
    /// Last answer.
    pub last: Option<Instant>,
}

/// Latency figures over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Successes in the window.
    pub samples: usize,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// The figures of one VIP.
#[derive(Debug, Default)]
pub struct VipStats {
    /// Probes since start.
    pub probes: u64,
    /// Failed probes since start.
    pub failures: u64,
    /// Anomalies since start, by class.
    pub by_kind: BTreeMap<ErrorKind, u64>,
    /// The last result: status or failure detail.
    pub last: Option<String>,
    /// Successful latencies in the window, oldest first.
    window: VecDeque<(Instant, Duration)>,
    /// Probes (any result) in the window: their end times.
    recent: VecDeque<Instant>,
    /// Header values, with their recent answers.
    tally: BTreeMap<String, TallyEntry>,
    recent_values: VecDeque<(Instant, String)>,
    /// Newest last.
    errors: VecDeque<Anomaly>,
}

impl VipStats {
    /// Records a probe that ended at `now`.
    pub fn record(&mut self, now: Instant, s: Sample) {
        self.expire(now);
        self.probes += 1;
        self.recent.push_back(now);
        match s.result {
            Ok(a) => {
                let p50 = self.percentiles().filter_p50();
                if let Some(p50) = p50 {
                    if s.latency.as_secs_f64() > SPIKE_FACTOR * p50.as_secs_f64() {
                        self.anomaly(
                            now,
                            ErrorKind::Spike,
                            format!("{} ms (p50 {} ms)", ms(s.latency), ms(p50)),
                        );
                    }
                }
                self.window.push_back((now, s.latency));
                if let Some(b) = a.backend {
                    let e = self.tally.entry(b.clone()).or_default();
                    e.count += 1;
                    e.recent += 1;
                    e.last = Some(now);
                    self.recent_values.push_back((now, b));
                }
                self.last = Some(a.status);
            }
            Err(f) => {
                self.failures += 1;
                self.last = Some(format!("{}: {}", f.kind.as_str(), f.detail));
                self.anomaly(now, f.kind, f.detail);
            }
        }
    }

    fn anomaly(&mut self, at: Instant, kind: ErrorKind, detail: String) {
        *self.by_kind.entry(kind).or_insert(0) += 1;
        if self.errors.len() == ERRORS_KEPT {
            self.errors.pop_front();
        }
        self.errors.push_back(Anomaly { at, kind, detail });
    }

    /// Forgets what fell out of the window by `now`.
    pub fn expire(&mut self, now: Instant) {
        let old = |t: &Instant| now.saturating_duration_since(*t) > WINDOW;
        while self.window.front().is_some_and(|(t, _)| old(t)) {
            self.window.pop_front();
        }
        while self.recent.front().is_some_and(old) {
            self.recent.pop_front();
        }
        while let Some((t, v)) = self.recent_values.front() {
            if !old(t) {
                break;
            }
            if let Some(e) = self.tally.get_mut(v) {
                e.recent = e.recent.saturating_sub(1);
            }
            self.recent_values.pop_front();
        }
    }

    /// Latency over the window (call [`VipStats::expire`] first).
    pub fn percentiles(&self) -> Percentiles {
        let mut v: Vec<Duration> = self.window.iter().map(|(_, d)| *d).collect();
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        // Nearest rank: the smallest value with at least p % at or below.
        let rank = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            samples: v.len(),
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: v[v.len() - 1],
        }
    }

    /// Probes (of any result) that ended within the window.
    pub fn recent_probes(&self) -> usize {
        self.recent.len()
    }

    /// The tally, by header value.
    pub fn tally(&self) -> &BTreeMap<String, TallyEntry> {
        &self.tally
    }

    /// Anomalies, newest first.
    pub fn errors(&self) -> impl Iterator<Item = &Anomaly> {
        self.errors.iter().rev()
    }
}

impl Percentiles {
    fn filter_p50(self) -> Option<Duration> {
        (self.samples >= SPIKE_MIN_SAMPLES).then_some(self.p50)
    }
}

/// Milliseconds with one decimal, for display.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64, backend: &str) -> Sample {
        Sample {
            latency: Duration::from_millis(ms),
            result: Ok(Answer {
                status: "HTTP 200".into(),
                backend: Some(backend.into()),
            }),
        }
    }

    fn fail(kind: ErrorKind) -> Sample {
        Sample {
            latency: Duration::from_millis(1000),
            result: Err(Failure {
                kind,
                detail: "x".into(),
            }),
        }
    }

    #[test]
    fn percentiles_by_nearest_rank_over_the_window() {
        let t0 = Instant::now();
        let mut s = VipStats::default();
        for i in 1..=100u64 {
            s.record(t0 + Duration::from_millis(i * 10), ok(i, "a"));
        }
        let p = s.percentiles();
        assert_eq!(p.samples, 100);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p95, Duration::from_millis(95));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        // 5 s later only what came in the last 5 s counts.
        s.expire(t0 + Duration::from_millis(1000) + WINDOW + Duration::from_millis(1));
        assert_eq!(s.percentiles().samples, 0);
        assert_eq!(s.probes, 100, "lifetime counts stay");
    }

    #[test]
    fn the_tally_shows_who_answered_and_who_drained() {
        let t0 = Instant::now();
        let mut s = VipStats::default();
        for i in 0..10u64 {
            let b = if i % 2 == 0 { "a" } else { "b" };
            s.record(t0 + Duration::from_millis(i * 100), ok(2, b));
        }
        assert_eq!(s.tally()["a"].recent, 5);
        // b dies: only a answers from now on.
        for i in 10..70u64 {
            s.record(t0 + Duration::from_millis(i * 100), ok(2, "a"));
        }
        assert_eq!(s.tally()["b"].recent, 0, "b drained");
        assert_eq!(s.tally()["b"].count, 5, "but keeps its lifetime count");
        assert_eq!(s.tally()["a"].recent, 51);
    }

    #[test]
    fn failures_are_classified_and_spikes_need_a_baseline() {
        let t0 = Instant::now();
        let mut s = VipStats::default();
        // A slow first answer is no spike: there is no p50 yet.
        s.record(t0, ok(500, "a"));
        for i in 1..20u64 {
            s.record(t0 + Duration::from_millis(i * 100), ok(2, "a"));
        }
        assert_eq!(s.by_kind.get(&ErrorKind::Spike), None);
        s.record(t0 + Duration::from_millis(2000), ok(11, "a"));
        assert_eq!(s.by_kind[&ErrorKind::Spike], 1, "11 ms > 5 x 2 ms");
        s.record(t0 + Duration::from_millis(2100), fail(ErrorKind::Timeout));
        s.record(t0 + Duration::from_millis(2200), fail(ErrorKind::NetErr));
        assert_eq!(s.failures, 2);
        assert_eq!(s.probes, 23);
        let kinds: Vec<ErrorKind> = s.errors().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [ErrorKind::NetErr, ErrorKind::Timeout, ErrorKind::Spike],
            "newest first"
        );
        assert_eq!(s.last.as_deref(), Some("net-err: x"));
    }

    #[test]
    fn the_error_panel_is_bounded() {
        let t0 = Instant::now();
        let mut s = VipStats::default();
        for i in 0..(ERRORS_KEPT as u64 + 50) {
            s.record(t0 + Duration::from_millis(i), fail(ErrorKind::HttpErr));
        }
        assert_eq!(s.errors().count(), ERRORS_KEPT);
        assert_eq!(s.by_kind[&ErrorKind::HttpErr], ERRORS_KEPT as u64 + 50);
    }
}
