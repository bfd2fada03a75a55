//! `maglevd-frontend`: the live web dashboard for one or many maglevds.
//!
//! A client of the control protocol like maglevc (one `watch events log
//! level debug` stream and `show` commands per maglevd; maglevd gets no
//! network surface), serving a page, a JSON API and a Server-Sent Events
//! stream over HTTP.
//!
//! Threads: per maglevd a watcher and a fetcher ([`link`]); the hub
//! ([`hub`], timing in the pure [`core`]); the HTTP server thread
//! ([`crate::httpd`], the one `/metrics` uses, with [`web::limits`]) and
//! its [`web::WORKERS`] workers, however many browsers connect; the signal
//! thread. An idle dashboard wakes every 30 s per maglevd (the full
//! refresh) and every 15 s per browser (the ping).

pub(crate) mod assets;
pub(crate) mod core;
pub(crate) mod hub;
pub(crate) mod link;
pub(crate) mod model;
pub(crate) mod ring;
pub mod web;

use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::{bounded, unbounded};
use log::{error, info, warn};

use crate::cli::{self, Arg, Args};
use crate::daemon::signals::{self, Signal};
use crate::wake::StopFd;

/// Where the dashboard listens unless told otherwise: loopback only (reach
/// it through an SSH tunnel, or set `--listen` for a wall screen).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The usage text.
pub const USAGE: &str = "\
Usage: maglevd-frontend [options]

The live web dashboard for one or more maglevds, read over their control
sockets. /view/ is read-only; /admin/ (HTTP basic auth from
MAGLEV_FRONTEND_USER and MAGLEV_FRONTEND_PASSWORD, off when unset) adds
pause, resume, enable, disable, weights, sync and reload.

Options:
  --server SOCKET[,SOCKET...]  control sockets of the maglevds to show; a
                     NAME=SOCKET entry names its column (default: the file
                     name, the host name for maglevd.sock)
                     [env MAGLEV_FRONTEND_SERVER] (default /run/vpp-maglev/maglevd.sock,
                     or maglevc's choice: $XDG_RUNTIME_DIR/vpp-maglev/maglevd.sock)
  --listen ADDR      HTTP address [env MAGLEV_FRONTEND_LISTEN] (default 127.0.0.1:8080)
  --max-connections N  HTTP connections at once, 4..4096; half of them at
                     most event streams [env MAGLEV_FRONTEND_MAX_CONNECTIONS]
                     (default 64)
  --behind-proxy     a TLS proxy fronts this listener: no warning for the
                     admin pages on a non-loopback address
                     [env MAGLEV_FRONTEND_BEHIND_PROXY]
  --log-level LEVEL  error, warn, info, debug [env MAGLEV_FRONTEND_LOG_LEVEL] (default info)
  --version          print the version and exit
  --help             print this help and exit

See maglevd-frontend(8).";

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// (name, socket) of each maglevd.
    pub servers: Vec<(String, String)>,
    /// HTTP address.
    pub listen: String,
    /// HTTP connections at once.
    pub max_connections: usize,
    /// A TLS proxy fronts the listener.
    pub behind_proxy: bool,
    /// Log level.
    pub log_level: log::LevelFilter,
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Names and sockets of a `--server` list: `NAME=SOCKET` or `SOCKET` (the
/// file name without `.sock`; `maglevd.sock` is this host's); a repeated
/// name gets `-2`, `-3`.
pub fn servers(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, socket) = match item.split_once('=') {
            Some((n, s)) => (n.trim().to_string(), s.trim().to_string()),
            None => {
                let stem = std::path::Path::new(item)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("maglevd")
                    .to_string();
                let name = if stem == "maglevd" { hostname() } else { stem };
                (name, item.to_string())
            }
        };
        if name.is_empty() || socket.is_empty() || name.contains(['/', ' ', '"']) {
            return Err(format!("--server: `{item}` is not SOCKET or NAME=SOCKET"));
        }
        let mut unique = name.clone();
        let mut n = 2;
        while out.iter().any(|(x, _)| *x == unique) {
            unique = format!("{name}-{n}");
            n += 1;
        }
        out.push((unique, socket));
    }
    if out.is_empty() {
        return Err("--server needs at least one socket".into());
    }
    Ok(out)
}

