//! The control socket server: one thread per client (bounded), each
//! reading request lines of at most 4 KiB and writing one JSON object per
//! line. A slow or stuck client only ever holds its own thread, and every
//! write has a timeout. Mutating commands need uid 0 or the admin group,
//! decided from the peer's `SO_PEERCRED`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Sender, bounded};
use log::{debug, info, warn};

use super::grammar::{self, Command, WatchSpec};
use super::handlers::{self, Answer, Context, err};
use super::protocol::{Reply, StreamEvent, Watching};
use crate::checker::events::Event;
use crate::wake::{Ready, StopFd};

/// Longest request line accepted.
pub const MAX_LINE: usize = 4096;
/// Most clients served at once (fewer under a low descriptor limit, see
/// [`crate::limits::control_clients`]); more get an error and are closed.
pub const MAX_CLIENTS: usize = 512;
/// A connection with no complete request for this long is closed (a
/// `watch` is not idle: it waits for events, not requests).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that does not take its output within this is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The running server.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<StopFd>,
    join: Option<JoinHandle<()>>,
}

/// Creates the socket. Only a socket is ever replaced, and only one that
/// nobody listens on (a crash's leftover); a live one (another maglevd)
/// is refused, and any other file there (a regular file, a directory, a
/// link) is an error naming it, never deleted.
fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    use std::os::unix::fs::FileTypeExt;
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |err| ServeError::Io { what, err }
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot inspect")(e)),
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(ServeError::InUse(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                info!("control-socket-stale path={} replacing", path.display());
                std::fs::remove_file(path).map_err(io("cannot remove stale"))?;
            }
            Err(err) => {
                return Err(ServeError::Unverifiable {
                    path: path.to_path_buf(),
                    err,
                });
            }
        },
        Ok(m) => {
            let kind = if m.is_dir() {
                "a directory"
            } else if m.file_type().is_symlink() {
                "a symbolic link"
            } else if m.is_file() {
                "a regular file"
            } else {
                "not a socket"
            };
            return Err(ServeError::NotASocket {
                path: path.to_path_buf(),
                kind,
            });
        }
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let l = UnixListener::bind(path).map_err(io("bind"))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    Ok(l)
}

