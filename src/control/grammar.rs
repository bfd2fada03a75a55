//! The command language shared by the control socket and `maglevc`: one
//! tree of keywords and argument slots gives parsing (with unique-prefix
//! abbreviations, exact matches first), completion and inline help, so
//! the daemon and the CLI can never disagree about what a line means.

use crate::checker::Action;
use crate::checker::whatif::Change;

/// What fills an argument slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A frontend name.
    Frontend,
    /// A backend name.
    Backend,
    /// A pool name of the frontend named earlier.
    Pool,
    /// A health check name.
    Healthcheck,
    /// 0..=100.
    Weight,
    /// A positive count.
    Count,
    /// A log level.
    Level,
}

impl Slot {
    /// How help shows it.
    pub fn label(self) -> &'static str {
        match self {
            Slot::Frontend => "<frontend>",
            Slot::Backend => "<backend>",
            Slot::Pool => "<pool>",
            Slot::Healthcheck => "<healthcheck>",
            Slot::Weight => "<0-100>",
            Slot::Count => "<n>",
            Slot::Level => "<level>",
        }
    }
}

/// One node of the tree.
#[derive(Debug)]
pub struct Node {
    /// `Some(word)` for a keyword, `None` for an argument slot.
    pub word: Option<&'static str>,
    /// The slot, for arguments.
    pub slot: Option<Slot>,
    /// One line of help.
    pub help: &'static str,
    /// What may follow.
    pub next: &'static [Node],
    /// Whether a command may end here.
    pub end: bool,
}

const fn kw(word: &'static str, help: &'static str, next: &'static [Node], end: bool) -> Node {
    Node {
        word: Some(word),
        slot: None,
        help,
        next,
        end,
    }
}

const fn arg(slot: Slot, help: &'static str, next: &'static [Node], end: bool) -> Node {
    Node {
        word: None,
        slot: Some(slot),
        help,
        next,
        end,
    }
}

/// Options of `watch events`, in any order (handled by the parser).
pub const WATCH_OPTIONS: &[Node] = &[
    kw(
        "num",
        "stop after n events",
        &[arg(Slot::Count, "number of events", &[], true)],
        true,
    ),
    kw(
        "log",
        "include log events",
        &[kw(
            "level",
            "minimum level",
            &[arg(Slot::Level, "error, warn, info, debug", &[], true)],
            true,
        )],
        true,
    ),
    kw("backend", "include backend transitions", &[], true),
    kw("frontend", "include frontend transitions", &[], true),
];

/// `<frontend> pool <pool> backend <backend> weight <w> [flush]`: the runtime
/// weight of a pool backend, to set or to preview.
const POOL_WEIGHT: &[Node] = &[arg(
    Slot::Frontend,
    "frontend name",
    &[kw(
        "pool",
        "pool",
        &[arg(
            Slot::Pool,
            "pool name",
            &[kw(
                "backend",
                "backend",
                &[arg(
                    Slot::Backend,
                    "backend name",
                    &[kw(
                        "weight",
                        "new weight",
                        &[arg(
                            Slot::Weight,
                            "0..100",
                            &[kw("flush", "also flush its flows", &[], true)],
                            true,
                        )],
                        false,
                    )],
                    false,
                )],
                false,
            )],
            false,
        )],
        false,
    )],
    false,
)];

/// `<backend> pause|resume|disable|enable|drain`: an operator action, to
/// make or to preview.
const BACKEND_ACTIONS: &[Node] = &[arg(
    Slot::Backend,
    "backend name",
    &[
        kw("pause", "stop probing, weight 0, keep flows", &[], true),
        kw("resume", "probe again from unknown", &[], true),
        kw("disable", "take out: weight 0, flush flows", &[], true),
        kw("enable", "put back: probe again", &[], true),
        kw(
            "drain",
            "weight 0, keep flows (as pause); maglevc: --wait [--quiet-for D] [--timeout D]",
            &[],
            true,
        ),
    ],
    false,
)];

