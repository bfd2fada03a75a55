//! `maglevc`'s interactive shell: a small line editor on termios (history,
//! arrows, Ctrl-A/E/U/W/C/D), TAB completion of keywords and live names,
//! `?` help birdc-style, and the same grammar as everything else. When
//! stdin is not a terminal it reads commands line by line (scripts, tests).

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;

use super::format::{Style, render};
use super::grammar::{self, Command, Slot};
use super::protocol::{Reply, StreamEvent};

const PROMPT: &str = "maglev> ";

/// maglevd's reply to `line` (`None` when maglevd cannot be asked or
/// says no: completion just offers less).
fn ask(socket: &str, line: &str) -> Option<Reply> {
    ask_answer(socket, line).ok()
}

/// Names for a slot, fetched live from maglevd (`words` gives context:
/// the frontend whose pools to list).
fn names(socket: &str, slot: Slot, words: &[&str]) -> Vec<String> {
    let names = |v: &mut dyn Iterator<Item = &String>| v.cloned().collect();
    match (
        slot,
        slot_command(slot, words).and_then(|l| ask(socket, &l)),
    ) {
        (Slot::Frontend, Some(Reply::Frontends { frontends })) => {
            names(&mut frontends.iter().map(|f| &f.name))
        }
        (Slot::Backend, Some(Reply::Backends { backends })) => {
            names(&mut backends.iter().map(|b| &b.name))
        }
        (Slot::Healthcheck, Some(Reply::Healthchecks { healthchecks })) => {
            names(&mut healthchecks.iter().map(|h| &h.name))
        }
        (
            Slot::Pool,
            Some(Reply::Frontend {
                frontend: Some(frontend),
            }),
        ) => names(
            &mut frontend
                .detail
                .iter()
                .flat_map(|d| &d.pools)
                .map(|p| &p.name),
        ),
        _ => Vec::new(),
    }
}

/// The command that lists the names of `slot`.
fn slot_command(slot: Slot, words: &[&str]) -> Option<String> {
    Some(match slot {
        Slot::Frontend => "show frontends".into(),
        Slot::Backend => "show backends".into(),
        Slot::Healthcheck => "show healthchecks".into(),
        Slot::Pool => {
            let fe = words
                .iter()
                .position(|w| "frontend".starts_with(w) && !w.is_empty())
                .and_then(|i| words.get(i + 1))
                .copied()
                .unwrap_or("");
            format!("show frontend {fe}")
        }
        _ => return None,
    })
}

/// Completions of the last (partial) word of `line`.
pub fn complete(socket: &str, line: &str) -> Vec<String> {
    let ends_with_space = line.ends_with(' ') || line.is_empty();
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let partial = if ends_with_space {
        ""
    } else {
        words.pop().unwrap_or("")
    };
    let mut out: Vec<String> = Vec::new();
    for n in grammar::next_nodes(&words) {
        match (n.word, n.slot) {
            (Some(w), _) if w.starts_with(partial) => out.push(w.to_string()),
            (None, Some(slot)) => out.extend(
                names(socket, slot, &words)
                    .into_iter()
                    .filter(|x| x.starts_with(partial)),
            ),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The `?` help lines for `line`.
pub fn help(line: &str) -> Vec<String> {
    let ends_with_space = line.ends_with(' ') || line.is_empty();
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let partial = if ends_with_space {
        ""
    } else {
        words.pop().unwrap_or("")
    };
    let nodes = grammar::next_nodes(&words);
    let mut out: Vec<String> = nodes
        .iter()
        .filter(|n| n.word.is_none_or(|w| w.starts_with(partial)))
        .map(|n| {
            let w = n.word.unwrap_or_else(|| n.slot.map_or("?", Slot::label));
            format!("  {w:<16} {}", n.help)
        })
        .collect();
    if grammar::parse(line).is_ok() {
        out.push("  <cr>             run it".into());
    }
    // The shell's own words, at the start of a line.
    if words.is_empty() {
        for (w, h) in [("quit", "leave the shell"), ("exit", "leave the shell")] {
            if w.starts_with(partial) {
                out.push(format!("  {w:<16} {h}"));
            }
        }
    }
    out
}

/// Exit code: maglevd answered with an error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the command does not parse.
pub const EXIT_USAGE: u8 = crate::cli::EXIT_USAGE;
/// Exit code: the socket cannot be used.
pub const EXIT_CONNECT: u8 = 3;

/// Why the socket could not be used, in the operator's terms.
pub fn connect_error(path: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "no such socket: is maglevd running? (point maglevc's \
             --socket, or MAGLEV_CONTROL_SOCKET, at maglevd's --control-socket)"
            .to_string(),
        std::io::ErrorKind::PermissionDenied => {
            // The socket's group is maglevd's admin group.
            let group = std::fs::metadata(path)
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
                .and_then(|g| nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(g)).ok())
                .flatten()
                .map_or_else(|| "maglevd".to_string(), |g| g.name);
            format!("permission denied: run as root or as a member of group {group}")
        }
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused: maglevd is not running (stale socket)".to_string()
        }
        _ => String::new(),
    };
    if why.is_empty() {
        format!("cannot connect to {path}: {e}")
    } else {
        format!("cannot connect to {path}: {why}")
    }
}

