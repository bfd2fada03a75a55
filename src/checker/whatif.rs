//! What a change would do to the weights, without doing it: the checker's
//! half of `maglevc preview`. Pure: it reads a [`Snapshot`] and applies the
//! checker's own rules (the state machine's refusals, the reload rules,
//! [`weights::frontend_weights`]) to a copy of the states.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::client::{Action, CheckerError};
use super::view::Snapshot;
use crate::config::Config;
use crate::health::state::{ActionError, State};
use crate::health::weights;

/// A change the operator is considering (`maglevc preview ...`): parsed by
/// the control grammar, weighed by [`what_if`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `set backend B pause|disable`, in every frontend using it, or only
    /// in `frontend`.
    Action {
        /// Backend.
        backend: String,
        /// Pause or disable.
        action: Action,
        /// Only this frontend.
        frontend: Option<String>,
    },
    /// A new weight for backend B in every pool it is in (of `frontend`
    /// only, when given).
    BackendWeight {
        /// Backend.
        backend: String,
        /// New weight, 0..=100.
        weight: u8,
        /// Only this frontend.
        frontend: Option<String>,
    },
    /// `set frontend F pool P backend B weight W [flush]`.
    PoolWeight {
        /// Frontend.
        frontend: String,
        /// Pool.
        pool: String,
        /// Backend.
        backend: String,
        /// New weight, 0..=100.
        weight: u8,
        /// Flush the backend's flows with it.
        flush: bool,
    },
    /// `config reload` (of the configuration [`what_if`] is given).
    Reload,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let only = |fe: &Option<String>| {
            fe.as_ref()
                .map_or(String::new(), |x| format!(" frontend {x}"))
        };
        match self {
            Change::Action {
                backend,
                action,
                frontend,
            } => write!(
                f,
                "set backend {backend} {}{}",
                action.as_str(),
                only(frontend)
            ),
            Change::BackendWeight {
                backend,
                weight,
                frontend,
            } => write!(f, "set backend {backend} weight {weight}{}", only(frontend)),
            Change::PoolWeight {
                frontend,
                pool,
                backend,
                weight,
                flush,
            } => write!(
                f,
                "set frontend {frontend} pool {pool} backend {backend} weight {weight}{}",
                if *flush { " flush" } else { "" }
            ),
            Change::Reload => f.write_str("config reload"),
        }
    }
}

/// The weights after a [`Change`].
#[derive(Debug, Clone)]
pub struct WhatIf {
    /// The configuration then.
    pub config: Arc<Config>,
    /// Per frontend the change touches: each member's (backend, weight,
    /// flush), as the checker would publish them.
    pub members: BTreeMap<String, Vec<(String, u8, bool)>>,
    /// The frontends whose VIPs may change; `None`: all of them, stale VIPs
    /// included (a reload's full sync).
    pub frontends: Option<BTreeSet<String>>,
    /// (frontend, AS address) whose transition asks for a flush (a backend
    /// disabled, or going away).
    pub flushes: BTreeSet<(String, IpAddr)>,
    /// (frontend, AS address) whose flush the operator asks for with a
    /// weight.
    pub explicit: BTreeSet<(String, IpAddr)>,
}

/// Whether a reload restarts a backend at `unknown`: its address or its
/// health check changed (the checker's rule, §3.5).
pub fn restarts_on_reload(old: &Config, new: &Config, backend: &str) -> bool {
    let (Some(o), Some(n)) = (old.backends.get(backend), new.backends.get(backend)) else {
        return false;
    };
    o.address != n.address
        || old.healthchecks.get(&o.healthcheck) != new.healthchecks.get(&n.healthcheck)
}

/// How long `name` has been up at `now`, from its last transition (slow
/// start ramps on it).
fn up_for(snap: &Snapshot, name: &str, now: SystemTime) -> Option<Duration> {
    let b = snap.backends.get(name)?;
    if b.state != State::Up {
        return None;
    }
    let at = b.history.last().map(|t| t.at)?;
    now.duration_since(at).ok()
}

