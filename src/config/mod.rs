//! `maglev.yaml`: schema, defaults and two-stage validation.
//!
//! Stage 1 parses strictly (unknown keys, wrong types and malformed values
//! are errors with line and column); stage 2 checks the rules that span
//! fields and objects and reports all of them at once, each with its key
//! path. [`load`] is the only way the daemon obtains a [`Config`], so every
//! other module can rely on a validated one.

pub mod changes;
mod duration;
mod error;
mod lines;
mod model;
mod raw;
mod validate;

use std::path::Path;

pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, Problem};
pub use model::*;
pub use validate::defaults;

/// Default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/vpp-maglev/maglev.yaml";

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates configuration `text`; `file` only labels the errors.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
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
