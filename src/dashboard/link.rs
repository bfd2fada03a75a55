//! The threads that talk to one maglevd over its control socket, as any
//! client does: a watcher holding the `watch events log level debug
//! backend frontend` stream, and a fetcher running `show` commands and the admin page's
//! actions one at a time on a second connection. Both report to the hub.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use nix::poll::PollFlags;

use super::model::{Full, Lb};
use crate::control::grammar;
use crate::control::protocol::{self as p, Reply, StreamEvent};
use crate::wake::{Ready, StopFd};

/// The stream: transitions, and the log at `debug` (the probe results).
const WATCH: &str = "watch events log level debug backend frontend";

/// How long one answer may take.
const ANSWER: Duration = Duration::from_secs(10);

/// What the link threads report.
#[derive(Debug)]
pub enum Report {
    /// The event stream of maglevd `i` is up.
    Connected(usize),
    /// It could not be opened, or it ended: why.
    Lost(usize, String),
    /// An event from it.
    Event(usize, StreamEvent),
    /// A full read.
    Full(usize, Result<Box<Full>, String>),
    /// A read of some frontends.
    Frontends(usize, Result<Vec<p::Frontend>, String>),
    /// A read of VPP's lb state.
    Lb(usize, Lb),
}

/// Work for a fetcher.
pub enum Job {
    /// Read everything.
    Full,
    /// Read these frontends.
    Frontends(Vec<String>),
    /// Read VPP's lb state and counters.
    Lb,
    /// An admin action: the command line; the answer (maglevd's JSON
    /// line) or why not.
    Command(String, Sender<Result<String, String>>),
}

