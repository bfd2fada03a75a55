//! `maglevc`'s interactive shell: a small line editor on termios (history,
//! arrows, Ctrl-A/E/U/W/C/D), TAB completion of keywords and live names,
//! `?` help birdc-style, and the same grammar as everything else. When
//! stdin is not a terminal it reads commands line by line (scripts, tests).

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;

use serde_json::Value;

use super::format::{Style, render};
use super::grammar::{self, Command, Slot};

const PROMPT: &str = "maglev> ";

/// Sends `line` and returns the replies (one for commands, until EOF or
/// `num` for `watch`).
fn ask(socket: &str, line: &str) -> Result<Vec<Value>, String> {
    let s = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to {socket}: {e} (is maglevd running? --socket?)"))?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    writeln!(w, "{line}").map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for l in BufReader::new(s).lines() {
        let Ok(l) = l else { break };
        out.push(serde_json::from_str(&l).map_err(|_| format!("unexpected reply: {l}"))?);
        if !line.trim_start().starts_with('w') {
            break;
        }
    }
    Ok(out)
}

/// Names for a slot, fetched live from maglevd (`words` gives context:
/// the frontend whose pools to list).
fn names(socket: &str, slot: Slot, words: &[&str]) -> Vec<String> {
    let (cmd, key) = match slot {
        Slot::Frontend => ("show frontends", "frontends"),
        Slot::Backend => ("show backends", "backends"),
        Slot::Healthcheck => ("show healthchecks", "healthchecks"),
        Slot::Pool => {
            let fe = words
                .iter()
                .position(|w| "frontend".starts_with(w) && !w.is_empty())
                .and_then(|i| words.get(i + 1))
                .copied()
                .unwrap_or("");
            let Ok(v) = ask(socket, &format!("show frontend {fe}")) else {
                return Vec::new();
            };
            return v
                .first()
                .and_then(|v| v["frontend"]["pools"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
        }
        _ => return Vec::new(),
    };
    let Ok(v) = ask(socket, cmd) else {
        return Vec::new();
    };
    v.first()
        .and_then(|v| v[key].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|x| x["name"].as_str().map(str::to_string))
        .collect()
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
    out
}

/// Runs a command line and prints the result; false on error.
fn execute(socket: &str, line: &str, st: Style, json: bool) -> bool {
    let cmd = match grammar::parse(line) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", st.error(&e.0));
            return false;
        }
    };
    let words: Vec<&str> = canonical(line);
    if let Command::Watch(_) = cmd {
        return watch(socket, line, json, st);
    }
    match ask(socket, line) {
        Ok(v) => {
            let Some(v) = v.first() else {
                eprintln!("{}", st.error("no answer"));
                return false;
            };
            if json {
                println!("{v}");
            } else if v["ok"] == Value::Bool(false) {
                eprintln!("{}", st.error(v["error"].as_str().unwrap_or("error")));
                return false;
            } else {
                print!("{}", render(&words, v, st));
            }
            true
        }
        Err(e) => {
            eprintln!("{}", st.error(&e));
            false
        }
    }
}

fn watch(socket: &str, line: &str, json: bool, st: Style) -> bool {
    let s = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", st.error(&format!("cannot connect to {socket}: {e}")));
            return false;
        }
    };
    let Ok(mut w) = s.try_clone() else {
        return false;
    };
    if writeln!(w, "{line}").is_err() {
        return false;
    }
    for l in BufReader::new(s).lines() {
        let Ok(l) = l else { break };
        let v: Value = serde_json::from_str(&l).unwrap_or(Value::Null);
        if v["ok"] == Value::Bool(false) {
            eprintln!("{}", st.error(v["error"].as_str().unwrap_or("error")));
            return false;
        }
        if json || v.get("type").is_some() {
            println!("{l}");
        }
    }
    true
}

fn canonical(line: &str) -> Vec<&'static str> {
    let mut nodes = grammar::TREE;
    let mut out = Vec::new();
    for w in line.split_whitespace() {
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
            failed |= !execute(socket, l, st, json);
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
        execute(socket, l, st, json);
    }
}

/// Raw-mode line editing on the terminal.
struct Editor {
    history: Vec<String>,
}

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
        Editor {
            history: Vec::new(),
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
                    if !s.trim().is_empty() && self.history.last() != Some(&s) {
                        self.history.push(s.clone());
                    }
                    return Some(s);
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
                        [b'[', b'H'] => cursor = 0,
                        [b'[', b'F'] => cursor = line.len(),
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
