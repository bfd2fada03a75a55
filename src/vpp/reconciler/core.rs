//! The reconciler's decisions, without the thread: when to connect, when
//! to sync what, when to ping, when to wake. No socket, no clock, no
//! channel: the thread feeds it the time and what happened, asks it
//! [`Core::poll`] for the next thing to do and [`Core::next_wakeup`] for
//! how long it may sleep. Tested with a fake clock below.
//!
//! The policy, in the operator's terms:
//! - **Session.** Connect as soon as VPP is configured; after a failure
//!   or a lost session try again [`RECONNECT_FIRST`] later, then every
//!   [`RECONNECT_MAX`], measured from the failure, for as long as VPP is
//!   away. Every new session is followed by a full sync.
//! - **Warmup.** Until `startup-min-delay` nothing is changed in VPP
//!   (hands-off). Until `startup-max-delay` a frontend is released (and
//!   synced) once all its backends have a known state. At
//!   `startup-max-delay` warmup is done and everything is synced.
//! - **Syncs.** A changed frontend is synced at once; a full sync runs
//!   every `sync-interval` and whenever asked (reload, lagged events). A
//!   sync that failed without losing the session is retried after
//!   [`RETRY_AFTER`].
//! - **Liveness.** An otherwise quiet session is pinged every
//!   [`PING_EVERY`] (the thread also watches the socket for hang-up).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::vpp::lb::Scope;

/// An idle session is checked with `control_ping` this often (the
/// original's cadence).
pub const PING_EVERY: Duration = Duration::from_secs(10);
/// The first reconnect attempt after a failure.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// Reconnect attempts are never further apart than this, so a VPP that
/// comes back after any outage is found within a second.
pub const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// A sync that failed with the session intact waits this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Backoff between reconnect attempts: doubling from `min` to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    next_try: Option<Instant>,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            current: min,
            next_try: None,
        }
    }

    /// Whether an attempt is allowed at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.next_try.is_none_or(|t| now >= t)
    }

    /// Records a failure at `now`; returns the wait before the next try.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.current;
        self.next_try = Some(now + wait);
        self.current = (self.current * 2).min(self.max);
        wait
    }

    /// Records a success: the next failure waits `min` again.
    pub fn succeeded(&mut self) {
        self.current = self.min;
        self.next_try = None;
    }

    /// When the next attempt is allowed.
    pub fn next_try(&self) -> Option<Instant> {
        self.next_try
    }
}

/// The configured timing (`vpp.lb`); a reload may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `startup-min-delay`: hands-off until then.
    pub startup_min_delay: Duration,
    /// `startup-max-delay`: warmup ends then.
    pub startup_max_delay: Duration,
    /// `sync-interval`: full sync cadence.
    pub sync_interval: Duration,
}

impl Timing {
    /// The timing of `config`.
    pub fn of(config: &Config) -> Timing {
        let lb = &config.vpp.lb;
        Timing {
            startup_min_delay: lb.startup_min_delay,
            startup_max_delay: lb.startup_max_delay,
            sync_interval: lb.sync_interval,
        }
    }
}

/// Where warmup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before `startup-min-delay`: VPP is not changed.
    HandsOff,
    /// Released frontends are synced; the rest wait.
    Warming,
    /// Warmup is over (or disabled).
    Done,
}

/// What the thread should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a session with VPP.
    Connect,
    /// Sync this scope.
    Sync(Scope),
    /// Check the session with `control_ping`.
    Ping,
    /// Warmup just ended (log it; a full sync follows).
    WarmupDone,
}

/// The reconciler's state of mind.
#[derive(Debug, Clone)]
pub struct Core {
    timing: Timing,
    started: Instant,
    enabled: bool,
    connected: bool,
    backoff: Backoff,
    warm_done: bool,
    released: BTreeSet<String>,
    dirty: BTreeSet<String>,
    full_pending: bool,
    next_full: Option<Instant>,
    last_call: Instant,
    retry_at: Option<Instant>,
}

