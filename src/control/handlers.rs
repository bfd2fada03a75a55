//! What each command answers, as JSON. Read-only commands use the
//! published snapshots; actions go to the thread that owns the state.

use std::time::{Duration, SystemTime};

use crossbeam_channel::bounded;
use serde_json::{Value, json};

use super::grammar::Command;
use crossbeam_channel::Sender;

use crate::checker::CheckerClient;
use crate::checker::{BackendView, Snapshot};
use crate::config::{Frontend, HealthCheck, Probe};
use crate::logging::rfc3339_utc;
use crate::snapshot::Published;
use crate::vpp::reconciler::ReconcilerClient;
use crate::vpp::scraper::LbCounters;

/// A configuration request the main thread (which owns the file) answers.
pub enum ConfigRequest {
    /// Validate the file on disk.
    Check(Sender<Result<String, Vec<String>>>),
    /// Load it (like SIGHUP).
    Reload(Sender<Result<String, Vec<String>>>),
}

/// Everything the commands need.
#[derive(Clone)]
pub struct Context {
    /// Health state and actions.
    pub checker: CheckerClient,
    /// VPP sync and state, when VPP integration is on.
    pub reconciler: Option<ReconcilerClient>,
    /// Stats-segment counters, when a stats socket is configured.
    pub counters: Option<Published<LbCounters>>,
    /// To the main thread.
    pub config: Sender<ConfigRequest>,
    /// Members may run mutating commands (besides uid 0).
    pub admin_group: Option<(String, u32)>,
    /// When maglevd started.
    pub started: SystemTime,
}

/// `{"ok":false,"error":msg}`.
pub fn err(msg: impl Into<String>) -> Value {
    json!({"ok": false, "error": msg.into()})
}

const WAIT: Duration = Duration::from_secs(10);

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn protocol(fe: &Frontend) -> &'static str {
    match (fe.port, fe.protocol) {
        (0, _) | (_, None) => "any",
        (_, Some(p)) => p.as_str(),
    }
}

