//! `maglevd`'s wiring: load, start threads, react to signals, stop cleanly.
//!
//! The main thread owns the running configuration. It publishes each
//! accepted configuration as an immutable snapshot and hands it to every
//! subscribed thread; a configuration that fails validation is logged with
//! its lines and changes nothing.

pub(crate) mod lock;
pub(crate) mod notify;
pub mod options;
pub(crate) mod signals;
mod simulated;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use log::{error, info, warn};

use crate::checker::Checker;
use crate::config::{self, Config, ConfigError};
use crate::control::handlers::{ConfigRequest, Context as ControlContext};
use crate::control::server::ControlServer;
use crate::logging;
use crate::metrics::MetricsServer;
use crate::snapshot::Published;
use crate::vpp::client::ApiCounters;
use crate::vpp::reconciler::{Reconciler, ReconcilerOptions};
use crate::vpp::scraper::Scraper;
use simulated::SimulatedVpp;

pub use options::Options;

use crate::heartbeat::Beats;

/// Whether this process has capability `cap` (its bit) in its effective
/// set, from `/proc/self/status` (no libcap needed).
fn has_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1u64 << cap) != 0)
}

/// `CAP_SYS_ADMIN`'s bit: entering a network namespace needs it.
const CAP_SYS_ADMIN: u32 = 21;

/// Loads the file and checks it against what this process can do: a
/// `netns` it cannot enter must fail loudly here (`--check`, which the
/// unit's ExecStartPre and ExecReload run with the unit's capabilities,
/// start-up and reload), not mark every backend down later.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let mut c = config::load(path)?;
    // Tables too small for the weights (needs VPP's Maglev, so here and
    // not in config's validation).
    c.warnings.extend(crate::vpp::lb::table_fit_warnings(&c));
    if let Some(ns) = &c.healthchecker.netns {
        if !has_capability(CAP_SYS_ADMIN) {
            let who = c
                .backends
                .keys()
                .next()
                .map_or("every backend".to_string(), |b| format!("backend {b}"));
            return Err(ConfigError::semantic(
                path,
                "maglev.healthchecker.netns",
                format!(
                    "{who} uses netns {ns} but the process lacks CAP_SYS_ADMIN; \
                     see maglevd(8) for the drop-in"
                ),
            ));
        }
    }
    Ok(c)
}

/// `maglevd --withdraw`: every address out of BIRD's sets, whatever state
/// maglevd was in; exit status 0 when BIRD's reload succeeded too.
pub fn withdraw(path: &Path) -> i32 {
    let c = match load(path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            return e.exit_code();
        }
    };
    let Some(a) = &c.announce else {
        println!(
            "{}: maglev.announce is not configured; nothing to withdraw",
            path.display()
        );
        return 0;
    };
    match crate::announce::withdraw_all(a) {
        Ok(m) => {
            println!("{m}");
            0
        }
        Err(m) => {
            eprintln!("maglevd: {m}");
            1
        }
    }
}

/// Prints the verdict of `maglevd --check` and returns its exit status.
pub fn check(path: &Path) -> i32 {
    match load(path) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("{}", w.located_warning(path));
            }
            println!(
                "{}: configuration OK ({} health checks, {} backends, {} frontends)",
                path.display(),
                c.healthchecks.len(),
                c.backends.len(),
                c.frontends.len()
            );
            0
        }
        Err(e) => {
            let kind = match &e {
                ConfigError::Semantic { problems, .. } => {
                    format!("{} semantic error(s)", problems.len())
                }
                _ => "parse error".into(),
            };
            for line in e.lines() {
                eprintln!("{line}");
            }
            eprintln!("{}: configuration invalid: {kind}", path.display());
            e.exit_code()
        }
    }
}

/// The running configuration: re-read on demand, replaced only when valid.
pub struct ConfigOwner {
    path: PathBuf,
    current: Published<Config>,
}

impl ConfigOwner {
    /// Takes ownership of an already validated configuration from `path`.
    pub fn new(path: PathBuf, config: Config) -> Self {
        ConfigOwner {
            path,
            current: Published::new(config),
        }
    }

