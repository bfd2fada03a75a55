//! One backend's health: HAProxy's single-counter rise/fall model.
//!
//! Pure: no clock, no randomness, no I/O. Callers pass `now` and results in,
//! and get transitions and the next probe interval out.
//!
//! The counter runs from 0 to `rise + fall - 1`. A pass adds one, a failure
//! takes one away; the backend is up while the counter is at least `rise`.
//! So a fully-up backend needs `fall` failures to go down, a fully-down one
//! needs `rise` passes to come up, and flapping stays inside the band. A
//! backend entering `unknown` starts at `rise - 1`: one pass brings it up,
//! and any failure while unknown brings it down at once.

use std::collections::VecDeque;
use std::fmt;
use std::time::SystemTime;

use crate::probe::{Code, Outcome};

/// The states operators see, with their exact spellings (on the wire too:
/// serde uses [`State::as_str`]'s words).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No verdict yet (new, restarted, resumed or re-enabled).
    Unknown,
    /// Healthy: eligible for traffic.
    Up,
    /// Failed enough consecutive probes.
    Down,
    /// Probing stopped by an operator; keeps its place in config.
    Paused,
    /// Taken out by an operator (or `enabled: false`); no probes.
    Disabled,
    /// Gone from the configuration at the last reload.
    Removed,
}

impl State {
    /// Every state, for exhaustive tests and metrics.
    pub const ALL: [State; 6] = [
        State::Unknown,
        State::Up,
        State::Down,
        State::Paused,
        State::Disabled,
        State::Removed,
    ];

    /// The operator's word for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
            State::Paused => "paused",
            State::Disabled => "disabled",
            State::Removed => "removed",
        }
    }

    /// Whether probes are sent in this state.
    pub fn is_probed(self) -> bool {
        matches!(self, State::Unknown | State::Up | State::Down)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recorded state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Wall-clock time of the change.
    pub at: SystemTime,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Probe code that caused it; `None` for operator actions and reloads.
    pub code: Option<Code>,
    /// Human detail (`HTTP 503`, `paused by operator`).
    pub detail: String,
}

/// Which probe period applies now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// Fully up: `interval`.
    Normal,
    /// Unknown or degraded: `fast-interval`.
    Fast,
    /// Fully down: `down-interval`.
    Down,
    /// Not probed (paused, disabled, removed).
    Stopped,
}

/// Why an operator action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// Pause/resume of a disabled backend: enable it first.
    Disabled,
    /// The backend was removed from the configuration.
    Removed,
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ActionError::Disabled => f.write_str("backend is disabled; enable it first"),
            ActionError::Removed => f.write_str("backend was removed from the configuration"),
        }
    }
}

impl std::error::Error for ActionError {}

/// The last probe's verdict, for `show backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastProbe {
    /// When it finished.
    pub at: SystemTime,
    /// Its outcome.
    pub outcome: Outcome,
}

/// Health of one backend.
#[derive(Debug, Clone)]
pub struct Health {
    state: State,
    counter: u32,
    rise: u32,
    fall: u32,
    enabled: bool,
    history: VecDeque<Transition>,
    history_len: usize,
    last: Option<LastProbe>,
}