/// `vpp lb state [<frontend>]`: a sync, to make or to preview.
const SYNC_VPP: &[Node] = &[kw(
    "vpp",
    "VPP",
    &[kw(
        "lb",
        "VPP load balancer",
        &[kw(
            "state",
            "all frontends, or one",
            &[arg(Slot::Frontend, "only this frontend", &[], true)],
            true,
        )],
        false,
    )],
    false,
)];

/// The whole language.
pub const TREE: &[Node] = &[
    kw(
        "show",
        "show state",
        &[
            kw("version", "maglevd version", &[], true),
            kw("frontends", "all frontends", &[], true),
            kw(
                "frontend",
                "one frontend: pools, backends, weights",
                &[arg(Slot::Frontend, "frontend name", &[], true)],
                false,
            ),
            kw("backends", "all backends", &[], true),
            kw(
                "backend",
                "one backend: state, last probe, history",
                &[arg(Slot::Backend, "backend name", &[], true)],
                false,
            ),
            kw("healthchecks", "all health checks", &[], true),
            kw(
                "healthcheck",
                "one health check",
                &[arg(Slot::Healthcheck, "health check name", &[], true)],
                false,
            ),
            kw(
                "announce",
                "VIP addresses announced to BGP (BIRD), and why not",
                &[],
                true,
            ),
            kw(
                "vpp",
                "VPP",
                &[
                    kw("info", "VPP version and session", &[], true),
                    kw(
                        "lb",
                        "VPP load balancer",
                        &[
                            kw("state", "VIPs and application servers in VPP", &[], true),
                            kw("counters", "per-VIP packet counters", &[], true),
                        ],
                        false,
                    ),
                ],
                false,
            ),
        ],
        false,
    ),
    kw("sync", "reconcile VPP now", SYNC_VPP, false),
    kw(
        "set",
        "change state",
        &[
            kw(
                "backend",
                "operator action on a backend",
                BACKEND_ACTIONS,
                false,
            ),
            kw(
                "frontend",
                "runtime weight of a pool backend",
                POOL_WEIGHT,
                false,
            ),
            kw(
                "announce",
                "announcing to BGP (kept across restarts)",
                &[
                    kw(
                        "withdraw",
                        "withdraw every address (maintenance)",
                        &[],
                        true,
                    ),
                    kw("restore", "announce again by the rule", &[], true),
                ],
                false,
            ),
        ],
        false,
    ),
    kw(
        "preview",
        "what a mutating command would do to VPP, without doing it",
        &[
            kw(
                "set",
                "a change",
                &[
                    kw(
                        "backend",
                        "operator action on a backend",
                        BACKEND_ACTIONS,
                        false,
                    ),
                    kw(
                        "frontend",
                        "runtime weight of a pool backend",
                        POOL_WEIGHT,
                        false,
                    ),
                ],
                false,
            ),
            kw(
                "config",
                "configuration file",
                &[kw(
                    "reload",
                    "load the file on disk (like SIGHUP)",
                    &[],
                    true,
                )],
                false,
            ),
            kw("sync", "reconcile VPP now", SYNC_VPP, false),
        ],
        false,
    ),
    kw(
        "config",
        "configuration file",
        &[
            kw("check", "validate the file on disk", &[], true),
            kw("reload", "load the file on disk (like SIGHUP)", &[], true),
        ],
        false,
    ),
    kw(
        "watch",
        "stream events",
        &[kw(
            "events",
            "one JSON object per event",
            WATCH_OPTIONS,
            true,
        )],
        false,
    ),
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `show version`.
    ShowVersion,
    /// `show frontends`.
    ShowFrontends,
    /// `show frontend <name>`.
    ShowFrontend(String),
    /// `show backends`.
    ShowBackends,
    /// `show backend <name>`.
    ShowBackend(String),
    /// `show healthchecks`.
    ShowHealthchecks,
    /// `show healthcheck <name>`.
    ShowHealthcheck(String),
    /// `show vpp info`.
    ShowVppInfo,
    /// `show vpp lb state`.
    ShowVppLbState,
    /// `show vpp lb counters`.
    ShowVppLbCounters,
    /// `show announce`.
    ShowAnnounce,
    /// `set announce withdraw` (`true`) or `set announce restore`.
    SetAnnounce(bool),
    /// `sync vpp lb state [<frontend>]`.
    SyncVppLbState(Option<String>),
    /// `set backend <name> <action>`.
    SetBackend(String, Action),
    /// `set frontend <fe> pool <pool> backend <b> weight <w> [flush]`.
    SetWeight {
        /// Frontend.
        frontend: String,
        /// Pool.
        pool: String,
        /// Backend.
        backend: String,
        /// New weight.
        weight: u8,
        /// Flush the backend's flows.
        flush: bool,
    },
    /// `preview ...`.
    Preview(Change),
    /// `config check`.
    ConfigCheck,
    /// `config reload`.
    ConfigReload,
    /// `watch events [num <n>] [log [level <l>]] [backend] [frontend]`.
    Watch(WatchSpec),
}

