//! The announcer's core: hold-down, the file's content and the reload's
//! lifecycle, as a value. Facts and a clock in, actions out; no I/O, no
//! threads (the loop in `announce::Announcer` performs the actions).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::bird;
use super::rule::{self, Facts, Reason};

/// First wait after a failed reload or write; doubles to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What the core is told once (and again at a reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// An address announces again only after this long servable.
    pub hold_down: Duration,
    /// A reload is killed after this long.
    pub reload_timeout: Duration,
    /// The BIRD set names.
    pub ipv4_set: String,
    /// The BIRD set names.
    pub ipv6_set: String,
    /// Warmup ends then: nothing is announced before.
    pub warm_until: Instant,
}

/// One address as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// In the file (or about to be).
    pub announced: bool,
    /// Why not announced (`None` while announced).
    pub reason: Option<Reason>,
    /// When `announced` last changed (or the address appeared).
    pub since: Instant,
    /// Servable without a break since then (hold-down runs from here).
    pub servable_since: Option<Instant>,
    /// Its frontends.
    pub frontends: Vec<String>,
}

/// How a reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Ok,
    /// It could not run or exited otherwise (the detail says how).
    Failed(String),
    /// Killed after `reload-timeout`.
    TimedOut,
}

impl Outcome {
    /// The metric label and log word: `ok`, `failed`, `timeout`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::TimedOut => "timeout",
        }
    }
}

/// The last reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReload {
    /// When it ended.
    pub at: Instant,
    /// How.
    pub outcome: Outcome,
    /// How long it ran.
    pub took: Duration,
}

