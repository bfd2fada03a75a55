//! `maglevc`: the operator's CLI for maglevd, over its control socket.
//!
//! One-shot (`maglevc show backends`) for scripts, or an interactive
//! shell without arguments. Exit codes: 0 ok, 1 maglevd answered with an
//! error, 2 usage error, 3 cannot connect.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use serde_json::Value;
use vpp_maglev::control::format::{Style, render};
use vpp_maglev::control::grammar::{self, Command};
use vpp_maglev::control::shell;

const USAGE: &str = "\
Usage: maglevc [options] [command...]

Talks to maglevd over its control socket. With a command, runs it and
exits; without, starts an interactive shell (TAB completes, ? helps).

Options:
  --socket PATH      control socket [env MAGLEV_SOCKET]
                     (default /run/vpp-maglev/maglevd.sock)
  --json             print maglevd's JSON replies unchanged
  --color[=BOOL]     ANSI colour (default: on in the shell on a terminal)
  --version          print the version and exit
  --help             print this help and exit

Commands: show version|frontends|frontend <f>|backends|backend <b>|
  healthchecks|healthcheck <h>|vpp info|vpp lb state|vpp lb counters;
  sync vpp lb state [<f>]; set backend <b> pause|resume|enable|disable;
  set frontend <f> pool <p> backend <b> weight <0-100> [flush];
  config check|reload; watch events [num <n>] [log [level <l>]] [backend] [frontend].
Exit status: 0 ok, 1 error from maglevd, 2 usage error, 3 cannot connect.
See maglevc(1).";

const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CONNECT: u8 = 3;

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
        socket: std::env::var("MAGLEV_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/run/vpp-maglev/maglevd.sock".into()),
        json: false,
        color: None,
        words: Vec::new(),
        complete: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if !o.words.is_empty() || !a.starts_with('-') {
            o.words.push(a);
            continue;
        }
        let flag = a.trim_start_matches('-');
        let (name, val) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        match name {
            "socket" | "s" => {
                o.socket = val.or_else(|| args.next()).ok_or("--socket needs a path")?
            }
            "json" => o.json = true,
            "complete" => o.complete = Some(val.or_else(|| args.next()).unwrap_or_default()),
            "color" | "colour" => {
                o.color = Some(match val.as_deref() {
                    None | Some("true") | Some("1") => true,
                    Some("false") | Some("0") => false,
                    Some(v) => return Err(format!("--color takes true or false, not `{v}`")),
                })
            }
            "version" | "V" => {
                println!(
                    "maglevc {} ({})",
                    vpp_maglev::VERSION,
                    vpp_maglev::GIT_COMMIT
                );
                return Ok(None);
            }
            "help" | "h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            _ => return Err(format!("unknown option `{a}`")),
        }
    }
    Ok(Some(o))
}

/// Why the socket could not be used, in the operator's terms.
pub fn connect_error(path: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => {
            "no such socket: is maglevd running? (see --control-socket)"
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied: run as root or as a member of group maglevd"
        }
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused: maglevd is not running (stale socket)"
        }
        _ => "",
    };
    if why.is_empty() {
        format!("cannot connect to {path}: {e}")
    } else {
        format!("cannot connect to {path}: {why}")
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maglevc: {e}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
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
    let line = o.words.join(" ");
    let st = Style {
        color: o.color.unwrap_or(false),
    };
    let cmd = match grammar::parse(&line) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("maglevc: {}", st.error(&e.0));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    ExitCode::from(one_shot(&o.socket, &line, &cmd, st, o.json))
}

/// Sends one command and prints the answer; returns the exit code.
pub fn one_shot(socket: &str, line: &str, cmd: &Command, st: Style, json: bool) -> u8 {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("maglevc: {}", st.error(&connect_error(socket, &e)));
            return EXIT_CONNECT;
        }
    };
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("maglevc: {e}");
            return EXIT_CONNECT;
        }
    };
    if writeln!(w, "{line}").is_err() {
        eprintln!("maglevc: maglevd closed the connection");
        return EXIT_CONNECT;
    }
    let words: Vec<&str> = canonical(line);
    let mut rd = BufReader::new(stream);
    let mut first = true;
    let mut buf = String::new();
    loop {
        buf.clear();
        match rd.read_line(&mut buf) {
            Ok(0) | Err(_) => return if first { EXIT_CONNECT } else { 0 },
            Ok(_) => {}
        }
        let v: Value = match serde_json::from_str(buf.trim_end()) {
            Ok(v) => v,
            Err(_) => {
                eprintln!("maglevc: unexpected reply: {}", buf.trim_end());
                return EXIT_ERROR;
            }
        };
        if json {
            println!("{}", buf.trim_end());
        } else if v["ok"] == Value::Bool(false) {
            eprintln!(
                "maglevc: {}",
                st.error(v["error"].as_str().unwrap_or("error"))
            );
        } else if !matches!(cmd, Command::Watch(_)) {
            print!("{}", render(&words, &v, st));
        } else if v.get("type").is_some() {
            println!("{v}");
        }
        let _ = std::io::stdout().flush();
        if v["ok"] == Value::Bool(false) {
            return EXIT_ERROR;
        }
        first = false;
        if !matches!(cmd, Command::Watch(_)) {
            return 0;
        }
    }
}

/// The command's full keywords (for picking the output layout).
fn canonical(line: &str) -> Vec<&'static str> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut nodes = grammar::TREE;
    let mut out = Vec::new();
    for w in words {
        match grammar::match_keyword(nodes, w) {
            Ok(Some(n)) => {
                out.push(n.word.unwrap_or(""));
                nodes = n.next;
            }
            _ => match nodes.iter().find(|n| n.slot.is_some()) {
                Some(n) => nodes = n.next,
                None => break,
            },
        }
    }
    out
}