/// Runs one command line and prints the answer (a stream for `watch`);
/// errors go to stderr after `prefix`. Returns maglevc's exit code: 0, or
/// [`EXIT_ERROR`], [`EXIT_USAGE`], [`EXIT_CONNECT`]. One-shot mode and the
/// shell both come here.
pub fn run_command(socket: &str, line: &str, st: Style, json: bool, prefix: &str) -> u8 {
    let (line, wait) = match super::drain::split_options(line) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{prefix}{}", st.error(&e));
            return EXIT_USAGE;
        }
    };
    let line = line.as_str();
    let cmd = match grammar::parse(line) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{prefix}{}", st.error(&e.0));
            return EXIT_USAGE;
        }
    };
    if wait.is_some() && !matches!(cmd, Command::SetBackend(_, crate::checker::Action::Drain)) {
        eprintln!(
            "{prefix}{}",
            st.error("--wait, --quiet-for and --timeout go with `set backend <b> drain`")
        );
        return EXIT_USAGE;
    }
    let watching = matches!(cmd, Command::Watch(_));
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{prefix}{}", st.error(&connect_error(socket, &e)));
            return EXIT_CONNECT;
        }
    };
    // A write can fail because maglevd refused us and closed (too many
    // clients): its reply, already sent, is still worth reading.
    let sent = stream.try_clone().and_then(|mut w| writeln!(w, "{line}"));
    // On a terminal a watch ends on any key or Ctrl-C, as the original's:
    // the terminal is in cbreak mode meanwhile (output untouched).
    let keys = if watching && std::io::stdin().is_terminal() {
        Cbreak::enter()
    } else {
        None
    };
    let mut rd = BufReader::new(stream);
    let mut first = true;
    let mut buf = String::new();
    loop {
        buf.clear();
        if keys.is_some() && rd.buffer().is_empty() && key_before_data(rd.get_ref()) {
            return 0;
        }
        match rd.read_line(&mut buf) {
            Ok(0) | Err(_) => {
                if first {
                    let why = if sent.is_err() {
                        "maglevd closed the connection before reading the request"
                    } else {
                        "maglevd closed the connection without answering"
                    };
                    eprintln!("{prefix}{}", st.error(why));
                    return EXIT_CONNECT;
                }
                return 0;
            }
            Ok(_) => {}
        }
        let raw = buf.trim_end();
        // The first line answers the command; a watch then streams events.
        let answer = if first {
            Reply::decode(&cmd, raw).map(|a| a.map(Some))
        } else {
            StreamEvent::decode(raw).map(|_| Ok(None))
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{prefix}{}", st.error(&e.to_string()));
                return EXIT_ERROR;
            }
        };
        let failed = answer.is_err();
        let drained = match (&answer, wait) {
            (Ok(Some(Reply::Backend { backend })), Some(w)) => Some((backend.address.clone(), w)),
            _ => None,
        };
        match answer {
            _ if json => println!("{raw}"),
            Err(f) => eprintln!("{prefix}{}", st.error(&f.error)),
            Ok(Some(_)) if watching => {}
            Ok(Some(reply)) => print!("{}", render(&reply, st)),
            Ok(None) => println!("{raw}"),
        }
        let _ = std::io::stdout().flush();
        if failed {
            return EXIT_ERROR;
        }
        if let Some((address, w)) = drained {
            return wait_drained(socket, &address, w, st, json, prefix);
        }
        first = false;
        if !watching {
            return 0;
        }
    }
}