/// What `watch events` streams.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchSpec {
    /// Stop after this many events.
    pub num: Option<u64>,
    /// Include log lines at or above this level.
    pub log: Option<String>,
    /// Include backend transitions.
    pub backend: bool,
    /// Include frontend transitions.
    pub frontend: bool,
}

impl Command {
    /// Whether the command changes state (needs admin rights).
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Command::SyncVppLbState(_)
                | Command::SetBackend(..)
                | Command::SetWeight { .. }
                | Command::SetAnnounce(_)
                | Command::ConfigReload
        )
    }
}

/// Why a line does not parse; the message is for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Matches `word` against the keywords of `nodes`: an exact match wins,
/// else a unique prefix.
pub fn match_keyword<'n>(nodes: &'n [Node], word: &str) -> Result<Option<&'n Node>, ParseError> {
    match_keyword_in(nodes, word, None)
}

/// Like [`match_keyword`]; `more` (whether words follow) settles a tie
/// between prefixes: `sh fr` is `show frontends` (which can end there),
/// `sh fr web` is `show frontend web` (which takes a name).
fn match_keyword_in<'n>(
    nodes: &'n [Node],
    word: &str,
    more: Option<bool>,
) -> Result<Option<&'n Node>, ParseError> {
    let keys: Vec<&Node> = nodes.iter().filter(|n| n.word.is_some()).collect();
    if let Some(n) = keys.iter().find(|n| n.word == Some(word)) {
        return Ok(Some(n));
    }
    let hits: Vec<&&Node> = keys
        .iter()
        .filter(|n| n.word.is_some_and(|w| w.starts_with(word)))
        .collect();
    if hits.len() > 1 {
        if let Some(more) = more {
            let fit: Vec<&&Node> = hits
                .iter()
                .copied()
                .filter(|n| if more { !n.next.is_empty() } else { n.end })
                .collect();
            if fit.len() == 1 {
                return Ok(Some(fit[0]));
            }
        }
    }
    match hits.len() {
        1 => Ok(Some(hits[0])),
        0 => Ok(None),
        _ => Err(ParseError(format!(
            "`{word}` is ambiguous: {}",
            hits.iter()
                .filter_map(|n| n.word)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn expected(nodes: &[Node]) -> String {
    let v: Vec<&str> = nodes
        .iter()
        .map(|n| n.word.unwrap_or_else(|| n.slot.map_or("?", Slot::label)))
        .collect();
    v.join(", ")
}

/// Closest keyword by edit distance, for "did you mean".
fn suggest(nodes: &[Node], word: &str) -> Option<&'static str> {
    nodes
        .iter()
        .filter_map(|n| n.word)
        .map(|w| (distance(w, word), w))
        .filter(|(d, w)| *d <= 2.max(w.len() / 3))
        .min()
        .map(|(_, w)| w)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A walked line: canonical keywords, filled slots, whether it may end.
type Walked = (Vec<&'static str>, Vec<(Slot, String)>, bool);

/// Walks the tree: the canonical words and the filled slots.
fn walk(words: &[&str]) -> Result<Walked, ParseError> {
    let mut nodes = TREE;
    let mut path: Vec<&'static str> = Vec::new();
    let mut args = Vec::new();
    let mut end = false;
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if nodes.is_empty() {
            return Err(ParseError(format!(
                "unexpected `{w}` after `{}`",
                path.join(" ")
            )));
        }
        match match_keyword_in(nodes, w, Some(i + 1 < words.len()))? {
            Some(n) => {
                path.push(n.word.expect("keyword"));
                end = n.end;
                // `watch events` options repeat in any order.
                nodes = if std::ptr::eq(n.next, WATCH_OPTIONS)
                    || WATCH_OPTIONS.iter().any(|o| std::ptr::eq(o, n))
                {
                    if n.word == Some("num") || n.word == Some("log") {
                        n.next
                    } else {
                        WATCH_OPTIONS
                    }
                } else {
                    n.next
                };
            }
            None => match nodes.iter().find(|n| n.slot.is_some()) {
                Some(n) => {
                    args.push((n.slot.expect("slot"), w.to_string()));
                    end = n.end;
                    let in_watch = matches!(n.slot, Some(Slot::Count) | Some(Slot::Level));
                    nodes = if in_watch { WATCH_OPTIONS } else { n.next };
                }
                None => {
                    let hint = suggest(nodes, w)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_else(|| format!("; expected one of: {}", expected(nodes)));
                    let at = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" after `{}`", path.join(" "))
                    };
                    return Err(ParseError(format!("unknown command word `{w}`{at}{hint}")));
                }
            },
        }
        // `log` may be followed by `level` or by another option.
        if path.last() == Some(&"log") && i + 1 < words.len() && !"level".starts_with(words[i + 1])
        {
            nodes = WATCH_OPTIONS;
        }
        i += 1;
    }
    Ok((path, args, end))
}

/// Parses one request line.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() {
        return Err(ParseError("empty command; try `show frontends`".into()));
    }
    let (path, args, end) = walk(&words)?;
    if !end {
        let mut nodes = TREE;
        for w in &path {
            if let Ok(Some(n)) = match_keyword(nodes, w) {
                nodes = n.next;
            }
        }
        if !args.is_empty() {
            // The last node was a slot: its continuation.
            if let Some(n) = last_node(&path, &args) {
                nodes = n;
            }
        }
        return Err(ParseError(format!(
            "incomplete command `{}`: expected {}",
            words.join(" "),
            expected(nodes)
        )));
    }
    command(&path, &args, &words)
}

