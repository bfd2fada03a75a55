//! `maglevd`'s command line and environment.
//!
//! Flags win over environment variables, which win over defaults. Flags
//! follow [`crate::cli`]'s conventions, shared with maglevc.

use std::path::PathBuf;

use log::LevelFilter;

use crate::cli::{Arg, Args, parse_bool};
use crate::config;
use crate::logging;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Run the daemon (or only validate, with `check`).
    Run(Options),
    /// Print usage and exit 0.
    Help,
    /// Print version and exit 0.
    Version,
}

/// Settings of one `maglevd` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Configuration file.
    pub config: PathBuf,
    /// Validate the configuration and exit.
    pub check: bool,
    /// Log verbosity.
    pub log_level: LevelFilter,
    /// Log line format.
    pub log_format: logging::Format,
    /// Run a simulated VPP in-process and program it instead of VPP.
    pub vpp_sim: bool,
    /// Where `/metrics` listens (`None`: disabled).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The control socket (`None`: disabled).
    pub control_socket: Option<PathBuf>,
    /// Group whose members may run mutating commands.
    pub admin_group: String,
    /// Where the one-daemon-per-VPP lock files live.
    pub lock_dir: PathBuf,
    /// Withdraw every announced address (empty BIRD sets, reload) and exit.
    pub withdraw: bool,
    /// Where state kept across restarts lives (the maintenance withdraw).
    pub state_dir: PathBuf,
}

/// Default `--lock-dir`.
pub const DEFAULT_LOCK_DIR: &str = "/run/vpp-maglev";

/// Default `--control-socket` (see [`crate::control::paths`] for the
/// fallback of an ordinary user).
pub const DEFAULT_CONTROL_SOCKET: &str = crate::control::paths::DEFAULT_SOCKET;
/// Default `--admin-group`.
pub const DEFAULT_ADMIN_GROUP: &str = "maglevd";

/// Usage text for `--help` and usage errors.
pub const USAGE: &str = "\
Usage: maglevd [options]

Health checker and control plane for the VPP Maglev load balancer.

