//! The command-line conventions `maglevd` and `maglevc` share: one or two
//! dashes, `--flag value` or `--flag=value` (so unit files written for the
//! Go daemon, `-config /etc/...`, keep working), boolean flags that take
//! an optional `=true|false`, the version line and the usage exit status.

/// Exit status for a command line that cannot be understood: 2, the Go
/// `flag` package's (the original's), in both binaries.
pub const EXIT_USAGE: u8 = 2;

/// One element of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// `-name`, `--name` or `--name=value`.
    Flag {
        /// Without dashes and value.
        name: String,
        /// The value after `=`, if any.
        inline: Option<String>,
        /// As typed (for error messages).
        raw: String,
    },
    /// Anything else (a lone `-` included).
    Word(String),
}

/// Splits a command line into [`Arg`]s; flags take their values with
/// [`Args::value`].
pub struct Args<I> {
    rest: I,
}

impl<I: Iterator<Item = String>> Args<I> {
    /// Over `args` (without the program name).
    pub fn new(args: I) -> Args<I> {
        Args { rest: args }
    }

    /// The value of flag `name`: its inline `=value`, or the next
    /// argument; `what` names it in the error.
    pub fn value(
        &mut self,
        name: &str,
        inline: Option<String>,
        what: &str,
    ) -> Result<String, String> {
        inline
            .or_else(|| self.rest.next())
            .ok_or_else(|| format!("--{name} needs {what}"))
    }

    /// Every argument left, unparsed (a command's words).
    pub fn remaining(&mut self) -> impl Iterator<Item = String> + '_ {
        &mut self.rest
    }
}

impl<I: Iterator<Item = String>> Iterator for Args<I> {
    type Item = Arg;

    fn next(&mut self) -> Option<Arg> {
        let raw = self.rest.next()?;
        let flag = raw
            .strip_prefix("--")
            .or_else(|| raw.strip_prefix('-'))
            .filter(|f| !f.is_empty());
        Some(match flag {
            None => Arg::Word(raw),
            Some(f) => {
                let (name, inline) = match f.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (f.to_string(), None),
                };
                Arg::Flag { name, inline, raw }
            }
        })
    }
}

/// A boolean flag's value: bare means true.
pub fn parse_bool(name: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(format!("--{name} takes true or false, not `{other}`")),
    }
}

/// What `--version` prints.
pub fn version_line(program: &str) -> String {
    format!(
        "{program} {} (commit {})",
        crate::VERSION,
        crate::GIT_COMMIT
    )
}

/// Restores SIGPIPE's default action, as every Unix filter has it: a
/// reader that goes away (`... | head -1`) ends the program quietly
/// instead of a panic about printing to stdout (Rust ignores SIGPIPE).
/// Call it first in `main`, before any thread exists.
pub fn default_sigpipe() {
    // SAFETY: restoring the default disposition, before any thread exists.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

/// Reports a command line that cannot be understood, with the usage, and
/// returns [`EXIT_USAGE`].
pub fn usage_error(program: &str, msg: &str, usage: &str) -> u8 {
    eprintln!("{program}: {msg}\n\n{usage}");
    EXIT_USAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args<std::vec::IntoIter<String>> {
        Args::new(
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }

    #[test]
    fn one_or_two_dashes_inline_or_next_value() {
        let mut a = args(&["-config", "/etc/x", "--log-level=debug", "-", "show"]);
        let Some(Arg::Flag { name, inline, .. }) = a.next() else {
            panic!()
        };
        assert_eq!((name.as_str(), inline.as_deref()), ("config", None));
        assert_eq!(a.value("config", None, "a path").unwrap(), "/etc/x");
        let Some(Arg::Flag { name, inline, .. }) = a.next() else {
            panic!()
        };
        assert_eq!(a.value(&name, inline, "a level").unwrap(), "debug");
        assert_eq!(a.next(), Some(Arg::Word("-".into())));
        assert_eq!(a.remaining().collect::<Vec<_>>(), ["show"]);
        assert_eq!(
            a.value("socket", None, "a path").unwrap_err(),
            "--socket needs a path"
        );
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("check", None), Ok(true));
        assert_eq!(parse_bool("check", Some("false")), Ok(false));
        assert!(parse_bool("check", Some("yes")).is_err());
    }
}