/// Parses the command line (`args` without the program name) with the
/// environment `env`; `Ok(None)`: help or version was printed.
pub fn parse_options(
    args: impl Iterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Options>, String> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    // Where maglevc would look: the system socket, or the user's.
    let mut server = var("MAGLEV_FRONTEND_SERVER").unwrap_or_else(|| {
        crate::control::paths::for_client()
            .to_string_lossy()
            .into_owned()
    });
    let mut listen = var("MAGLEV_FRONTEND_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into());
    let mut level = var("MAGLEV_FRONTEND_LOG_LEVEL").unwrap_or_else(|| "info".into());
    let mut max_conns =
        var("MAGLEV_FRONTEND_MAX_CONNECTIONS").unwrap_or_else(|| web::MAX_CONNECTIONS.to_string());
    let mut behind_proxy = match var("MAGLEV_FRONTEND_BEHIND_PROXY") {
        Some(v) => cli::parse_bool("behind-proxy", Some(&v))?,
        None => false,
    };
    let mut a = Args::new(args);
    while let Some(arg) = a.next() {
        let (name, inline, raw) = match arg {
            Arg::Word(w) => return Err(format!("unexpected argument `{w}`")),
            Arg::Flag { name, inline, raw } => (name, inline, raw),
        };
        match name.as_str() {
            "server" => server = a.value(&name, inline, "a socket list")?,
            "listen" => listen = a.value(&name, inline, "an address")?,
            "log-level" => level = a.value(&name, inline, "a level")?,
            "max-connections" => max_conns = a.value(&name, inline, "a number")?,
            "behind-proxy" => behind_proxy = cli::parse_bool(&name, inline.as_deref())?,
            "version" => {
                println!("{}", cli::version_line("maglevd-frontend"));
                return Ok(None);
            }
            "help" | "h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            _ => return Err(format!("unknown option `{raw}`")),
        }
    }
    let log_level = crate::logging::parse_level(&level)
        .ok_or_else(|| format!("--log-level: `{level}` is not error, warn, info or debug"))?;
    let max_connections = max_conns
        .parse::<usize>()
        .ok()
        .filter(|n| (4..=4096).contains(n))
        .ok_or_else(|| format!("--max-connections: `{max_conns}` is not a number in 4..4096"))?;
    Ok(Some(Options {
        servers: servers(&server)?,
        listen,
        max_connections,
        behind_proxy,
        log_level,
    }))
}

/// Admin credentials from the environment, when both are set.
pub fn admin_from_env(env: impl Fn(&str) -> Option<String>) -> Option<web::Admin> {
    let user = env("MAGLEV_FRONTEND_USER").filter(|v| !v.is_empty())?;
    let password = env("MAGLEV_FRONTEND_PASSWORD").filter(|v| !v.is_empty())?;
    Some(web::Admin { user, password })
}

/// The address `--listen` names: `HOST:PORT` (a name is resolved, its
/// first address taken) or `:PORT` (every address).
pub fn resolve(listen: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    crate::httpd::every_address(listen)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("`{listen}` names no address"))
}