    /// A handle readers use to get the current snapshot.
    pub fn published(&self) -> Published<Config> {
        self.current.clone()
    }

    /// Takes the outcome of loading the file (done elsewhere, see
    /// [`Loader`]): publishes a valid configuration, logs and keeps the
    /// running one otherwise.
    pub fn accept(
        &mut self,
        loaded: Result<Config, ConfigError>,
    ) -> Result<Arc<Config>, ConfigError> {
        let new = match loaded {
            Ok(c) => Arc::new(c),
            Err(e) => {
                for line in e.lines() {
                    error!("config-reload-failed {line}");
                }
                warn!(
                    "config-reload-rejected kind={} keeping=running-config",
                    e.category()
                );
                return Err(e);
            }
        };
        log_warnings(&self.path, &new);
        let old = self.current.load();
        let changes = config::changes::describe(&old, &new);
        self.current.store(Arc::clone(&new));
        info!(
            "config-reloaded file={} {} changes={}",
            self.path.display(),
            summary(&new),
            if changes.is_empty() {
                "none".to_string()
            } else {
                changes.join(",")
            }
        );
        Ok(new)
    }
}

/// Logs what the configuration accepted although odd, once per load.
fn log_warnings(file: &Path, c: &Config) {
    for w in &c.warnings {
        warn!("config-warning {}", w.located(file));
    }
}

fn summary(c: &Config) -> String {
    format!(
        "healthchecks={} backends={} frontends={}",
        c.healthchecks.len(),
        c.backends.len(),
        c.frontends.len()
    )
}

/// The one-daemon-per-VPP lock this process holds, following the
/// configured API socket (see [`lock`]).
struct Instance {
    held: Option<(PathBuf, lock::InstanceLock)>,
}

impl Instance {
    fn none() -> Instance {
        Instance { held: None }
    }

    /// Holds the lock of `cfg`'s API socket (none with `--vpp-sim` or
    /// without VPP); a socket another daemon holds is an error and the
    /// current lock is kept.
    fn follow(&mut self, opts: &Options, cfg: &Config) -> Result<(), String> {
        let want = match (&cfg.vpp.api_socket, opts.vpp_sim) {
            (Some(api), false) => Some(api.clone()),
            // --vpp-sim programs a private simulator; no VPP, no lock.
            _ => None,
        };
        if want.as_ref() == self.held.as_ref().map(|h| &h.0) {
            return Ok(());
        }
        let Some(api) = want else {
            self.held = None;
            return Ok(());
        };
        let l = lock::acquire(&opts.lock_dir, &api)?;
        info!("instance-locked lock={}", l.path().display());
        self.held = Some((api, l));
        Ok(())
    }
}

/// What a configuration load was asked for.
enum LoadFor {
    /// SIGHUP: reload.
    Sighup,
    /// `config check`: validate only.
    Check(crossbeam_channel::Sender<crate::control::handlers::CheckResult>),
    /// `config reload`.
    Reload(crossbeam_channel::Sender<Result<String, Vec<String>>>),
}

/// Reads and validates the configuration file off the main thread, so a
/// large or hostile file never delays signals, `config check` answers or
/// a stop. Loads run one at a time, in request order.
struct Loader {
    tx: crossbeam_channel::Sender<LoadFor>,
    done: crossbeam_channel::Receiver<(LoadFor, Result<Config, ConfigError>)>,
}

impl Loader {
    fn start(path: PathBuf) -> std::io::Result<Loader> {
        let (tx, rx) = crossbeam_channel::unbounded::<LoadFor>();
        let (done_tx, done) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("config-loader".into())
            .spawn(move || {
                for why in rx {
                    let r = load(&path);
                    if done_tx.send((why, r)).is_err() {
                        return;
                    }
                    // The parser's transient values are gone now.
                    crate::limits::release_free_memory();
                }
            })?;
        Ok(Loader { tx, done })
    }

