//! What each command answers, as [`protocol`](super::protocol) types.
//! Read-only commands use the published snapshots; actions go to the
//! thread that owns the state.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, bounded};

use super::grammar::Command;
use super::protocol::{self as p, Failure, Reply};

use crate::checker::CheckerClient;
use crate::checker::whatif::Change;
use crate::checker::{BackendView, Snapshot};
use crate::config::{Config, Frontend, HealthCheck, Probe};
use crate::logging::rfc3339_utc;
use crate::snapshot::Published;
use crate::vpp::reconciler::ReconcilerClient;
use crate::vpp::scraper::LbCounters;

/// The answer to [`ConfigRequest::Check`]: a summary line and the parsed
/// configuration, or every problem.
pub type CheckResult = Result<(String, Arc<Config>), Vec<String>>;

/// A configuration request the main thread (which owns the file) answers.
pub enum ConfigRequest {
    /// Validate the file on disk; the answer has the parsed configuration.
    Check(Sender<CheckResult>),
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
    /// Announcing to BGP.
    pub announcer: Option<crate::announce::AnnouncerClient>,
}

/// What a command answers: the reply, or why not.
pub type Answer = Result<Reply, Failure>;

/// A failure with only a message.
pub fn err(msg: impl Into<String>) -> Failure {
    Failure::new(msg)
}

const WAIT: Duration = Duration::from_secs(10);

const NO_VPP: &str = "VPP integration is disabled (vpp.api-socket is empty)";

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn unix_secs(t: SystemTime) -> Option<u64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

fn protocol(fe: &Frontend) -> &'static str {
    match (fe.port, fe.protocol) {
        (0, _) | (_, None) => "any",
        (_, Some(p)) => p.as_str(),
    }
}

fn backend(name: &str, b: &BackendView, full: bool) -> p::Backend {
    p::Backend {
        name: name.to_string(),
        address: b.config.address.to_string(),
        healthcheck: b.config.healthcheck.clone(),
        state: b.state,
        enabled: b.enabled,
        last: b.last.as_ref().map(|l| p::LastProbe {
            code: l.outcome.code,
            detail: l.outcome.detail.to_string(),
            duration_ms: l.outcome.duration.as_secs_f64() * 1000.0,
            at: rfc3339_utc(l.at),
            connection: l.outcome.connection,
        }),
        detail: full.then(|| p::BackendDetail {
            counter: b.counter.0,
            counter_max: b.counter.1,
            history: b
                .history
                .iter()
                .map(|t| p::Transition {
                    from: t.from,
                    to: t.to,
                    code: t.code,
                    detail: t.detail.clone(),
                    at: rfc3339_utc(t.at),
                })
                .collect(),
            probes: b
                .counters
                .by_code
                .iter()
                .map(|(c, n)| (c.as_str().to_string(), n))
                .collect(),
            connections: crate::checker::ProbeCounters::CONNECTIONS
                .iter()
                .zip(b.counters.connections)
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| (c.as_str().to_string(), n))
                .collect(),
        }),
    }
}

fn healthcheck(name: &str, h: &HealthCheck) -> p::Healthcheck {
    p::Healthcheck {
        name: name.to_string(),
        kind: h.probe.check_type().as_str().to_string(),
        port: h.probe.port(),
        interval_ms: ms(h.interval),
        fast_interval_ms: ms(h.fast_interval),
        down_interval_ms: ms(h.down_interval),
        timeout_ms: ms(h.timeout),
        rise: h.rise,
        fall: h.fall,
        probe_ipv4_src: h.probe_ipv4_src.map(|a| a.to_string()),
        probe_ipv6_src: h.probe_ipv6_src.map(|a| a.to_string()),
        mode: match &h.probe {
            Probe::Tcp { mode, .. } => Some(mode.as_str().to_string()),
            _ => None,
        },
        params: match &h.probe {
            Probe::Http(x) => Some(p::HttpParams {
                path: x.path.clone(),
                host: x.host.clone(),
                method: x.method.as_str().to_string(),
                expect_status: x
                    .expect_status
                    .iter()
                    .map(|r| {
                        if r.lo == r.hi {
                            r.lo.to_string()
                        } else {
                            format!("{}-{}", r.lo, r.hi)
                        }
                    })
                    .collect(),
                expect_body: x.expect_body.clone(),
                tls_server_name: x.tls.as_ref().and_then(|t| t.server_name.clone()),
                tls_verify: x.tls.as_ref().map(|t| t.verify),
                reuse_connection: x.reuse.is_some(),
                reuse_lifetime_ms: x.reuse.map(ms),
            }),
            _ => None,
        },
    }
}