/// The weights `change` would give, or why the checker would refuse it;
/// [`Change::Reload`] loads `reload` (without one, the configuration in
/// force again).
pub fn what_if(
    snap: &Snapshot,
    change: &Change,
    reload: Option<&Arc<Config>>,
    now: SystemTime,
) -> Result<WhatIf, CheckerError> {
    let mut config = Arc::clone(&snap.config);
    let mut states: BTreeMap<String, State> = BTreeMap::new();
    let mut explicit = BTreeSet::new();
    let frontends: Option<BTreeSet<String>>;
    let in_frontend =
        |backend: &str, fe: &Option<String>| -> Result<BTreeSet<String>, CheckerError> {
            if !snap.backends.contains_key(backend) {
                return Err(CheckerError::NoBackend(backend.to_string()));
            }
            let users: BTreeSet<String> = snap.users_of(backend).iter().cloned().collect();
            match fe {
                None => Ok(users),
                Some(f) if !snap.config.frontends.contains_key(f) => {
                    Err(CheckerError::NoFrontend(f.clone()))
                }
                Some(f) if !users.contains(f) => Err(CheckerError::NotInFrontend {
                    frontend: f.clone(),
                    backend: backend.to_string(),
                }),
                Some(f) => Ok(BTreeSet::from([f.clone()])),
            }
        };
    match change {
        Change::Action {
            backend,
            action,
            frontend,
        } => {
            frontends = Some(in_frontend(backend, frontend)?);
            let now_state = snap.state_of(backend);
            let to = match action {
                Action::Pause | Action::Drain if now_state == State::Disabled => {
                    return Err(CheckerError::Refused {
                        backend: backend.clone(),
                        action: *action,
                        why: ActionError::Disabled,
                    });
                }
                Action::Pause | Action::Drain => State::Paused,
                Action::Disable => State::Disabled,
                Action::Resume | Action::Enable => {
                    // The backend would start over at `unknown`: weight 0
                    // until probes say otherwise; not a useful preview.
                    return Err(CheckerError::NoPreview(*action));
                }
            };
            states.insert(backend.clone(), to);
        }
        Change::BackendWeight {
            backend,
            weight,
            frontend,
        } => {
            if *weight > 100 {
                return Err(CheckerError::WeightRange(*weight));
            }
            let fes = in_frontend(backend, frontend)?;
            let mut cfg = (*config).clone();
            for f in &fes {
                if let Some(fe) = cfg.frontends.get_mut(f) {
                    for p in &mut fe.pools {
                        if let Some(w) = p.backends.get_mut(backend) {
                            *w = *weight;
                        }
                    }
                }
            }
            config = Arc::new(cfg);
            frontends = Some(fes);
        }
        Change::PoolWeight {
            frontend,
            pool,
            backend,
            weight,
            flush,
        } => {
            if *weight > 100 {
                return Err(CheckerError::WeightRange(*weight));
            }
            let mut cfg = (*config).clone();
            let fe = cfg
                .frontends
                .get_mut(frontend)
                .ok_or_else(|| CheckerError::NoFrontend(frontend.clone()))?;
            let p = fe
                .pools
                .iter_mut()
                .find(|p| &p.name == pool)
                .ok_or_else(|| CheckerError::NoPool {
                    frontend: frontend.clone(),
                    pool: pool.clone(),
                })?;
            let w = p
                .backends
                .get_mut(backend)
                .ok_or_else(|| CheckerError::NotInPool {
                    frontend: frontend.clone(),
                    pool: pool.clone(),
                    backend: backend.clone(),
                })?;
            *w = *weight;
            if let (true, Some(b)) = (*flush, cfg.backends.get(backend)) {
                explicit.insert((frontend.clone(), b.address));
            }
            config = Arc::new(cfg);
            frontends = Some(BTreeSet::from([frontend.clone()]));
        }
        Change::Reload => {
            let new = reload.unwrap_or(&snap.config);
            for (name, b) in &new.backends {
                let fresh = if b.enabled {
                    State::Unknown
                } else {
                    State::Disabled
                };
                if !snap.backends.contains_key(name.as_str())
                    || restarts_on_reload(&snap.config, new, name)
                {
                    states.insert(name.clone(), fresh);
                }
            }
            config = Arc::clone(new);
            frontends = None;
        }
    }
    let state_of = |n: &str| states.get(n).copied().unwrap_or_else(|| snap.state_of(n));
    let mut members = BTreeMap::new();
    let mut flushes = BTreeSet::new();
    for (name, fe) in &config.frontends {
        if frontends.as_ref().is_some_and(|s| !s.contains(name)) {
            continue;
        }
        let ws = weights::frontend_weights(fe, state_of, |n| up_for(snap, n, now));
        for (_, b, _) in &ws {
            let flushy = matches!(state_of(b), State::Disabled | State::Removed);
            if flushy && states.contains_key(*b) && snap.state_of(b) != state_of(b) {
                if let Some(a) = config.backends.get(*b) {
                    flushes.insert((name.clone(), a.address));
                }
            }
        }
        members.insert(
            name.clone(),
            ws.into_iter()
                .map(|(_, b, aw)| (b.to_string(), aw.weight, aw.flush))
                .collect(),
        );
    }
    Ok(WhatIf {
        config,
        members,
        frontends,
        flushes,
        explicit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::view::{BackendView, ProbeCounters};
    use crate::health::state::Transition;
    use std::collections::HashMap;

    const YAML: &str = "
maglev:
  vpp:
    lb:
      ipv4-src-address: 192.0.2.254
  healthchecks:
    hc: { type: tcp, port: 80, interval: 1s }
  backends:
    a: { address: 10.0.0.1, healthcheck: hc }
    b: { address: 10.0.0.2, healthcheck: hc }
    c: { address: 10.0.0.3, healthcheck: hc }
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      pools:
        - name: main
          backends: { a: { weight: 100 }, b: { weight: 50 } }
        - name: spare
          backends: { c: {} }
    api:
      address: 192.0.2.2
      protocol: tcp
      port: 443
      pools:
        - name: main
          backends: { b: {}, c: {} }
";

    fn snap(cfg: Config, states: &[(&str, State)]) -> Snapshot {
        let now = SystemTime::now();
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        for (f, fe) in &cfg.frontends {
            for b in fe.backend_names() {
                users.entry(b.to_string()).or_default().push(f.clone());
            }
        }
        let backends = cfg
            .backends
            .iter()
            .map(|(n, b)| {
                let st = states
                    .iter()
                    .find(|(x, _)| x == n)
                    .map_or(State::Up, |(_, s)| *s);
                let t = Transition {
                    from: State::Unknown,
                    to: st,
                    code: None,
                    detail: String::new(),
                    at: now - Duration::from_secs(3600),
                };
                (
                    Arc::from(n.as_str()),
                    BackendView {
                        config: Arc::new(b.clone()),
                        state: st,
                        enabled: st != State::Disabled,
                        counter: (0, 0),
                        last: None,
                        history: Arc::from(vec![t]),
                        counters: ProbeCounters::default(),
                    },
                )
            })
            .collect();
        Snapshot {
            config: Arc::new(cfg),
            backends,
            frontends: BTreeMap::new(),
            users: Arc::new(users),
            at: now,
        }
    }

    fn cfg(yaml: &str) -> Config {
        crate::config::parse(yaml, std::path::Path::new("t.yaml")).unwrap()
    }

    /// `change` without a new configuration, now.
    fn try_change(s: &Snapshot, change: Change) -> Result<WhatIf, CheckerError> {
        what_if(s, &change, None, SystemTime::now())
    }

    fn weights_of(w: &WhatIf, fe: &str) -> Vec<(String, u8, bool)> {
        w.members[fe].clone()
    }

    #[test]
    fn disable_zeroes_the_backend_everywhere_with_flush() {
        let s = snap(cfg(YAML), &[]);
        let w = try_change(
            &s,
            Change::Action {
                backend: "b".into(),
                action: Action::Disable,
                frontend: None,
            },
        )
        .unwrap();
        assert_eq!(
            w.frontends,
            Some(BTreeSet::from(["api".to_string(), "web".to_string()]))
        );
        assert_eq!(
            weights_of(&w, "web"),
            vec![
                ("a".into(), 100, false),
                ("b".into(), 0, true),
                ("c".into(), 0, false)
            ]
        );
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            w.flushes,
            BTreeSet::from([("api".to_string(), b), ("web".to_string(), b)])
        );
    }

    #[test]
    fn pause_only_in_one_frontend_and_refusals() {
        let s = snap(cfg(YAML), &[("c", State::Disabled)]);
        let w = try_change(
            &s,
            Change::Action {
                backend: "b".into(),
                action: Action::Pause,
                frontend: Some("api".into()),
            },
        )
        .unwrap();
        assert_eq!(w.members.keys().collect::<Vec<_>>(), ["api"]);
        assert!(w.flushes.is_empty(), "pause keeps flows");
        // Pausing a disabled backend is refused, as by the state machine.
        let e = try_change(
            &s,
            Change::Action {
                backend: "c".into(),
                action: Action::Pause,
                frontend: None,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("enable it first"), "{e}");
        let e = try_change(
            &s,
            Change::Action {
                backend: "a".into(),
                action: Action::Disable,
                frontend: Some("api".into()),
            },
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("has no backend `a` in any pool"),
            "{e}"
        );
    }

    #[test]
    fn weights_per_backend_or_per_pool() {
        let s = snap(cfg(YAML), &[]);
        let w = try_change(
            &s,
            Change::BackendWeight {
                backend: "b".into(),
                weight: 10,
                frontend: None,
            },
        )
        .unwrap();
        assert_eq!(weights_of(&w, "web")[1], ("b".into(), 10, false));
        assert_eq!(weights_of(&w, "api")[0], ("b".into(), 10, false));
        let w = try_change(
            &s,
            Change::PoolWeight {
                frontend: "web".into(),
                pool: "main".into(),
                backend: "a".into(),
                weight: 0,
                flush: true,
            },
        )
        .unwrap();
        assert_eq!(weights_of(&w, "web")[0], ("a".into(), 0, false));
        assert!(!w.members.contains_key("api"));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            w.explicit,
            BTreeSet::from([("web".to_string(), a)]),
            "flush asked"
        );
        assert!(
            try_change(
                &s,
                Change::PoolWeight {
                    frontend: "web".into(),
                    pool: "spare".into(),
                    backend: "a".into(),
                    weight: 1,
                    flush: false,
                },
            )
            .is_err()
        );
    }

    #[test]
    fn reload_restarts_changed_backends_and_adds_new_ones_unknown() {
        let s = snap(cfg(YAML), &[]);
        let new = YAML
            .replace("a: { address: 10.0.0.1", "a: { address: 10.0.0.9")
            .replace(
                "    c: { address: 10.0.0.3, healthcheck: hc }",
                "    c: { address: 10.0.0.3, healthcheck: hc }\n    d: { address: 10.0.0.4, healthcheck: hc }",
            )
            .replace("b: { weight: 50 } }", "b: { weight: 50 }, d: {} }");
        let new = Arc::new(cfg(&new));
        let w = what_if(&s, &Change::Reload, Some(&new), SystemTime::now()).unwrap();
        assert_eq!(w.frontends, None);
        assert_eq!(
            weights_of(&w, "web"),
            vec![
                ("a".into(), 0, false),
                ("b".into(), 50, false),
                ("d".into(), 0, false),
                ("c".into(), 0, false)
            ],
            "a's address changed and d is new: both unknown"
        );
        assert!(w.flushes.is_empty());
    }
}