    fn request(&self, why: LoadFor) {
        let _ = self.tx.send(why);
    }
}

/// The longest a stop may take before the process exits regardless.
pub const STOP_DEADLINE: Duration = Duration::from_millis(1800);

/// How long the stop waits for BIRD to read the withdraw of every address
/// (then the reload is killed): the first part of [`STOP_DEADLINE`].
const ANNOUNCE_STOP_BUDGET: Duration = Duration::from_millis(1200);

/// Guarantees the stop promise (exit within 2 s of SIGTERM) whatever a
/// thread is blocked in: every stop path is bounded on its own, and this
/// is the net under them. Exiting here is logged as an error, since it
/// means one of those bounds failed.
fn stop_deadline(started: Instant) {
    let spawned = std::thread::Builder::new()
        .name("stop-deadline".into())
        .spawn(move || {
            std::thread::sleep(STOP_DEADLINE);
            error!(
                "stop-forced after_ms={} reason=threads-still-running",
                started.elapsed().as_millis()
            );
            std::process::exit(0);
        });
    if let Err(e) = spawned {
        warn!("stop-deadline-unavailable error={e}");
    }
}

/// Runs the daemon until SIGTERM/SIGINT; returns the process exit status.
pub fn run(opts: Options) -> i32 {
    let process_start = Instant::now();
    // First of all: a SIGHUP or SIGTERM during startup (a reload racing
    // the start, an impatient stop) waits for the signal thread instead of
    // killing the process with the default action.
    let blocked = signals::block();
    crate::limits::limit_malloc_arenas();
    logging::init_with(opts.log_level, opts.log_format);
    info!(
        "starting version={} commit={} config={} pid={}",
        crate::VERSION,
        crate::GIT_COMMIT,
        opts.config.display(),
        std::process::id()
    );
    let cfg = match load(&opts.config) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                error!("config-invalid {line}");
            }
            return e.exit_code();
        }
    };
    info!(
        "config-loaded file={} {}",
        opts.config.display(),
        summary(&cfg)
    );
    log_warnings(&opts.config, &cfg);

    let Ok(Running {
        mut instance,
        sig_rx,
        mut owner,
        sim,
        sim_stats,
        checker,
        reconciler,
        announcer,
        scraper,
        metrics,
        control,
        cfg_rx,
        loader,
    }) = start(&opts, cfg, blocked, process_start)
    else {
        return 1;
    };
    let checker_client = checker.client();
    let notify = notify::Notifier::from_env();
    notify.ready(&format!("running: {}", summary(&owner.published().load())));
    info!("ready");
    // Start-up parsed the whole file; keep only what the state needs.
    crate::limits::release_free_memory();
    // The watchdog is fed only while every working thread answers (see
    // crate::heartbeat); asked at half the period systemd expects.
    let mut seq = 0u64;
    let watchdog_tick = notify.watchdog().map(|w| w / 2);
    let apply = |new: Arc<Config>| {
        scraper.configure(stats_socket(&sim_stats, &new), new.vpp.stats_interval);
        checker_client.reload(new);
    };

    let stop = loop {
        let tick = watchdog_tick.map_or(crossbeam_channel::never(), crossbeam_channel::after);
        crossbeam_channel::select! {
            recv(sig_rx) -> s => match s {
                Ok(signals::Signal::Reload) => {
                    info!("config-reload-requested source=SIGHUP");
                    notify.reloading();
                    loader.request(LoadFor::Sighup);
                }
                Ok(signals::Signal::Stop(name)) => break name,
                Err(_) => break "signal-thread-exit",
            },
            recv(cfg_rx) -> r => match r {
                Ok(ConfigRequest::Check(reply)) => loader.request(LoadFor::Check(reply)),
                Ok(ConfigRequest::Reload(reply)) => {
                    info!("config-reload-requested source=control-socket");
                    notify.reloading();
                    loader.request(LoadFor::Reload(reply));
                }
                Err(_) => {}
            },
            recv(loader.done) -> d => if let Ok((why, loaded)) = d {
                match why {
                    LoadFor::Check(reply) => {
                        let r = match loaded {
                            Ok(c) => Ok((format!("{}: configuration OK ({})", opts.config.display(), summary(&c)), Arc::new(c))),
                            Err(e) => Err(e.lines()),
                        };
                        let _ = reply.send(r);
                    }
                    LoadFor::Sighup | LoadFor::Reload(_) => {
                        // Another VPP socket: take its lock first, or refuse.
                        let loaded = loaded.and_then(|c| match instance.follow(&opts, &c) {
                            Ok(()) => Ok(c),
                            Err(e) => Err(ConfigError::semantic(&opts.config, "maglev.vpp.api-socket", e)),
                        });
                        let r = match owner.accept(loaded) {
                            Ok(new) => {
                                let s = summary(&new);
                                apply(new);
                                Ok(format!("configuration reloaded ({s})"))
                            }
                            Err(e) => Err(e.lines()),
                        };
                        notify.ready(&format!("running: {}", summary(&owner.published().load())));
                        if let LoadFor::Reload(reply) = why {
                            let _ = reply.send(r);
                        }
                    }
                }
            },
            recv(tick) -> _ => {
                // The probers may have been restarted by a reload: ask
                // the current set each time.
                let mut beats = Beats::default();
                for (name, b) in checker.beats() {
                    beats.add(name, b);
                }
                beats.add("reconciler", reconciler.beat());
                let missing = beats.missing(seq);
                if missing.is_empty() {
                    notify.watchdog_ping();
                } else {
                    warn!("watchdog-withheld threads={}", missing.join(","));
                }
                seq += 1;
                checker.heartbeat(seq);
                reconciler.heartbeat(seq);
            },
        }
    };
    let started = Instant::now();
    info!("stopping reason={stop}");
    notify.stopping();
    stop_deadline(started);
    // First of all, stop attracting traffic: every address withdrawn and
    // BIRD told, within the stop bound (a hung reload is killed).
    announcer.shutdown(ANNOUNCE_STOP_BUDGET);
    if let Some(c) = control {
        c.shutdown();
    }
    if let Some(m) = metrics {
        m.shutdown();
    }
    scraper.shutdown();
    reconciler.shutdown();
    checker.shutdown();
    if let Some(s) = sim {
        s.stop();
    }
    drop(owner);
    info!("stopped after_ms={}", started.elapsed().as_millis());
    0
}