Options:
  --config PATH        configuration file [env MAGLEV_CONFIG]
                       (default /etc/vpp-maglev/maglev.yaml)
  --check              validate the configuration and exit:
                       0 valid, 1 unreadable or parse error, 2 semantic error
  --log-level LEVEL    error, warn, info, debug or trace [env MAGLEV_LOG_LEVEL]
                       (default info)
  --log-format FORMAT  text (default; stderr, journald-aware) or json (one
                       object per line on stdout, as the original)
                       [env MAGLEV_LOG_FORMAT]
  --vpp-sim            run a simulated VPP in-process on a private socket and
                       program it instead of the configured api-socket
  --metrics-addr ADDR  serve Prometheus /metrics on ADDR [env MAGLEV_METRICS_ADDR]
                       (default :9091; empty disables)
  --control-socket PATH
                       maglevc's Unix socket [env MAGLEV_CONTROL_SOCKET]
                       (default /run/vpp-maglev/maglevd.sock, or, where that
                       cannot be written, $XDG_RUNTIME_DIR/vpp-maglev/
                       maglevd.sock; empty disables)
  --admin-group NAME   group allowed to run set/sync/config reload besides root
                       [env MAGLEV_ADMIN_GROUP] (default maglevd)
  --withdraw           write the BIRD fragment of maglev.announce with empty
                       sets, run its reload, and exit (after a crash: the
                       unit's ExecStopPost)
  --state-dir DIR      state kept across restarts [env STATE_DIRECTORY,
                       MAGLEV_STATE_DIR; default /var/lib/vpp-maglev]
  --lock-dir DIR       where the lock that allows one maglevd per VPP API
                       socket lives [env MAGLEV_LOCK_DIR] (default /run/vpp-maglev)
  --version            print version and git commit, then exit
  --help               print this help, then exit

Signals: SIGHUP reloads the configuration, SIGTERM/SIGINT stop the daemon.
See maglevd(8) and maglev.yaml(5).";

/// Exit status for a command line that cannot be understood.
pub const EXIT_USAGE: i32 = crate::cli::EXIT_USAGE as i32;

/// Parses `args` (without the program name), reading defaults from `env`.
pub fn parse<I, S>(args: I, env: impl Fn(&str) -> Option<String>) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut config = env("MAGLEV_CONFIG")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let mut level_word = env("MAGLEV_LOG_LEVEL").filter(|s| !s.is_empty());
    let mut format_word = env("MAGLEV_LOG_FORMAT").filter(|s| !s.is_empty());
    let mut check = false;
    let mut vpp_sim = false;
    let mut control_word = env("MAGLEV_CONTROL_SOCKET");
    let mut admin_group = env("MAGLEV_ADMIN_GROUP")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_GROUP.to_string());
    let mut lock_dir = env("MAGLEV_LOCK_DIR").filter(|s| !s.is_empty());
    let mut withdraw = false;
    let mut state_dir = env("MAGLEV_STATE_DIR")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            env("STATE_DIRECTORY")
                .filter(|s| !s.is_empty())
                .map_or_else(crate::announce::default_state_dir, |s| {
                    PathBuf::from(s.split(':').next().unwrap_or_default())
                })
        });
    let mut metrics_word =
        env("MAGLEV_METRICS_ADDR").unwrap_or_else(|| crate::metrics::DEFAULT_ADDR.to_string());

    let mut args = Args::new(args.into_iter().map(Into::into));
    while let Some(arg) = args.next() {
        let (name, inline, raw) = match arg {
            Arg::Word(w) => return Err(format!("unexpected argument `{w}`")),
            Arg::Flag { name, inline, raw } => (name, inline, raw),
        };
        let mut value = |what: &str| args.value(&name, inline.clone(), what);
        match name.as_str() {
            "config" | "c" => config = PathBuf::from(value("a file path")?),
            "log-level" => level_word = Some(value("a level")?),
            "log-format" => format_word = Some(value("text or json")?),
            "check" => check = parse_bool(&name, inline.as_deref())?,
            "vpp-sim" => vpp_sim = parse_bool(&name, inline.as_deref())?,
            "metrics-addr" => metrics_word = value("an address (or \"\")")?,
            "control-socket" => control_word = Some(value("a socket path (or \"\")")?),
            "admin-group" => admin_group = value("a group name")?,
            "lock-dir" => lock_dir = Some(value("a directory")?),
            "withdraw" => withdraw = parse_bool(&name, inline.as_deref())?,
            "state-dir" => state_dir = PathBuf::from(value("a directory")?),
            "version" | "V" => return Ok(Command::Version),
            "help" | "h" => return Ok(Command::Help),
            _ => return Err(format!("unknown option `{raw}`")),
        }
    }
    let log_level = match level_word {
        None => LevelFilter::Info,
        Some(w) => logging::parse_level(&w).ok_or_else(|| {
            format!("unknown log level `{w}` (use error, warn, info, debug or trace)")
        })?,
    };
    let log_format = match format_word {
        None => logging::Format::Text,
        Some(w) => logging::Format::parse(&w)
            .ok_or_else(|| format!("unknown log format `{w}` (use text or json)"))?,
    };
    let metrics_addr =
        crate::metrics::parse_addr(&metrics_word).map_err(|e| format!("--metrics-addr: {e}"))?;
    Ok(Command::Run(Options {
        config,
        check,
        log_level,
        log_format,
        vpp_sim,
        metrics_addr,
        control_socket: match control_word {
            // Not given: the system path, or the user's runtime directory
            // where the system one cannot be written (no root).
            None => Some(crate::control::paths::for_daemon()),
            Some(w) if w.trim().is_empty() => None,
            Some(w) => Some(PathBuf::from(w)),
        },
        admin_group,
        withdraw,
        state_dir,
        // Beside the control socket by default: /run/vpp-maglev, or the
        // user's runtime directory where that cannot be written.
        lock_dir: lock_dir.map(PathBuf::from).unwrap_or_else(|| {
            crate::control::paths::for_daemon()
                .parent()
                .map_or_else(|| PathBuf::from(DEFAULT_LOCK_DIR), PathBuf::from)
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().copied(), no_env) {
            Ok(Command::Run(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = run(&[]);
        assert_eq!(o.config, PathBuf::from("/etc/vpp-maglev/maglev.yaml"));
        assert!(!o.check);
        assert_eq!(o.log_level, LevelFilter::Info);
    }

    #[test]
    fn flag_forms() {
        assert_eq!(run(&["--config", "/a"]).config, PathBuf::from("/a"));
        assert_eq!(run(&["--config=/b"]).config, PathBuf::from("/b"));
        assert_eq!(run(&["-config", "/c"]).config, PathBuf::from("/c"));
        assert!(run(&["--check"]).check);
        assert!(!run(&["--check=false"]).check);
        assert_eq!(run(&["--log-level", "debug"]).log_level, LevelFilter::Debug);
    }

    #[test]
    fn env_and_precedence() {
        let env = |k: &str| match k {
            "MAGLEV_CONFIG" => Some("/env.yaml".to_string()),
            "MAGLEV_LOG_LEVEL" => Some("warn".to_string()),
            _ => None,
        };
        let Ok(Command::Run(o)) = parse(Vec::<String>::new(), env) else {
            panic!()
        };
        assert_eq!(o.config, PathBuf::from("/env.yaml"));
        assert_eq!(o.log_level, LevelFilter::Warn);
        let Ok(Command::Run(o)) = parse(["--config", "/flag.yaml"], env) else {
            panic!()
        };
        assert_eq!(o.config, PathBuf::from("/flag.yaml"));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(["--help"], no_env), Ok(Command::Help));
        assert_eq!(parse(["-h"], no_env), Ok(Command::Help));
        assert_eq!(parse(["--version"], no_env), Ok(Command::Version));
    }

    #[test]
    fn errors() {
        for (args, says) in [
            (&["--bogus"][..], "unknown option `--bogus`"),
            (&["stray"][..], "unexpected argument `stray`"),
            (&["--config"][..], "--config needs a file path"),
            (&["--log-level", "loud"][..], "unknown log level `loud`"),
            (&["--check=maybe"][..], "takes true or false"),
        ] {
            let err = parse(args.iter().copied(), no_env).unwrap_err();
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
}