/// The command a complete walked `path` with its `args` names.
fn command(path: &[&str], args: &[(Slot, String)], words: &[&str]) -> Result<Command, ParseError> {
    let a = |i: usize| args.get(i).map(|(_, v)| v.clone()).unwrap_or_default();
    Ok(match path {
        ["show", "version"] => Command::ShowVersion,
        ["show", "frontends"] => Command::ShowFrontends,
        ["show", "frontend"] => Command::ShowFrontend(a(0)),
        ["show", "backends"] => Command::ShowBackends,
        ["show", "backend"] => Command::ShowBackend(a(0)),
        ["show", "healthchecks"] => Command::ShowHealthchecks,
        ["show", "healthcheck"] => Command::ShowHealthcheck(a(0)),
        ["show", "vpp", "info"] => Command::ShowVppInfo,
        ["show", "vpp", "lb", "state"] => Command::ShowVppLbState,
        ["show", "vpp", "lb", "counters"] => Command::ShowVppLbCounters,
        ["show", "announce"] => Command::ShowAnnounce,
        ["set", "announce", "withdraw"] => Command::SetAnnounce(true),
        ["set", "announce", "restore"] => Command::SetAnnounce(false),
        ["sync", "vpp", "lb", "state"] => {
            Command::SyncVppLbState(args.first().map(|(_, v)| v.clone()))
        }
        ["set", "backend", action] => {
            Command::SetBackend(a(0), Action::parse(action).expect("tree has only actions"))
        }
        // The same words as the command, after `preview`.
        ["preview", rest @ ..] => {
            let cmd = command(rest, args, words)?;
            Command::Preview(
                change_of(&cmd).ok_or_else(|| {
                    ParseError(format!("`{}` cannot be previewed", rest.join(" ")))
                })?,
            )
        }
        ["set", "frontend", "pool", "backend", "weight", rest @ ..] => {
            let weight = weight(&a(3))?;
            Command::SetWeight {
                frontend: a(0),
                pool: a(1),
                backend: a(2),
                weight,
                flush: rest == ["flush"],
            }
        }
        ["config", "check"] => Command::ConfigCheck,
        ["config", "reload"] => Command::ConfigReload,
        ["watch", "events", opts @ ..] => {
            let mut spec = WatchSpec::default();
            let mut vals = args.iter();
            for o in opts {
                match *o {
                    "num" => {
                        let v = vals.next().map(|(_, v)| v.as_str()).unwrap_or("");
                        spec.num = Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            ParseError(format!("num `{v}` is not a positive number"))
                        })?);
                    }
                    "log" => spec.log = Some("info".into()),
                    "level" => {
                        let v = vals.next().map(|(_, v)| v.clone()).unwrap_or_default();
                        if crate::logging::parse_level(&v).is_none() {
                            return Err(ParseError(format!(
                                "log level `{v}` is not error, warn, info, debug or trace"
                            )));
                        }
                        spec.log = Some(v);
                    }
                    "backend" => spec.backend = true,
                    "frontend" => spec.frontend = true,
                    _ => {}
                }
            }
            if !spec.backend && !spec.frontend && spec.log.is_none() {
                spec.backend = true;
                spec.frontend = true;
            }
            Command::Watch(spec)
        }
        _ => {
            return Err(ParseError(format!(
                "incomplete command `{}`",
                words.join(" ")
            )));
        }
    })
}