/// Polls VPP's flows for the AS `address` once a second until it has held
/// none for `quiet_for` ("drained", 0) or `timeout` passed (the VIPs still
/// carrying flows, [`EXIT_ERROR`]).
fn wait_drained(
    socket: &str,
    address: &str,
    w: super::drain::DrainWait,
    st: Style,
    json: bool,
    prefix: &str,
) -> u8 {
    use super::drain::{Verdict, Watch};
    use std::time::{Duration, Instant};
    let mut watch = Watch::new(Instant::now(), w);
    let mut last: Option<u64> = None;
    loop {
        let carrying: Vec<(String, u32)> = match ask_answer(socket, "show vpp lb state") {
            Ok(Reply::LbState(s)) => s
                .vips
                .iter()
                .flat_map(|v| {
                    v.ases
                        .iter()
                        .filter(|a| a.address == address && a.flows > 0)
                        .map(move |a| (format!("{}:{}/{}", v.prefix, v.protocol, v.port), a.flows))
                })
                .collect(),
            Ok(_) => Vec::new(),
            Err(e) => {
                eprintln!(
                    "{prefix}{}",
                    st.error(&format!("cannot watch the drain: {e}"))
                );
                return EXIT_ERROR;
            }
        };
        let total: u64 = carrying.iter().map(|(_, n)| u64::from(*n)).sum();
        if last != Some(total) && !json {
            println!("{address}: {total} flow(s) left");
            let _ = std::io::stdout().flush();
        }
        last = Some(total);
        match watch.observe(Instant::now(), total) {
            Verdict::Waiting => std::thread::sleep(Duration::from_secs(1)),
            Verdict::Drained => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"ok": true, "drained": true, "address": address})
                    );
                } else {
                    println!("drained");
                }
                return 0;
            }
            Verdict::TimedOut => {
                let vips: Vec<String> = carrying
                    .iter()
                    .map(|(v, n)| format!("{v} ({n} flows)"))
                    .collect();
                let msg = format!(
                    "not drained in time: still carrying flows on {}",
                    vips.join(", ")
                );
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"ok": false, "drained": false, "error": msg})
                    );
                } else {
                    eprintln!("{prefix}{}", st.error(&msg));
                }
                return EXIT_ERROR;
            }
        }
    }
}

/// maglevd's answer to `line`, maglevd's error or a connection problem as
/// the error text.
fn ask_answer(socket: &str, line: &str) -> Result<Reply, String> {
    let cmd = grammar::parse(line).map_err(|e| e.0)?;
    let s = UnixStream::connect(socket).map_err(|e| connect_error(socket, &e))?;
    writeln!(s.try_clone().map_err(|e| e.to_string())?, "{line}").map_err(|e| e.to_string())?;
    let mut l = String::new();
    BufReader::new(s)
        .read_line(&mut l)
        .map_err(|e| e.to_string())?;
    match Reply::decode(&cmd, l.trim_end()) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(f)) => Err(f.error),
        Err(e) => Err(e.to_string()),
    }
}

/// The terminal in cbreak mode (no line buffering, no echo, Ctrl-C a
/// plain byte) until dropped.
struct Cbreak {
    saved: nix::sys::termios::Termios,
}

impl Cbreak {
    fn enter() -> Option<Cbreak> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut t = saved.clone();
        t.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
        tcsetattr(&stdin, SetArg::TCSADRAIN, &t).ok()?;
        Some(Cbreak { saved })
    }
}

