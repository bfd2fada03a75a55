//! `maglevt`: probes every VIP of one or more `maglev.yaml` files from the
//! client's side and shows, live, which backend answers, the latency and
//! every failure. On a terminal a full screen; otherwise one JSON line per
//! VIP per second.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, bounded, unbounded};

use vpp_maglev::cli::{self, Arg, Args};
use vpp_maglev::config;
use vpp_maglev::tester::client::{self, Options};
use vpp_maglev::tester::screen::{self, Frame};
use vpp_maglev::tester::stats::{Sample, VipStats};
use vpp_maglev::tester::sys::{Regex, fqdn};
use vpp_maglev::tester::target::{Target, targets};

const USAGE: &str = "\
Usage: maglevt [options]

Probes every TCP VIP of the configuration from outside the load balancer,
as a client would, and shows which backend answers, the latency and every
failure: a full screen on a terminal (q or Ctrl-C quits), one JSON line per
VIP per second otherwise.

Options:
  --config FILE     a maglev.yaml (repeatable) [env MAGLEV_CONFIG]
                    (default /etc/vpp-maglev/maglev.yaml)
  --interval DUR    time between probes of a VIP, ±10 % (default 100ms)
  --timeout DUR     bound on connect plus answer (default 1s)
  --host STR        Host: header and TLS name (default: the VIP)
  --uri PATH        path of the GET (default /.well-known/ipng/healthz)
  --header NAME     response header naming the backend (default X-Served-By)
  --insecure[=BOOL] do not verify HTTPS certificates
  --keepalive[=BOOL] reuse connections (default off: every probe is a new
                    flow, hashed afresh by Maglev, so failover shows at once)
  --filter REGEX    only frontends whose name matches (POSIX extended)
  --version         print the version and exit
  --help            print this help and exit
See maglevt(1).";

struct Opts {
    configs: Vec<PathBuf>,
    filter: Option<Regex>,
    probe: Options,
}

fn duration(name: &str, v: &str) -> Result<Duration, String> {
    let d = config::parse_duration(v).map_err(|e| format!("--{name}: {e}"))?;
    if d.is_zero() {
        return Err(format!("--{name} must be more than 0"));
    }
    Ok(d)
}

fn parse_args() -> Result<Option<Opts>, String> {
    let mut o = Opts {
        configs: Vec::new(),
        filter: None,
        probe: Options {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
            host: None,
            uri: "/.well-known/ipng/healthz".into(),
            header: "X-Served-By".into(),
            insecure: false,
            keepalive: false,
        },
    };
    let mut args = Args::new(std::env::args().skip(1));
    while let Some(arg) = args.next() {
        let (name, inline, raw) = match arg {
            Arg::Word(w) => return Err(format!("unexpected argument `{w}`")),
            Arg::Flag { name, inline, raw } => (name, inline, raw),
        };
        match name.as_str() {
            "config" | "c" => o
                .configs
                .push(args.value(&name, inline, "a file path")?.into()),
            "interval" => {
                o.probe.interval = duration(&name, &args.value(&name, inline, "a duration")?)?
            }
            "timeout" => {
                o.probe.timeout = duration(&name, &args.value(&name, inline, "a duration")?)?
            }
            "host" => o.probe.host = Some(args.value(&name, inline, "a host name")?),
            "uri" => {
                let u = args.value(&name, inline, "a path")?;
                if !u.starts_with('/') || u.contains(char::is_whitespace) {
                    return Err(format!("--uri `{u}` must start with / and hold no spaces"));
                }
                o.probe.uri = u;
            }
            "header" => o.probe.header = args.value(&name, inline, "a header name")?,
            "insecure" => o.probe.insecure = cli::parse_bool(&name, inline.as_deref())?,
            "keepalive" => o.probe.keepalive = cli::parse_bool(&name, inline.as_deref())?,
            "filter" => {
                let re = args.value(&name, inline, "a regular expression")?;
                o.filter = Some(Regex::new(&re).map_err(|e| format!("--filter `{re}`: {e}"))?);
            }
            "version" | "V" => {
                println!("{}", cli::version_line("maglevt"));
                return Ok(None);
            }
            "help" | "h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            _ => return Err(format!("unknown option `{raw}`")),
        }
    }
    if o.configs.is_empty() {
        o.configs.push(
            std::env::var("MAGLEV_CONFIG")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| config::DEFAULT_PATH.to_string())
                .into(),
        );
    }
    Ok(Some(o))
}

/// The terminal in cbreak mode (keys one at a time, no echo, Ctrl-C a
/// plain byte) on the alternate screen with the cursor hidden, until
/// dropped.
struct Screen {
    saved: Option<nix::sys::termios::Termios>,
}

