//! The dashboard's HTTP side, on the project's bounded server
//! ([`crate::httpd`], as `/metrics`): the page, its JSON API, the
//! Server-Sent Events stream and the admin actions. What waits on the hub
//! or a maglevd runs on the server's fixed worker threads; the event
//! stream is a streamed response the hub's [`Broker`] wakes.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Sender, TryRecvError, bounded};
use log::{info, warn};
use serde_json::{Value, json};

use super::assets;
use super::hub::{Ask, Broker};
use super::link::Job;
use super::ring::Since;
use crate::httpd::{Limits, Pull, Reply, Request, Response, Stream};

/// Threads answering what waits on the hub or a maglevd.
pub const WORKERS: usize = 2;
/// An event-stream browser hears at least this often (`: ping`).
pub const PING: Duration = Duration::from_secs(15);
/// The longest admin request body read.
pub const MAX_BODY: usize = 4096;
/// Connections at once, by default: a wall screen's page with its event
/// stream and API calls, a few operators, scripts.
pub const MAX_CONNECTIONS: usize = 64;

/// The HTTP bounds of the dashboard for `max_conns` connections.
pub fn limits(max_conns: usize) -> Limits {
    Limits {
        max_conns,
        max_head: 8 * 1024,
        max_body: MAX_BODY,
        head_timeout: Duration::from_secs(10),
        // An admin action waits up to 15 s for its maglevd.
        total_timeout: Duration::from_secs(30),
        workers: WORKERS,
        stream_buffer: 64 * 1024,
        stream_stall: Duration::from_secs(30),
    }
}