/// A startup step that failed (logged once, as `startup-failed step=S
/// error=E`, by [`step`]): the daemon exits with status 1.
struct StartupFailed;

/// The one failure path of startup: step `name`'s result, or its error
/// logged and [`StartupFailed`].
fn step<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> Result<T, StartupFailed> {
    r.map_err(|e| {
        error!(
            "startup-failed step={name} error={}",
            logging::quote(&e.to_string())
        );
        StartupFailed
    })
}

/// The stats socket of a configuration (the simulator's own under
/// `--vpp-sim`); a reload may change it.
fn stats_socket(sim: &Option<Option<PathBuf>>, c: &Config) -> Option<PathBuf> {
    match sim {
        Some(s) => s.clone(),
        None => c.vpp.stats_socket.clone(),
    }
}

/// Everything a started daemon runs.
struct Running {
    instance: Instance,
    sig_rx: crossbeam_channel::Receiver<signals::Signal>,
    owner: ConfigOwner,
    sim: Option<SimulatedVpp>,
    sim_stats: Option<Option<PathBuf>>,
    checker: Checker,
    reconciler: Reconciler,
    announcer: crate::announce::Announcer,
    scraper: Scraper,
    metrics: Option<MetricsServer>,
    control: Option<ControlServer>,
    cfg_rx: crossbeam_channel::Receiver<ConfigRequest>,
    loader: Loader,
}

