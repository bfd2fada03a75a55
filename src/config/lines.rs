//! Where each key of a YAML document stands: key path → line numbers.
//!
//! The YAML parser reports lines only for errors it finds itself. Semantic
//! problems (a pool naming a backend that does not exist) are found after
//! parsing, so this index lets them name a line as well. It understands the
//! block style that configuration files use, plus flow mappings and sequences
//! written on one line (`web0: { address: 192.0.2.10, weight: 100 }`). It is
//! best-effort by design: a path it cannot place falls back to its nearest
//! placed ancestor, and an unplaceable path has no line at all.

use std::collections::HashMap;

/// Line numbers (1-based) of every key path, in document order.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, Vec<usize>>,
}

#[derive(Debug)]
struct Frame {
    indent: usize,
    path: String,
    seq_index: Option<usize>,
    is_seq: bool,
}

struct Pending {
    indent: usize,
    path: String,
}

impl LineIndex {
    /// Scans `text`; never fails (unrecognised lines are skipped).
    pub fn build(text: &str) -> LineIndex {
        let mut idx = LineIndex::default();
        let mut frames: Vec<Frame> = Vec::new();
        let mut pending: Option<Pending> = None;
        let mut block_scalar_indent: Option<usize> = None;
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let content = strip_comment(raw);
            let trimmed = content.trim_start();
            let indent = content.len() - trimmed.len();
            let trimmed = trimmed.trim_end();
            if let Some(bi) = block_scalar_indent {
                if trimmed.is_empty() || indent > bi {
                    continue;
                }
                block_scalar_indent = None;
            }
            if trimmed.is_empty() || trimmed == "---" || trimmed.starts_with('%') {
                continue;
            }
            idx.node(
                line_no,
                indent,
                trimmed,
                &mut frames,
                &mut pending,
                &mut block_scalar_indent,
            );
        }
        idx
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        line_no: usize,
        col: usize,
        rest: &str,
        frames: &mut Vec<Frame>,
        pending: &mut Option<Pending>,
        block: &mut Option<usize>,
    ) {
        let is_dash = rest == "-" || rest.starts_with("- ");
        if let Some(p) = pending.take() {
            if col > p.indent || (col == p.indent && is_dash) {
                frames.push(Frame {
                    indent: col,
                    path: p.path,
                    seq_index: None,
                    is_seq: is_dash,
                });
            }
        }
        while frames.last().is_some_and(|f| f.indent > col) {
            frames.pop();
        }
        // An indentless sequence ends where a mapping key at its column starts.
        if !is_dash && frames.last().is_some_and(|f| f.is_seq && f.indent == col) {
            frames.pop();
        }
        if frames.is_empty() {
            frames.push(Frame {
                indent: col,
                path: String::new(),
                seq_index: None,
                is_seq: is_dash,
            });
        }
        let Some(top) = frames.last_mut() else { return };
        if top.indent != col {
            return; // continuation of a multi-line plain scalar
        }
        if is_dash {
            if !top.is_seq {
                return;
            }
            let i = top.seq_index.map_or(0, |i| i + 1);
            top.seq_index = Some(i);
            let item_path = format!("{}[{i}]", top.path);
            self.record(&item_path, line_no);
            let after = rest[1..].trim_start();
            if after.is_empty() {
                *pending = Some(Pending {
                    indent: col,
                    path: item_path,
                });
                return;
            }
            let new_col = col + (rest.len() - after.len());
            if after.starts_with('{') || after.starts_with('[') {
                self.flow(&item_path, after, line_no);
                return;
            }
            let Some(_) = split_key(after) else { return };
            frames.push(Frame {
                indent: new_col,
                path: item_path,
                seq_index: None,
                is_seq: after.starts_with("- "),
            });
            self.node(line_no, new_col, after, frames, pending, block);
            return;
        }
        if top.is_seq {
            return;
        }
        let Some((key, value)) = split_key(rest) else {
            return;
        };
        let path = join(&top.path, &key);
        self.record(&path, line_no);
        let value = value.trim();
        if value.is_empty() || value.starts_with('&') && !value.contains(' ') {
            *pending = Some(Pending { indent: col, path });
        } else if value.starts_with('{') || value.starts_with('[') {
            self.flow(&path, value, line_no);
        } else if value.starts_with('|') || value.starts_with('>') {
            *block = Some(col);
        }
    }

    /// Records the keys of a one-line flow collection.
    fn flow(&mut self, path: &str, text: &str, line_no: usize) {
        let mut p = FlowParser {
            s: text.as_bytes(),
            i: 0,
            idx: self,
            line: line_no,
        };
        p.value(path);
    }

    fn record(&mut self, path: &str, line: usize) {
        self.lines.entry(path.to_string()).or_default().push(line);
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.nth_line_of(path, 0)
    }

    /// The line of the `nth` occurrence (0-based) of `path`, for duplicate keys;
    /// falls back like [`LineIndex::line_of`].
    pub fn nth_line_of(&self, path: &str, nth: usize) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(lines) = self.lines.get(p) {
                return lines.get(nth).or(lines.first()).copied();
            }
            p = parent(p)?;
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → None.
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// Removes a trailing `# comment` that is outside quotes.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'#') if i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t' => {
                return &line[..i];
            }
            _ => {}
        }
    }
    line
}