/// Starts the watcher of maglevd `i`: it connects when told to (one unit
/// on `connect`), then reads the stream until it ends or `stop`.
pub fn watcher(
    i: usize,
    socket: String,
    connect: Receiver<()>,
    out: Sender<Report>,
    stop: Arc<StopFd>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("watch-{i}"))
        .stack_size(128 * 1024)
        .spawn(move || {
            while connect.recv().is_ok() {
                if stop.is_set() {
                    return;
                }
                let why = watch(i, &socket, &out, &stop);
                if stop.is_set() || out.send(Report::Lost(i, why)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

/// Why a control socket could not be opened, for the page.
fn connect_error(socket: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "no such socket (is maglevd running?)".to_string(),
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused (maglevd is not running)".into()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (add maglevd-frontend's user to maglevd's admin group)".into()
        }
        _ => e.to_string(),
    };
    format!("cannot connect to {socket}: {why}")
}

/// One session of the stream; returns why it ended.
fn watch(i: usize, socket: &str, out: &Sender<Report>, stop: &StopFd) -> String {
    let s = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => return connect_error(socket, &e),
    };
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = writeln!(w, "{WATCH}") {
        return format!("cannot send: {e}");
    }
    let mut rd = BufReader::new(s);
    let mut line = String::new();
    let mut first = true;
    loop {
        if rd.buffer().is_empty() {
            match stop.wait(rd.get_ref().as_fd(), PollFlags::POLLIN, None) {
                Ok(Ready::Stop) => return "stopping".into(),
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
        line.clear();
        match rd.read_line(&mut line) {
            Ok(0) => return "maglevd closed the event stream".into(),
            Err(e) => return format!("event stream: {e}"),
            Ok(_) => {}
        }
        let l = line.trim_end();
        if first {
            first = false;
            let cmd = grammar::parse(WATCH).expect("valid command");
            match Reply::decode(&cmd, l) {
                Ok(Ok(_)) => {
                    if out.send(Report::Connected(i)).is_err() {
                        return "stopping".into();
                    }
                }
                Ok(Err(f)) => return f.error,
                Err(e) => return e.to_string(),
            }
            continue;
        }
        match StreamEvent::decode(l) {
            Ok(ev) => {
                if out.send(Report::Event(i, ev)).is_err() {
                    return "stopping".into();
                }
            }
            Err(e) => return format!("bad event: {e}"),
        }
    }
}

/// A request/answer connection to one maglevd, reopened when it breaks.
struct Conn {
    socket: String,
    rd: Option<BufReader<UnixStream>>,
}

impl Conn {
    fn open(&mut self) -> Result<&mut BufReader<UnixStream>, String> {
        if self.rd.is_none() {
            let s =
                UnixStream::connect(&self.socket).map_err(|e| connect_error(&self.socket, &e))?;
            s.set_read_timeout(Some(ANSWER))
                .map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(ANSWER))
                .map_err(|e| e.to_string())?;
            self.rd = Some(BufReader::new(s));
        }
        Ok(self.rd.as_mut().expect("opened"))
    }

    /// Sends `line`, returns the answer line; one retry on a fresh
    /// connection (maglevd closes idle ones).
    fn raw(&mut self, line: &str) -> Result<String, String> {
        let mut last = String::new();
        for _ in 0..2 {
            let rd = self.open()?;
            let sent = writeln!(rd.get_mut(), "{line}");
            let mut ans = String::new();
            match sent.and_then(|_| rd.read_line(&mut ans)) {
                Ok(n) if n > 0 => return Ok(ans.trim_end().to_string()),
                Ok(_) => last = "maglevd closed the connection".into(),
                Err(e) => last = e.to_string(),
            }
            self.rd = None;
        }
        Err(last)
    }

    /// Runs `line` and decodes the answer as its command's reply.
    fn ask(&mut self, line: &str) -> Result<Reply, String> {
        let cmd = grammar::parse(line).map_err(|e| e.0)?;
        let ans = self.raw(line)?;
        match Reply::decode(&cmd, &ans) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(f)) => Err(f.error),
            Err(e) => Err(e.to_string()),
        }
    }

    fn frontend(&mut self, name: &str) -> Result<Option<p::Frontend>, String> {
        match self.ask(&format!("show frontend {name}"))? {
            Reply::Frontend { frontend } => Ok(frontend),
            _ => Err("unexpected answer".into()),
        }
    }

    fn lb(&mut self) -> Lb {
        Lb {
            state: match self.ask("show vpp lb state") {
                Ok(Reply::LbState(s)) => Ok(s),
                Ok(_) => Err("unexpected answer".into()),
                Err(e) => Err(e),
            },
            counters: match self.ask("show vpp lb counters") {
                Ok(Reply::LbCounters(c)) => Ok(c),
                Ok(_) => Err("unexpected answer".into()),
                Err(e) => Err(e),
            },
        }
    }

    fn full(&mut self) -> Result<Full, String> {
        let version = match self.ask("show version")? {
            Reply::Version(v) => Some(v),
            _ => None,
        };
        let names: Vec<String> = match self.ask("show frontends")? {
            Reply::Frontends { frontends } => frontends.into_iter().map(|f| f.name).collect(),
            _ => return Err("unexpected answer".into()),
        };
        let mut frontends = Vec::new();
        for n in names {
            if let Some(f) = self.frontend(&n)? {
                frontends.push(f);
            }
        }
        let backends = match self.ask("show backends")? {
            Reply::Backends { backends } => backends,
            _ => return Err("unexpected answer".into()),
        };
        let vpp = match self.ask("show vpp info") {
            Ok(Reply::VppInfo(v)) => Ok(v),
            Ok(_) => Err("unexpected answer".into()),
            Err(e) => Err(e),
        };
        Ok(Full {
            version,
            frontends,
            backends,
            vpp,
            lb: self.lb(),
        })
    }
}

/// Starts the fetcher of maglevd `i`.
pub fn fetcher(
    i: usize,
    socket: String,
    jobs: Receiver<Job>,
    out: Sender<Report>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("fetch-{i}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut c = Conn { socket, rd: None };
            for job in jobs {
                let r = match job {
                    Job::Full => Report::Full(i, c.full().map(Box::new)),
                    Job::Frontends(names) => {
                        let mut v = Vec::new();
                        let mut err = None;
                        for n in names {
                            match c.frontend(&n) {
                                Ok(Some(f)) => v.push(f),
                                Ok(None) => {}
                                Err(e) => {
                                    err = Some(e);
                                    break;
                                }
                            }
                        }
                        Report::Frontends(i, err.map_or(Ok(v), Err))
                    }
                    Job::Lb => Report::Lb(i, c.lb()),
                    Job::Command(line, reply) => {
                        let _ = reply.send(c.raw(&line));
                        continue;
                    }
                };
                if out.send(r).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