/// Each backend's share of the weights and of the new-flow table VPP
/// builds from them (percent), by address.
fn shares(
    snap: &Snapshot,
    fe: &Frontend,
    view: &crate::checker::FrontendView,
) -> std::collections::HashMap<std::net::IpAddr, (f64, f64)> {
    use crate::vpp::{lb, maglev};
    let members = lb::members_of(
        &snap.config,
        view.pools
            .iter()
            .flat_map(|p| &p.members)
            .map(|m| (m.backend.clone(), m.effective.weight)),
    );
    let size = fe.new_flows_table_length as usize;
    let total: f64 = members.iter().map(|m| f64::from(m.weight)).sum();
    let counts = if size.is_power_of_two() {
        maglev::bucket_counts(&members, size)
    } else {
        vec![0; members.len()]
    };
    members
        .iter()
        .zip(counts)
        .map(|(m, c)| {
            let share = if total > 0.0 {
                f64::from(m.weight) * 100.0 / total
            } else {
                0.0
            };
            (m.addr, (share, f64::from(c) * 100.0 / size.max(1) as f64))
        })
        .collect()
}

/// What VPP holds of each frontend, as the reconciler last published it
/// (`None`: VPP integration off).
fn vpp_status(ctx: &Context) -> Option<Arc<crate::vpp::status::VppStatus>> {
    ctx.reconciler.as_ref().map(|r| r.status())
}

/// What the announcer says of each address (`None`: not configured).
fn announce_status(ctx: &Context) -> Option<Arc<crate::announce::AnnounceStatus>> {
    ctx.announcer
        .as_ref()
        .map(|a| a.status())
        .filter(|s| s.enabled)
}

/// The published states a frontend's view joins.
struct Sides {
    vpp: Option<Arc<crate::vpp::status::VppStatus>>,
    announce: Option<Arc<crate::announce::AnnounceStatus>>,
}

impl Sides {
    fn of(ctx: &Context) -> Sides {
        Sides {
            vpp: vpp_status(ctx),
            announce: announce_status(ctx),
        }
    }
}

