//! How other threads talk to the checker: operator actions, runtime
//! weights, reloads and event subscriptions, each a request on the
//! checker's channel, with typed errors.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::action::{Action, CheckerError};
use super::events::Event;
use super::view::{BackendView, FrontendView, Snapshot};
use crate::config::Config;
use crate::snapshot::Published;

/// Requests to the checker thread.
pub(super) enum Request {
    Action {
        backend: String,
        action: Action,
        reply: Sender<Result<BackendView, CheckerError>>,
    },
    SetWeight {
        frontend: String,
        pool: String,
        backend: String,
        weight: u8,
        flush: bool,
        reply: Sender<Result<FrontendView, CheckerError>>,
    },
    Reload(Arc<Config>),
    /// What an input would leave (a copy of the core handles it).
    Preview {
        input: super::core::Input,
        reply: Sender<Result<(Snapshot, Vec<Event>), CheckerError>>,
    },
    Heartbeat(u64),
    Subscribe {
        tx: Sender<Event>,
        replay_frontends: bool,
    },
    Publish(Event),
    Shutdown,
}

/// What other threads use to talk to the checker.
#[derive(Clone)]
pub struct CheckerClient {
    pub(super) tx: Sender<Request>,
    pub(super) snapshot: Published<Snapshot>,
}

/// How long a caller waits for the checker to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

impl CheckerClient {
    /// Latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load()
    }

    /// Applies an operator action.
    pub fn action(&self, backend: &str, action: Action) -> Result<BackendView, CheckerError> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Request::Action {
                backend: backend.to_string(),
                action,
                reply,
            })
            .map_err(|_| CheckerError::NotRunning)?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| CheckerError::NoAnswer)?
    }

    /// Changes a pool member's weight at runtime (not written to the file;
    /// a reload restores the configured weight).
    pub fn set_weight(
        &self,
        frontend: &str,
        pool: &str,
        backend: &str,
        weight: u8,
        flush: bool,
    ) -> Result<FrontendView, CheckerError> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Request::SetWeight {
                frontend: frontend.to_string(),
                pool: pool.to_string(),
                backend: backend.to_string(),
                weight,
                flush,
                reply,
            })
            .map_err(|_| CheckerError::NotRunning)?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| CheckerError::NoAnswer)?
    }

    /// What `change` would leave (a reload: of `reload`), without doing
    /// it: the checker runs a copy of its core on it and answers the
    /// snapshot it would publish and the events it would send (a sync
    /// changes nothing: the snapshot now, no events).
    pub fn preview(
        &self,
        change: &super::whatif::Change,
        reload: Option<Arc<Config>>,
    ) -> Result<(Snapshot, Vec<Event>), CheckerError> {
        let Some(input) = change.input(reload) else {
            return Ok(((*self.snapshot()).clone(), Vec::new()));
        };
        let (reply, rx) = bounded(1);
        self.tx
            .send(Request::Preview { input, reply })
            .map_err(|_| CheckerError::NotRunning)?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| CheckerError::NoAnswer)?
    }

    /// Hands a newly accepted configuration to the checker.
    pub fn reload(&self, config: Arc<Config>) {
        let _ = self.tx.send(Request::Reload(config));
    }

    /// Offers `ev` to every subscriber (an event another thread knows
    /// first, such as a frontend's VPP status); never waits.
    pub fn publish(&self, ev: Event) {
        let _ = self.tx.send(Request::Publish(ev));
    }

    /// Subscribes to events with a queue of `capacity`; with
    /// `replay_frontends` the current frontend states arrive first.
    pub fn subscribe(&self, capacity: usize, replay_frontends: bool) -> Receiver<Event> {
        let (tx, rx) = bounded(capacity.max(2));
        let _ = self.tx.send(Request::Subscribe {
            tx,
            replay_frontends,
        });
        rx
    }
}