fn backend_json(name: &str, b: &BackendView, full: bool) -> Value {
    let mut v = json!({
        "name": name,
        "address": b.config.address.to_string(),
        "healthcheck": b.config.healthcheck,
        "state": b.state.as_str(),
        "enabled": b.enabled,
        "last": b.last.as_ref().map(|l| json!({
            "code": l.outcome.code.as_str(),
            "detail": l.outcome.detail,
            "duration_ms": l.outcome.duration.as_secs_f64() * 1000.0,
            "at": rfc3339_utc(l.at),
        })),
    });
    if full {
        v["counter"] = json!(b.counter.0);
        v["counter_max"] = json!(b.counter.1);
        v["history"] = b
            .history
            .iter()
            .map(|t| {
                json!({
                    "from": t.from.as_str(), "to": t.to.as_str(),
                    "code": t.code.map(|c| c.as_str()), "detail": t.detail,
                    "at": rfc3339_utc(t.at),
                })
            })
            .collect();
        v["probes"] = b
            .counters
            .by_code
            .iter()
            .map(|(c, n)| (c.as_str().to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    v
}

fn healthcheck_json(name: &str, h: &HealthCheck) -> Value {
    let mut v = json!({
        "name": name,
        "type": h.probe.check_type().as_str(),
        "port": h.probe.port(),
        "interval_ms": ms(h.interval),
        "fast_interval_ms": ms(h.fast_interval),
        "down_interval_ms": ms(h.down_interval),
        "timeout_ms": ms(h.timeout),
        "rise": h.rise,
        "fall": h.fall,
        "probe_ipv4_src": h.probe_ipv4_src.map(|a| a.to_string()),
        "probe_ipv6_src": h.probe_ipv6_src.map(|a| a.to_string()),
    });
    if let Probe::Http(p) = &h.probe {
        v["params"] = json!({
            "path": p.path,
            "host": p.host,
            "method": p.method.as_str(),
            "expect_status": p.expect_status.iter().map(|r| if r.lo == r.hi {
                r.lo.to_string()
            } else {
                format!("{}-{}", r.lo, r.hi)
            }).collect::<Vec<_>>(),
            "expect_body": p.expect_body,
            "tls_server_name": p.tls.as_ref().and_then(|t| t.server_name.clone()),
            "tls_verify": p.tls.as_ref().map(|t| t.verify),
        });
    }
    v
}

fn frontend_json(snap: &Snapshot, name: &str, fe: &Frontend, full: bool) -> Value {
    let view = snap.frontends.get(name);
    let mut v = json!({
        "name": name,
        "address": fe.address.to_string(),
        "protocol": protocol(fe),
        "port": fe.port,
        "description": fe.description,
        "state": view.map_or("unknown", |f| f.state.as_str()),
        "active_pool": view.and_then(|f| f.pools.iter().find(|p| p.active)).map(|p| p.name.clone()),
        "backends": fe.backend_names().len(),
    });
    if full {
        v["src_ip_sticky"] = json!(fe.src_ip_sticky);
        v["flush_on_down"] = json!(fe.flush_on_down);
        v["pools"] = view
            .map(|f| {
                f.pools
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name,
                            "active": p.active,
                            "backends": p.members.iter().map(|m| {
                                let b = snap.backends.get(m.backend.as_str());
                                json!({
                                    "name": m.backend,
                                    "address": b.map(|b| b.config.address.to_string()),
                                    "weight": m.configured,
                                    "effective_weight": m.effective.weight,
                                    "flush": m.effective.flush,
                                    "state": m.state.as_str(),
                                    "enabled": b.is_none_or(|b| b.enabled),
                                })
                            }).collect::<Vec<_>>(),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into();
    }
    v
}

fn config_request(ctx: &Context, check: bool) -> Value {
    let (tx, rx) = bounded(1);
    let req = if check {
        ConfigRequest::Check(tx)
    } else {
        ConfigRequest::Reload(tx)
    };
    if ctx.config.send(req).is_err() {
        return err("maglevd is shutting down");
    }
    match rx.recv_timeout(WAIT) {
        Ok(Ok(summary)) => json!({"ok": true, "result": summary}),
        Ok(Err(lines)) => json!({"ok": false, "error": lines.join("\n"), "problems": lines}),
        Err(_) => err("the main thread did not answer"),
    }
}

/// Runs one command.
pub fn run(cmd: &Command, ctx: &Context) -> Value {
    let snap = ctx.checker.snapshot();
    match cmd {
        Command::ShowVersion => json!({
            "ok": true,
            "version": crate::VERSION,
            "commit": crate::GIT_COMMIT,
            "pid": std::process::id(),
            "uptime_seconds": SystemTime::now()
                .duration_since(ctx.started)
                .map_or(0, |d| d.as_secs()),
        }),
        Command::ShowFrontends => json!({
            "ok": true,
            "frontends": snap.config.frontends.iter()
                .map(|(n, fe)| frontend_json(&snap, n, fe, false))
                .collect::<Vec<_>>(),
        }),
        Command::ShowFrontend(name) => match snap.config.frontends.get(name) {
            Some(fe) => json!({"ok": true, "frontend": frontend_json(&snap, name, fe, true)}),
            None => err(format!("no frontend named `{name}`")),
        },
        Command::ShowBackends => json!({
            "ok": true,
            "backends": snap.backends.iter()
                .map(|(n, b)| backend_json(n, b, false))
                .collect::<Vec<_>>(),
        }),
        Command::ShowBackend(name) => match snap.backends.get(name.as_str()) {
            Some(b) => json!({"ok": true, "backend": backend_json(name, b, true)}),
            None => err(format!("no backend named `{name}`")),
        },
        Command::ShowHealthchecks => json!({
            "ok": true,
            "healthchecks": snap.config.healthchecks.iter()
                .map(|(n, h)| healthcheck_json(n, h))
                .collect::<Vec<_>>(),
        }),
        Command::ShowHealthcheck(name) => match snap.config.healthchecks.get(name) {
            Some(h) => json!({"ok": true, "healthcheck": healthcheck_json(name, h)}),
            None => err(format!("no health check named `{name}`")),
        },
        Command::ShowVppInfo => {
            let Some(r) = &ctx.reconciler else {
                return err("VPP integration is disabled (vpp.api-socket is empty)");
            };
            let st = r.status();
            if !st.connected {
                // As the original: no VPP, no info (an error, exit 1).
                return err("VPP is not connected");
            }
            let boottime = ctx
                .counters
                .as_ref()
                .map(|c| c.load().boottime)
                .filter(|b| *b > 0);
            let now = SystemTime::now();
            json!({
                "ok": true,
                "connected": st.connected,
                "version": st.version.as_ref().map(|v| v.version.clone()),
                "build_date": st.version.as_ref().map(|v| v.build_date.clone()),
                "build_directory": st.version.as_ref().map(|v| v.build_directory.clone()),
                "pid": st.pid,
                "connected_seconds": st.connected_at.and_then(|t| now.duration_since(t).ok()).map(|d| d.as_secs()),
                "connected_at": st.connected_at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
                "boottime": boottime,
                "uptime_seconds": boottime.map(|b| now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()).saturating_sub(b)),
            })
        }
        Command::ShowVppLbState => {
            let Some(r) = &ctx.reconciler else {
                return err("VPP integration is disabled (vpp.api-socket is empty)");
            };
            match r.read(WAIT) {
                Ok(a) => json!({
                    "ok": true,
                    "conf": a.conf.map(|c| json!({
                        "ip4_src": c.ip4_src.to_string(),
                        "ip6_src": c.ip6_src.to_string(),
                        "sticky_buckets_per_core": c.sticky_buckets_per_core,
                        "flow_timeout": c.flow_timeout,
                    })),
                    "vips": a.vips.iter().map(|(k, v)| json!({
                        "prefix": k.pfx.to_string(),
                        "protocol": k.protocol,
                        "port": k.port,
                        "encap": v.encap.to_string(),
                        "src_ip_sticky": v.sticky,
                        "index": v.index,
                        "new_flows_table_length": v.table_len,
                        "ases": v.ases.iter().map(|(ip, x)| json!({
                            "address": ip.to_string(),
                            "weight": x.weight,
                            "buckets": x.buckets,
                            "in_use": x.in_use,
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }),
                Err(e) => err(format!("cannot read VPP: {e}")),
            }
        }
        Command::ShowVppLbCounters => {
            let Some(c) = ctx
                .counters
                .as_ref()
                .map(Published::load)
                .filter(|c| c.enabled)
            else {
                return err("VPP counters are disabled (vpp.stats-socket is empty)");
            };
            if c.at.is_none() {
                return err(
                    "no counters yet (VPP not connected, or the stats segment not read yet)",
                );
            }
            json!({
                "ok": true,
                "at": c.at.map(rfc3339_utc),
                "vips": c.vips.iter().map(|v| json!({
                    "frontend": v.frontend,
                    "prefix": v.key.pfx.to_string(),
                    "protocol": v.key.protocol,
                    "port": v.key.port,
                    "first": v.first,
                    "next": v.next,
                    "untracked": v.untracked,
                    "no_server": v.no_server,
                    "fib_packets": v.route.map(|r| r.0),
                    "fib_bytes": v.route.map(|r| r.1),
                })).collect::<Vec<_>>(),
            })
        }
        Command::SyncVppLbState(fe) => {
            let Some(r) = &ctx.reconciler else {
                return err("VPP integration is disabled (vpp.api-socket is empty)");
            };
            match r.sync(fe.as_deref(), WAIT) {
                Ok(rep) => json!({
                    "ok": true,
                    "scope": rep.scope,
                    "ops": rep.ops,
                    "errors": rep.errors,
                    "drift": rep.drift,
                    "took_ms": rep.took.as_secs_f64() * 1000.0,
                }),
                Err(e) => err(e),
            }
        }
        Command::SetBackend(name, action) => match ctx.checker.action(name, *action) {
            Ok(b) => json!({"ok": true, "backend": backend_json(name, &b, false)}),
            Err(e) => err(e),
        },
        Command::SetWeight {
            frontend,
            pool,
            backend,
            weight,
            flush,
        } => match ctx
            .checker
            .set_weight(frontend, pool, backend, *weight, *flush)
        {
            Ok(_) => {
                let snap = ctx.checker.snapshot();
                match snap.config.frontends.get(frontend) {
                    Some(fe) => {
                        json!({"ok": true, "frontend": frontend_json(&snap, frontend, fe, true)})
                    }
                    None => json!({"ok": true}),
                }
            }
            Err(e) => err(e),
        },
        Command::ConfigCheck => config_request(ctx, true),
        Command::ConfigReload => config_request(ctx, false),
        Command::Watch(_) => err("watch is a stream; the server handles it"),
    }
}
