//! Stopping threads that are blocked in a system call.
//!
//! A thread blocked in `accept(2)` or `poll(2)` cannot see a channel
//! message. The old way to wake it (connecting to the listener's own path)
//! hangs when the socket file was removed. A [`StopFd`] is a pipe whose
//! read end every such thread polls beside its real descriptor: stopping
//! writes one byte and every poller wakes, whatever the filesystem or a
//! peer does. It stays readable once triggered (nobody drains it), so a
//! thread that starts polling after the stop sees it at once too.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Wakes a thread that polls its descriptor: a pipe and a flag, so that
/// wakes coalesce (one byte per wake at most until the poller drains).
/// [`StopFd`] is one never drained; an HTTP server drains its own after
/// each wake (`crate::httpd`).
#[derive(Debug)]
pub struct Waker {
    read: OwnedFd,
    write: OwnedFd,
    pending: AtomicBool,
}

impl Waker {
    /// A new waker.
    pub fn new() -> io::Result<Waker> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(Waker {
            read,
            write,
            pending: AtomicBool::new(false),
        })
    }

    /// Wakes the poller (cheap when it is already woken).
    pub fn wake(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            // A full pipe is readable already; nothing else can fail
            // usefully here.
            let _ = nix::unistd::write(&self.write, &[1]);
        }
    }

    /// Whether a wake came since the last [`Waker::drain`].
    pub fn is_woken(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }

    /// The descriptor that turns readable at a wake.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.read)
    }

    /// Empties the pipe, then lets the next wake write again. In this
    /// order a wake is never lost: one that comes before the flag is
    /// cleared writes nothing, and its work (queued before it woke) is
    /// seen by the pass that follows this drain.
    pub fn drain(&self) {
        let mut b = [0u8; 64];
        while matches!(nix::unistd::read(&self.read, &mut b), Ok(n) if n > 0) {}
        self.pending.store(false, Ordering::SeqCst);
    }
}

/// A one-shot stop signal that `poll(2)` can wait on: a [`Waker`] nobody
/// drains.
#[derive(Debug)]
pub struct StopFd(Waker);

/// What [`StopFd::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The descriptor has the awaited event (or an error/hang-up).
    Fd,
    /// Stop was triggered.
    Stop,
    /// The timeout passed.
    Timeout,
}

impl StopFd {
    /// A new, untriggered stop signal.
    pub fn new() -> io::Result<StopFd> {
        Waker::new().map(StopFd)
    }

    /// Triggers it: every thread polling it wakes now and later.
    pub fn trigger(&self) {
        self.0.wake();
    }

    /// The descriptor that turns readable at stop, for a caller that
    /// builds its own poll set.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.0.raw_fd()
    }

    /// Whether [`StopFd::trigger`] was called.
    pub fn is_set(&self) -> bool {
        self.0.is_woken()
    }

    /// Waits until `fd` has one of `events` (POLLHUP and POLLERR always
    /// count), stop is triggered, or `timeout` passes (`None`: no limit).
    pub fn wait(
        &self,
        fd: BorrowedFd<'_>,
        events: PollFlags,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<Ready> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if self.is_set() {
                return Ok(Ready::Stop);
            }
            let left = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let ms = d
                        .saturating_duration_since(std::time::Instant::now())
                        .as_micros()
                        .div_ceil(1000);
                    PollTimeout::try_from(ms.min(i32::MAX as u128) as i32)
                        .unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [
                PollFd::new(fd, events),
                PollFd::new(self.0.read.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, left) {
                Ok(0) => return Ok(Ready::Timeout),
                Ok(_) => {
                    if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                        return Ok(Ready::Stop);
                    }
                    return Ok(Ready::Fd);
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sleeps for `d` or until stop is triggered; true if stopped.
    pub fn sleep(&self, d: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + d;
        loop {
            if self.is_set() {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(self.0.read.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) | Err(Errno::EINTR) => {}
                Ok(_) => return true,
                Err(_) => return self.is_set(),
            }
        }
    }

    /// Accepts one connection, or `None` once stop is triggered. Transient
    /// accept errors (a peer that gave up, EMFILE) are returned to the
    /// caller, which decides whether to go on.
    pub fn accept(&self, listener: &UnixListener) -> io::Result<Option<UnixStream>> {
        match self.wait(listener.as_fd(), PollFlags::POLLIN, None)? {
            Ready::Stop => Ok(None),
            _ => listener.accept().map(|(s, _)| Some(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn accept_returns_on_stop_even_with_the_socket_file_gone() {
        let dir = std::env::temp_dir().join(format!("wake-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let stop = std::sync::Arc::new(StopFd::new().unwrap());
        let s2 = std::sync::Arc::clone(&stop);
        let t = std::thread::spawn(move || s2.accept(&l).unwrap().is_none());
        std::thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        stop.trigger();
        assert!(t.join().unwrap(), "accept saw the stop");
        assert!(t0.elapsed() < Duration::from_millis(500));
        // Stays triggered for later pollers.
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(
            stop.wait(a.as_fd(), PollFlags::POLLIN, None).unwrap(),
            Ready::Stop
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wait_sees_data_hangup_and_timeout() {
        use std::io::Write;
        let stop = StopFd::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let short = Some(Duration::from_millis(20));
        assert_eq!(
            stop.wait(a.as_fd(), PollFlags::POLLIN, short).unwrap(),
            Ready::Timeout
        );
        b.write_all(b"x").unwrap();
        assert_eq!(
            stop.wait(a.as_fd(), PollFlags::POLLIN, short).unwrap(),
            Ready::Fd
        );
        let (c, d) = UnixStream::pair().unwrap();
        drop(d);
        // A hang-up wakes even a poll that asked for no events.
        assert_eq!(
            stop.wait(c.as_fd(), PollFlags::empty(), short).unwrap(),
            Ready::Fd
        );
    }
}