fn frontend(snap: &Snapshot, sides: &Sides, name: &str, fe: &Frontend, full: bool) -> p::Frontend {
    let vpp = sides.vpp.as_deref();
    let announced = sides
        .announce
        .as_ref()
        .and_then(|a| a.addresses.iter().find(|x| x.address == fe.address));
    let view = snap.frontends.get(name);
    let dp = vpp.map(|v| v.frontends.get(name).cloned().unwrap_or_default());
    let shares = match (full, view) {
        (true, Some(v)) => shares(snap, fe, v),
        _ => Default::default(),
    };
    p::Frontend {
        name: name.to_string(),
        address: fe.address.to_string(),
        protocol: protocol(fe).to_string(),
        port: fe.port,
        description: fe.description.clone(),
        state: view.map_or(crate::health::weights::FrontendState::Unknown, |f| f.state),
        active_pool: view
            .and_then(|f| f.pools.iter().find(|p| p.active))
            .map(|p| p.name.clone()),
        backends: fe.backend_names().len(),
        vpp: dp.as_ref().map_or(p::Dataplane::Off, |d| d.state),
        announced: sides
            .announce
            .as_ref()
            .map(|_| announced.is_some_and(|a| a.announced)),
        announce_reason: announced.and_then(|a| a.reason),
        detail: full.then(|| p::FrontendDetail {
            vpp_unheld: dp.as_ref().map_or(0, |d| d.unheld),
            vpp_refusal: dp
                .as_ref()
                .and_then(|d| d.last_refusal.as_ref())
                .map(|r| p::VppRefusal {
                    op: r.op.clone(),
                    error: r.error.clone(),
                    at: crate::logging::rfc3339_utc(r.at),
                }),
            src_ip_sticky: fe.src_ip_sticky,
            flush_on_down: fe.flush_on_down,
            new_flows_table_length: fe.new_flows_table_length,
            pools: view
                .map(|f| {
                    f.pools
                        .iter()
                        .map(|pool| p::Pool {
                            name: pool.name.clone(),
                            active: pool.active,
                            backends: pool
                                .members
                                .iter()
                                .map(|m| {
                                    let b = snap.backends.get(m.backend.as_str());
                                    let (share, table_share) = b
                                        .and_then(|b| shares.get(&b.config.address))
                                        .copied()
                                        .unwrap_or((0.0, 0.0));
                                    p::PoolBackend {
                                        name: m.backend.to_string(),
                                        address: b.map(|b| b.config.address.to_string()),
                                        weight: m.configured,
                                        effective_weight: m.effective.weight,
                                        flush: m.effective.flush,
                                        share,
                                        table_share,
                                        state: m.state,
                                        enabled: b.is_none_or(|b| b.enabled),
                                    }
                                })
                                .collect(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }),
    }
}

fn config_failure(problems: Vec<String>) -> Failure {
    Failure {
        error: problems.join("\n"),
        problems,
    }
}

/// The file on disk, validated by the main thread.
fn checked_config(ctx: &Context) -> Result<(String, Arc<Config>), Failure> {
    let (tx, rx) = bounded(1);
    if ctx.config.send(ConfigRequest::Check(tx)).is_err() {
        return Err(err("maglevd is shutting down"));
    }
    match rx.recv_timeout(WAIT) {
        Ok(r) => r.map_err(config_failure),
        Err(_) => Err(err("the main thread did not answer")),
    }
}

fn config_request(ctx: &Context, check: bool) -> Answer {
    if check {
        let (result, cfg) = checked_config(ctx)?;
        // The plan of a reload; a configuration that loads but that the
        // checker would refuse has none.
        let plan = preview_of(ctx, &Change::Reload, Some(&cfg)).ok();
        return Ok(Reply::Config { result, plan });
    }
    let (tx, rx) = bounded(1);
    if ctx.config.send(ConfigRequest::Reload(tx)).is_err() {
        return Err(err("maglevd is shutting down"));
    }
    match rx.recv_timeout(WAIT) {
        Ok(Ok(result)) => Ok(Reply::Config { result, plan: None }),
        Ok(Err(problems)) => Err(config_failure(problems)),
        Err(_) => Err(err("the main thread did not answer")),
    }
}

/// What `change` would do to VPP (a reload: of `reload`): against VPP's
/// state read now when VPP is connected, else against what maglevd would
/// program.
fn preview_of(
    ctx: &Context,
    change: &Change,
    reload: Option<&Arc<Config>>,
) -> Result<p::Preview, Failure> {
    use crate::vpp::lb::{self, Actual, FlushRequests, Scope};
    let t0 = Instant::now();
    let snap = ctx.checker.snapshot();
    // The checker's own core, on a copy of its state, says what the
    // command would leave; the reconciler's rule says what VPP gets.
    let (after, events) = ctx
        .checker
        .preview(change, reload.cloned())
        .map_err(|e| err(e.to_string()))?;
    let mut flushes = FlushRequests::default();
    let mut touched = std::collections::BTreeSet::new();
    let mut all = matches!(change, Change::Sync(None));
    if let Change::Sync(Some(fe)) = change {
        if !after.config.frontends.contains_key(fe) {
            return Err(err(format!("no frontend named `{fe}`")));
        }
        touched.insert(fe.clone());
    }
    for ev in &events {
        match lb::event_effect(&after, ev, &mut flushes) {
            lb::Effect::Frontends(fes) => touched.extend(fes),
            lb::Effect::All => all = true,
            lb::Effect::Nothing => {}
        }
    }
    let scope = if all {
        Scope::All
    } else {
        Scope::Frontends(touched)
    };
    let desired = lb::desired_for(&after, &scope);
    let read = ctx
        .reconciler
        .as_ref()
        .filter(|r| r.status().connected)
        .and_then(|r| r.read(WAIT).ok());
    let (actual, basis) = match read {
        Some(a) => (a, "vpp"),
        None => (
            Actual::predicted(&lb::desired_for(&snap, &scope)),
            "maglevd",
        ),
    };
    let plan = crate::vpp::preview::plan(&desired, &actual, &scope, &flushes);
    // Backend names by address, from the configuration now and after.
    let mut names: std::collections::BTreeMap<std::net::IpAddr, Vec<String>> = Default::default();
    for cfg in [&after.config, &snap.config] {
        for (n, b) in &cfg.backends {
            let v = names.entry(b.address).or_default();
            if !v.contains(n) {
                v.push(n.clone());
            }
        }
    }
    Ok(p::Preview {
        change: change.to_string(),
        basis: basis.to_string(),
        conf: plan.conf.map(|o| o.to_string()),
        vips: plan
            .vips
            .iter()
            .map(|v| p::PreviewVip {
                frontend: v.frontend.clone(),
                prefix: v.key.pfx.to_string(),
                protocol: v.key.protocol,
                port: v.key.port,
                recreated: v.recreated,
                buckets_before: v.table_before,
                buckets_after: v.table_after,
                ops: v.ops.iter().map(ToString::to_string).collect(),
                ases: v
                    .ases
                    .iter()
                    .map(|a| p::PreviewAs {
                        address: a.addr.to_string(),
                        backends: names.get(&a.addr).cloned().unwrap_or_default(),
                        weight_before: a.weight_before,
                        weight_after: a.weight_after,
                        buckets_before: a.buckets_before,
                        buckets_after: a.buckets_after,
                    })
                    .collect(),
                moved: v.moved.percent(v.moved.necessary + v.moved.collateral),
                necessary: v.moved.percent(v.moved.necessary),
                collateral: v.moved.percent(v.moved.collateral),
                fingerprint_before: v.fingerprint_before.clone(),
                fingerprint_after: v.fingerprint_after.clone(),
            })
            .collect(),
        took_ms: t0.elapsed().as_secs_f64() * 1000.0,
    })
}

/// `preview ...`.
fn preview(ctx: &Context, change: &Change) -> Answer {
    let reload = match change {
        Change::Reload => Some(checked_config(ctx)?.1),
        _ => None,
    };
    preview_of(ctx, change, reload.as_ref()).map(Reply::Preview)
}

fn vpp_info(ctx: &Context) -> Answer {
    let r = ctx.reconciler.as_ref().ok_or_else(|| err(NO_VPP))?;
    let st = r.status();
    if !st.connected {
        // As the original: no VPP, no info (an error, exit 1).
        return Err(err("VPP is not connected"));
    }
    let boottime = ctx
        .counters
        .as_ref()
        .map(|c| c.load().boottime)
        .filter(|b| *b > 0);
    let now = SystemTime::now();
    let version = st.version.as_ref();
    Ok(Reply::VppInfo(p::VppInfo {
        connected: st.connected,
        version: version.map(|v| v.version.clone()),
        build_date: version.map(|v| v.build_date.clone()),
        build_directory: version.map(|v| v.build_directory.clone()),
        pid: st.pid,
        connected_seconds: st
            .connected_at
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs()),
        connected_at: st.connected_at.and_then(unix_secs),
        boottime,
        uptime_seconds: boottime.map(|b| unix_secs(now).unwrap_or(0).saturating_sub(b)),
    }))
}

fn lb_state(ctx: &Context) -> Answer {
    let r = ctx.reconciler.as_ref().ok_or_else(|| err(NO_VPP))?;
    let a = r
        .read(WAIT)
        .map_err(|e| err(format!("cannot read VPP: {e}")))?;
    Ok(Reply::LbState(p::LbState {
        conf: a.conf.map(|c| p::LbConf {
            ip4_src: c.ip4_src.to_string(),
            ip6_src: c.ip6_src.to_string(),
            sticky_buckets_per_core: c.sticky_buckets_per_core,
            flow_timeout: c.flow_timeout,
        }),
        vips: a
            .vips
            .iter()
            .map(|(k, v)| p::LbVip {
                prefix: k.pfx.to_string(),
                protocol: k.protocol,
                port: k.port,
                encap: v.encap.to_string(),
                src_ip_sticky: v.sticky,
                index: v.index,
                new_flows_table_length: v.table_len,
                fingerprint: v.table_facts().map(|f| f.0),
                ases: v
                    .ases
                    .iter()
                    .map(|(ip, x)| p::LbAs {
                        address: ip.to_string(),
                        weight: x.weight,
                        buckets: x.buckets,
                        flows: x.flows,
                        in_use: x.in_use,
                    })
                    .collect(),
            })
            .collect(),
        removed: a
            .orphans
            .iter()
            .map(|o| p::LbRemovedAs {
                prefix: o.vip.pfx.to_string(),
                protocol: o.vip.protocol,
                port: o.vip.port,
                index: o.index,
                address: o.addr.to_string(),
                weight: o.weight,
                flows: o.flows,
            })
            .collect(),
    }))
}

/// `show announce` from the announcer's published state.
fn announce_state(ctx: &Context) -> p::AnnounceState {
    use crate::logging::rfc3339_utc;
    let Some(st) = ctx.announcer.as_ref().map(|a| a.status()) else {
        return p::AnnounceState {
            enabled: false,
            file: None,
            maintenance: false,
            addresses: Vec::new(),
            last_reload: None,
            write_error: None,
        };
    };
    p::AnnounceState {
        enabled: st.enabled,
        file: st.file.as_ref().map(|f| f.display().to_string()),
        maintenance: st.maintenance,
        addresses: st
            .addresses
            .iter()
            .map(|a| p::AnnouncedAddress {
                address: a.address.to_string(),
                announced: a.announced,
                reason: a.reason,
                since: rfc3339_utc(a.since),
                frontends: a.frontends.clone(),
            })
            .collect(),
        last_reload: st.last_reload.as_ref().map(|r| p::AnnounceReload {
            at: rfc3339_utc(r.at),
            result: r.result.to_string(),
            detail: r.detail.clone(),
            took_ms: r.took.as_secs_f64() * 1000.0,
        }),
        write_error: st.write_error.clone(),
    }
}

fn lb_counters(ctx: &Context) -> Answer {
    let c = ctx
        .counters
        .as_ref()
        .map(Published::load)
        .filter(|c| c.enabled)
        .ok_or_else(|| err("VPP counters are disabled (vpp.stats-socket is empty)"))?;
    if c.at.is_none() {
        return Err(err(
            "no counters yet (VPP not connected, or the stats segment not read yet)",
        ));
    }
    Ok(Reply::LbCounters(p::LbCounters {
        at: c.at.map(rfc3339_utc),
        vips: c
            .vips
            .iter()
            .map(|v| p::VipCounters {
                frontend: v.frontend.clone(),
                prefix: v.key.pfx.to_string(),
                protocol: v.key.protocol,
                port: v.key.port,
                first: v.first,
                next: v.next,
                untracked: v.untracked,
                no_server: v.no_server,
                fib_packets: v.route.map(|r| r.0),
                fib_bytes: v.route.map(|r| r.1),
            })
            .collect(),
    }))
}

/// Runs one command.
pub fn run(cmd: &Command, ctx: &Context) -> Answer {
    let snap = ctx.checker.snapshot();
    Ok(match cmd {
        Command::ShowVersion => Reply::Version(p::Version {
            version: crate::VERSION.to_string(),
            commit: crate::GIT_COMMIT.to_string(),
            pid: std::process::id(),
            uptime_seconds: SystemTime::now()
                .duration_since(ctx.started)
                .map_or(0, |d| d.as_secs()),
        }),
        Command::ShowFrontends => {
            let sides = Sides::of(ctx);
            Reply::Frontends {
                frontends: snap
                    .config
                    .frontends
                    .iter()
                    .map(|(n, fe)| frontend(&snap, &sides, n, fe, false))
                    .collect(),
            }
        }
        Command::ShowFrontend(name) => {
            let fe = snap
                .config
                .frontends
                .get(name)
                .ok_or_else(|| err(format!("no frontend named `{name}`")))?;
            Reply::Frontend {
                frontend: Some(frontend(&snap, &Sides::of(ctx), name, fe, true)),
            }
        }
        Command::ShowBackends => Reply::Backends {
            backends: snap
                .backends
                .iter()
                .map(|(n, b)| backend(n, b, false))
                .collect(),
        },
        Command::ShowBackend(name) => {
            let b = snap
                .backends
                .get(name.as_str())
                .ok_or_else(|| err(format!("no backend named `{name}`")))?;
            Reply::Backend {
                backend: backend(name, b, true),
            }
        }
        Command::ShowHealthchecks => Reply::Healthchecks {
            healthchecks: snap
                .config
                .healthchecks
                .iter()
                .map(|(n, h)| healthcheck(n, h))
                .collect(),
        },
        Command::ShowHealthcheck(name) => {
            let h = snap
                .config
                .healthchecks
                .get(name)
                .ok_or_else(|| err(format!("no health check named `{name}`")))?;
            Reply::Healthcheck {
                healthcheck: healthcheck(name, h),
            }
        }
        Command::ShowVppInfo => return vpp_info(ctx),
        Command::ShowVppLbState => return lb_state(ctx),
        Command::ShowVppLbCounters => return lb_counters(ctx),
        Command::ShowAnnounce => Reply::Announce(announce_state(ctx)),
        Command::SetAnnounce(withdraw) => {
            let a = ctx
                .announcer
                .as_ref()
                .ok_or_else(|| err("announcing is not running"))?;
            a.set_maintenance(*withdraw).map_err(err)?;
            Reply::Announce(announce_state(ctx))
        }
        Command::SyncVppLbState(fe) => {
            let r = ctx.reconciler.as_ref().ok_or_else(|| err(NO_VPP))?;
            let rep = r
                .sync(fe.as_deref(), WAIT)
                .map_err(|e| err(e.to_string()))?;
            Reply::Synced(p::Synced {
                scope: rep.scope.as_str().to_string(),
                ops: rep.ops,
                errors: rep.errors,
                drift: rep.drift,
                took_ms: rep.took.as_secs_f64() * 1000.0,
            })
        }
        Command::SetBackend(name, action) => {
            let b = ctx
                .checker
                .action(name, *action)
                .map_err(|e| err(e.to_string()))?;
            Reply::Backend {
                backend: backend(name, &b, false),
            }
        }
        Command::SetWeight {
            frontend: fe_name,
            pool,
            backend,
            weight,
            flush,
        } => {
            ctx.checker
                .set_weight(fe_name, pool, backend, *weight, *flush)
                .map_err(|e| err(e.to_string()))?;
            let snap = ctx.checker.snapshot();
            Reply::Frontend {
                frontend: snap
                    .config
                    .frontends
                    .get(fe_name)
                    .map(|fe| frontend(&snap, &Sides::of(ctx), fe_name, fe, true)),
            }
        }
        Command::Preview(change) => return preview(ctx, change),
        Command::ConfigCheck => return config_request(ctx, true),
        Command::ConfigReload => return config_request(ctx, false),
        Command::Watch(_) => return Err(err("watch is a stream; the server handles it")),
    })
}