/// The change a mutating command makes, for `preview` (`None`: it
/// changes nothing VPP holds, as `set announce`, or nothing at all).
fn change_of(cmd: &Command) -> Option<Change> {
    Some(match cmd {
        Command::SetBackend(backend, action) => Change::Action {
            backend: backend.clone(),
            action: *action,
        },
        Command::SetWeight {
            frontend,
            pool,
            backend,
            weight,
            flush,
        } => Change::PoolWeight {
            frontend: frontend.clone(),
            pool: pool.clone(),
            backend: backend.clone(),
            weight: *weight,
            flush: *flush,
        },
        Command::ConfigReload => Change::Reload,
        Command::SyncVppLbState(frontend) => Change::Sync(frontend.clone()),
        _ => return None,
    })
}

/// A weight argument: 0..=100.
fn weight(w: &str) -> Result<u8, ParseError> {
    w.parse()
        .ok()
        .filter(|v| *v <= 100)
        .ok_or_else(|| ParseError(format!("weight `{w}` is not a number from 0 to 100")))
}

/// The nodes following the last slot of a walked path.
fn last_node(path: &[&str], args: &[(Slot, String)]) -> Option<&'static [Node]> {
    let mut nodes = TREE;
    let mut ai = 0;
    let mut pi = 0;
    let mut last = None;
    while pi < path.len() || ai < args.len() {
        if let Some(n) = path
            .get(pi)
            .and_then(|w| nodes.iter().find(|n| n.word == Some(w)))
        {
            nodes = n.next;
            pi += 1;
        } else if let Some(n) = nodes.iter().find(|n| n.slot.is_some()) {
            nodes = n.next;
            ai += 1;
            last = Some(nodes);
        } else {
            break;
        }
    }
    last
}

