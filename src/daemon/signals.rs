//! Signals as channel messages, received by one dedicated `sigwait` thread.
//!
//! The signals are blocked in the main thread before any other thread is
//! spawned, so every thread inherits the mask and only the `sigwait` thread
//! ever sees them: no async-signal-safety concerns anywhere else.

use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use nix::sys::signal::{SigSet, SigmaskHow, Signal as NixSignal, pthread_sigmask};

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: re-read the configuration.
    Reload,
    /// SIGTERM or SIGINT (named): stop.
    Stop(&'static str),
}

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    set.add(NixSignal::SIGHUP);
    set.add(NixSignal::SIGTERM);
    set.add(NixSignal::SIGINT);
    set
}

/// Blocks the handled signals in the calling thread and its future children.
///
/// Call before spawning any thread.
pub fn block() -> nix::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None)
}

/// Starts the thread that turns signals into [`Signal`] messages on `tx`.
///
/// It ends when the receiving side is gone.
pub fn spawn(tx: Sender<Signal>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let set = handled();
            loop {
                let msg = match set.wait() {
                    Ok(NixSignal::SIGHUP) => Signal::Reload,
                    Ok(NixSignal::SIGTERM) => Signal::Stop("SIGTERM"),
                    Ok(NixSignal::SIGINT) => Signal::Stop("SIGINT"),
                    Ok(_) => continue,
                    Err(e) => {
                        log::error!("signal-wait-failed error={e}");
                        return;
                    }
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        })
}