impl Screen {
    fn enter() -> Screen {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(s) = &saved {
            let mut t = s.clone();
            t.local_flags
                .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
            let _ = tcsetattr(&stdin, SetArg::TCSADRAIN, &t);
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(screen::ENTER.as_bytes());
        let _ = out.flush();
        Screen { saved }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(screen::LEAVE.as_bytes());
        let _ = out.flush();
        if let Some(s) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSADRAIN,
                s,
            );
        }
    }
}

/// The terminal's size (columns, rows), 80×24 when unknown.
fn size() -> (usize, usize) {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize on a terminal; errors leave it 0.
    let rc = unsafe { nix::libc::ioctl(1, nix::libc::TIOCGWINSZ, &mut ws) };
    if rc != 0 || ws.ws_col == 0 || ws.ws_row == 0 {
        (80, 24)
    } else {
        (ws.ws_col as usize, ws.ws_row as usize)
    }
}

type Results = Receiver<(usize, Instant, Sample)>;

/// The full screen until `q`, Ctrl-C, SIGTERM, SIGHUP or SIGINT.
fn interactive(targets: &[Target], header: &str, results: &Results) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut sigs = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        sigs.add(s);
    }
    // Signals become readable events, so the terminal is always restored.
    let _ = sigs.thread_block();
    let sfd = SignalFd::with_flags(&sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok();
    let host = fqdn();
    let mut stats: Vec<VipStats> = targets.iter().map(|_| VipStats::default()).collect();
    let _screen = Screen::enter();
    let stdin = std::io::stdin();
    let frame_every = Duration::from_millis(100);
    let mut next_frame = Instant::now();
    loop {
        let wait = next_frame.saturating_duration_since(Instant::now());
        let mut fds = vec![PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        if let Some(s) = &sfd {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let timeout = PollTimeout::from(wait.as_millis().min(1000) as u16);
        match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => {}
            Err(_) => return,
            Ok(_) => {
                if fds
                    .get(1)
                    .and_then(PollFd::revents)
                    .is_some_and(|r| !r.is_empty())
                {
                    return;
                }
                if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                    let mut b = [0u8; 64];
                    match stdin.lock().read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) if b[..n].iter().any(|c| matches!(c, b'q' | b'Q' | 3 | 4)) => return,
                        Ok(_) => {}
                    }
                }
            }
        }
        for (i, at, s) in results.try_iter() {
            stats[i].record(at, s);
        }
        let now = Instant::now();
        if now >= next_frame {
            for s in &mut stats {
                s.expire(now);
            }
            let (w, h) = size();
            let f = Frame {
                host: &host,
                targets,
                stats: &stats,
                header,
                now,
                wall: SystemTime::now(),
            };
            let mut out = std::io::stdout().lock();
            if out.write_all(screen::render(&f, w, h).as_bytes()).is_err() {
                return;
            }
            let _ = out.flush();
            next_frame = now + frame_every;
        }
    }
}

/// One JSON line per VIP per second, until stdout goes away.
fn lines(targets: &[Target], results: &Results) {
    let mut stats: Vec<VipStats> = targets.iter().map(|_| VipStats::default()).collect();
    let mut next = Instant::now() + Duration::from_secs(1);
    loop {
        match results.recv_deadline(next) {
            Ok((i, at, s)) => stats[i].record(at, s),
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let wall = SystemTime::now();
                let mut out = std::io::stdout().lock();
                for (t, s) in targets.iter().zip(&mut stats) {
                    s.expire(now);
                    if writeln!(out, "{}", screen::json_line(t, s, wall)).is_err() {
                        return;
                    }
                }
                if out.flush().is_err() {
                    return;
                }
                next += Duration::from_secs(1);
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn main() -> ExitCode {
    cli::default_sigpipe();
    let o = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return ExitCode::from(cli::usage_error("maglevt", &e, USAGE)),
    };
    let mut configs = Vec::new();
    for path in &o.configs {
        match config::load(path) {
            Ok(c) => configs.push(c),
            Err(e) => {
                eprintln!("maglevt: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let list = targets(&configs, |name| {
        o.filter.as_ref().is_none_or(|re| re.is_match(name))
    });
    if list.is_empty() {
        eprintln!("maglevt: no TCP frontend to probe (UDP and port-0 frontends are left out)");
        return ExitCode::FAILURE;
    }
    let opts = Arc::new(o.probe);
    let (tx, rx) = unbounded();
    // Dropped at the end: every prober's wait ends at once.
    let (stop_tx, stop_rx) = bounded::<()>(0);
    for (i, t) in list.iter().enumerate() {
        let (t, opts, tx, stop) = (t.clone(), Arc::clone(&opts), tx.clone(), stop_rx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("probe-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || client::run(i, t, opts, tx, stop));
        if let Err(e) = spawned {
            eprintln!("maglevt: cannot start a prober: {e}");
            return ExitCode::FAILURE;
        }
    }
    drop(tx);
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        interactive(&list, &opts.header, &rx);
    } else {
        lines(&list, &rx);
    }
    drop(stop_tx);
    ExitCode::SUCCESS
}
