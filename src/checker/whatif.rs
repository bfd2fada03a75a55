//! `maglevc preview`: a mutating command, word for word, and what the
//! checker would do with it. No rule lives here: the checker runs a copy
//! of its core on the command ([`super::CheckerClient::preview`]) and the
//! VPP side is the reconciler's own desired/diff code
//! ([`crate::vpp::lb`]).

use std::sync::Arc;

use super::action::Action;
use super::core::Input;
use crate::config::Config;

/// A mutating command being previewed: `preview` followed by the very
/// words of the command (parsed by the control grammar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `set backend B pause|resume|enable|disable|drain`.
    Action {
        /// Backend.
        backend: String,
        /// What to do.
        action: Action,
    },
    /// `set frontend F pool P backend B weight W [flush]`.
    PoolWeight {
        /// Frontend.
        frontend: String,
        /// Pool.
        pool: String,
        /// Backend.
        backend: String,
        /// New weight, 0..=100.
        weight: u8,
        /// Flush the backend's flows with it.
        flush: bool,
    },
    /// `config reload` (of the file on disk).
    Reload,
    /// `sync vpp lb state [F]`: no change to health or weights; what a
    /// sync would send to make VPP hold what maglevd wants.
    Sync(Option<String>),
}

impl std::fmt::Display for Change {
    /// The command's own words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Action { backend, action } => {
                write!(f, "set backend {backend} {}", action.as_str())
            }
            Change::PoolWeight {
                frontend,
                pool,
                backend,
                weight,
                flush,
            } => write!(
                f,
                "set frontend {frontend} pool {pool} backend {backend} weight {weight}{}",
                if *flush { " flush" } else { "" }
            ),
            Change::Reload => f.write_str("config reload"),
            Change::Sync(None) => f.write_str("sync vpp lb state"),
            Change::Sync(Some(fe)) => write!(f, "sync vpp lb state {fe}"),
        }
    }
}

impl Change {
    /// The checker input the command is (a reload: of `reload`); `None`
    /// for a sync, which changes nothing of the checker's.
    pub(crate) fn input(&self, reload: Option<Arc<Config>>) -> Option<Input> {
        Some(match self {
            Change::Action { backend, action } => Input::Action {
                backend: backend.clone(),
                action: *action,
            },
            Change::PoolWeight {
                frontend,
                pool,
                backend,
                weight,
                flush,
            } => Input::SetWeight {
                frontend: frontend.clone(),
                pool: pool.clone(),
                backend: backend.clone(),
                weight: *weight,
                flush: *flush,
            },
            Change::Reload => Input::Reload(reload?),
            Change::Sync(_) => return None,
        })
    }
}
