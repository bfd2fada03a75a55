//! `maglevc set backend B drain --wait`: when is a backend drained? Pure:
//! the client feeds it the flows VPP reports for the backend, with the
//! time, and it says whether to keep waiting.

use std::time::{Duration, Instant};

/// How `--wait` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainWait {
    /// No flows for this long means drained (`--quiet-for`).
    pub quiet_for: Duration,
    /// Give up after this long (`--timeout`).
    pub timeout: Duration,
}

/// Default `--quiet-for`.
pub const QUIET_FOR: Duration = Duration::from_secs(10);
/// Default `--timeout`.
pub const TIMEOUT: Duration = Duration::from_secs(300);

impl Default for DrainWait {
    fn default() -> DrainWait {
        DrainWait {
            quiet_for: QUIET_FOR,
            timeout: TIMEOUT,
        }
    }
}

/// Takes `--wait`, `--quiet-for DUR` and `--timeout DUR` out of a command
/// line (either of the last two implies `--wait`); what is left goes to
/// maglevd. `Ok((line, None))` when there were none.
pub fn split_options(line: &str) -> Result<(String, Option<DrainWait>), String> {
    let mut words = Vec::new();
    let mut wait: Option<DrainWait> = None;
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (w, None),
        };
        let mut value = |what: &str| {
            inline
                .map(str::to_string)
                .or_else(|| it.next().map(str::to_string))
                .ok_or_else(|| format!("{name} needs {what}"))
                .and_then(|v| crate::config::parse_duration(&v).map_err(|e| format!("{name}: {e}")))
        };
        match name {
            "--wait" => {
                wait.get_or_insert_with(DrainWait::default);
            }
            "--quiet-for" => {
                wait.get_or_insert_with(DrainWait::default).quiet_for = value("a duration")?
            }
            "--timeout" => {
                wait.get_or_insert_with(DrainWait::default).timeout = value("a duration")?
            }
            _ => words.push(w),
        }
    }
    Ok((words.join(" "), wait))
}

/// What to do after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep asking.
    Waiting,
    /// No flows for `quiet_for`.
    Drained,
    /// `timeout` passed with flows left.
    TimedOut,
}

/// The waiting, as a state machine on observed flow counts.
#[derive(Debug, Clone)]
pub struct Watch {
    wait: DrainWait,
    deadline: Instant,
    quiet_since: Option<Instant>,
}

impl Watch {
    /// Starts waiting at `now`.
    pub fn new(now: Instant, wait: DrainWait) -> Watch {
        Watch {
            wait,
            deadline: now + wait.timeout,
            quiet_since: None,
        }
    }

    /// VPP reported `flows` for the backend (summed over its VIPs) at `now`.
    pub fn observe(&mut self, now: Instant, flows: u64) -> Verdict {
        if flows > 0 {
            self.quiet_since = None;
        } else {
            let since = *self.quiet_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.wait.quiet_for {
                return Verdict::Drained;
            }
        }
        if now >= self.deadline {
            Verdict::TimedOut
        } else {
            Verdict::Waiting
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_taken_out_of_the_line() {
        assert_eq!(
            split_options("set backend b drain").unwrap(),
            ("set backend b drain".into(), None)
        );
        let (l, w) =
            split_options("set backend b drain --wait --quiet-for 2s --timeout=1m").unwrap();
        assert_eq!(l, "set backend b drain");
        assert_eq!(
            w,
            Some(DrainWait {
                quiet_for: Duration::from_secs(2),
                timeout: Duration::from_secs(60)
            })
        );
        assert_eq!(
            split_options("set backend b drain --timeout 5s")
                .unwrap()
                .1
                .unwrap()
                .quiet_for,
            QUIET_FOR,
            "--timeout alone implies --wait"
        );
        assert!(split_options("set backend b drain --quiet-for").is_err());
        assert!(split_options("set backend b drain --quiet-for soon").is_err());
    }

    #[test]
    fn drained_after_quiet_for_without_flows_and_not_before() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = Watch::new(
            t0,
            DrainWait {
                quiet_for: Duration::from_secs(3),
                timeout: Duration::from_secs(60),
            },
        );
        assert_eq!(w.observe(s(0), 12), Verdict::Waiting);
        assert_eq!(w.observe(s(1), 0), Verdict::Waiting);
        assert_eq!(w.observe(s(2), 0), Verdict::Waiting);
        // A flow comes back (a client reconnecting hits a live entry): the
        // quiet period starts over.
        assert_eq!(w.observe(s(3), 1), Verdict::Waiting);
        assert_eq!(w.observe(s(4), 0), Verdict::Waiting);
        assert_eq!(w.observe(s(6), 0), Verdict::Waiting);
        assert_eq!(w.observe(s(7), 0), Verdict::Drained);
    }

    #[test]
    fn times_out_while_flows_remain() {
        let t0 = Instant::now();
        let mut w = Watch::new(
            t0,
            DrainWait {
                quiet_for: Duration::from_secs(1),
                timeout: Duration::from_secs(5),
            },
        );
        for n in 0..5 {
            assert_eq!(w.observe(t0 + Duration::from_secs(n), 3), Verdict::Waiting);
        }
        assert_eq!(w.observe(t0 + Duration::from_secs(5), 3), Verdict::TimedOut);
    }
}