/// Startup, in order, each step named: the instance lock before any side
/// effect (a second daemon must not send VPP a single message, bind a
/// socket or probe), signals, the simulator, the checker, the reconciler,
/// the announcer, the stats thread, metrics (optional: health checking
/// matters more), the control socket, the configuration loader.
fn start(
    opts: &Options,
    cfg: Config,
    blocked: Result<(), nix::errno::Errno>,
    process_start: Instant,
) -> Result<Running, StartupFailed> {
    // Every descriptor the hard limit allows, before anything opens one;
    // crate::limits shares them out.
    let nofile = crate::limits::raise_nofile();
    info!("fd-limit nofile={nofile}");
    // One daemon per VPP, decided before any side effect: a second one
    // must not send VPP a single message (nor bind sockets, nor probe).
    let mut instance = Instance::none();
    step("instance-lock", instance.follow(opts, &cfg))?;
    step("block-signals", blocked)?;
    let (sig_tx, sig_rx) = bounded(16);
    step("signal-thread", signals::spawn(sig_tx))?;
    let owner = ConfigOwner::new(opts.config.clone(), cfg);
    let sim = match opts.vpp_sim {
        true => Some(step("vpp-sim", SimulatedVpp::start())?),
        false => None,
    };
    let (ev_tx, ev_rx) = bounded(4096);
    let checker = step(
        "checker",
        Checker::start(owner.published().load(), vec![ev_tx]),
    )?;
    let api = ApiCounters::new();
    let reconciler = step(
        "reconciler",
        Reconciler::start(
            checker.client(),
            ev_rx,
            Arc::clone(&api),
            ReconcilerOptions {
                started: process_start,
                api_socket_override: sim.as_ref().map(|s| s.api_socket().to_path_buf()),
                timeout: Duration::from_secs(5),
            },
        ),
    )?;
    let announcer = step(
        "announcer",
        crate::announce::Announcer::start(
            checker.client(),
            reconciler.status(),
            crate::announce::AnnouncerOptions {
                started: process_start,
                state_dir: opts.state_dir.clone(),
            },
        ),
    )?;
    let sim_stats = sim
        .as_ref()
        .map(|s| s.stats_socket().map(Path::to_path_buf));
    let scraper = {
        let c = owner.published().load();
        step(
            "stats-thread",
            Scraper::start(
                stats_socket(&sim_stats, &c),
                c.vpp.stats_interval,
                reconciler.status(),
            ),
        )?
    };
    let metrics = opts.metrics_addr.and_then(|addr| {
        let src = crate::metrics::Sources {
            checker: checker.published(),
            api: Arc::clone(&api),
            sync: reconciler.stats(),
            status: reconciler.status(),
            counters: Some(scraper.latest()),
            engine: Some(checker.engine_stats()),
            announce: Some(announcer.status()),
        };
        // Health checking matters more than metrics: run on without them.
        MetricsServer::start(addr, src)
            .map_err(|e| error!("metrics-failed error={:?}", e.to_string()))
            .ok()
    });
    let (cfg_tx, cfg_rx) = bounded::<ConfigRequest>(16);
    let control = match &opts.control_socket {
        None => None,
        Some(path) => {
            let admin = nix::unistd::Group::from_name(&opts.admin_group)
                .ok()
                .flatten()
                .map(|g| (opts.admin_group.clone(), g.gid.as_raw()));
            if admin.is_none() {
                warn!(
                    "control-admin-group-missing group={} only-root-may-change-state",
                    opts.admin_group
                );
            }
            let ctx = ControlContext {
                checker: checker.client(),
                reconciler: Some(reconciler.client()),
                counters: Some(scraper.latest()),
                config: cfg_tx,
                admin_group: admin,
                started: std::time::SystemTime::now(),
                announcer: Some(announcer.client()),
            };
            Some(step("control-socket", ControlServer::start(path, ctx))?)
        }
    };
    let loader = step("config-loader", Loader::start(opts.config.clone()))?;
    Ok(Running {
        instance,
        sig_rx,
        owner,
        sim,
        sim_stats,
        checker,
        reconciler,
        announcer,
        scraper,
        metrics,
        control,
        cfg_rx,
        loader,
    })
}