/// Why the control socket cannot be served.
#[derive(Debug)]
pub enum ServeError {
    /// Another maglevd answers on the socket.
    InUse(PathBuf),
    /// A socket is there that neither answers nor refuses.
    Unverifiable {
        /// The socket.
        path: PathBuf,
        /// What connecting to it said.
        err: std::io::Error,
    },
    /// Something else than a socket is at the path (never deleted).
    NotASocket {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A system call failed.
    Io {
        /// What was being done, to what.
        what: String,
        /// The error.
        err: std::io::Error,
    },
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::InUse(p) => {
                write!(f, "{} is in use: another maglevd is running", p.display())
            }
            ServeError::Unverifiable { path, err } => write!(
                f,
                "{} exists and cannot be checked ({err}); not replacing it",
                path.display()
            ),
            ServeError::NotASocket { path, kind } => write!(
                f,
                "{} is {kind}, not a socket; remove it or choose another --control-socket",
                path.display()
            ),
            ServeError::Io { what, err } => write!(f, "{what}: {err}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl ControlServer {
    /// Binds `path` (mode 0660, group = the admin group when it exists)
    /// and serves.
    pub fn start(path: &Path, ctx: Context) -> Result<ControlServer, ServeError> {
        let listener = bind(path)?;
        if let Some((_, gid)) = &ctx.admin_group {
            let _ = nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(*gid)));
        }
        let stop = Arc::new(StopFd::new().map_err(|err| ServeError::Io {
            what: "stop pipe".into(),
            err,
        })?);
        let s2 = Arc::clone(&stop);
        let active = Arc::new(AtomicUsize::new(0));
        // A share of the descriptors: clients can never starve probes.
        let max_clients = crate::limits::control_clients(crate::limits::nofile()).min(MAX_CLIENTS);
        let join = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                loop {
                    // Blocks in one poll(2) on the listener and the stop
                    // pipe: no wake-up without a client or a stop.
                    let stream = match s2.accept(&listener) {
                        Ok(Some(s)) => s,
                        Ok(None) => break,
                        Err(e) => {
                            debug!("control-accept-failed error={e}");
                            // EMFILE and friends: do not spin on them.
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    };
                    if active.load(Ordering::SeqCst) >= max_clients {
                        let mut s = stream;
                        let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
                        let _ = reply(&mut s, &Err(err("too many clients; try again")));
                        continue;
                    }
                    active.fetch_add(1, Ordering::SeqCst);
                    let (ctx, a2, s3) = (ctx.clone(), Arc::clone(&active), Arc::clone(&s2));
                    let spawned = std::thread::Builder::new()
                        .name("control-client".into())
                        .stack_size(256 * 1024)
                        .spawn(move || {
                            serve_client(stream, &ctx, &s3);
                            a2.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
            .map_err(|err| ServeError::Io {
                what: "control thread".into(),
                err,
            })?;
        info!("control-listening path={}", path.display());
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            join: Some(join),
        })
    }

    /// Stops accepting, ends every watcher and removes the socket (other
    /// clients in progress end with the process). Never depends on the
    /// socket file still being there.
    pub fn shutdown(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.trigger();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
        // Only our own socket: a file someone put there since is left alone.
        if std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn send_line(s: &mut UnixStream, mut line: String) -> std::io::Result<()> {
    line.push('\n');
    s.write_all(line.as_bytes())
}

fn reply(s: &mut UnixStream, a: &Answer) -> std::io::Result<()> {
    send_line(
        s,
        match a {
            Ok(r) => r.encode(),
            Err(f) => f.encode(),
        },
    )
}

enum Line {
    Text(String),
    TooLong,
    NotUtf8,
    Eof,
}

fn read_line(r: &mut BufReader<UnixStream>) -> Line {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Line::Eof,
        };
        if avail.is_empty() {
            return Line::Eof;
        }
        let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        if done.is_some() {
            break;
        }
    }
    if too_long {
        return Line::TooLong;
    }
    match String::from_utf8(buf) {
        Ok(s) => Line::Text(s.trim_end_matches('\r').to_string()),
        Err(_) => Line::NotUtf8,
    }
}

/// Who is at the other end: `uid=U pid=P` for the audit log.
fn peer(s: &UnixStream) -> String {
    match nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials) {
        Ok(c) => format!("uid={} pid={}", c.uid(), c.pid()),
        Err(_) => "uid=? pid=?".into(),
    }
}

/// The peer's supplementary groups as it had them when it connected
/// (`SO_PEERGROUPS`, Linux 4.13): a process given the admin group by
/// `SupplementaryGroups=` (a dynamic user, the dashboard's unit) is a
/// member even though no group file says so. Empty if unknown.
fn peer_groups(s: &UnixStream) -> Vec<u32> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    #[cfg(target_arch = "sparc64")]
    const SO_PEERGROUPS: libc::c_int = 0x3d;
    #[cfg(not(target_arch = "sparc64"))]
    const SO_PEERGROUPS: libc::c_int = 59;
    let mut buf = vec![0 as libc::gid_t; 32];
    loop {
        let mut len = (buf.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `buf` is valid for `len` bytes; the kernel writes at most
        // that many and stores the size it needs (or used) in `len`.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            buf.truncate(n.min(buf.len()));
            return buf;
        }
        if nix::errno::Errno::last() == nix::errno::Errno::ERANGE && n > buf.len() && n <= 65536 {
            buf.resize(n, 0);
            continue;
        }
        return Vec::new();
    }
}