/// `t + d`, or `None` where that is beyond any clock (never).
fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

impl Core {
    /// A reconciler that started at `started` (the warmup clock: a reload
    /// does not reset it); `enabled` when a VPP API socket is configured.
    pub fn new(timing: Timing, started: Instant, enabled: bool) -> Core {
        Core {
            timing,
            started,
            enabled,
            connected: false,
            backoff: Backoff::new(RECONNECT_FIRST, RECONNECT_MAX),
            warm_done: false,
            released: BTreeSet::new(),
            dirty: BTreeSet::new(),
            full_pending: true,
            next_full: None,
            last_call: started,
            retry_at: None,
        }
    }

    /// A reload changed the timing.
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// The API socket changed (or VPP integration was switched on or
    /// off): the old session is gone, a new one gets a full sync.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        self.connected = false;
        self.backoff.succeeded();
        self.full_pending = true;
        self.retry_at = None;
    }

    /// Whether a VPP API socket is configured.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether a session is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// When the next connect attempt is allowed (while disconnected).
    pub fn next_connect(&self) -> Option<Instant> {
        (!self.connected).then(|| self.backoff.next_try()).flatten()
    }

    /// The warmup phase at `now`.
    pub fn phase(&self, now: Instant) -> Phase {
        if self.warm_done {
            return Phase::Done;
        }
        let t = now.saturating_duration_since(self.started);
        if t < self.timing.startup_min_delay {
            Phase::HandsOff
        } else if t < self.timing.startup_max_delay {
            Phase::Warming
        } else {
            Phase::Done
        }
    }

    /// Whether `frontend` may be programmed at `now`: after hands-off, and
    /// during warmup only once released.
    pub fn programmable(&self, frontend: &str, now: Instant) -> bool {
        match self.phase(now) {
            Phase::HandsOff => false,
            Phase::Warming => self.released.contains(frontend),
            Phase::Done => true,
        }
    }

    /// Frontends whose desired state changed (a backend transition, a
    /// weight set by the operator).
    pub fn frontends_changed(&mut self, names: impl IntoIterator<Item = String>) {
        self.dirty.extend(names);
    }

    /// Everything must be compared with VPP (a reload, lost events).
    pub fn full_sync_needed(&mut self) {
        self.full_pending = true;
    }

    /// Frontends whose backends all have a known state now: during the
    /// warmup window each is released once. Returns those released now.
    pub fn frontends_known(
        &mut self,
        now: Instant,
        known: impl IntoIterator<Item = String>,
    ) -> Vec<String> {
        if self.phase(now) != Phase::Warming {
            return Vec::new();
        }
        let mut out = Vec::new();
        for name in known {
            if self.released.insert(name.clone()) {
                self.dirty.insert(name.clone());
                out.push(name);
            }
        }
        out
    }

    /// Frontends waiting for a sync.
    pub fn dirty(&self) -> &BTreeSet<String> {
        &self.dirty
    }

    /// What to do at `now`, if anything. Call until `None`, reporting each
    /// action's outcome before the next call.
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        if !self.enabled {
            self.dirty.clear();
            return None;
        }
        if !self.connected {
            return self.backoff.ready(now).then_some(Action::Connect);
        }
        let phase = self.phase(now);
        if phase == Phase::Done && !self.warm_done {
            self.warm_done = true;
            self.full_pending = true;
            if !self.timing.startup_max_delay.is_zero() {
                return Some(Action::WarmupDone);
            }
        }
        let may_sync = phase != Phase::HandsOff && self.retry_at.is_none_or(|t| now >= t);
        if may_sync {
            if self.next_full.is_some_and(|t| now >= t) {
                self.full_pending = true;
            }
            if self.full_pending && phase == Phase::Done {
                return Some(Action::Sync(Scope::All));
            }
            let allowed: BTreeSet<String> = match phase {
                Phase::Warming => self.dirty.intersection(&self.released).cloned().collect(),
                _ => self.dirty.clone(),
            };
            if !allowed.is_empty() {
                return Some(Action::Sync(Scope::Frontends(allowed)));
            }
        }
        if after(self.last_call, PING_EVERY).is_some_and(|t| now >= t) {
            return Some(Action::Ping);
        }
        None
    }

    /// A session came up at `now`: everything is synced again (during
    /// warmup, what was already released).
    pub fn connected(&mut self, now: Instant) {
        self.connected = true;
        self.backoff.succeeded();
        self.last_call = now;
        self.full_pending = true;
        self.retry_at = None;
        if !self.warm_done {
            self.dirty.extend(self.released.iter().cloned());
        }
    }

    /// A connect attempt failed at `now` (when it returned); returns the
    /// wait before the next one.
    pub fn connect_failed(&mut self, now: Instant) -> Duration {
        self.connected = false;
        self.backoff.failed(now)
    }

    /// The session was lost at `now` (hang-up, I/O error, timeout);
    /// returns the wait before the next connect attempt.
    pub fn session_lost(&mut self, now: Instant) -> Duration {
        self.connect_failed(now)
    }

    /// A sync of `scope` completed at `now` (refused operations included:
    /// they are VPP's answer, not a reason to retry at once).
    pub fn synced(&mut self, now: Instant, scope: &Scope) {
        match scope {
            Scope::All => {
                self.dirty.clear();
                self.full_pending = false;
                self.next_full = after(now, self.timing.sync_interval);
            }
            Scope::Frontends(f) => {
                for n in f {
                    self.dirty.remove(n);
                }
            }
        }
        self.last_call = now;
        self.retry_at = None;
    }

    /// A sync could not run at `now` with the session intact (e.g. health
    /// state not published yet): its work waits [`RETRY_AFTER`].
    pub fn sync_failed(&mut self, now: Instant) {
        self.retry_at = after(now, RETRY_AFTER);
    }

    /// VPP answered something at `now` (a ping, an operator's read): the
    /// session is known alive, the next ping waits.
    pub fn called(&mut self, now: Instant) {
        self.last_call = now;
    }

    /// When the thread must wake up next if no input arrives; `None`:
    /// never. After [`Core::poll`] returned `None` at `now`, this is later
    /// than `now`.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        if !self.enabled {
            return None;
        }
        if !self.connected {
            return Some(self.backoff.next_try().unwrap_or(now));
        }
        let mut at: Vec<Option<Instant>> = vec![after(self.last_call, PING_EVERY)];
        let phase = self.phase(now);
        match phase {
            Phase::HandsOff => {
                at.push(after(self.started, self.timing.startup_min_delay));
            }
            Phase::Warming => {
                at.push(after(self.started, self.timing.startup_max_delay));
            }
            Phase::Done if !self.warm_done => at.push(Some(now)),
            Phase::Done => {}
        }
        if phase != Phase::HandsOff {
            let sync_at = self.retry_at.map_or(now, |t| t.max(now));
            let work = match phase {
                Phase::Done => self.full_pending || !self.dirty.is_empty(),
                _ => !self.dirty.is_disjoint(&self.released),
            };
            if work {
                at.push(Some(sync_at));
            }
            if let Some(full) = self.next_full {
                at.push(Some(full.max(sync_at)));
            }
        }
        at.into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    fn timing(min: u64, max: u64, sync: u64) -> Timing {
        Timing {
            startup_min_delay: Duration::from_secs(min),
            startup_max_delay: Duration::from_secs(max),
            sync_interval: Duration::from_secs(sync),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn fe(v: &[&str]) -> Scope {
        Scope::Frontends(v.iter().map(|s| s.to_string()).collect())
    }

    /// Drives the core like the thread does, with a fake clock: performs
    /// every action (all succeed), checks the idle invariant after each
    /// step, and returns what was done.
    struct Harness {
        core: Core,
        now: Instant,
        log: Vec<(Duration, Action)>,
        t0: Instant,
    }

    impl Harness {
        fn new(t: Timing) -> Harness {
            let t0 = Instant::now();
            Harness {
                core: Core::new(t, t0, true),
                now: t0,
                log: Vec::new(),
                t0,
            }
        }

        fn step(&mut self) {
            let mut guard = 0;
            while let Some(a) = self.core.poll(self.now) {
                guard += 1;
                assert!(guard < 100, "poll never settles: {a:?}");
                self.log.push((self.now - self.t0, a.clone()));
                match a {
                    Action::Connect => self.core.connected(self.now),
                    Action::Sync(scope) => self.core.synced(self.now, &scope),
                    Action::Ping => self.core.called(self.now),
                    Action::WarmupDone => {}
                }
            }
            if let Some(w) = self.core.next_wakeup(self.now) {
                assert!(
                    w > self.now,
                    "idle core wants a wake-up at or before now ({:?})",
                    self.now - self.t0
                );
            }
        }

        /// Advances to `t` (from start), waking exactly when the core asks.
        fn run_until(&mut self, t: Duration) {
            let end = self.t0 + t;
            self.step();
            loop {
                match self.core.next_wakeup(self.now) {
                    Some(w) if w <= end => self.now = w,
                    _ => break,
                }
                self.step();
            }
            self.now = end;
            self.step();
        }

        fn syncs(&self) -> Vec<(Duration, Scope)> {
            self.log
                .iter()
                .filter_map(|(t, a)| match a {
                    Action::Sync(s) => Some((*t, s.clone())),
                    _ => None,
                })
                .collect()
        }

        fn wakeups_between(&mut self, from: Duration, to: Duration) -> usize {
            let mut n = 0;
            self.now = self.t0 + from;
            while let Some(w) = self.core.next_wakeup(self.now) {
                if w > self.t0 + to {
                    break;
                }
                self.now = w;
                self.step();
                n += 1;
            }
            n
        }
    }

    #[test]
    fn backoff_doubles_to_max_and_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0), Duration::from_millis(500));
        assert!(!b.ready(t0));
        assert!(b.ready(t0 + Duration::from_millis(500)));
        assert_eq!(b.failed(t0), Duration::from_secs(1));
        assert_eq!(b.failed(t0), Duration::from_secs(2));
        assert_eq!(b.failed(t0), Duration::from_secs(2));
        b.succeeded();
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0), Duration::from_millis(500));
    }

    #[test]
    fn hands_off_then_per_frontend_release_then_full_sync_at_max() {
        let mut h = Harness::new(timing(5, 30, 60));
        h.step();
        assert_eq!(h.log, vec![(Duration::ZERO, Action::Connect)]);
        // A frontend known during hands-off is not released yet.
        assert!(h.core.frontends_known(h.now, names(&["web"])).is_empty());
        h.core.frontends_changed(names(&["web"]));
        h.run_until(Duration::from_secs(4));
        assert!(h.syncs().is_empty(), "hands-off: {:?}", h.syncs());
        // At min-delay the thread asks which frontends are known.
        h.run_until(Duration::from_secs(5));
        let released = h.core.frontends_known(h.now, names(&["web"]));
        assert_eq!(released, names(&["web"]));
        h.step();
        assert_eq!(h.syncs(), vec![(Duration::from_secs(5), fe(&["web"]))]);
        // Released once only.
        assert!(h.core.frontends_known(h.now, names(&["web"])).is_empty());
        // dns becomes known at 12 s.
        h.run_until(Duration::from_secs(12));
        assert_eq!(
            h.core.frontends_known(h.now, names(&["dns"])),
            names(&["dns"])
        );
        h.step();
        // An unreleased frontend's change waits for max-delay.
        h.core.frontends_changed(names(&["mail"]));
        h.run_until(Duration::from_secs(29));
        assert_eq!(h.syncs().len(), 2);
        h.run_until(Duration::from_secs(30));
        let syncs = h.syncs();
        assert_eq!(syncs[1], (Duration::from_secs(12), fe(&["dns"])));
        assert_eq!(syncs[2], (Duration::from_secs(30), Scope::All));
        assert!(h.log.iter().any(|(_, a)| *a == Action::WarmupDone));
        // After warmup, knowing frontends releases nothing.
        assert!(h.core.frontends_known(h.now, names(&["x"])).is_empty());
    }

    #[test]
    fn programmable_after_hands_off_and_release() {
        let mut h = Harness::new(timing(5, 30, 60));
        let t0 = h.now;
        assert!(!h.core.programmable("web", t0));
        h.now = t0 + Duration::from_secs(6);
        assert!(!h.core.programmable("web", h.now), "warming, not released");
        h.core.frontends_known(h.now, names(&["web"]));
        assert!(h.core.programmable("web", h.now));
        assert!(!h.core.programmable("api", h.now));
        h.now = t0 + Duration::from_secs(30);
        assert!(h.core.programmable("api", h.now), "warmup over");
    }

    #[test]
    fn warmup_disabled_syncs_everything_at_once() {
        let mut h = Harness::new(timing(0, 0, 60));
        h.step();
        assert_eq!(h.syncs(), vec![(Duration::ZERO, Scope::All)]);
        assert!(!h.log.iter().any(|(_, a)| *a == Action::WarmupDone));
    }

    #[test]
    fn full_sync_cadence_and_pings_only_when_quiet() {
        let mut h = Harness::new(timing(0, 0, 25));
        h.run_until(Duration::from_secs(100));
        let fulls: Vec<Duration> = h.syncs().into_iter().map(|(t, _)| t).collect();
        let secs: Vec<u64> = fulls.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![0, 25, 50, 75, 100]);
        // Pings fill the 10 s gaps since the last exchange: 10, 20, 35, 45, 60, ...
        let pings: Vec<u64> = h
            .log
            .iter()
            .filter(|(_, a)| *a == Action::Ping)
            .map(|(t, _)| t.as_secs())
            .collect();
        assert_eq!(pings, vec![10, 20, 35, 45, 60, 70, 85, 95]);
    }

    #[test]
    fn a_change_is_synced_at_once_and_alone() {
        let mut h = Harness::new(timing(0, 0, 3600));
        h.step();
        h.now += Duration::from_secs(3);
        h.core.frontends_changed(names(&["web"]));
        h.step();
        assert_eq!(
            h.syncs().last().unwrap(),
            &(Duration::from_secs(3), fe(&["web"]))
        );
        assert!(h.core.dirty().is_empty());
    }

    #[test]
    fn events_during_an_outage_coalesce_into_one_full_sync_on_return() {
        let mut h = Harness::new(timing(0, 0, 3600));
        h.step();
        let n = h.log.len();
        h.now += SEC;
        let wait = h.core.session_lost(h.now);
        assert_eq!(wait, RECONNECT_FIRST);
        for f in ["a", "b", "a", "c"] {
            h.core.frontends_changed(names(&[f]));
            assert_eq!(h.core.poll(h.now), None, "no sync without a session");
        }
        // Fails twice more, then VPP is back.
        h.now += RECONNECT_FIRST;
        assert_eq!(h.core.poll(h.now), Some(Action::Connect));
        assert_eq!(h.core.connect_failed(h.now), RECONNECT_MAX);
        h.now += RECONNECT_MAX;
        assert_eq!(h.core.poll(h.now), Some(Action::Connect));
        h.core.connected(h.now);
        h.step();
        let after: Vec<&(Duration, Action)> = h.log[n..].iter().collect();
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(after[0].1, Action::Sync(Scope::All));
        assert!(h.core.dirty().is_empty());
    }

    #[test]
    fn reconnect_attempts_are_at_most_a_second_apart_forever() {
        let t0 = Instant::now();
        let mut c = Core::new(timing(0, 0, 3600), t0, true);
        let mut now = t0;
        let mut attempts = Vec::new();
        while now < t0 + Duration::from_secs(120) {
            if c.poll(now) == Some(Action::Connect) {
                attempts.push(now);
                // The attempt took 300 ms (a VPP that accepts and stalls):
                // the wait is measured from the failure.
                now += 300 * MS;
                let wait = c.connect_failed(now);
                assert!(wait <= RECONNECT_MAX);
                assert_eq!(c.next_wakeup(now), Some(now + wait));
            }
            now = c.next_wakeup(now).unwrap();
        }
        for w in attempts.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap <= RECONNECT_MAX + 300 * MS, "gap {gap:?}");
            assert!(gap >= RECONNECT_FIRST + 300 * MS, "gap {gap:?}");
        }
        assert!(attempts.len() > 80, "{}", attempts.len());
    }

    #[test]
    fn a_new_session_during_warmup_redoes_what_was_released() {
        let mut h = Harness::new(timing(1, 30, 60));
        h.run_until(Duration::from_secs(2));
        h.core.frontends_known(h.now, names(&["web"]));
        h.step();
        assert_eq!(h.syncs().len(), 1);
        h.now += SEC;
        h.core.session_lost(h.now);
        h.run_until(Duration::from_secs(5));
        let syncs = h.syncs();
        assert_eq!(syncs.len(), 2, "{syncs:?}");
        assert_eq!(syncs[1].1, fe(&["web"]));
    }

    #[test]
    fn a_failed_sync_waits_before_retrying() {
        let mut h = Harness::new(timing(0, 0, 3600));
        h.step();
        h.core.frontends_changed(names(&["web"]));
        assert_eq!(h.core.poll(h.now), Some(Action::Sync(fe(&["web"]))));
        h.core.sync_failed(h.now);
        assert_eq!(h.core.poll(h.now), None);
        assert_eq!(h.core.next_wakeup(h.now), Some(h.now + RETRY_AFTER));
        h.now += RETRY_AFTER;
        assert_eq!(h.core.poll(h.now), Some(Action::Sync(fe(&["web"]))));
    }

    #[test]
    fn idle_means_no_wakeup_but_the_ping() {
        let mut h = Harness::new(timing(5, 30, 3600));
        // Warmup with nothing known: wakes at min, at max, then pings.
        let n = h.wakeups_between(Duration::ZERO, Duration::from_secs(40));
        // connect retry none; 5 (min), 10 (ping), 20 (ping), 30 (max), 40 (ping)
        assert!(n <= 6, "woke {n} times in 40 s");
        // Steady state: one wake-up per ping interval, nothing else.
        let n = h.wakeups_between(Duration::from_secs(40), Duration::from_secs(640));
        assert_eq!(n, 60);
    }

    #[test]
    fn disabled_never_wakes_and_drops_work() {
        let t0 = Instant::now();
        let mut c = Core::new(timing(5, 30, 60), t0, false);
        c.frontends_changed(names(&["web"]));
        assert_eq!(c.poll(t0), None);
        assert_eq!(c.next_wakeup(t0), None);
        assert!(c.dirty().is_empty());
        c.set_enabled(true);
        assert_eq!(c.poll(t0), Some(Action::Connect));
    }

    #[test]
    fn absurd_durations_never_overflow() {
        let t0 = Instant::now();
        let huge = Duration::from_secs(u64::MAX / 4);
        let mut c = Core::new(
            Timing {
                startup_min_delay: huge,
                startup_max_delay: huge,
                sync_interval: huge,
            },
            t0,
            true,
        );
        assert_eq!(c.poll(t0), Some(Action::Connect));
        c.connected(t0);
        assert_eq!(c.poll(t0), None);
        assert!(c.next_wakeup(t0).unwrap() > t0);
        let mut c = Core::new(timing(0, 0, u64::MAX / 4), t0, true);
        c.connected(t0);
        assert_eq!(c.poll(t0), Some(Action::Sync(Scope::All)));
        c.synced(t0, &Scope::All);
        assert!(c.next_wakeup(t0).unwrap() > t0);
    }
}