impl Health {
    /// A backend as configured: `unknown`, or `disabled` when not enabled.
    pub fn new(rise: u32, fall: u32, history_len: usize, enabled: bool) -> Health {
        let rise = rise.max(1);
        Health {
            state: if enabled {
                State::Unknown
            } else {
                State::Disabled
            },
            counter: rise - 1,
            rise,
            fall: fall.max(1),
            enabled,
            history: VecDeque::with_capacity(history_len.min(16)),
            history_len: history_len.max(1),
            last: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Current counter, 0..=rise+fall-1 (`maglev_backend_health`).
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// Highest counter value.
    pub fn max(&self) -> u32 {
        self.rise + self.fall - 1
    }

    /// Runtime enabled flag (survives reloads that keep the health check).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Past transitions, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Transition> {
        self.history.iter()
    }

    /// The last probe, if any.
    pub fn last(&self) -> Option<&LastProbe> {
        self.last.as_ref()
    }

    /// Applies one probe outcome; returns the transition it caused, if any.
    /// Results in paused, disabled and removed states are ignored. A probe
    /// that could not be attempted ([`Code::Local`]) is shown as the last
    /// probe but moves nothing: local trouble is not the backend's.
    pub fn record(&mut self, outcome: &Outcome, at: SystemTime) -> Option<Transition> {
        if !self.state.is_probed() {
            return None;
        }
        self.last = Some(LastProbe {
            at,
            outcome: outcome.clone(),
        });
        if outcome.code == Code::Local {
            return None;
        }
        let max = self.max();
        let pass = outcome.code.passed();
        if pass {
            self.counter = (self.counter + 1).min(max);
        } else {
            self.counter = self.counter.saturating_sub(1);
        }
        let next = if self.state == State::Unknown && !pass {
            State::Down
        } else if self.counter >= self.rise {
            State::Up
        } else if self.state == State::Unknown {
            State::Unknown
        } else {
            State::Down
        };
        self.go(next, Some(outcome.code), &outcome.detail, at)
    }

    /// Which period the next probe waits.
    pub fn cadence(&self) -> Cadence {
        match self.state {
            State::Paused | State::Disabled | State::Removed => Cadence::Stopped,
            State::Unknown => Cadence::Fast,
            _ if self.counter == self.max() => Cadence::Normal,
            State::Down if self.counter == 0 => Cadence::Down,
            _ => Cadence::Fast,
        }
    }

    /// Operator pause: stops probing. Refused while disabled.
    pub fn pause(&mut self, at: SystemTime) -> Result<Option<Transition>, ActionError> {
        self.refuse_removed()?;
        if self.state == State::Disabled {
            return Err(ActionError::Disabled);
        }
        Ok(self.go(State::Paused, None, "paused by operator", at))
    }

    /// Operator resume: back to `unknown`, probing again. Refused while
    /// disabled; a backend that is not paused is left alone.
    pub fn resume(&mut self, at: SystemTime) -> Result<Option<Transition>, ActionError> {
        self.refuse_removed()?;
        match self.state {
            State::Disabled => Err(ActionError::Disabled),
            State::Paused => Ok(self.restart("resumed by operator", at)),
            _ => Ok(None),
        }
    }

    /// Operator disable: no probes, weight 0 with flush. Idempotent.
    pub fn disable(&mut self, at: SystemTime) -> Result<Option<Transition>, ActionError> {
        self.refuse_removed()?;
        self.enabled = false;
        Ok(self.go(
            State::Disabled,
            Some(Code::Disabled),
            "disabled by operator",
            at,
        ))
    }

    /// Operator enable: a disabled backend restarts at `unknown`; any other
    /// only has its flag set. Idempotent.
    pub fn enable(&mut self, at: SystemTime) -> Result<Option<Transition>, ActionError> {
        self.refuse_removed()?;
        self.enabled = true;
        if self.state == State::Disabled {
            Ok(self.restart("enabled by operator", at))
        } else {
            Ok(None)
        }
    }

    /// The backend left the configuration.
    pub fn remove(&mut self, at: SystemTime) -> Option<Transition> {
        self.go(State::Removed, None, "removed from configuration", at)
    }

    /// Starts over at `unknown` (health check changed, resumed, enabled).
    pub fn restart(&mut self, detail: &str, at: SystemTime) -> Option<Transition> {
        self.counter = self.rise - 1;
        self.go(State::Unknown, None, detail, at)
    }

    /// The backend's health check or address changed on reload: adopt the
    /// new rise/fall and start over at `unknown` (`disabled` when the new
    /// configuration says so), keeping the transition history.
    pub fn reconfigure(
        &mut self,
        rise: u32,
        fall: u32,
        enabled: bool,
        detail: &str,
        at: SystemTime,
    ) -> Option<Transition> {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
        self.enabled = enabled;
        self.last = None;
        self.counter = self.rise - 1;
        if enabled {
            self.go(State::Unknown, None, detail, at)
        } else {
            self.go(State::Disabled, Some(Code::Disabled), detail, at)
        }
    }

    /// Changes how many transitions are kept.
    pub fn set_history_len(&mut self, len: usize) {
        self.history_len = len.max(1);
        while self.history.len() > self.history_len {
            self.history.pop_front();
        }
    }

    fn refuse_removed(&self) -> Result<(), ActionError> {
        if self.state == State::Removed {
            Err(ActionError::Removed)
        } else {
            Ok(())
        }
    }

    fn go(
        &mut self,
        to: State,
        code: Option<Code>,
        detail: &str,
        at: SystemTime,
    ) -> Option<Transition> {
        if to == self.state {
            return None;
        }
        let t = Transition {
            at,
            from: self.state,
            to,
            code,
            detail: detail.to_string(),
        };
        self.state = to;
        if self.history.len() == self.history_len {
            self.history.pop_front();
        }
        self.history.push_back(t.clone());
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    fn pass() -> Outcome {
        Outcome::new(Code::L4Ok, "connected", Duration::from_millis(1))
    }

    fn fail() -> Outcome {
        Outcome::new(Code::L4Con, "connection refused", Duration::from_millis(1))
    }

    fn feed(h: &mut Health, seq: &str) -> Vec<State> {
        seq.chars()
            .map(|c| {
                let o = if c == '+' { pass() } else { fail() };
                h.record(&o, t0());
                h.state()
            })
            .collect()
    }

    use State::*;

    #[test]
    fn starts_unknown_preloaded_or_disabled() {
        let h = Health::new(2, 3, 5, true);
        assert_eq!((h.state(), h.counter(), h.max()), (Unknown, 1, 4));
        assert_eq!(Health::new(2, 3, 5, false).state(), Disabled);
    }

    #[test]
    fn one_pass_from_unknown_is_up() {
        let mut h = Health::new(2, 3, 5, true);
        assert_eq!(feed(&mut h, "+"), vec![Up]);
        assert_eq!(h.counter(), 2);
        let mut h = Health::new(5, 3, 5, true);
        assert_eq!(feed(&mut h, "+"), vec![Up]);
    }

    #[test]
    fn any_failure_from_unknown_is_down() {
        let mut h = Health::new(2, 3, 5, true);
        assert_eq!(feed(&mut h, "-"), vec![Down]);
        assert_eq!(h.counter(), 0);
        // rise 3: counter 2 → 1, still below rise: two passes to come up.
        let mut h = Health::new(3, 3, 5, true);
        assert_eq!(feed(&mut h, "-++"), vec![Down, Down, Up]);
    }

    #[test]
    fn rise_two_fall_three_band() {
        // Max 4: 0,1 down; 2,3,4 up.
        let mut h = Health::new(2, 3, 5, true);
        assert_eq!(
            feed(&mut h, "+++---"),
            vec![Up, Up, Up, Up, Up, Down],
            "fully up needs fall=3 failures"
        );
        assert_eq!(h.counter(), 1);
        assert_eq!(
            feed(&mut h, "-++"),
            vec![Down, Down, Up],
            "fully down needs rise=2 passes"
        );
    }

    #[test]
    fn barely_up_falls_on_the_next_failure() {
        // A plain counter: only a *fully* up backend has `fall` failures of
        // slack. (The original's prose claims more; its own table does not.)
        let mut h = Health::new(2, 3, 5, true);
        feed(&mut h, "+"); // counter 2 (= rise), up
        assert_eq!(feed(&mut h, "-"), vec![Down], "counter 1 < rise");
        let mut h = Health::new(2, 3, 5, true);
        feed(&mut h, "++"); // counter 3
        assert_eq!(feed(&mut h, "--"), vec![Up, Down]);
    }

    #[test]
    fn flapping_stays_in_band() {
        let mut h = Health::new(2, 3, 5, true);
        feed(&mut h, "++++"); // 4, max
        assert_eq!(feed(&mut h, "-+-+-+"), vec![Up; 6]);
        assert_eq!(h.counter(), 4);
    }

    #[test]
    fn counter_saturates() {
        let mut h = Health::new(1, 1, 5, true);
        assert_eq!(h.max(), 1);
        assert_eq!(feed(&mut h, "++++"), vec![Up; 4]);
        assert_eq!(h.counter(), 1);
        assert_eq!(feed(&mut h, "----"), vec![Down; 4]);
        assert_eq!(h.counter(), 0);
        assert_eq!(feed(&mut h, "+"), vec![Up]);
    }

    #[test]
    fn cadence_follows_the_counter() {
        let mut h = Health::new(2, 3, 5, true);
        assert_eq!(h.cadence(), Cadence::Fast, "unknown");
        feed(&mut h, "+");
        assert_eq!(h.cadence(), Cadence::Fast, "up but degraded (2 < 4)");
        feed(&mut h, "++");
        assert_eq!(h.cadence(), Cadence::Normal, "fully up");
        feed(&mut h, "-");
        assert_eq!(h.cadence(), Cadence::Fast, "degraded");
        feed(&mut h, "---");
        assert_eq!(
            (h.state(), h.cadence()),
            (Down, Cadence::Down),
            "fully down"
        );
        feed(&mut h, "+");
        assert_eq!(
            (h.state(), h.cadence()),
            (Down, Cadence::Fast),
            "recovering"
        );
        h.pause(t0()).unwrap();
        assert_eq!(h.cadence(), Cadence::Stopped);
    }

    #[test]
    fn inactive_states_ignore_results() {
        for setup in [
            (|h: &mut Health| {
                h.pause(t0()).unwrap();
            }) as fn(&mut Health),
            |h| {
                h.disable(t0()).unwrap();
            },
            |h| {
                h.remove(t0());
            },
        ] {
            let mut h = Health::new(2, 3, 5, true);
            setup(&mut h);
            let before = (h.state(), h.counter());
            assert_eq!(h.record(&pass(), t0()), None);
            assert_eq!(h.record(&fail(), t0()), None);
            assert_eq!((h.state(), h.counter()), before);
            assert_eq!(h.last(), None);
        }
    }

    #[test]
    fn pause_and_resume() {
        let mut h = Health::new(2, 3, 5, true);
        feed(&mut h, "+++");
        let t = h.pause(t0()).unwrap().unwrap();
        assert_eq!((t.from, t.to, t.code), (Up, Paused, None));
        assert_eq!(h.pause(t0()), Ok(None), "idempotent");
        let t = h.resume(t0()).unwrap().unwrap();
        assert_eq!((t.from, t.to), (Paused, Unknown));
        assert_eq!(h.counter(), 1, "preloaded to rise-1");
        assert_eq!(h.resume(t0()), Ok(None), "not paused: no-op");
    }

    #[test]
    fn pause_and_resume_refused_while_disabled() {
        let mut h = Health::new(2, 3, 5, false);
        assert_eq!(h.pause(t0()), Err(ActionError::Disabled));
        assert_eq!(h.resume(t0()), Err(ActionError::Disabled));
        assert_eq!(h.state(), Disabled);
    }

    #[test]
    fn disable_and_enable() {
        let mut h = Health::new(2, 3, 5, true);
        feed(&mut h, "+");
        let t = h.disable(t0()).unwrap().unwrap();
        assert_eq!((t.from, t.to, t.code), (Up, Disabled, Some(Code::Disabled)));
        assert!(!h.enabled());
        assert_eq!(h.disable(t0()), Ok(None), "idempotent");
        let t = h.enable(t0()).unwrap().unwrap();
        assert_eq!((t.from, t.to), (Disabled, Unknown));
        assert!(h.enabled());
        assert_eq!(h.enable(t0()), Ok(None), "not disabled: only the flag");
        // Disabling a paused backend works and clears the pause.
        h.pause(t0()).unwrap();
        assert_eq!(h.disable(t0()).unwrap().unwrap().from, Paused);
    }

    #[test]
    fn removed_refuses_actions() {
        let mut h = Health::new(2, 3, 5, true);
        let t = h.remove(t0()).unwrap();
        assert_eq!((t.from, t.to), (Unknown, Removed));
        assert_eq!(h.pause(t0()), Err(ActionError::Removed));
        assert_eq!(h.resume(t0()), Err(ActionError::Removed));
        assert_eq!(h.enable(t0()), Err(ActionError::Removed));
        assert_eq!(h.disable(t0()), Err(ActionError::Removed));
    }

    #[test]
    fn history_is_bounded_and_ordered() {
        let mut h = Health::new(1, 1, 3, true);
        feed(&mut h, "+-+-+");
        let hist: Vec<(State, State)> = h.history().map(|t| (t.from, t.to)).collect();
        assert_eq!(hist, vec![(Down, Up), (Up, Down), (Down, Up)]);
        let last = h.history().last().unwrap();
        assert_eq!(last.code, Some(Code::L4Ok));
        assert_eq!(last.detail, "connected");
    }

    #[test]
    fn transitions_carry_code_and_detail() {
        let mut h = Health::new(2, 3, 5, true);
        let t = h.record(&fail(), t0()).unwrap();
        assert_eq!(
            (t.code, t.detail.as_str()),
            (Some(Code::L4Con), "connection refused")
        );
        assert_eq!(h.last().unwrap().outcome.code, Code::L4Con);
    }

    #[test]
    fn reconfigure_restarts_and_keeps_history() {
        let mut h = Health::new(2, 3, 5, true);
        feed(&mut h, "+");
        let t = h
            .reconfigure(3, 1, true, "health check changed", t0())
            .unwrap();
        assert_eq!((t.from, t.to), (Up, Unknown));
        assert_eq!((h.counter(), h.max()), (2, 3));
        assert_eq!(h.history().count(), 2);
        assert_eq!(h.last(), None);
        let t = h
            .reconfigure(3, 1, false, "health check changed", t0())
            .unwrap();
        assert_eq!((t.to, t.code), (Disabled, Some(Code::Disabled)));
        h.set_history_len(1);
        assert_eq!(h.history().count(), 1);
    }

    #[test]
    fn a_probe_that_could_not_be_attempted_moves_nothing() {
        let mut h = Health::new(2, 3, 5, true);
        for _ in 0..5 {
            h.record(&pass(), t0());
        }
        assert_eq!(h.state(), State::Up);
        assert_eq!(h.cadence(), Cadence::Normal);
        let local = Outcome::new(
            Code::Local,
            "cannot create socket: too many open files",
            Duration::ZERO,
        );
        for _ in 0..10 {
            assert!(h.record(&local, t0()).is_none());
        }
        assert_eq!(h.state(), State::Up);
        assert_eq!(h.cadence(), Cadence::Normal);
        assert_eq!(h.last().map(|l| l.outcome.code), Some(Code::Local));
        // From unknown too: no verdict either way.
        let mut h = Health::new(2, 3, 5, true);
        assert!(h.record(&local, t0()).is_none());
        assert_eq!(h.state(), State::Unknown);
    }
}