/// Whether the peer may run mutating commands; `Err` names who it is.
fn authorised(s: &UnixStream, ctx: &Context) -> Result<(), String> {
    let cred = nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("cannot read peer credentials: {e}"))?;
    let uid = cred.uid();
    if uid == 0 {
        return Ok(());
    }
    if let Some((name, gid)) = &ctx.admin_group {
        if cred.gid() == *gid || peer_groups(s).contains(gid) {
            return Ok(());
        }
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        if let Some(u) = &user {
            if u.gid.as_raw() == *gid {
                return Ok(());
            }
            if let Ok(Some(g)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(*gid)) {
                if g.mem.contains(&u.name) {
                    return Ok(());
                }
            }
        }
        return Err(format!("uid {uid} is neither root nor in group {name}"));
    }
    Err(format!("uid {uid} is not root"))
}

fn serve_client(stream: UnixStream, ctx: &Context, stop: &Arc<StopFd>) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    // A client that holds its slot without asking anything is let go.
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut rd = BufReader::with_capacity(MAX_LINE + 1, stream);
    while !stop.is_set() {
        let line = match read_line(&mut rd) {
            Line::Eof => return,
            Line::TooLong => {
                if reply(
                    &mut out,
                    &Err(err(format!("request longer than {MAX_LINE} bytes"))),
                )
                .is_err()
                {
                    return;
                }
                continue;
            }
            Line::NotUtf8 => {
                if reply(&mut out, &Err(err("request is not valid UTF-8"))).is_err() {
                    return;
                }
                continue;
            }
            Line::Text(t) => t,
        };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match grammar::parse(&line) {
            Err(e) => Err(err(e.0)),
            Ok(cmd) if cmd.mutates() => match authorised(&out, ctx) {
                Ok(()) => {
                    info!("control-command command={:?} {}", line.trim(), peer(&out));
                    handlers::run(&cmd, ctx)
                }
                Err(who) => {
                    warn!(
                        "control-command-refused command={:?} {} reason={who:?}",
                        line.trim(),
                        peer(&out)
                    );
                    Err(err(format!(
                        "permission denied: `{}` changes state and needs root or group {} ({who})",
                        line.trim(),
                        ctx.admin_group.as_ref().map_or("-", |g| g.0.as_str())
                    )))
                }
            },
            Ok(Command::Watch(spec)) => {
                watch(&mut out, rd.get_ref(), ctx, &spec, stop);
                return;
            }
            Ok(cmd) => handlers::run(&cmd, ctx),
        };
        let sent = reply(&mut out, &answer);
        // A big answer (`show backends` of 10,000: megabytes of values and
        // text) leaves its pages free inside the allocator; hand them back.
        if answer_is_big(&answer) {
            drop(answer);
            crate::limits::release_free_memory();
        }
        if sent.is_err() {
            debug!("control-client-gone");
            return;
        }
    }
}

/// Whether an answer lists enough to be worth trimming the heap after.
fn answer_is_big(a: &Answer) -> bool {
    use crate::control::protocol::Reply;
    match a {
        Ok(Reply::Backends { backends }) => backends.len() >= 1000,
        _ => false,
    }
}

fn stream_event(ev: &Event) -> Option<StreamEvent> {
    use crate::logging::rfc3339_utc;
    Some(match ev {
        Event::Backend(e) => StreamEvent::Backend {
            backend: e.backend.clone(),
            from: e.from,
            to: e.to,
            code: e.code,
            detail: e.detail.clone(),
            at: rfc3339_utc(e.at),
        },
        Event::Frontend(e) => StreamEvent::Frontend {
            frontend: e.frontend.clone(),
            from: e.from,
            to: e.to,
            at: rfc3339_utc(e.at),
        },
        Event::Dataplane(e) => StreamEvent::Vpp {
            frontend: e.frontend.clone(),
            from: e.from,
            to: e.to,
            error: e.error.clone(),
            at: rfc3339_utc(e.at),
        },
        Event::Announce(e) => StreamEvent::Announce {
            address: e.address.to_string(),
            announced: e.announced,
            reason: e.reason.clone(),
            frontends: e.frontends.clone(),
            at: rfc3339_utc(e.at),
        },
        Event::Lagged { missed } => StreamEvent::Lagged { missed: *missed },
        _ => return None,
    })
}