/// Splits `key: value` (key possibly quoted); None when the line has no key.
fn split_key(s: &str) -> Option<(String, &str)> {
    let b = s.as_bytes();
    if let Some(&q) = b.first().filter(|&&q| q == b'"' || q == b'\'') {
        let end = s[1..].find(q as char)? + 1;
        let key = s[1..end].to_string();
        let after = s[end + 1..].trim_start();
        let value = after.strip_prefix(':')?;
        return Some((key, value));
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' ' || b[i + 1] == b'\t') {
            return Some((s[..i].trim_end().to_string(), &s[i + 1..]));
        }
        if matches!(b[i], b'{' | b'[' | b',') {
            return None;
        }
        i += 1;
    }
    None
}

struct FlowParser<'a> {
    s: &'a [u8],
    i: usize,
    idx: &'a mut LineIndex,
    line: usize,
}

impl FlowParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn value(&mut self, path: &str) {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => self.mapping(path),
            Some(b'[') => self.sequence(path),
            _ => {
                self.scalar();
            }
        }
    }

    fn scalar(&mut self) -> String {
        self.ws();
        let start = self.i;
        if let Some(&q) = self.s.get(self.i).filter(|&&q| q == b'"' || q == b'\'') {
            self.i += 1;
            while self.i < self.s.len() && self.s[self.i] != q {
                self.i += 1;
            }
            let text = String::from_utf8_lossy(&self.s[start + 1..self.i]).into_owned();
            self.i = (self.i + 1).min(self.s.len());
            return text;
        }
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if matches!(c, b',' | b'}' | b']')
                || (c == b':'
                    && self
                        .s
                        .get(self.i + 1)
                        .is_none_or(|n| n.is_ascii_whitespace()))
            {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i])
            .trim()
            .to_string()
    }

    fn mapping(&mut self, path: &str) {
        self.i += 1;
        loop {
            self.ws();
            match self.s.get(self.i) {
                None => return,
                Some(b'}') => {
                    self.i += 1;
                    return;
                }
                Some(b',') => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            let before = self.i;
            let key = self.scalar();
            let child = join(path, &key);
            self.idx.record(&child, self.line);
            self.ws();
            if self.s.get(self.i) == Some(&b':') {
                self.i += 1;
                self.value(&child);
            }
            if self.i == before {
                self.i += 1; // never loop on a byte we cannot consume
            }
        }
    }

    fn sequence(&mut self, path: &str) {
        self.i += 1;
        let mut n = 0;
        loop {
            self.ws();
            match self.s.get(self.i) {
                None => return,
                Some(b']') => {
                    self.i += 1;
                    return;
                }
                Some(b',') => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            let before = self.i;
            let child = format!("{path}[{n}]");
            self.idx.record(&child, self.line);
            self.value(&child);
            n += 1;
            if self.i == before {
                self.i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
maglev:
  healthchecks:
    http:                # trailing comment
      type: http
      params: { path: /healthz, expect-status: [200-299, 301] }
      note: |
        key: not a key
        still text
      rise: 2
  backends:
    web0: { address: 192.0.2.10, healthcheck: http }
    \"web 1\":
      address: 192.0.2.11
  frontends:
    web:
      pools:
        - name: primary
          backends:
            web0: { weight: 100 }
        -
          name: fallback
          backends:
            web1: {}
      tags:
      - a
      - b
      port: 80
";

    #[test]
    fn places_block_keys() {
        let idx = LineIndex::build(DOC);
        assert_eq!(idx.line_of("maglev"), Some(2));
        assert_eq!(idx.line_of("maglev.healthchecks.http"), Some(4));
        assert_eq!(idx.line_of("maglev.healthchecks.http.type"), Some(5));
        assert_eq!(idx.line_of("maglev.healthchecks.http.rise"), Some(10));
        assert_eq!(idx.line_of("maglev.backends.web 1.address"), Some(14));
        assert_eq!(idx.line_of("maglev.frontends.web.port"), Some(28));
    }

    #[test]
    fn block_scalars_hide_their_text() {
        let idx = LineIndex::build(DOC);
        assert_eq!(idx.line_of("maglev.healthchecks.http.note"), Some(7));
        assert_eq!(idx.lines.get("maglev.healthchecks.http.note.key"), None);
    }

    #[test]
    fn places_flow_keys_and_items() {
        let idx = LineIndex::build(DOC);
        assert_eq!(idx.line_of("maglev.healthchecks.http.params.path"), Some(6));
        assert_eq!(
            idx.line_of("maglev.healthchecks.http.params.expect-status[1]"),
            Some(6)
        );
        assert_eq!(idx.line_of("maglev.backends.web0.healthcheck"), Some(12));
    }

    #[test]
    fn places_sequence_items() {
        let idx = LineIndex::build(DOC);
        assert_eq!(idx.line_of("maglev.frontends.web.pools[0]"), Some(18));
        assert_eq!(idx.line_of("maglev.frontends.web.pools[0].name"), Some(18));
        assert_eq!(
            idx.line_of("maglev.frontends.web.pools[0].backends.web0.weight"),
            Some(20)
        );
        assert_eq!(idx.line_of("maglev.frontends.web.pools[1]"), Some(21));
        assert_eq!(idx.line_of("maglev.frontends.web.pools[1].name"), Some(22));
        assert_eq!(
            idx.line_of("maglev.frontends.web.pools[1].backends.web1"),
            Some(24)
        );
        assert_eq!(idx.line_of("maglev.frontends.web.tags[1]"), Some(27));
    }

    #[test]
    fn missing_paths_fall_back_to_ancestors() {
        let idx = LineIndex::build(DOC);
        assert_eq!(
            idx.line_of("maglev.frontends.web.pools[1].backends.web1.weight"),
            Some(24)
        );
        assert_eq!(idx.line_of("maglev.vpp.lb"), Some(2));
        assert_eq!(idx.line_of("elsewhere"), None);
    }

    #[test]
    fn duplicates_keep_every_line() {
        let idx = LineIndex::build("a:\n  x: 1\n  x: 2\n");
        assert_eq!(idx.nth_line_of("a.x", 0), Some(2));
        assert_eq!(idx.nth_line_of("a.x", 1), Some(3));
        assert_eq!(idx.nth_line_of("a.x", 5), Some(2));
    }

    #[test]
    fn survives_odd_input() {
        for text in [
            "{",
            "- [",
            ": :",
            "a: {b: [c: {",
            "\t- x",
            "'a",
            "a: 'b # c'",
        ] {
            let _ = LineIndex::build(text);
        }
        let idx = LineIndex::build("a: 'b # c'\nd: 1 # e: 2\n");
        assert_eq!(idx.line_of("d"), Some(2));
        assert_eq!(idx.lines.get("e"), None);
    }
}
