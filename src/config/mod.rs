//! `maglev.yaml`: schema, defaults and two-stage validation.
//!
//! Stage 1 parses strictly (unknown keys, wrong types and malformed values
//! are errors with line and column); stage 2 checks the rules that span
//! fields and objects and reports all of them at once, each with its key
//! path. [`load`] is the only way the daemon obtains a [`Config`], so every
//! other module can rely on a validated one.

pub(crate) mod changes;
mod duration;
mod error;
mod lines;
mod model;
mod raw;
mod validate;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, Problem};
pub use model::*;
pub use validate::defaults;

/// Default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/vpp-maglev/maglev.yaml";

/// The largest configuration file accepted: room for 100,000 backends
/// (about 6 MB), far from what could exhaust a router's memory.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// The deepest nesting accepted (the schema needs 7): deeper YAML is
/// refused before the parser sees it (libyaml is quadratic in depth).
pub const MAX_DEPTH: usize = 64;

/// Reads and validates the configuration file at `path`: only a regular
/// file (a FIFO would block, `/dev/zero` would never end) of at most
/// [`MAX_FILE_BYTES`].
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    use std::io::Read;
    let refused = |source: std::io::Error| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO with no writer must not block; the type
    // check below refuses it anyway.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(refused)?;
    let meta = file.metadata().map_err(refused)?;
    if !meta.is_file() {
        return Err(refused(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(refused(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "file is {} bytes, more than the limit of {MAX_FILE_BYTES}",
                meta.len()
            ),
        )));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(refused)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(refused(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file grew past the limit of {MAX_FILE_BYTES} bytes while read"),
        )));
    }
    parse(&text, path)
}

/// The line of the first place where `text` nests deeper than `max`
/// levels: block indentation, `- ` sequence entries and flow brackets all
/// count (a cheap over-estimate of what the parser would recurse into).
fn too_deep(text: &str, max: usize) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if flow == 0 {
            while indents.last().is_some_and(|&i| i > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
        }
        let mut dashes = 0;
        let mut rest = body;
        while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        let mut in_quote: Option<char> = None;
        for c in rest.chars() {
            match (in_quote, c) {
                (Some(q), c) if c == q => in_quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => in_quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => flow += 1,
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            if indents.len() + dashes + flow > max {
                return Some(n + 1);
            }
        }
        if indents.len() + dashes + flow > max {
            return Some(n + 1);
        }
    }
    None
}

/// Validates configuration `text`; `file` only labels the errors.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    if let Some(line) = too_deep(text, MAX_DEPTH) {
        return Err(ConfigError::Parse {
            file: file.to_path_buf(),
            path: None,
            line: Some(line),
            column: None,
            message: format!("nesting deeper than {MAX_DEPTH} levels"),
        });
    }
    let raw: raw::RawFile = serde_yaml::from_str(text).map_err(|e| parse_error(&e, file))?;
    let index = lines::LineIndex::build(text);
    validate::validate(raw, &index).map_err(|problems| ConfigError::Semantic {
        file: file.to_path_buf(),
        problems,
    })
}

/// Splits serde_yaml's `path: message at line L column C` into its parts.
fn parse_error(e: &serde_yaml::Error, file: &Path) -> ConfigError {
    let (line, column) = e
        .location()
        .map_or((None, None), |l| (Some(l.line()), Some(l.column())));
    let mut text = e.to_string();
    if let Some(cut) = text.rfind(" at line ") {
        if text[cut + 9..].contains(" column ") {
            text.truncate(cut);
        }
    }
    let mut path = None;
    if let Some((p, rest)) = text.split_once(": ") {
        if p.starts_with("maglev") && !p.contains(' ') {
            path = Some(p.to_string());
            text = rest.to_string();
        }
    }
    // "unknown field `x`" is reported at the enclosing mapping: name the key.
    if let Some(field) = text
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        path = Some(match path {
            Some(p) => format!("{p}.{field}"),
            None => field.to_string(),
        });
    }
    if text.starts_with("missing field `maglev`") || text == "EOF while parsing a value" {
        text = "the file must contain a top-level `maglev:` mapping".into();
    }
    ConfigError::Parse {
        file: file.to_path_buf(),
        path,
        line,
        column,
        message: text,
    }
}

#[cfg(test)]
mod tests;