/// Blocks until the client hung up or sent something (a keypress ends
/// `watch`), or the server stops; then says so on `tx`. A client that only
/// shut down its sending side (`socat`, `nc -N` after the request) keeps
/// watching: after its EOF only a full hang-up counts. One poll(2) at a
/// time, no timeout: an idle watcher costs nothing.
fn watch_input(input: UnixStream, stop: &StopFd, tx: Sender<()>) {
    use nix::poll::PollFlags;
    use std::io::Read;
    use std::os::fd::AsFd;
    let mut half_closed = false;
    loop {
        let want = if half_closed {
            PollFlags::empty()
        } else {
            PollFlags::POLLIN
        };
        match stop.wait(input.as_fd(), want, None) {
            Ok(Ready::Fd) if !half_closed => {
                let mut b = [0u8; 64];
                match (&input).read(&mut b) {
                    Ok(0) => half_closed = true,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    _ => break,
                }
            }
            _ => break,
        }
    }
    let _ = tx.send(());
}

/// Streams events until the client leaves or `num` were sent. Blocks in
/// one `select` on the event queue, the log tap (if asked for) and the
/// client's input; wakes only for one of them.
fn watch(
    out: &mut UnixStream,
    input: &UnixStream,
    ctx: &Context,
    spec: &WatchSpec,
    stop: &Arc<StopFd>,
) {
    let events = ctx.checker.subscribe(1024, spec.frontend);
    let level = spec
        .log
        .as_deref()
        .and_then(crate::logging::parse_level)
        .unwrap_or(log::LevelFilter::Info);
    // A debug watcher (the dashboard) gets a line per probe: a deeper
    // queue rides out a busy moment instead of losing them.
    let depth = if level >= log::LevelFilter::Debug {
        16384
    } else {
        1024
    };
    let logs = spec.log.as_ref().map(|_| crate::logging::tap(depth, level));
    if reply(
        out,
        &Ok(Reply::Watching {
            watching: Watching {
                backend: spec.backend,
                frontend: spec.frontend,
                log: spec.log.clone(),
                num: spec.num,
            },
        }),
    )
    .is_err()
    {
        return;
    }
    let (gone_tx, gone) = bounded::<()>(1);
    let spawned = input.try_clone().and_then(|input| {
        let stop = Arc::clone(stop);
        std::thread::Builder::new()
            .name("control-watch-input".into())
            .stack_size(64 * 1024)
            .spawn(move || watch_input(input, &stop, gone_tx))
    });
    if spawned.is_err() {
        let _ = reply(out, &Err(err("cannot watch: out of threads")));
        return;
    }
    let never = crossbeam_channel::never::<(log::Level, String)>();
    let logs_rx = logs.as_ref().unwrap_or(&never);
    let mut sent = 0u64;
    loop {
        let v = crossbeam_channel::select! {
            recv(events) -> ev => match ev {
                Ok(ev) => {
                    let keep = match &ev {
                        Event::Backend(_) => spec.backend,
                        Event::Frontend(_) | Event::Dataplane(_) | Event::Announce(_) => {
                            spec.frontend
                        }
                        Event::Lagged { .. } => true,
                        _ => false,
                    };
                    if keep { stream_event(&ev) } else { None }
                }
                Err(_) => break,
            },
            recv(logs_rx) -> l => match l {
                Ok((lvl, message)) if lvl <= level => Some(StreamEvent::Log {
                    level: lvl.as_str().to_lowercase(),
                    message,
                    at: crate::logging::rfc3339_utc(SystemTime::now()),
                }),
                Ok(_) => None,
                Err(_) => break,
            },
            // The client closed, sent anything, or the server stops.
            recv(gone) -> _ => break,
        };
        if let Some(v) = v {
            if send_line(out, v.encode()).is_err() {
                warn!("control-watch-dropped reason=slow-or-gone");
                break;
            }
            sent += 1;
            if spec.num.is_some_and(|n| sent >= n) {
                break;
            }
        }
    }
    // Ends the input thread too (its poll sees the hang-up).
    let _ = out.shutdown(std::net::Shutdown::Both);
}
