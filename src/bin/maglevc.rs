//! `maglevc`: the operator's CLI for maglevd, over its control socket.
//!
//! One-shot (`maglevc show backends`) for scripts, or an interactive
//! shell without arguments. Exit codes: 0 ok, 1 maglevd answered with an
//! error, 2 usage error, 3 cannot connect.

use std::io::IsTerminal;
use std::process::ExitCode;

use vpp_maglev::cli::{self, Arg, Args};
use vpp_maglev::control::format::Style;
use vpp_maglev::control::shell;

const USAGE: &str = "\
Usage: maglevc [options] [command...]

Talks to maglevd over its control socket. With a command, runs it and
exits; without, starts an interactive shell (TAB completes, ? helps).

Options:
  --socket PATH      control socket [env MAGLEV_CONTROL_SOCKET, as maglevd;
                     MAGLEV_SOCKET is accepted too]
                     (default /run/vpp-maglev/maglevd.sock)
  --json             print maglevd's JSON replies unchanged
  --color[=BOOL]     ANSI colour (default: on in the shell on a terminal)
  --version          print the version and exit
  --help             print this help and exit

Commands: show version|frontends|frontend <f>|backends|backend <b>|
  healthchecks|healthcheck <h>|vpp info|vpp lb state|vpp lb counters;
  sync vpp lb state [<f>]; set backend <b> pause|resume|enable|disable;
  set frontend <f> pool <p> backend <b> weight <0-100> [flush];
  preview set backend <b> pause|disable|weight <0-100> [frontend <f>];
  preview set frontend <f> pool <p> backend <b> weight <0-100> [flush]; preview config;
  config check|reload; watch events [num <n>] [log [level <l>]] [backend] [frontend].
Exit status: 0 ok, 1 error from maglevd, 2 usage error, 3 cannot connect.
See maglevc(1).";

struct Opts {
    socket: String,
    json: bool,
    color: Option<bool>,
    words: Vec<String>,
    /// `--complete LINE`: print completions (bash completion uses it).
    complete: Option<String>,
}

fn parse_args() -> Result<Option<Opts>, String> {
    let mut o = Opts {
        // One name in both binaries; maglevc's older name still works.
        socket: ["MAGLEV_CONTROL_SOCKET", "MAGLEV_SOCKET"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|s| !s.is_empty()))
            // Where maglevd would be: the system path or the user's
            // runtime directory, whichever exists.
            .unwrap_or_else(|| {
                vpp_maglev::control::paths::for_client()
                    .to_string_lossy()
                    .into_owned()
            }),
        json: false,
        color: None,
        words: Vec::new(),
        complete: None,
    };
    let mut args = Args::new(std::env::args().skip(1));
    while let Some(arg) = args.next() {
        // Options come first; the first word starts the command.
        let (name, inline, raw) = match arg {
            Arg::Word(w) => {
                o.words.push(w);
                o.words.extend(args.remaining());
                break;
            }
            Arg::Flag { name, inline, raw } => (name, inline, raw),
        };
        match name.as_str() {
            "socket" | "s" => o.socket = args.value(&name, inline, "a path")?,
            "json" => o.json = cli::parse_bool(&name, inline.as_deref())?,
            "complete" => {
                o.complete = Some(
                    inline
                        .or_else(|| args.remaining().next())
                        .unwrap_or_default(),
                )
            }
            "color" | "colour" => o.color = Some(cli::parse_bool(&name, inline.as_deref())?),
            "version" | "V" => {
                println!("{}", cli::version_line("maglevc"));
                return Ok(None);
            }
            "help" | "h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            _ => return Err(format!("unknown option `{raw}`")),
        }
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    cli::default_sigpipe();
    let o = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return ExitCode::from(cli::usage_error("maglevc", &e, USAGE)),
    };
    if let Some(line) = &o.complete {
        for c in shell::complete(&o.socket, line) {
            println!("{c}");
        }
        return ExitCode::SUCCESS;
    }
    if o.words.is_empty() {
        let color = o.color.unwrap_or_else(|| std::io::stdout().is_terminal());
        return ExitCode::from(shell::run(&o.socket, Style { color }, o.json));
    }
    let st = Style {
        color: o.color.unwrap_or(false),
    };
    ExitCode::from(shell::run_command(
        &o.socket,
        &o.words.join(" "),
        st,
        o.json,
        "maglevc: ",
    ))
}