/// What may come after `words` (complete words typed so far): keywords and
/// slots with their help, for `?` and TAB.
pub fn next_nodes(words: &[&str]) -> Vec<&'static Node> {
    let mut nodes = TREE;
    for w in words {
        match match_keyword(nodes, w) {
            Ok(Some(n)) => {
                nodes = if WATCH_OPTIONS.iter().any(|o| std::ptr::eq(o, n)) && n.next.is_empty() {
                    WATCH_OPTIONS
                } else {
                    n.next
                }
            }
            _ => match nodes.iter().find(|n| n.slot.is_some()) {
                Some(n) => {
                    nodes = if matches!(n.slot, Some(Slot::Count) | Some(Slot::Level)) {
                        WATCH_OPTIONS
                    } else {
                        n.next
                    }
                }
                None => return Vec::new(),
            },
        }
    }
    nodes.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_takes_every_mutating_command_word_for_word_and_nothing_else() {
        // Every mutating command of the tree, and its preview.
        let mutating = [
            "set backend b1 pause",
            "set backend b1 resume",
            "set backend b1 enable",
            "set backend b1 disable",
            "set backend b1 drain",
            "set frontend web pool main backend b1 weight 0",
            "set frontend web pool main backend b1 weight 30 flush",
            "config reload",
            "sync vpp lb state",
            "sync vpp lb state web",
        ];
        for line in mutating {
            let cmd = parse(line).unwrap();
            assert!(cmd.mutates(), "{line}");
            let Command::Preview(c) = parse(&format!("preview {line}")).unwrap() else {
                panic!("{line}")
            };
            assert!(!parse(&format!("preview {line}")).unwrap().mutates());
            assert_eq!(Some(&c), change_of(&cmd).as_ref(), "{line}");
            // The words a change is shown as are the command's.
            assert_eq!(c.to_string(), line);
        }
        // Abbreviated as the command is.
        assert_eq!(
            parse("pre set back b1 dis").unwrap(),
            Command::Preview(Change::Action {
                backend: "b1".into(),
                action: Action::Disable,
            })
        );
        // Nothing that is not a command, and nothing that changes no VPP
        // state: each is refused with the reason.
        for bad in [
            "preview set backend b1 weight 30",
            "preview set backend b1 pause frontend web",
            "preview config",
            "preview config check",
            "preview set announce withdraw",
            "preview show frontends",
            "preview set frontend web pool main backend b1 weight 101",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn full_words_and_abbreviations() {
        assert_eq!(parse("show frontends").unwrap(), Command::ShowFrontends);
        assert_eq!(parse("sh fr").unwrap(), Command::ShowFrontends);
        assert_eq!(
            parse("sh fr web").unwrap(),
            Command::ShowFrontend("web".into())
        );
        assert_eq!(parse("sh b").unwrap(), Command::ShowBackends);
        assert_eq!(parse("sh frontends").unwrap(), Command::ShowFrontends);
        // Exact match wins over a longer keyword with the same prefix.
        assert_eq!(
            parse("sh frontend web").unwrap(),
            Command::ShowFrontend("web".into())
        );
        assert!(parse("sh fronts").unwrap_err().0.contains("unknown"));
        assert_eq!(
            parse("s v l c").unwrap_err().0,
            "`s` is ambiguous: show, sync, set"
        );
        assert_eq!(parse("sh h").unwrap(), Command::ShowHealthchecks);
        assert_eq!(parse("sh v l c").unwrap(), Command::ShowVppLbCounters);
        assert_eq!(parse("show announce").unwrap(), Command::ShowAnnounce);
        assert_eq!(
            parse("set announce withdraw").unwrap(),
            Command::SetAnnounce(true)
        );
        assert_eq!(parse("set ann rest").unwrap(), Command::SetAnnounce(false));
        assert!(Command::SetAnnounce(false).mutates());
        assert!(!Command::ShowAnnounce.mutates());
        assert!(parse("set announce").is_err());
        assert_eq!(parse("sy v l s").unwrap(), Command::SyncVppLbState(None));
        assert_eq!(
            parse("sy v l s web").unwrap(),
            Command::SyncVppLbState(Some("web".into()))
        );
        assert_eq!(
            parse("show healthcheck web-hc").unwrap(),
            Command::ShowHealthcheck("web-hc".into())
        );
    }

    #[test]
    fn set_commands() {
        assert_eq!(
            parse("set backend b1 pause").unwrap(),
            Command::SetBackend("b1".into(), Action::Pause)
        );
        assert_eq!(
            parse("se ba b1 dis").unwrap(),
            Command::SetBackend("b1".into(), Action::Disable)
        );
        assert_eq!(
            parse("set frontend web pool main backend b1 weight 40 flush").unwrap(),
            Command::SetWeight {
                frontend: "web".into(),
                pool: "main".into(),
                backend: "b1".into(),
                weight: 40,
                flush: true
            }
        );
        assert!(
            parse("set frontend web pool main backend b1 weight 400")
                .unwrap_err()
                .0
                .contains("0 to 100")
        );
        assert!(parse("set backend b1 pause").unwrap().mutates());
        assert!(!parse("show backends").unwrap().mutates());
    }

    #[test]
    fn watch_options_in_any_order() {
        assert_eq!(
            parse("watch events").unwrap(),
            Command::Watch(WatchSpec {
                num: None,
                log: None,
                backend: true,
                frontend: true
            })
        );
        assert_eq!(
            parse("watch events frontend num 3").unwrap(),
            Command::Watch(WatchSpec {
                num: Some(3),
                log: None,
                backend: false,
                frontend: true
            })
        );
        assert_eq!(
            parse("watch events log level debug backend").unwrap(),
            Command::Watch(WatchSpec {
                num: None,
                log: Some("debug".into()),
                backend: true,
                frontend: false
            })
        );
        assert_eq!(
            parse("watch events log backend").unwrap(),
            Command::Watch(WatchSpec {
                num: None,
                log: Some("info".into()),
                backend: true,
                frontend: false
            })
        );
        assert!(parse("watch events num 0").is_err());
        assert!(parse("watch events log level loud").is_err());
    }

    #[test]
    fn errors_are_targeted() {
        let e = parse("show bakends").unwrap_err().0;
        assert_eq!(
            e,
            "unknown command word `bakends` after `show`; did you mean `backends`?"
        );
        let e = parse("shwo").unwrap_err().0;
        assert!(e.contains("did you mean `show`"), "{e}");
        let e = parse("show vpp").unwrap_err().0;
        assert_eq!(e, "incomplete command `show vpp`: expected info, lb");
        let e = parse("set backend b1").unwrap_err().0;
        assert_eq!(
            e,
            "incomplete command `set backend b1`: expected pause, resume, disable, enable, drain"
        );
        let e = parse("show version please").unwrap_err().0;
        assert!(e.contains("unexpected `please`"), "{e}");
        assert!(parse("").is_err());
    }

    #[test]
    fn next_nodes_for_help_and_completion() {
        let w: Vec<_> = next_nodes(&["show"])
            .iter()
            .filter_map(|n| n.word)
            .collect();
        assert!(w.contains(&"frontends") && w.contains(&"vpp"));
        let n = next_nodes(&["set", "backend"]);
        assert_eq!(n[0].slot, Some(Slot::Backend));
        let w: Vec<_> = next_nodes(&["set", "backend", "b1"])
            .iter()
            .filter_map(|n| n.word)
            .collect();
        assert_eq!(w, vec!["pause", "resume", "disable", "enable", "drain"]);
        let w: Vec<_> = next_nodes(&["watch", "events", "num", "3"])
            .iter()
            .filter_map(|n| n.word)
            .collect();
        assert!(w.contains(&"backend"));
    }
}
