//! Configuration errors an operator can act on: file, line, key path, reason.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// One semantic problem, found after the YAML parsed cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `maglev.frontends.web.pools[1].backends.web2.weight`.
    pub path: String,
    /// Line of the key (or its nearest ancestor) in the file, when known.
    pub line: Option<usize>,
    /// What is wrong, in the operator's words.
    pub message: String,
}

impl Problem {
    /// `file:line: key.path: message`, like a compiler's.
    pub fn located(&self, file: &std::path::Path) -> String {
        self.located_as(file, "")
    }

    /// `file:line: warning: key.path: message`.
    pub fn located_warning(&self, file: &std::path::Path) -> String {
        self.located_as(file, "warning: ")
    }

    fn located_as(&self, file: &std::path::Path, kind: &str) -> String {
        match self.line {
            Some(l) => format!(
                "{}:{l}: {kind}{}: {}",
                file.display(),
                self.path,
                self.message
            ),
            None => format!("{}: {kind}{}: {}", file.display(), self.path, self.message),
        }
    }
}

/// Why a configuration file was not accepted.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        file: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Stage 1: not YAML, an unknown key, a wrong type, a bad value.
    Parse {
        /// The file.
        file: PathBuf,
        /// Key path of the offending value, when the parser knows it.
        path: Option<String>,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The parser's reason.
        message: String,
    },
    /// Stage 2: valid YAML that breaks one or more rules; all are listed.
    Semantic {
        /// The file.
        file: PathBuf,
        /// Every problem found, in file order where lines are known.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// One semantic problem at `path` without a known line (found outside
    /// the file's own rules: the process's capabilities, another daemon).
    pub fn semantic(file: &std::path::Path, path: &str, message: String) -> ConfigError {
        ConfigError::Semantic {
            file: file.to_path_buf(),
            problems: vec![Problem {
                path: path.into(),
                line: None,
                message,
            }],
        }
    }

    /// Exit status of `maglevd --check`: 1 unreadable or unparsable, 2 semantic.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Read { .. } | ConfigError::Parse { .. } => 1,
            ConfigError::Semantic { .. } => 2,
        }
    }

    /// `parse` or `semantic`: the category the control protocol reports.
    pub fn category(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } | ConfigError::Parse { .. } => "parse",
            ConfigError::Semantic { .. } => "semantic",
        }
    }

    /// One line per problem, each standing alone (for logs and replies).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Read { file, source } => {
                vec![format!("{}: cannot read: {source}", file.display())]
            }
            ConfigError::Parse {
                file,
                path,
                line,
                column,
                message,
            } => {
                let mut s = file.display().to_string();
                if let Some(l) = line {
                    s.push_str(&format!(":{l}"));
                    if let Some(c) = column {
                        s.push_str(&format!(":{c}"));
                    }
                }
                s.push_str(": ");
                if let Some(p) = path {
                    s.push_str(p);
                    s.push_str(": ");
                }
                s.push_str(message);
                vec![s]
            }
            ConfigError::Semantic { file, problems } => {
                problems.iter().map(|p| p.located(file)).collect()
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for ConfigError {}