impl Drop for Cbreak {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// Waits for the next data on `sock` or a key on stdin; true (and the key
/// consumed) when a key came first.
fn key_before_data(sock: &UnixStream) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    loop {
        let mut fds = [
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
            Ok(_) => {}
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            let mut b = [0u8; 16];
            let _ = stdin.lock().read(&mut b);
            return true;
        }
        return false;
    }
}

/// Runs the shell; returns the exit code.
pub fn run(socket: &str, st: Style, json: bool) -> u8 {
    if !std::io::stdin().is_terminal() {
        let mut failed = false;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let l = line.trim();
            if l.is_empty() {
                continue;
            }
            if l == "quit" || l == "exit" {
                break;
            }
            failed |= run_command(socket, l, st, json, "") != 0;
        }
        return u8::from(failed);
    }
    println!(
        "maglevc {} — TAB completes, ? helps, quit leaves",
        crate::VERSION
    );
    let mut ed = Editor::new();
    loop {
        let Some(line) = ed.read_line(socket) else {
            println!();
            return 0;
        };
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        if l == "quit" || l == "exit" {
            return 0;
        }
        run_command(socket, l, st, json, "");
    }
}

/// Raw-mode line editing on the terminal.
struct Editor {
    history: Vec<String>,
    /// `~/.maglevc_history`, when HOME is known.
    file: Option<std::path::PathBuf>,
}

/// Lines of history kept.
const HISTORY_MAX: usize = 1000;

struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        // Keep output post-processing so "\n" still returns the carriage.
        raw.output_flags |= nix::sys::termios::OutputFlags::OPOST;
        tcsetattr(&stdin, SetArg::TCSADRAIN, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

impl Editor {
    fn new() -> Editor {
        let file = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| std::path::Path::new(&h).join(".maglevc_history"));
        let mut history: Vec<String> = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default();
        let drop = history.len().saturating_sub(HISTORY_MAX);
        history.drain(..drop);
        Editor { history, file }
    }

    /// Remembers `s` for the arrows and in the history file.
    fn remember(&mut self, s: &str) {
        if s.trim().is_empty() || self.history.last().map(String::as_str) == Some(s) {
            return;
        }
        self.history.push(s.to_string());
        if let Some(f) = &self.file {
            let append = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f);
            if let Ok(mut f) = append {
                let _ = writeln!(f, "{s}");
            }
        }
    }

    fn redraw(line: &[char], cursor: usize) {
        let text: String = line.iter().collect();
        let mut out = std::io::stdout();
        let _ = write!(out, "\r\x1b[K{PROMPT}{text}");
        if cursor < line.len() {
            let _ = write!(out, "\x1b[{}D", line.len() - cursor);
        }
        let _ = out.flush();
    }

    /// One line; `None` on Ctrl-D at an empty line or end of input.
    fn read_line(&mut self, socket: &str) -> Option<String> {
        let _raw = RawMode::enter()?;
        let mut line: Vec<char> = Vec::new();
        let mut cursor = 0usize;
        let mut hist = self.history.len();
        let mut stdin = std::io::stdin().lock();
        Self::redraw(&line, cursor);
        loop {
            let mut b = [0u8; 1];
            if stdin.read(&mut b).ok()? == 0 {
                return None;
            }
            match b[0] {
                b'\r' | b'\n' => {
                    println!();
                    let s: String = line.iter().collect();
                    self.remember(&s);
                    return Some(s);
                }
                // Ctrl-L: clear the screen and redraw the line.
                0x0c => {
                    print!("\x1b[H\x1b[2J");
                }
                1 => cursor = 0,
                5 => cursor = line.len(),
                3 => {
                    println!("^C");
                    line.clear();
                    cursor = 0;
                }
                4 if line.is_empty() => return None,
                4 if cursor < line.len() => {
                    line.remove(cursor);
                }
                21 => {
                    line.drain(..cursor);
                    cursor = 0;
                }
                23 => {
                    let mut i = cursor;
                    while i > 0 && line[i - 1] == ' ' {
                        i -= 1;
                    }
                    while i > 0 && line[i - 1] != ' ' {
                        i -= 1;
                    }
                    line.drain(i..cursor);
                    cursor = i;
                }
                0x7f | 8 if cursor > 0 => {
                    line.remove(cursor - 1);
                    cursor -= 1;
                }
                b'\t' => {
                    let head: String = line[..cursor].iter().collect();
                    let c = complete(socket, &head);
                    let partial_len = if head.ends_with(' ') || head.is_empty() {
                        0
                    } else {
                        head.split_whitespace()
                            .last()
                            .map_or(0, |w| w.chars().count())
                    };
                    let common = common_prefix(&c);
                    if c.len() == 1 {
                        let add: Vec<char> = c[0].chars().skip(partial_len).chain([' ']).collect();
                        for (i, ch) in add.iter().enumerate() {
                            line.insert(cursor + i, *ch);
                        }
                        cursor += add.len();
                    } else if common.chars().count() > partial_len {
                        let add: Vec<char> = common.chars().skip(partial_len).collect();
                        for (i, ch) in add.iter().enumerate() {
                            line.insert(cursor + i, *ch);
                        }
                        cursor += add.len();
                    } else if !c.is_empty() {
                        println!();
                        println!("{}", c.join("  "));
                    }
                }
                b'?' => {
                    let head: String = line[..cursor].iter().collect();
                    println!("?");
                    for h in help(&head) {
                        println!("{h}");
                    }
                }
                0x1b => {
                    let mut seq = [0u8; 2];
                    if stdin.read_exact(&mut seq).is_err() {
                        continue;
                    }
                    // ESC [ n ~ (Home 1/7, End 4/8): read up to the tilde.
                    if seq[0] == b'[' && seq[1].is_ascii_digit() {
                        let mut n = vec![seq[1]];
                        let mut b = [0u8; 1];
                        while n.len() < 4 && stdin.read_exact(&mut b).is_ok() && b[0] != b'~' {
                            n.push(b[0]);
                        }
                        match n.as_slice() {
                            b"1" | b"7" => cursor = 0,
                            b"4" | b"8" => cursor = line.len(),
                            b"3" if cursor < line.len() => {
                                line.remove(cursor);
                            }
                            _ => {}
                        }
                        Self::redraw(&line, cursor);
                        continue;
                    }
                    match seq {
                        [b'[', b'A'] if hist > 0 => {
                            hist -= 1;
                            line = self.history[hist].chars().collect();
                            cursor = line.len();
                        }
                        [b'[', b'B'] => {
                            if hist + 1 < self.history.len() {
                                hist += 1;
                                line = self.history[hist].chars().collect();
                            } else {
                                hist = self.history.len();
                                line.clear();
                            }
                            cursor = line.len();
                        }
                        [b'[', b'C'] if cursor < line.len() => cursor += 1,
                        [b'[', b'D'] if cursor > 0 => cursor -= 1,
                        [b'[' | b'O', b'H'] => cursor = 0,
                        [b'[' | b'O', b'F'] => cursor = line.len(),
                        _ => {}
                    }
                }
                c if c >= 0x20 => {
                    line.insert(cursor, c as char);
                    cursor += 1;
                }
                _ => {}
            }
            Self::redraw(&line, cursor);
        }
    }
}

fn common_prefix(c: &[String]) -> String {
    let Some(first) = c.first() else {
        return String::new();
    };
    let mut n = first.len();
    for s in &c[1..] {
        n = n.min(
            first
                .chars()
                .zip(s.chars())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    first.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_what_may_follow() {
        let h = help("show ");
        assert!(
            h.iter()
                .any(|l| l.contains("frontends") && l.contains("all frontends"))
        );
        let h = help("show fr");
        assert!(
            h.iter()
                .filter(|l| !l.contains("<cr>"))
                .all(|l| l.contains("frontend")),
            "{h:?}"
        );
        let h = help("show frontends");
        assert!(h.iter().any(|l| l.contains("<cr>")), "{h:?}");
    }

    #[test]
    fn keyword_completion_without_a_daemon() {
        assert_eq!(complete("/nonexistent", "sh"), vec!["show"]);
        assert_eq!(complete("/nonexistent", "show vpp lb c"), vec!["counters"]);
        assert_eq!(
            common_prefix(&["frontend".into(), "frontends".into()]),
            "frontend"
        );
    }
}
