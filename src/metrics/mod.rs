//! Prometheus exposition on `/metrics` (text format 0.0.4) over
//! a small bounded responder ([`crate::httpd`]), from the snapshots the
//! other threads publish.
//!
//! Metric and label names follow the original maglevd so existing
//! dashboards keep working. Rendering reads immutable snapshots only: a
//! scrape never takes a lock another thread holds across I/O.

mod render;

use std::net::SocketAddr;
use std::sync::Arc;

use log::info;

pub use render::render;

use crate::checker::Snapshot;
use crate::httpd::{HttpServer, Limits, Reply, Request, Response};
use crate::snapshot::Published;
use crate::vpp::client::ApiCounters;
use crate::vpp::reconciler::SyncStats;
use crate::vpp::scraper::LbCounters;
use crate::vpp::status::VppStatus;

/// Default `--metrics-addr`.
pub const DEFAULT_ADDR: &str = ":9091";

/// Where the numbers come from.
#[derive(Clone)]
pub struct Sources {
    /// Health state.
    pub checker: Published<Snapshot>,
    /// VPP API calls.
    pub api: Arc<ApiCounters>,
    /// LB sync operations.
    pub sync: Arc<SyncStats>,
    /// VPP session.
    pub status: Published<VppStatus>,
    /// Stats-segment counters, when a stats socket is configured.
    pub counters: Option<Published<LbCounters>>,
    /// The probe engine's own counters (schedule lateness).
    pub engine: Option<Arc<crate::probe::engine::Stats>>,
    /// Announcing to BGP.
    pub announce: Option<Published<crate::announce::AnnounceStatus>>,
}

/// `:9091` → `[::]:9091` (IPv6 and IPv4, as Go listens); `""` → `None`
/// (disabled).
pub fn parse_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    crate::httpd::every_address(s)
        .parse()
        .map(Some)
        .map_err(|_| format!("`{s}` is not HOST:PORT (e.g. :9091, 127.0.0.1:9091, [::1]:9091)"))
}

/// Escapes a label value (`\`, `"`, newline).
pub fn escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// The `/metrics` HTTP server thread (see [`crate::httpd`] for its bounds).
pub struct MetricsServer {
    server: HttpServer,
}

impl MetricsServer {
    /// Binds `addr` and serves until [`MetricsServer::shutdown`].
    pub fn start(addr: SocketAddr, src: Sources) -> std::io::Result<MetricsServer> {
        // Size the next body like the last one: no regrowth, no copy.
        let mut last_len = 64 * 1024;
        let mut handler = move |req: Request| -> Response {
            let get = req.method == "GET" || req.method == "HEAD";
            match (get, req.path.as_str()) {
                (true, "/metrics") => {
                    let mut buf = String::with_capacity(last_len);
                    render(&src, &mut buf);
                    last_len = buf.len() + buf.len() / 8;
                    Response::new(
                        200,
                        "text/plain; version=0.0.4; charset=utf-8",
                        buf.into_bytes(),
                    )
                }
                (true, "/") => {
                    Response::new(200, "text/html; charset=utf-8", INDEX.as_bytes().to_vec())
                }
                (true, _) => Response::text(404, "404 not found\n"),
                (false, _) => Response::text(405, "405 method not allowed\n")
                    .with_header("Allow", "GET, HEAD"),
            }
        };
        // A share of the descriptors that probes and VPP never lose.
        let limits = Limits {
            max_conns: crate::limits::metrics_conns(crate::limits::nofile()),
            ..Limits::default()
        };
        let server = HttpServer::start(
            addr,
            "metrics",
            limits,
            Box::new(move |req| Reply::Now(handler(req))),
            None,
        )?;
        info!("metrics-listening addr={addr}");
        Ok(MetricsServer { server })
    }

    /// Stops serving.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

const INDEX: &str = "<html><head><title>maglevd</title></head><body><h1>maglevd</h1>\
<p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr(":9091").unwrap(),
            Some("[::]:9091".parse().unwrap())
        );
        assert_eq!(parse_addr("").unwrap(), None);
        assert_eq!(
            parse_addr("[::1]:9").unwrap(),
            Some("[::1]:9".parse().unwrap())
        );
        assert!(parse_addr("9091").is_err());
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
