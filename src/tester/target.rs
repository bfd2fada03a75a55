//! Which VIPs maglevt probes, and how: every TCP frontend of the given
//! configurations, HTTP or HTTPS when its backends are checked that way
//! (or it listens on 80 or 443), a plain connect otherwise.

use std::net::SocketAddr;

use crate::config::{Config, Probe, Protocol};

/// How a VIP is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET --uri` over HTTP.
    Http,
    /// `GET --uri` over TLS.
    Https,
    /// A TCP connect.
    Tcp,
}

impl Kind {
    /// `http`, `https` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Tcp => "tcp",
        }
    }
}

/// One VIP to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its frontend's name.
    pub frontend: String,
    /// VIP address and port.
    pub addr: SocketAddr,
    /// How.
    pub kind: Kind,
    /// TLS server name from the backends' health check, if it sets one.
    pub server_name: Option<String>,
}

fn kind_of(cfg: &Config, fe: &crate::config::Frontend) -> Kind {
    // The health check of the frontend's backends says what they speak.
    let checked = fe
        .backend_names()
        .into_iter()
        .filter_map(|b| cfg.backends.get(b))
        .filter_map(|b| cfg.healthchecks.get(&b.healthcheck))
        .find_map(|h| match &h.probe {
            Probe::Http(p) => Some(if p.tls.is_some() {
                Kind::Https
            } else {
                Kind::Http
            }),
            _ => None,
        });
    checked.unwrap_or(match fe.port {
        80 => Kind::Http,
        443 => Kind::Https,
        _ => Kind::Tcp,
    })
}

fn server_name_of(cfg: &Config, fe: &crate::config::Frontend) -> Option<String> {
    fe.backend_names()
        .into_iter()
        .filter_map(|b| cfg.backends.get(b))
        .filter_map(|b| cfg.healthchecks.get(&b.healthcheck))
        .find_map(|h| match &h.probe {
            Probe::Http(p) => p.tls.as_ref().and_then(|t| t.server_name.clone()),
            _ => None,
        })
}

/// The VIPs of `configs` whose frontend name `keep` accepts, in file and
/// name order. UDP frontends and all-port ones (port 0) have nothing to
/// connect to and are left out; a frontend in two files is probed once.
pub fn targets(configs: &[Config], keep: impl Fn(&str) -> bool) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for cfg in configs {
        for (name, fe) in &cfg.frontends {
            if fe.port == 0 || fe.protocol == Some(Protocol::Udp) || !keep(name) {
                continue;
            }
            let t = Target {
                frontend: name.clone(),
                addr: SocketAddr::new(fe.address, fe.port),
                kind: kind_of(cfg, fe),
                server_name: server_name_of(cfg, fe),
            };
            if !out
                .iter()
                .any(|o| o.frontend == t.frontend && o.addr == t.addr)
            {
                out.push(t);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn kinds_follow_the_health_checks_then_the_port() {
        let yaml = "maglev:
  vpp:
    lb: { ipv4-src-address: 192.0.2.254 }
  healthchecks:
    web: { type: http, port: 80, params: { path: /healthz } }
    tls: { type: https, port: 443, params: { path: /, tls-server-name: www.example.net } }
    tcp: { type: tcp, port: 22 }
  backends:
    a: { address: 10.0.0.1, healthcheck: web }
    b: { address: 10.0.0.2, healthcheck: tls }
    c: { address: 10.0.0.3, healthcheck: tcp }
  frontends:
    http8080: { address: 192.0.2.1, protocol: tcp, port: 8080, pools: [ { name: p, backends: { a: {} } } ] }
    secure: { address: 192.0.2.2, protocol: tcp, port: 443, pools: [ { name: p, backends: { b: {} } } ] }
    ssh: { address: 192.0.2.3, protocol: tcp, port: 22, pools: [ { name: p, backends: { c: {} } } ] }
    plain80: { address: 192.0.2.4, protocol: tcp, port: 80, pools: [ { name: p, backends: { c: {} } } ] }
    dns: { address: 192.0.2.5, protocol: udp, port: 53, pools: [ { name: p, backends: { c: {} } } ] }
    all: { address: 192.0.2.6, port: 0, pools: [ { name: p, backends: { c: {} } } ] }
";
        let cfg = crate::config::parse(yaml, Path::new("t.yaml")).unwrap();
        let t = targets(std::slice::from_ref(&cfg), |_| true);
        let got: Vec<(&str, Kind)> = t.iter().map(|t| (t.frontend.as_str(), t.kind)).collect();
        assert_eq!(
            got,
            [
                ("http8080", Kind::Http),
                ("plain80", Kind::Http),
                ("secure", Kind::Https),
                ("ssh", Kind::Tcp),
            ]
        );
        assert_eq!(t[2].server_name.as_deref(), Some("www.example.net"));
        assert_eq!(t[0].addr, "192.0.2.1:8080".parse().unwrap());
        // The same file twice: each VIP once. A filter keeps what it says.
        assert_eq!(targets(&[cfg.clone(), cfg.clone()], |_| true).len(), 4);
        assert_eq!(targets(&[cfg], |n| n.starts_with('s')).len(), 2);
    }
}