/// Runs the dashboard until SIGTERM or SIGINT; the exit status.
pub fn run(opts: Options) -> u8 {
    // Before any thread: every thread inherits the mask.
    if let Err(e) = signals::block() {
        eprintln!("maglevd-frontend: cannot block signals: {e}");
        return 1;
    }
    crate::logging::init(opts.log_level);
    // Threads that each allocate a little (one per browser) must not each
    // get a malloc arena.
    crate::limits::limit_malloc_arenas();
    let addr = match resolve(&opts.listen) {
        Ok(a) => a,
        Err(e) => {
            error!("listen-failed address={} error={e}", opts.listen);
            return 1;
        }
    };
    let admin = admin_from_env(|k| std::env::var(k).ok());
    let epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let waker = match crate::wake::Waker::new() {
        Ok(w) => Arc::new(w),
        Err(e) => {
            error!("startup-failed error={e}");
            return 1;
        }
    };
    let broker = Arc::new(hub::Broker::new(
        epoch,
        opts.max_connections / 2,
        Some(Arc::clone(&waker)),
    ));
    let stop_fd = match StopFd::new() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            error!("startup-failed error={e}");
            return 1;
        }
    };
    let (rep_tx, rep_rx) = unbounded();
    let (ask_tx, ask_rx) = bounded(64);
    let mut connects = Vec::new();
    let mut jobs = Vec::new();
    for (i, (_, socket)) in opts.servers.iter().enumerate() {
        let (ctx, crx) = unbounded();
        let (jtx, jrx) = unbounded();
        let started = link::watcher(i, socket.clone(), crx, rep_tx.clone(), Arc::clone(&stop_fd))
            .and_then(|_| link::fetcher(i, socket.clone(), jrx, rep_tx.clone()));
        if let Err(e) = started {
            error!("startup-failed error={e}");
            return 1;
        }
        connects.push(ctx);
        jobs.push(jtx);
    }
    let web = Arc::new(web::Web {
        asks: ask_tx,
        jobs: opts
            .servers
            .iter()
            .map(|(n, _)| n.clone())
            .zip(jobs.iter().cloned())
            .collect(),
        broker: Arc::clone(&broker),
        admin: admin.clone(),
    });
    let (stop_tx, stop_rx) = bounded::<()>(0);
    let h = hub::Hub::new(&opts.servers, connects, jobs, Arc::clone(&broker));
    let hub_thread = std::thread::Builder::new()
        .name("hub".into())
        .spawn(move || h.run(rep_rx, ask_rx, stop_rx));
    if let Err(e) = hub_thread {
        error!("startup-failed error={e}");
        return 1;
    }
    let server = match crate::httpd::HttpServer::start(
        addr,
        "web",
        web::limits(opts.max_connections),
        web.handler(),
        Some(waker),
    ) {
        Ok(s) => s,
        Err(e) => {
            error!("listen-failed address={} error={e}", opts.listen);
            return 1;
        }
    };
    let (sig_tx, sig_rx) = bounded(4);
    if let Err(e) = signals::spawn(sig_tx) {
        error!("startup-failed error={e}");
        return 1;
    }
    // The address bound (port 0 picks one: the log says which).
    let listening = server.local_addr();
    if admin.is_some() && !opts.behind_proxy && !listening.ip().is_loopback() {
        warn!(
            "admin-over-plain-http listen={listening} note=\"basic auth crosses the network in clear text; \
             put a TLS proxy in front (maglevd-frontend(8)) and say --behind-proxy\""
        );
    }
    info!(
        "starting version={} listen={listening} maglevds={} admin={}",
        crate::VERSION,
        opts.servers
            .iter()
            .map(|(n, s)| format!("{n}={s}"))
            .collect::<Vec<_>>()
            .join(","),
        if admin.is_some() { "on" } else { "off" }
    );
    loop {
        match sig_rx.recv() {
            // A dashboard has no configuration to reload (as the original).
            Ok(Signal::Reload) => info!("sighup-ignored"),
            Ok(Signal::Stop(sig)) => {
                info!("stopping signal={sig}");
                break;
            }
            Err(_) => break,
        }
    }
    // Wake every blocked thread; a worker waiting on a maglevd ends with
    // the process (it must not hold up the stop).
    stop_fd.trigger();
    drop(stop_tx);
    server.shutdown();
    info!("stopped");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Options>, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_options(args.iter().map(|s| s.to_string()), move |k| {
            env.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn flags_env_and_defaults() {
        let o = opts(&[], &[]).unwrap().unwrap();
        assert_eq!(o.listen, DEFAULT_LISTEN);
        assert_eq!(
            o.servers,
            vec![(hostname(), "/run/vpp-maglev/maglevd.sock".into())]
        );
        let o = opts(
            &[
                "-server",
                "/run/maglev/r1.sock,r2=/tmp/x.sock,/a/r1.sock",
                "--listen=[::]:9000",
            ],
            &[("MAGLEV_FRONTEND_LISTEN", "0.0.0.0:1")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            o.servers,
            vec![
                ("r1".into(), "/run/maglev/r1.sock".into()),
                ("r2".into(), "/tmp/x.sock".into()),
                ("r1-2".into(), "/a/r1.sock".into())
            ]
        );
        assert_eq!(o.listen, "[::]:9000");
        let o = opts(
            &[],
            &[
                ("MAGLEV_FRONTEND_SERVER", "a.sock"),
                ("MAGLEV_FRONTEND_LOG_LEVEL", "debug"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.servers[0].0, "a");
        assert_eq!(o.log_level, log::LevelFilter::Debug);
        assert!(opts(&["--server", ","], &[]).is_err());
        assert!(opts(&["--bogus"], &[]).is_err());
        assert!(opts(&["--log-level", "loud"], &[]).is_err());
    }

    #[test]
    fn admin_needs_both_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(x, _)| *x == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(admin_from_env(env(&[("MAGLEV_FRONTEND_USER", "ops")])).is_none());
        assert!(
            admin_from_env(env(&[
                ("MAGLEV_FRONTEND_USER", "ops"),
                ("MAGLEV_FRONTEND_PASSWORD", "")
            ]))
            .is_none()
        );
        let a = admin_from_env(env(&[
            ("MAGLEV_FRONTEND_USER", "ops"),
            ("MAGLEV_FRONTEND_PASSWORD", "pw"),
        ]))
        .unwrap();
        assert_eq!((a.user.as_str(), a.password.as_str()), ("ops", "pw"));
    }
}