/// Admin credentials (`MAGLEV_FRONTEND_USER`, `MAGLEV_FRONTEND_PASSWORD`).
#[derive(Clone)]
pub struct Admin {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// What the handler and its workers share.
pub struct Web {
    /// To ask the hub for state.
    pub asks: Sender<Ask>,
    /// Each maglevd's fetcher, for admin actions, with its name.
    pub jobs: Vec<(String, Sender<Job>)>,
    /// The event stream.
    pub broker: Arc<Broker>,
    /// Admin credentials; `None`: no admin pages (404).
    pub admin: Option<Admin>,
}

fn json_response(status: u16, v: &Value) -> Response {
    Response::new(status, "application/json", v.to_string().into_bytes())
        .with_header("Cache-Control", "no-store")
}

/// Decodes standard base64 (the Basic auth token); `None` if malformed.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Equal without a timing hint of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The user of a request whose Basic credentials are `admin`'s.
pub fn authorized(authorization: Option<&str>, admin: &Admin) -> Option<String> {
    let token = authorization?.strip_prefix("Basic ")?;
    let raw = base64_decode(token.trim())?;
    let raw = String::from_utf8(raw).ok()?;
    let (u, p) = raw.split_once(':')?;
    (same(u.as_bytes(), admin.user.as_bytes()) && same(p.as_bytes(), admin.password.as_bytes()))
        .then(|| u.to_string())
}

/// Whether a mutating request comes from a page of this server: its
/// `Origin` (or, without one, its `Referer`) names the `Host` it was sent
/// to.
pub fn same_origin(host: Option<&str>, origin: Option<&str>, referer: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let matches = |u: &str| {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"));
        rest.is_some_and(|r| r.split('/').next() == Some(host))
    };
    match (origin, referer) {
        (Some(o), _) if o != "null" => matches(o),
        (_, Some(r)) => matches(r),
        _ => false,
    }
}

/// A command word from a browser: a name as the configuration allows
/// (no spaces, no control characters, not empty).
fn word(v: &Value, key: &str) -> Result<String, String> {
    let s = v[key]
        .as_str()
        .ok_or_else(|| format!("`{key}` is missing"))?;
    if s.is_empty() || s.len() > 200 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{key}` is not a name"));
    }
    Ok(s.to_string())
}

/// The control command an admin request asks for.
pub fn command_of(body: &Value) -> Result<String, String> {
    let action = body["action"].as_str().unwrap_or("");
    Ok(match action {
        "pause" | "resume" | "enable" | "disable" => {
            format!("set backend {} {action}", word(body, "backend")?)
        }
        "weight" => {
            let w = body["weight"]
                .as_u64()
                .filter(|w| *w <= 100)
                .ok_or("`weight` must be 0..100")?;
            format!(
                "set frontend {} pool {} backend {} weight {w}{}",
                word(body, "frontend")?,
                word(body, "pool")?,
                word(body, "backend")?,
                if body["flush"].as_bool() == Some(true) {
                    " flush"
                } else {
                    ""
                }
            )
        }
        "sync" => match body["frontend"].as_str() {
            Some(_) => format!("sync vpp lb state {}", word(body, "frontend")?),
            None => "sync vpp lb state".into(),
        },
        "reload" => "config reload".into(),
        other => return Err(format!("unknown action `{other}`")),
    })
}

impl Web {
    /// The server's handler: routes on the server thread, hands what
    /// waits to a worker.
    pub fn handler(self: &Arc<Self>) -> crate::httpd::Handler {
        let web = Arc::clone(self);
        Box::new(move |req| web.route(req))
    }

    fn route(self: &Arc<Self>, req: Request) -> Reply {
        let get = matches!(req.method.as_str(), "GET" | "HEAD");
        let later = |f: fn(&Web, &Request) -> Response, web: &Arc<Web>, req: Request| {
            let web = Arc::clone(web);
            Reply::Later(Box::new(move || f(&web, &req)))
        };
        let path = req.path.clone();
        Reply::Now(match (get, path.as_str()) {
            (_, p) if p.starts_with("/admin") => return self.admin(req),
            (true, "/") => Response::new(302, "text/plain; charset=utf-8", Vec::new())
                .with_header("Location", "/view/"),
            (true, "/view" | "/view/") => page(false),
            (true, "/healthz") => return later(Web::healthz, self, req),
            (true, "/view/api/events") => self.events(&req),
            (true, p) if p.starts_with("/view/api/events") => Response::text(404, "not found\n"),
            (true, "/view/api/version") => json_response(
                200,
                &json!({"version": crate::VERSION, "commit": crate::GIT_COMMIT,
                        "epoch": self.broker.epoch(), "admin": self.admin.is_some()}),
            ),
            (true, p) if p.starts_with("/view/api/") => return later(Web::api, self, req),
            (true, p) if p.starts_with("/assets/") || p == "/favicon.ico" => match assets::get(p) {
                Some(a) => Response::new(200, a.content_type, a.body.to_vec())
                    .with_header("Cache-Control", "no-cache"),
                None => Response::text(404, "not found\n"),
            },
            (false, p) if p.starts_with("/view") => {
                Response::text(405, "read-only\n").with_header("Allow", "GET")
            }
            _ => Response::text(404, "not found\n"),
        })
    }

    fn healthz(&self, _req: &Request) -> Response {
        let (tx, rx) = bounded(1);
        let _ = self.asks.send(Ask::Maglevds(tx));
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(v) => json_response(200, &json!({"ok": true, "maglevds": v["maglevds"]})),
            Err(_) => json_response(503, &json!({"ok": false, "error": "hub not answering"})),
        }
    }

    /// The JSON API that asks the hub (on a worker).
    fn api(&self, req: &Request) -> Response {
        let ask = |a: Ask, rx: crossbeam_channel::Receiver<Option<Value>>| {
            let _ = self.asks.send(a);
            rx.recv_timeout(Duration::from_secs(5)).ok()
        };
        match req.path.as_str() {
            "/view/api/state" => {
                let (tx, rx) = bounded(1);
                let r = match ask(Ask::State(None, tx), rx) {
                    Some(Some(v)) => json_response(200, &v),
                    _ => json_response(503, &json!({"error": "hub not answering"})),
                };
                // The whole state as a JSON tree is large and short-lived:
                // give the memory back.
                crate::limits::release_free_memory();
                r
            }
            "/view/api/maglevds" => {
                let (tx, rx) = bounded(1);
                let _ = self.asks.send(Ask::Maglevds(tx));
                match rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(v) => json_response(200, &v),
                    Err(_) => json_response(503, &json!({"error": "hub not answering"})),
                }
            }
            p => match p.strip_prefix("/view/api/state/") {
                Some(name) if !name.is_empty() => {
                    let (tx, rx) = bounded(1);
                    match ask(Ask::State(Some(name.to_string()), tx), rx) {
                        Some(Some(v)) => json_response(200, &v),
                        Some(None) => json_response(
                            404,
                            &json!({"error": format!("no maglevd named {name:?}")}),
                        ),
                        None => json_response(503, &json!({"error": "hub not answering"})),
                    }
                }
                _ => Response::text(404, "not found\n"),
            },
        }
    }

    /// The Server-Sent Events stream: replay by `Last-Event-ID`, then live
    /// events, a `: ping` every [`PING`]; 503 with `Retry-After` beyond
    /// the cap of browsers.
    fn events(&self, req: &Request) -> Response {
        // `?recent=N`: a page's first connection also gets the last N
        // kept events (its history list).
        let recent = req
            .query_param("recent")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
            .min(super::ring::REPLAY);
        let (since, feed) = match self.broker.subscribe(req.header("Last-Event-ID"), recent) {
            Ok(x) => x,
            Err(_) => {
                return Response::text(503, "too many event-stream clients\n")
                    .with_header("Retry-After", "5");
            }
        };
        let epoch = self.broker.epoch();
        let mut first = String::from("retry: 2000\n\n");
        match since {
            Since::Fresh => {}
            Since::Resync => first.push_str("event: resync\ndata: {}\n\n"),
            Since::Replay(v) => {
                for e in v {
                    first.push_str(&e.frame(epoch));
                }
            }
        }
        let mut r = Response::new(200, "text/event-stream", first.into_bytes())
            .with_header("Cache-Control", "no-cache")
            .with_header("X-Accel-Buffering", "no");
        r.stream = Some(Stream {
            // The whole feed is moved in: while the connection holds it,
            // the browser counts as connected.
            next: Box::new(move || match feed.try_recv() {
                Ok(e) => Pull::Data(e.frame(epoch).into_bytes()),
                Err(TryRecvError::Empty) => Pull::Empty,
                // Let go by the broker (too slow): the browser reconnects
                // with its Last-Event-ID.
                Err(TryRecvError::Disconnected) => Pull::End,
            }),
            keepalive: PING,
            keepalive_bytes: b": ping\n\n",
        });
        r
    }

    fn admin(self: &Arc<Self>, req: Request) -> Reply {
        let Some(admin) = &self.admin else {
            return Reply::Now(Response::text(
                404,
                "admin pages are off (MAGLEV_FRONTEND_USER and MAGLEV_FRONTEND_PASSWORD unset)\n",
            ));
        };
        let Some(user) = authorized(req.header("Authorization"), admin) else {
            return Reply::Now(
                Response::text(401, "authentication required\n").with_header(
                    "WWW-Authenticate",
                    "Basic realm=\"maglevd-frontend admin\", charset=\"UTF-8\"",
                ),
            );
        };
        let get = matches!(req.method.as_str(), "GET" | "HEAD");
        Reply::Now(match req.path.as_str() {
            "/admin" | "/admin/" if get => page(true),
            "/admin" | "/admin/" => Response::text(405, "GET only\n").with_header("Allow", "GET"),
            "/admin/api/action" => {
                if req.method != "POST" {
                    Response::text(405, "POST only\n").with_header("Allow", "POST")
                } else if !same_origin(
                    req.header("Host"),
                    req.header("Origin"),
                    req.header("Referer"),
                ) {
                    warn!("admin-refused user={user} reason=cross-origin");
                    json_response(
                        403,
                        &json!({"ok": false, "error": "cross-origin request refused"}),
                    )
                } else {
                    match serde_json::from_slice::<Value>(&req.body) {
                        Ok(v) => {
                            let web = Arc::clone(self);
                            return Reply::Later(Box::new(move || web.action(&user, &v)));
                        }
                        Err(e) => json_response(
                            400,
                            &json!({"ok": false, "error": format!("bad JSON: {e}")}),
                        ),
                    }
                }
            }
            _ => Response::text(404, "not found\n"),
        })
    }

    fn action(&self, user: &str, body: &Value) -> Response {
        let name = body["maglevd"].as_str().unwrap_or("");
        let Some((_, jobs)) = self.jobs.iter().find(|(n, _)| n == name) else {
            return json_response(
                404,
                &json!({"ok": false, "error": format!("no maglevd named {name:?}")}),
            );
        };
        let line = match command_of(body) {
            Ok(l) => l,
            Err(e) => return json_response(400, &json!({"ok": false, "error": e})),
        };
        let (tx, rx) = bounded(1);
        let answer = match jobs.send(Job::Command(line.clone(), tx)) {
            Ok(()) => rx
                .recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|_| Err("maglevd did not answer in time".into())),
            Err(_) => Err("stopping".into()),
        };
        let (ok, v) = match answer {
            Ok(a) => match serde_json::from_str::<Value>(&a) {
                Ok(v) => (v["ok"] == true, v),
                Err(e) => (
                    false,
                    json!({"ok": false, "error": format!("bad answer: {e}")}),
                ),
            },
            Err(e) => (false, json!({"ok": false, "error": e})),
        };
        let error = v["error"].as_str().unwrap_or("");
        info!("admin-action user={user} maglevd={name} command={line:?} ok={ok} error={error:?}");
        json_response(
            200,
            &json!({"ok": ok, "command": line, "answer": v, "error": (!ok).then_some(error)}),
        )
    }
}

/// The page; `admin` adds the actions.
fn page(admin: bool) -> Response {
    let html = assets::INDEX.replace(
        "data-admin=\"0\"",
        if admin {
            "data-admin=\"1\""
        } else {
            "data-admin=\"0\""
        },
    );
    Response::new(200, "text/html; charset=utf-8", html.into_bytes())
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Frame-Options", "DENY")
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        let a = Admin {
            user: "ops".into(),
            password: "s3cret:x".into(),
        };
        // "ops:s3cret:x"
        assert_eq!(base64_decode("b3BzOnMzY3JldDp4").unwrap(), b"ops:s3cret:x");
        assert_eq!(
            authorized(Some("Basic b3BzOnMzY3JldDp4"), &a),
            Some("ops".into())
        );
        assert_eq!(
            authorized(Some("Basic b3BzOnMzY3JldA=="), &a),
            None,
            "ops:s3cret"
        );
        assert_eq!(authorized(Some("Bearer x"), &a), None);
        assert_eq!(authorized(None, &a), None);
        assert_eq!(base64_decode("a$b"), None);
    }

    #[test]
    fn same_origin_is_host_by_origin_or_referer() {
        let h = Some("router:8080");
        assert!(same_origin(h, Some("http://router:8080"), None));
        assert!(!same_origin(
            h,
            Some("http://evil.example"),
            Some("http://router:8080/admin/")
        ));
        assert!(same_origin(h, None, Some("https://router:8080/admin/")));
        assert!(!same_origin(h, Some("null"), None));
        assert!(!same_origin(h, None, None));
        assert!(!same_origin(None, Some("http://router:8080"), None));
    }

    #[test]
    fn admin_bodies_become_commands_or_errors() {
        let c = |v: Value| command_of(&v);
        assert_eq!(
            c(json!({"action":"pause","backend":"b1"})).unwrap(),
            "set backend b1 pause"
        );
        assert_eq!(
            c(json!({"action":"weight","frontend":"web","pool":"main","backend":"b1","weight":30,"flush":true})).unwrap(),
            "set frontend web pool main backend b1 weight 30 flush"
        );
        assert_eq!(c(json!({"action":"sync"})).unwrap(), "sync vpp lb state");
        assert_eq!(c(json!({"action":"reload"})).unwrap(), "config reload");
        assert!(c(json!({"action":"pause","backend":"b1 resume"})).is_err());
        assert!(c(json!({"action":"pause","backend":"b1\nconfig reload"})).is_err());
        assert!(
            c(json!({"action":"weight","frontend":"w","pool":"p","backend":"b","weight":101}))
                .is_err()
        );
        assert!(c(json!({"action":"rm"})).is_err());
    }
}
