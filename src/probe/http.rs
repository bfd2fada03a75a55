//! HTTP/1.1 for probes: the request, and an incremental judge of the answer.
//!
//! Pure: bytes in, verdict out. The judge decides as early as it can: a
//! status outside `expect-status` fails at once, a pass without
//! `expect-body` passes once the headers are in, and a body match stops
//! reading as soon as the substring is seen. Bodies are read to at most
//! [`BODY_CAP`] bytes.

use std::net::IpAddr;

use super::Code;
use crate::config::{HttpMethod, HttpProbe};

/// Largest body prefix searched for `expect-body`.
pub const BODY_CAP: usize = 64 * 1024;
/// Largest response head accepted.
pub const HEAD_CAP: usize = 16 * 1024;

/// The `User-Agent` every probe sends.
pub fn user_agent() -> String {
    format!("maglevd/{}", crate::VERSION)
}

/// The request bytes for `probe` against a backend at `address`: with
/// `Connection: close`, unless the check keeps its connection
/// (`reuse-connection`), when HTTP/1.1's default (keep-alive) applies.
pub fn request(probe: &HttpProbe, address: IpAddr) -> Vec<u8> {
    let default_port = if probe.tls.is_some() { 443 } else { 80 };
    let host = match &probe.host {
        Some(h) => h.clone(),
        None => {
            let a = match address {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            };
            if probe.port == default_port {
                a
            } else {
                format!("{a}:{}", probe.port)
            }
        }
    };
    let connection = if probe.reuse.is_some() {
        ""
    } else {
        "Connection: close\r\n"
    };
    format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nAccept: */*\r\n{connection}\r\n",
        probe.method.as_str(),
        probe.path,
        user_agent()
    )
    .into_bytes()
}

/// A finished judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// L7OK, L7STS or L7RSP.
    pub code: Code,
    /// `HTTP 200`, `HTTP 503`, `body does not contain "ok"`, ...
    pub detail: String,
}

fn verdict(code: Code, detail: impl Into<String>) -> Verdict {
    Verdict {
        code,
        detail: detail.into(),
    }
}

/// Whether the connection a response came on can carry the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The whole message is read, nothing after it: the connection is
    /// clean and the backend said it stays open.
    Yes,
    /// Never: `Connection: close`, HTTP/1.0, a body delimited by the close,
    /// bytes after the message, broken framing, or more than [`DRAIN_CAP`]
    /// of body to read through.
    No,
    /// Not yet known: the rest of the message is still to be read.
    More,
}

/// Most body bytes read past the verdict to keep a connection; a larger
/// health answer is cheaper to close than to read through.
pub const DRAIN_CAP: usize = 64 * 1024;

#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

#[derive(Debug)]
enum Phase {
    Head,
    Body {
        status: u16,
        framing: Framing,
    },
    /// The message is read to its end (or can no longer be followed).
    Done,
}

#[derive(Debug)]
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Trailers,
}

/// Judges one response, fed in pieces as they arrive, and follows its
/// framing to the end of the message (whether the connection can carry
/// another request: [`ResponseJudge::keep`]).
#[derive(Debug)]
pub struct ResponseJudge {
    head_only: bool,
    expect_status: Vec<crate::config::StatusRange>,
    expect_body: Option<Vec<u8>>,
    phase: Phase,
    /// Undecoded input (head, or chunked framing not yet consumed).
    raw: Vec<u8>,
    /// Decoded body prefix (kept until the verdict only).
    body: Vec<u8>,
    /// Body bytes received in total (may exceed what is kept).
    body_seen: usize,
    searched: usize,
    matched: bool,
    chunk: Chunk,
    /// The verdict, once given.
    decided: bool,
    /// The response allows another request (HTTP/1.1, no
    /// `Connection: close`, framed by length or chunks).
    keep_alive: bool,
    /// The framing broke after the verdict.
    broken: bool,
}

impl ResponseJudge {
    /// A judge for `probe`'s success criteria.
    pub fn new(probe: &HttpProbe) -> ResponseJudge {
        ResponseJudge {
            head_only: probe.method == HttpMethod::Head,
            expect_status: probe.expect_status.clone(),
            expect_body: probe.expect_body.as_ref().map(|b| b.as_bytes().to_vec()),
            phase: Phase::Head,
            raw: Vec::new(),
            body: Vec::new(),
            body_seen: 0,
            searched: 0,
            matched: false,
            chunk: Chunk::Size,
            decided: false,
            keep_alive: false,
            broken: false,
        }
    }

    /// Feeds received bytes; `Some` once, when the answer is decided.
    /// Bytes fed after that are followed to the end of the message only.
    pub fn feed(&mut self, data: &[u8]) -> Option<Verdict> {
        if matches!(self.phase, Phase::Done) {
            if !data.is_empty() {
                self.broken = true; // bytes after the message
            }
            return None;
        }
        self.raw.extend_from_slice(data);
        self.advance()
    }

    /// Whether any response byte has been seen.
    pub fn started(&self) -> bool {
        !matches!(self.phase, Phase::Head) || !self.raw.is_empty()
    }

    /// Whether the connection can carry the next request.
    pub fn keep(&self) -> Keep {
        if !self.keep_alive || self.broken || self.body_seen > DRAIN_CAP {
            return Keep::No;
        }
        match self.phase {
            Phase::Done if self.raw.is_empty() => Keep::Yes,
            Phase::Done => Keep::No,
            _ => Keep::More,
        }
    }

    /// The peer closed the connection; always decides.
    pub fn eof(&mut self) -> Verdict {
        let v = match &self.phase {
            _ if self.decided => verdict(Code::L7Rsp, "already decided"),
            Phase::Done => verdict(Code::L7Rsp, "already decided"),
            Phase::Head if self.raw.is_empty() => {
                verdict(Code::L7Rsp, "connection closed without a response")
            }
            Phase::Head => verdict(Code::L7Rsp, "connection closed in the response header"),
            Phase::Body {
                status,
                framing: Framing::Close,
            } => self.judge_body(*status),
            Phase::Body { .. } => verdict(Code::L7Rsp, "connection closed in the response body"),
        };
        self.phase = Phase::Done;
        self.decided = true;
        self.keep_alive = false;
        v
    }

    /// Gives `v` as the verdict unless one was given already.
    fn give(&mut self, out: &mut Option<Verdict>, v: Verdict) {
        if !self.decided {
            self.decided = true;
            self.body = Vec::new();
            *out = Some(v);
        }
    }

    /// A framing error: the verdict before the decision, the end of the
    /// connection's use after it.
    fn broke(&mut self, out: &mut Option<Verdict>, why: &'static str) -> Option<Verdict> {
        self.phase = Phase::Done;
        self.broken = true;
        self.give(out, verdict(Code::L7Rsp, why));
        out.take()
    }

    /// Consumes what `raw` holds; the verdict if it was decided now.
    fn advance(&mut self) -> Option<Verdict> {
        let mut out = None;
        loop {
            match &mut self.phase {
                Phase::Done => return out,
                Phase::Head => {
                    if self.raw.len() >= 5 && !self.raw.starts_with(b"HTTP/") {
                        return self.broke(&mut out, "not an HTTP response");
                    }
                    let Some((end, sep)) = find_head_end(&self.raw) else {
                        if self.raw.len() > HEAD_CAP {
                            return self.broke(&mut out, "response header too large");
                        }
                        return out;
                    };
                    let head = String::from_utf8_lossy(&self.raw[..end]).into_owned();
                    self.raw.drain(..end + sep);
                    let mut lines = head.lines();
                    let status_line = lines.next().unwrap_or("");
                    let status = match parse_status_line(status_line) {
                        Ok(s) => s,
                        Err(why) => return self.broke(&mut out, why),
                    };
                    if (100..200).contains(&status) && status != 101 {
                        continue; // interim response; the real one follows
                    }
                    let mut framing = Framing::Close;
                    let mut close = false;
                    for line in lines {
                        let Some((k, v)) = line.split_once(':') else {
                            continue;
                        };
                        let (k, v) = (k.trim(), v.trim());
                        if k.eq_ignore_ascii_case("transfer-encoding")
                            && v.to_ascii_lowercase().contains("chunked")
                        {
                            framing = Framing::Chunked;
                        } else if k.eq_ignore_ascii_case("content-length")
                            && !matches!(framing, Framing::Chunked)
                        {
                            match v.parse::<usize>() {
                                Ok(n) => framing = Framing::Length(n),
                                Err(_) => return self.broke(&mut out, "invalid Content-Length"),
                            }
                        } else if k.eq_ignore_ascii_case("connection") {
                            close |= v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
                        }
                    }
                    if self.head_only || status == 204 || status == 304 {
                        framing = Framing::Length(0);
                    }
                    self.keep_alive = status_line.starts_with("HTTP/1.1 ")
                        && !close
                        && status != 101
                        && !matches!(framing, Framing::Close);
                    self.phase = Phase::Body { status, framing };
                    if !self.expect_status.iter().any(|r| r.contains(status)) {
                        self.give(&mut out, verdict(Code::L7Sts, format!("HTTP {status}")));
                    } else if self.expect_body.is_none() {
                        self.give(&mut out, verdict(Code::L7Ok, format!("HTTP {status}")));
                    }
                }
                Phase::Body { status, framing } => {
                    let status = *status;
                    // (the last byte is in, the message is over: chunked
                    // trailers may still follow the last chunk)
                    let (end, over) = match framing {
                        Framing::Length(n) => {
                            let take = self.raw.len().min(*n);
                            *n -= take;
                            let end = *n == 0;
                            let data: Vec<u8> = self.raw.drain(..take).collect();
                            self.push_body(&data);
                            (end, end)
                        }
                        Framing::Close => {
                            let data = std::mem::take(&mut self.raw);
                            self.push_body(&data);
                            (false, false)
                        }
                        Framing::Chunked => match self.dechunk() {
                            Ok(end) => (end, matches!(self.phase, Phase::Done)),
                            Err(why) => return self.broke(&mut out, why),
                        },
                    };
                    if over {
                        self.phase = Phase::Done;
                    }
                    if let Some(v) = self.early_body_verdict(status) {
                        self.give(&mut out, v);
                    }
                    if end {
                        let v = self.judge_body(status);
                        self.give(&mut out, v);
                    }
                    return out;
                }
            }
        }
    }

    /// Consumes chunked framing from `raw`; `Ok(true)` once the last
    /// chunk is in (the trailers after it are consumed as they come, and
    /// end the message).
    fn dechunk(&mut self) -> Result<bool, &'static str> {
        loop {
            match self.chunk {
                Chunk::Size => {
                    let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                        if self.raw.len() > 1024 {
                            return Err("invalid chunk size line");
                        }
                        return Ok(false);
                    };
                    let line = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
                    self.raw.drain(..eol + 2);
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size =
                        usize::from_str_radix(hex, 16).map_err(|_| "invalid chunk size line")?;
                    self.chunk = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if self.raw.is_empty() {
                        return Ok(false);
                    }
                    let take = self.raw.len().min(left);
                    let data: Vec<u8> = self.raw.drain(..take).collect();
                    self.push_body(&data);
                    self.chunk = if take == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::DataEnd => {
                    if self.raw.len() < 2 {
                        return Ok(false);
                    }
                    if &self.raw[..2] != b"\r\n" {
                        return Err("invalid chunk terminator");
                    }
                    self.raw.drain(..2);
                    self.chunk = Chunk::Size;
                }
                Chunk::Trailers => {
                    // Trailer lines end with an empty line; the verdict
                    // does not depend on them.
                    while let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") {
                        self.raw.drain(..eol + 2);
                        if eol == 0 {
                            self.phase = Phase::Done;
                            return Ok(true);
                        }
                    }
                    if self.raw.len() > HEAD_CAP {
                        return Err("chunked trailers too large");
                    }
                    return Ok(true);
                }
            }
        }
    }

    fn push_body(&mut self, data: &[u8]) {
        self.body_seen += data.len();
        if self.decided {
            return;
        }
        let room = BODY_CAP.saturating_sub(self.body.len());
        self.body.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// Whether the body seen so far contains `expect-body` (only new bytes
    /// are searched; a match, once seen, stays).
    fn body_matched(&mut self) -> bool {
        let Some(needle) = &self.expect_body else {
            return true;
        };
        if !self.matched {
            let from = self.searched.saturating_sub(needle.len().saturating_sub(1));
            self.matched = self.body[from..]
                .windows(needle.len().max(1))
                .any(|w| w == needle.as_slice());
            self.searched = self.body.len();
        }
        self.matched
    }

    fn early_body_verdict(&mut self, status: u16) -> Option<Verdict> {
        if self.decided {
            return None;
        }
        if self.body_matched() {
            return Some(verdict(Code::L7Ok, format!("HTTP {status}")));
        }
        if self.body_seen >= BODY_CAP {
            return Some(self.judge_body(status));
        }
        None
    }

    fn judge_body(&mut self, status: u16) -> Verdict {
        if self.body_matched() {
            return verdict(Code::L7Ok, format!("HTTP {status}"));
        }
        let needle = String::from_utf8_lossy(self.expect_body.as_deref().unwrap_or_default());
        let mut detail = format!("body does not contain {needle:?}");
        if self.body_seen > BODY_CAP {
            detail.push_str(&format!(" (first {BODY_CAP} bytes)"));
        }
        verdict(Code::L7Rsp, detail)
    }
}

/// Where a response head ends: (offset of the blank line, its length:
/// 4 for CRLF CRLF, 2 for a bare LF LF).
pub fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// `HTTP/1.1 200 OK` → 200.
pub fn parse_status_line(line: &str) -> Result<u16, &'static str> {
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !(version.starts_with("HTTP/1.") || version == "HTTP/2" || version == "HTTP/2.0") {
        return Err("invalid HTTP status line");
    }
    let code = parts.next().unwrap_or("");
    if code.len() != 3 {
        return Err("invalid HTTP status line");
    }
    match code.parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err("invalid HTTP status line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatusRange;

    fn probe(expect_body: Option<&str>, method: HttpMethod) -> HttpProbe {
        HttpProbe {
            port: 8080,
            path: "/healthz".into(),
            host: None,
            method,
            expect_status: vec![
                StatusRange { lo: 200, hi: 299 },
                StatusRange { lo: 301, hi: 301 },
            ],
            expect_body: expect_body.map(String::from),
            tls: None,
            reuse: None,
        }
    }

    fn judge_all(p: &HttpProbe, chunks: &[&[u8]], close: bool) -> Option<Verdict> {
        let mut j = ResponseJudge::new(p);
        for c in chunks {
            if let Some(v) = j.feed(c) {
                return Some(v);
            }
        }
        close.then(|| j.eof())
    }

    /// Feeds `bytes` one byte at a time: decisions must not depend on framing.
    fn judge_bytewise(p: &HttpProbe, bytes: &[u8], close: bool) -> Option<Verdict> {
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        judge_all(p, &pieces, close)
    }

    fn code(v: Option<Verdict>) -> (Code, String) {
        let v = v.expect("a verdict");
        (v.code, v.detail)
    }

    #[test]
    fn request_format() {
        let p = probe(None, HttpMethod::Get);
        let r = String::from_utf8(request(&p, "192.0.2.10".parse().unwrap())).unwrap();
        assert!(
            r.starts_with("GET /healthz HTTP/1.1\r\nHost: 192.0.2.10:8080\r\n"),
            "{r}"
        );
        assert!(r.contains(&format!("User-Agent: maglevd/{}\r\n", crate::VERSION)));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
        let mut p6 = probe(None, HttpMethod::Head);
        p6.port = 80;
        let r = String::from_utf8(request(&p6, "2001:db8::1".parse().unwrap())).unwrap();
        assert!(
            r.starts_with("HEAD /healthz HTTP/1.1\r\nHost: [2001:db8::1]\r\n"),
            "{r}"
        );
        p6.host = Some("www.example.com".into());
        let r = String::from_utf8(request(&p6, "2001:db8::1".parse().unwrap())).unwrap();
        assert!(r.contains("Host: www.example.com\r\n"));
    }

    #[test]
    fn status_decides_without_body_match() {
        let p = probe(None, HttpMethod::Get);
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        assert_eq!(
            code(judge_bytewise(&p, ok, false)),
            (Code::L7Ok, "HTTP 200".into())
        );
        let bad = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert_eq!(
            code(judge_bytewise(&p, bad, false)),
            (Code::L7Sts, "HTTP 503".into())
        );
        let moved = b"HTTP/1.0 301 Moved\n\n";
        assert_eq!(code(judge_bytewise(&p, moved, false)).0, Code::L7Ok);
        let redirect = b"HTTP/1.1 302 Found\r\n\r\n";
        assert_eq!(code(judge_bytewise(&p, redirect, false)).0, Code::L7Sts);
    }

    #[test]
    fn interim_responses_are_skipped() {
        let p = probe(None, HttpMethod::Get);
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            code(judge_bytewise(&p, r, false)),
            (Code::L7Ok, "HTTP 204".into())
        );
    }

    #[test]
    fn body_match_with_content_length() {
        let p = probe(Some("ok"), HttpMethod::Get);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nstatus ok";
        assert_eq!(code(judge_bytewise(&p, r, false)).0, Code::L7Ok);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nstatus no";
        assert_eq!(
            code(judge_bytewise(&p, r, false)),
            (Code::L7Rsp, "body does not contain \"ok\"".into())
        );
    }

    #[test]
    fn body_match_across_reads() {
        let p = probe(Some("healthy"), HttpMethod::Get);
        let v = judge_all(
            &p,
            &[b"HTTP/1.1 200 OK\r\n\r\nI am heal", b"thy today"],
            false,
        );
        assert_eq!(
            code(v).0,
            Code::L7Ok,
            "match split over two reads, close-delimited"
        );
    }

    #[test]
    fn close_delimited_body() {
        let p = probe(Some("ok"), HttpMethod::Get);
        let r = b"HTTP/1.1 200 OK\r\n\r\nnope";
        assert_eq!(code(judge_bytewise(&p, r, true)).0, Code::L7Rsp);
    }

    #[test]
    fn chunked_body() {
        let p = probe(Some("world"), HttpMethod::Get);
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        assert_eq!(code(judge_bytewise(&p, r, false)).0, Code::L7Ok);
        let p = probe(Some("absent"), HttpMethod::Get);
        assert_eq!(code(judge_bytewise(&p, r, false)).0, Code::L7Rsp);
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(
            code(judge_bytewise(&p, bad, false)),
            (Code::L7Rsp, "invalid chunk size line".into())
        );
    }

    #[test]
    fn body_cap() {
        let p = probe(Some("needle"), HttpMethod::Get);
        let mut r = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        r.extend(std::iter::repeat_n(b'x', BODY_CAP + 10));
        r.extend_from_slice(b"needle");
        let v = code(judge_all(&p, &[&r], false));
        assert_eq!(v.0, Code::L7Rsp);
        assert!(v.1.contains("first 65536 bytes"), "{}", v.1);
    }

    #[test]
    fn head_request_has_no_body() {
        let p = probe(None, HttpMethod::Head);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        assert_eq!(code(judge_bytewise(&p, r, false)).0, Code::L7Ok);
    }

    #[test]
    fn garbage_and_truncation() {
        let p = probe(None, HttpMethod::Get);
        assert_eq!(
            code(judge_bytewise(&p, b"SSH-2.0-OpenSSH_9.2\r\n", false)),
            (Code::L7Rsp, "not an HTTP response".into())
        );
        assert_eq!(
            code(judge_bytewise(&p, b"HTTP/1.1 abc\r\n\r\n", false)),
            (Code::L7Rsp, "invalid HTTP status line".into())
        );
        assert_eq!(
            code(judge_bytewise(&p, b"", true)),
            (Code::L7Rsp, "connection closed without a response".into())
        );
        assert_eq!(
            code(judge_bytewise(&p, b"HTTP/1.1 200 O", true)),
            (
                Code::L7Rsp,
                "connection closed in the response header".into()
            )
        );
        let p = probe(Some("ok"), HttpMethod::Get);
        assert_eq!(
            code(judge_bytewise(
                &p,
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nabc",
                true
            )),
            (Code::L7Rsp, "connection closed in the response body".into())
        );
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'h', HEAD_CAP + 1));
        assert_eq!(
            code(judge_all(&p, &[&huge], false)).1,
            "response header too large"
        );
    }

    /// Feeds `bytes` in pieces of `step`; the verdict and where the
    /// connection stands after the last piece.
    fn keep_after(p: &HttpProbe, bytes: &[u8], step: usize) -> (Option<Code>, Keep) {
        let mut j = ResponseJudge::new(p);
        let mut v = None;
        for c in bytes.chunks(step) {
            if let Some(x) = j.feed(c) {
                assert!(v.is_none(), "a second verdict");
                v = Some(x.code);
            }
        }
        (v, j.keep())
    }

    #[test]
    fn keep_follows_the_message_to_its_end() {
        let p = probe(None, HttpMethod::Get);
        let pb = probe(Some("ok"), HttpMethod::Get);
        let len = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nis ok";
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for step in [1, 3, 1000] {
            for probe in [&p, &pb] {
                assert_eq!(keep_after(probe, len, step), (Some(Code::L7Ok), Keep::Yes));
                assert_eq!(
                    keep_after(probe, chunked, step),
                    (Some(Code::L7Ok), Keep::Yes),
                    "step {step}"
                );
                // Not all of it yet: the verdict may be in, the end is not.
                let (_, k) = keep_after(probe, &chunked[..chunked.len() - 2], step);
                assert_eq!(k, Keep::More, "trailers not ended");
                let (_, k) = keep_after(probe, &len[..len.len() - 1], step);
                assert_eq!(k, Keep::More);
            }
        }
        // The status decides at once; the body is still followed.
        let mut j = ResponseJudge::new(&p);
        let v = j.feed(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(v.map(|v| v.code), Some(Code::L7Ok));
        assert_eq!(j.keep(), Keep::Yes);
        let head = probe(None, HttpMethod::Head);
        assert_eq!(
            keep_after(&head, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 1),
            (Some(Code::L7Ok), Keep::Yes),
            "HEAD: no body whatever the length says"
        );
        // A failing status is a verdict too; the message still ends.
        assert_eq!(
            keep_after(&p, b"HTTP/1.1 503 No\r\nContent-Length: 2\r\n\r\nno", 1),
            (Some(Code::L7Sts), Keep::Yes)
        );
    }

    #[test]
    fn keep_refuses_what_cannot_carry_another_request() {
        let p = probe(None, HttpMethod::Get);
        let no = |bytes: &[u8]| keep_after(&p, bytes, 1).1;
        assert_eq!(
            no(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
            Keep::No
        );
        assert_eq!(
            no(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n"),
            Keep::No
        );
        assert_eq!(
            no(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Keep::No,
            "HTTP/1.0"
        );
        assert_eq!(no(b"HTTP/1.1 200 OK\r\n\r\nbody to the close"), Keep::No);
        assert_eq!(
            no(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 408"),
            Keep::No,
            "bytes after the message"
        );
        let mut j = ResponseJudge::new(&p);
        j.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(j.keep(), Keep::Yes);
        j.feed(b"x");
        assert_eq!(j.keep(), Keep::No, "bytes in a later read");
        let mut big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            DRAIN_CAP + 1
        )
        .into_bytes();
        big.extend(std::iter::repeat_n(b'x', DRAIN_CAP + 1));
        assert_eq!(keep_after(&p, &big, 4096), (Some(Code::L7Ok), Keep::No));
        assert_eq!(
            keep_after(
                &p,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
                1
            ),
            (Some(Code::L7Ok), Keep::No),
            "broken framing after the verdict"
        );
        let mut j = ResponseJudge::new(&p);
        j.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc");
        j.eof();
        assert_eq!(j.keep(), Keep::No);
        assert!(!ResponseJudge::new(&p).started());
        assert!(j.started());
    }

    #[test]
    fn a_kept_connection_asks_for_no_close() {
        let mut p = probe(None, HttpMethod::Get);
        p.reuse = Some(std::time::Duration::from_secs(30));
        let r = String::from_utf8(request(&p, "192.0.2.10".parse().unwrap())).unwrap();
        assert!(!r.contains("Connection:"), "{r}");
        assert!(r.ends_with("Accept: */*\r\n\r\n"), "{r}");
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        // A cheap deterministic fuzz over framings and byte values.
        let p = probe(Some("ok"), HttpMethod::Get);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let mut j = ResponseJudge::new(&p);
            let mut input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let alphabet = b"0123456789abcdefxX\r\n; ";
                input.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            for c in input.chunks((x % 7 + 1) as usize) {
                if j.feed(c).is_some() {
                    break;
                }
            }
            let _ = j.eof();
        }
    }
}
