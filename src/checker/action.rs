//! What operators ask of the checker and why it may refuse: shared by the
//! core that decides, the client that asks, and previews.

use crate::health::state::ActionError;

/// An operator action on one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop probing; weight 0 without flush.
    Pause,
    /// Probe again from `unknown`.
    Resume,
    /// Take out: weight 0 with flush, no probes.
    Disable,
    /// Put back: probe again from `unknown`.
    Enable,
    /// Let it drain: as [`Action::Pause`] (weight 0 without flush, so its
    /// established flows finish); `maglevc ... drain --wait` then reports
    /// when VPP holds no flows for it. `resume` undoes it.
    Drain,
}

impl Action {
    /// Parses the CLI word.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "disable" => Some(Action::Disable),
            "enable" => Some(Action::Enable),
            "drain" => Some(Action::Drain),
            _ => None,
        }
    }

    /// The CLI word.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Drain => "drain",
        }
    }
}

/// Why the checker did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckerError {
    /// No backend of that name.
    NoBackend(String),
    /// No frontend of that name.
    NoFrontend(String),
    /// The frontend has no pool of that name.
    NoPool {
        /// Frontend.
        frontend: String,
        /// Pool.
        pool: String,
    },
    /// The pool has no backend of that name.
    NotInPool {
        /// Frontend.
        frontend: String,
        /// Pool.
        pool: String,
        /// Backend.
        backend: String,
    },
    /// A weight above 100.
    WeightRange(u8),
    /// The state machine refused the action.
    Refused {
        /// Backend.
        backend: String,
        /// What was asked.
        action: Action,
        /// Why not.
        why: ActionError,
    },
    /// The checker thread has stopped.
    NotRunning,
    /// The checker did not answer in time.
    NoAnswer,
}

impl std::fmt::Display for CheckerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckerError::NoBackend(b) => write!(f, "no backend named `{b}`"),
            CheckerError::NoFrontend(fe) => write!(f, "no frontend named `{fe}`"),
            CheckerError::NoPool { frontend, pool } => {
                write!(f, "frontend `{frontend}` has no pool `{pool}`")
            }
            CheckerError::NotInPool {
                frontend,
                pool,
                backend,
            } => write!(
                f,
                "pool `{pool}` of frontend `{frontend}` has no backend `{backend}`"
            ),
            CheckerError::WeightRange(w) => write!(f, "weight {w} is outside 0..100"),
            CheckerError::Refused {
                backend,
                action,
                why,
            } => write!(f, "cannot {} backend `{backend}`: {why}", action.as_str()),
            CheckerError::NotRunning => f.write_str("checker is not running"),
            CheckerError::NoAnswer => f.write_str("checker did not answer"),
        }
    }
}

impl std::error::Error for CheckerError {}