/// What the loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the file with this content (atomically), then call
    /// [`Core::written`].
    Write(String),
    /// Run the reload argv; call [`Core::reload_done`] when it ends.
    Reload,
    /// The running reload passed its timeout: kill it (its end is then
    /// reported as [`Outcome::TimedOut`]).
    KillReload,
    /// An address was announced or withdrawn: log it, tell subscribers
    /// and run `notify` for each of its frontends.
    Changed {
        /// The address.
        address: IpAddr,
        /// Now announced.
        announced: bool,
        /// Why not, when withdrawn.
        reason: Option<Reason>,
        /// Its frontends.
        frontends: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reload {
    Idle,
    Running {
        started: Instant,
        deadline: Instant,
        killed: bool,
    },
    Waiting {
        until: Instant,
    },
}

/// The announcer's state of mind.
#[derive(Debug, Clone)]
pub struct Core {
    settings: Settings,
    facts: Facts,
    addrs: BTreeMap<IpAddr, Address>,
    /// What the file holds (`None`: unknown, write it).
    written: Option<String>,
    /// The file was written and BIRD has not read it yet.
    needs_reload: bool,
    reload: Reload,
    failures: u32,
    /// The first change not yet read by BIRD (for cause-to-reload time).
    cause: Option<Instant>,
    /// Cause of the content the running reload reads.
    running_cause: Option<Instant>,
    last: Option<LastReload>,
    /// Cause-to-reload-done times since the last [`Core::take_latencies`].
    latencies: Vec<Duration>,
    /// The last write failed with this.
    write_error: Option<String>,
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(1u32 << failures.saturating_sub(1).min(5))
        .min(BACKOFF_MAX)
}

impl Core {
    /// A core with `settings`, knowing what the file holds now (`None`:
    /// unknown or absent, so it is written at the first poll).
    pub fn new(settings: Settings, on_disk: Option<String>) -> Core {
        Core {
            settings,
            facts: Facts::default(),
            addrs: BTreeMap::new(),
            written: on_disk,
            needs_reload: false,
            reload: Reload::Idle,
            failures: 0,
            cause: None,
            running_cause: None,
            last: None,
            latencies: Vec::new(),
            write_error: None,
        }
    }

    /// A configuration reload changed the settings.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// The facts now (the core decides warming itself, from the clock).
    pub fn set_facts(&mut self, facts: Facts) {
        let (stopping, maintenance) = (self.facts.stopping, self.facts.maintenance);
        self.facts = Facts {
            stopping,
            maintenance,
            ..facts
        };
    }

    /// The operator's maintenance withdraw, on or off.
    pub fn set_maintenance(&mut self, on: bool) {
        self.facts.maintenance = on;
    }

    /// maglevd stops: every address is withdrawn.
    pub fn stop(&mut self) {
        self.facts.stopping = true;
    }

    /// The addresses, by address.
    pub fn addresses(&self) -> &BTreeMap<IpAddr, Address> {
        &self.addrs
    }

    /// The last reload, if any ended.
    pub fn last_reload(&self) -> Option<&LastReload> {
        self.last.as_ref()
    }

    /// Whether a reload runs now.
    #[cfg(test)]
    pub fn reloading(&self) -> bool {
        matches!(self.reload, Reload::Running { .. })
    }

    /// Why the file could not be written last time, if it could not.
    pub fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }

    /// Whether BIRD has read everything decided so far: the file holds
    /// what is wanted and no reload is owed or running.
    pub fn settled(&self) -> bool {
        self.written.as_deref() == Some(self.content().as_str())
            && !self.needs_reload
            && self.reload == Reload::Idle
    }

    /// Cause-to-reload-done times measured since the last call.
    pub fn take_latencies(&mut self) -> Vec<Duration> {
        std::mem::take(&mut self.latencies)
    }

    /// The file's content for the addresses announced now.
    pub fn content(&self) -> String {
        let on: Vec<IpAddr> = self
            .addrs
            .iter()
            .filter(|(_, a)| a.announced)
            .map(|(ip, _)| *ip)
            .collect();
        bird::render(&self.settings.ipv4_set, &self.settings.ipv6_set, &on)
    }

    /// Decides at `now`: applies the rule and the hold-down, then says what
    /// to do. Call again after performing the actions and reporting them.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        // The address changes; the file actions go before them.
        let mut changed = Vec::new();
        let mut facts = self.facts.clone();
        facts.warming = now < self.settings.warm_until;
        let verdicts = rule::verdicts(&facts);
        self.addrs.retain(|ip, a| {
            if verdicts.contains_key(ip) {
                return true;
            }
            // Gone from the configuration: withdrawn.
            if a.announced {
                changed.push(Action::Changed {
                    address: *ip,
                    announced: false,
                    reason: Some(Reason::Removed),
                    frontends: a.frontends.clone(),
                });
            }
            false
        });
        if !changed.is_empty() {
            self.cause.get_or_insert(now);
        }
        for (ip, v) in verdicts {
            let a = self.addrs.entry(ip).or_insert(Address {
                announced: false,
                reason: v.reason,
                since: now,
                servable_since: None,
                frontends: v.frontends.clone(),
            });
            a.frontends = v.frontends;
            let was = a.announced;
            match v.reason {
                Some(r) => {
                    // Withdraw at once.
                    a.servable_since = None;
                    a.announced = false;
                    a.reason = Some(r);
                }
                None => {
                    let since = *a.servable_since.get_or_insert(now);
                    if a.announced
                        || now.saturating_duration_since(since) >= self.settings.hold_down
                    {
                        a.announced = true;
                        a.reason = None;
                    } else {
                        a.reason = Some(Reason::HoldDown);
                    }
                }
            }
            if a.announced != was {
                a.since = now;
                self.cause.get_or_insert(now);
                changed.push(Action::Changed {
                    address: ip,
                    announced: a.announced,
                    reason: a.reason,
                    frontends: a.frontends.clone(),
                });
            }
        }
        // The file first: a notify script sees BIRD's file as it is told.
        let mut out = Vec::with_capacity(changed.len() + 1);
        self.file_actions(now, &mut out);
        out.extend(changed);
        out
    }

    fn file_actions(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Reload::Running {
            deadline,
            ref mut killed,
            ..
        } = self.reload
        {
            if now >= deadline && !*killed {
                *killed = true;
                out.push(Action::KillReload);
            }
        }
        // The file follows the verdicts at once, even while a reload runs
        // or waits out its backoff: a BIRD restarted meanwhile reads no
        // stale announce (the reload that tells it comes when it may).
        // A failed write itself waits out its backoff.
        let write_waits = self.write_error.is_some()
            && matches!(self.reload, Reload::Waiting { until } if now < until);
        let want = self.content();
        if !write_waits && self.written.as_deref() != Some(want.as_str()) {
            out.push(Action::Write(want));
            return;
        }
        match self.reload {
            Reload::Running { .. } => return,
            Reload::Waiting { until } if now < until => return,
            _ => {}
        }
        if self.needs_reload {
            self.reload = Reload::Running {
                started: now,
                deadline: now + self.settings.reload_timeout,
                killed: false,
            };
            self.running_cause = self.cause.take();
            out.push(Action::Reload);
        } else {
            self.reload = Reload::Idle;
        }
    }

    /// The write of `content` ended at `now` (`Err`: why it failed).
    pub fn written(&mut self, now: Instant, content: String, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.written = Some(content);
                self.needs_reload = true;
                // A write that failed waited; a reload that failed keeps
                // its backoff.
                if self.write_error.take().is_some()
                    && !matches!(self.reload, Reload::Running { .. })
                {
                    self.reload = Reload::Idle;
                }
            }
            Err(e) => {
                self.written = None;
                self.write_error = Some(e);
                self.failures += 1;
                self.reload = Reload::Waiting {
                    until: now + backoff(self.failures),
                };
            }
        }
    }

    /// The running reload ended at `now`.
    pub fn reload_done(&mut self, now: Instant, outcome: Outcome) {
        let started = match self.reload {
            Reload::Running { started, .. } => started,
            _ => now,
        };
        self.last = Some(LastReload {
            at: now,
            outcome: outcome.clone(),
            took: now.saturating_duration_since(started),
        });
        if outcome == Outcome::Ok {
            self.failures = 0;
            self.needs_reload = false;
            self.reload = Reload::Idle;
            if let Some(c) = self.running_cause.take() {
                self.latencies.push(now.saturating_duration_since(c));
            }
        } else {
            self.failures += 1;
            self.needs_reload = true;
            // Its changes are still to be read: keep their cause.
            if let Some(c) = self.running_cause.take() {
                self.cause = Some(self.cause.map_or(c, |x| x.min(c)));
            }
            self.reload = Reload::Waiting {
                until: now + backoff(self.failures),
            };
        }
    }

    /// When the loop must call [`Core::poll`] again if nothing else
    /// happens; `None`: never.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let mut at: Vec<Instant> = Vec::new();
        if now < self.settings.warm_until {
            at.push(self.settings.warm_until);
        }
        for a in self.addrs.values() {
            if let (false, Some(s)) = (a.announced, a.servable_since) {
                at.push(s + self.settings.hold_down);
            }
        }
        match self.reload {
            Reload::Running {
                deadline,
                killed: false,
                ..
            } => at.push(deadline),
            Reload::Waiting { until } => at.push(until),
            _ => {}
        }
        at.into_iter().min().map(|t| t.max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::rule::FrontendFacts;
    use crate::checker::events::Dataplane;
    use crate::config::AnnounceMode;
    use crate::health::weights::FrontendState;

    const SEC: Duration = Duration::from_secs(1);

    struct H {
        core: Core,
        t0: Instant,
        now: Instant,
        /// (seconds since t0, action) of everything done.
        log: Vec<(u64, Action)>,
        /// Reloads answer this.
        answer: Option<Outcome>,
        /// Writes fail with this.
        write_fails: Option<String>,
    }

    fn settings(t0: Instant) -> Settings {
        Settings {
            hold_down: 5 * SEC,
            reload_timeout: 5 * SEC,
            ipv4_set: "V4".into(),
            ipv6_set: "V6".into(),
            warm_until: t0 + 10 * SEC,
        }
    }

    impl H {
        fn new() -> H {
            let t0 = Instant::now();
            H {
                core: Core::new(settings(t0), None),
                t0,
                now: t0,
                log: Vec::new(),
                answer: Some(Outcome::Ok),
                write_fails: None,
            }
        }

        /// Polls until nothing is left to do, performing every action
        /// (reloads end at once with `answer`, or stay running if `None`).
        fn step(&mut self) {
            for _ in 0..20 {
                let acts = self.core.poll(self.now);
                if acts.is_empty() {
                    return;
                }
                for a in acts {
                    let t = (self.now - self.t0).as_secs();
                    self.log.push((t, a.clone()));
                    match a {
                        Action::Write(c) => {
                            let r = self.write_fails.clone().map_or(Ok(()), Err);
                            self.core.written(self.now, c, r);
                        }
                        Action::Reload => {
                            if let Some(o) = self.answer.clone() {
                                self.core.reload_done(self.now, o);
                            }
                        }
                        Action::KillReload => {
                            self.core.reload_done(self.now, Outcome::TimedOut);
                        }
                        Action::Changed { .. } => {}
                    }
                }
            }
            panic!("poll never settles");
        }

        /// Advances the fake clock to `secs` since t0, waking the core at
        /// every deadline it names on the way (as the loop does).
        fn run_to(&mut self, secs: u64) {
            let end = self.t0 + Duration::from_secs(secs);
            self.step();
            while let Some(w) = self.core.next_wakeup(self.now) {
                if w > end {
                    break;
                }
                assert!(w > self.now || !self.core.poll(self.now).is_empty() || w == self.now);
                self.now = w.max(self.now + Duration::from_millis(1)).min(end);
                self.step();
                if self.now == end {
                    break;
                }
            }
            self.now = end;
            self.step();
        }

        fn facts(&mut self, state: FrontendState, vpp: Dataplane, connected: bool) {
            self.core.set_facts(Facts {
                vpp_connected: connected,
                frontends: vec![FrontendFacts {
                    name: "web".into(),
                    address: "192.0.2.1".parse().unwrap(),
                    mode: AnnounceMode::Healthy,
                    state,
                    vpp,
                }],
                ..Facts::default()
            });
        }

        fn changes(&self) -> Vec<(u64, bool, Option<Reason>)> {
            self.log
                .iter()
                .filter_map(|(t, a)| match a {
                    Action::Changed {
                        announced, reason, ..
                    } => Some((*t, *announced, *reason)),
                    _ => None,
                })
                .collect()
        }

        fn writes(&self) -> Vec<(u64, String)> {
            self.log
                .iter()
                .filter_map(|(t, a)| match a {
                    Action::Write(c) => Some((*t, c.clone())),
                    _ => None,
                })
                .collect()
        }

        /// Seconds since t0 of each action from `from` on that `which` picks.
        fn times(&self, from: u64, which: fn(&Action) -> bool) -> Vec<u64> {
            self.log
                .iter()
                .filter(|(t, a)| *t >= from && which(a))
                .map(|(t, _)| *t)
                .collect()
        }

        fn announced(&self) -> bool {
            self.core.addresses()[&"192.0.2.1".parse::<IpAddr>().unwrap()].announced
        }
    }

    fn healthy(h: &mut H) {
        h.facts(FrontendState::Up, Dataplane::Ok, true);
    }

    #[test]
    fn nothing_before_warmup_ends_then_after_hold_down() {
        let mut h = H::new();
        healthy(&mut h);
        h.step();
        // The empty file is written and read at once (routes a crash left
        // behind are withdrawn at start).
        assert_eq!(h.writes().len(), 1);
        assert!(h.writes()[0].1.contains("define V4 = [ ];"));
        assert!(!h.announced());
        h.run_to(14);
        assert!(!h.announced(), "hold-down runs from the end of warmup");
        h.run_to(15);
        assert!(h.announced());
        assert_eq!(h.changes(), vec![(15, true, None)]);
        let w = h.writes();
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].0, 15);
        assert!(
            w[1].1.contains("define V4 = [ 192.0.2.1/32 ];"),
            "{}",
            w[1].1
        );
        assert!(h.core.settled());
        assert_eq!(h.core.next_wakeup(h.now), None, "idle: no wake-up");
    }

    #[test]
    fn withdraw_is_immediate_and_return_waits_hold_down_of_continuous_servability() {
        let mut h = H::new();
        healthy(&mut h);
        h.run_to(20);
        assert!(h.announced());
        h.log.clear();
        h.facts(FrontendState::Up, Dataplane::Pending, false);
        h.step();
        assert_eq!(h.changes(), vec![(20, false, Some(Reason::VppDown))]);
        // Back at 21, bouncing at 23: hold-down starts over at 24.
        h.now = h.t0 + 21 * SEC;
        healthy(&mut h);
        h.run_to(23);
        h.facts(FrontendState::Down, Dataplane::Ok, true);
        h.step();
        assert!(!h.announced());
        h.now = h.t0 + 24 * SEC;
        healthy(&mut h);
        h.run_to(28);
        assert!(!h.announced());
        h.run_to(29);
        assert!(h.announced());
        assert_eq!(
            h.changes(),
            vec![(20, false, Some(Reason::VppDown)), (29, true, None)]
        );
        let why = h.core.addresses().values().next().unwrap().reason;
        assert_eq!(why, None);
    }

    #[test]
    fn hold_down_is_shown_as_the_reason_while_it_runs() {
        let mut h = H::new();
        healthy(&mut h);
        h.run_to(12);
        let a = h.core.addresses().values().next().unwrap().clone();
        assert_eq!(a.reason, Some(Reason::HoldDown));
        assert_eq!(a.servable_since, Some(h.t0 + 10 * SEC));
    }

    #[test]
    fn failing_reload_is_retried_with_backoff_and_changes_coalesce() {
        let mut h = H::new();
        healthy(&mut h);
        h.answer = Some(Outcome::Failed("exit status 1".into()));
        h.step();
        let reloads = |h: &H| h.times(0, |a| *a == Action::Reload);
        h.run_to(8);
        // Tries at 0, then after 1, 2, 4 s: 1, 3, 7.
        assert_eq!(reloads(&h), vec![0, 1, 3, 7]);
        assert_eq!(h.writes().len(), 1, "written once, read again and again");
        assert_eq!(
            h.core.last_reload().unwrap().outcome,
            Outcome::Failed("exit status 1".into())
        );
        h.answer = Some(Outcome::Ok);
        h.run_to(16);
        assert_eq!(reloads(&h), vec![0, 1, 3, 7, 15]);
        assert!(h.announced());
        // The announce at 15 waited for the backoff, then took one write
        // and the one reload: nothing in between.
        assert_eq!(h.writes().len(), 2);
    }

    #[test]
    fn the_file_follows_at_once_while_a_failing_reload_waits() {
        let mut h = H::new();
        healthy(&mut h);
        h.run_to(20);
        assert!(h.announced());
        h.answer = Some(Outcome::Failed("exit status 1".into()));
        h.core.set_maintenance(true);
        h.run_to(24);
        h.core.set_maintenance(false);
        h.run_to(30);
        assert!(h.announced());
        // The withdraw at 20 and the announce at 29 (hold-down after 24)
        // are in the file when they happen; the reloads keep their backoff.
        assert_eq!(h.times(20, |a| matches!(a, Action::Write(_))), vec![20, 29]);
        assert_eq!(h.times(20, |a| *a == Action::Reload), vec![20, 21, 23, 27]);
        assert!(h.writes().last().unwrap().1.contains("192.0.2.1/32"));
    }

    #[test]
    fn a_hung_reload_is_killed_after_its_timeout_and_one_runs_at_a_time() {
        let mut h = H::new();
        healthy(&mut h);
        h.answer = None; // reloads hang
        h.step();
        assert!(h.core.reloading());
        // Changes while it runs: no second reload, no write.
        h.now = h.t0 + 2 * SEC;
        h.facts(FrontendState::Down, Dataplane::Ok, true);
        h.step();
        assert_eq!(h.writes().len(), 1);
        assert_eq!(h.core.next_wakeup(h.now), Some(h.t0 + 5 * SEC));
        h.now = h.t0 + 5 * SEC;
        h.step();
        let kills = h
            .log
            .iter()
            .filter(|(_, a)| *a == Action::KillReload)
            .count();
        assert_eq!(kills, 1);
        assert_eq!(h.core.last_reload().unwrap().outcome, Outcome::TimedOut);
        assert!(!h.core.reloading());
    }

    #[test]
    fn a_failed_write_is_retried_and_nothing_is_reloaded_meanwhile() {
        let mut h = H::new();
        healthy(&mut h);
        h.write_fails = Some("Permission denied".into());
        h.run_to(4);
        assert!(h.log.iter().all(|(_, a)| *a != Action::Reload));
        assert_eq!(h.core.write_error(), Some("Permission denied"));
        // 0, then after 1 and 2 s.
        let w: Vec<u64> = h.writes().iter().map(|(t, _)| *t).collect();
        assert_eq!(w, vec![0, 1, 3]);
        h.write_fails = None;
        h.run_to(8);
        assert!(h.core.settled());
        assert_eq!(h.core.write_error(), None);
    }

    #[test]
    fn stop_and_maintenance_withdraw_everything() {
        let mut h = H::new();
        healthy(&mut h);
        h.run_to(20);
        h.core.set_maintenance(true);
        h.step();
        assert_eq!(
            h.changes().last(),
            Some(&(20, false, Some(Reason::Maintenance)))
        );
        // A refresh of the facts keeps maintenance on.
        healthy(&mut h);
        h.run_to(40);
        assert!(!h.announced());
        h.core.set_maintenance(false);
        h.run_to(45);
        assert!(h.announced());
        h.core.stop();
        h.step();
        assert_eq!(
            h.changes().last(),
            Some(&(45, false, Some(Reason::Stopping)))
        );
        assert!(h.writes().last().unwrap().1.contains("define V4 = [ ];"));
        assert!(h.core.settled());
    }

    #[test]
    fn a_file_already_right_is_not_written_again() {
        let t0 = Instant::now();
        let s = settings(t0);
        let empty = bird::render(&s.ipv4_set, &s.ipv6_set, &[]);
        let mut core = Core::new(s, Some(empty));
        assert!(core.poll(t0).is_empty());
        assert!(core.settled());
    }

    #[test]
    fn cause_to_reload_done_is_measured() {
        let mut h = H::new();
        healthy(&mut h);
        h.run_to(20);
        h.core.take_latencies();
        h.answer = None;
        h.facts(FrontendState::Down, Dataplane::Ok, true);
        h.step();
        h.now += Duration::from_millis(300);
        h.core.reload_done(h.now, Outcome::Ok);
        assert_eq!(h.core.take_latencies(), vec![Duration::from_millis(300)]);
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let b: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(b, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
