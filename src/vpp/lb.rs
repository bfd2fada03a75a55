//! What VPP's load balancer should hold, what it does hold, and the ordered
//! operations that turn one into the other.
//!
//! Pure: the reconciler thread reads VPP through the client, calls
//! [`diff`], and sends the operations. Being pure makes the ordering rules
//! testable: two maglevd instances with the same config and health states
//! must emit identical messages (VPP's Maglev table depends on AS order),
//! and a sync with nothing to change must emit nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::checker::Snapshot;
use crate::config::Config;
use crate::vpp::client::{LbConfig, VipSpec};
use crate::vpp::maglev::{self, Member};
use crate::vpp::wire::{Encap, LbAsV2Details, LbVip, LbVipDetails, Prefix};

/// Buckets of every VIP's new-flow table (VPP's default; never 0).
pub const NEW_FLOWS_TABLE_LENGTH: u32 = 1024;

/// An application server as we want it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesiredAs {
    /// 0..=100.
    pub weight: u8,
    /// Flush sticky flows when this weight is applied.
    pub flush: bool,
}

/// A frontend's VIP as we want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredVip {
    /// The frontend it comes from.
    pub frontend: String,
    /// Key and shape.
    pub spec: VipSpec,
    /// ASes by address (IPv4 before IPv6, numeric: `IpAddr`'s order).
    pub ases: BTreeMap<IpAddr, DesiredAs>,
}

/// Everything we want VPP to hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// Global settings; `None` fields of the config keep VPP's value.
    pub conf: Option<ConfWanted>,
    /// VIPs by key.
    pub vips: BTreeMap<LbVip, DesiredVip>,
}

/// The `lb_conf` values maglevd manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfWanted {
    /// GRE4 source, if configured.
    pub ip4_src: Option<std::net::Ipv4Addr>,
    /// GRE6 source, if configured.
    pub ip6_src: Option<std::net::Ipv6Addr>,
    /// Sticky buckets per worker.
    pub sticky_buckets_per_core: u32,
    /// Sticky idle timeout, seconds.
    pub flow_timeout: u32,
}

/// The VIP key of a frontend: host prefix, protocol (255 when any), port.
pub fn vip_key(fe: &crate::config::Frontend) -> LbVip {
    let protocol = match (fe.port, fe.protocol) {
        (0, _) | (_, None) => 255,
        (_, Some(p)) => p.number(),
    };
    LbVip {
        pfx: Prefix::host(fe.address),
        protocol,
        port: fe.port,
    }
}

/// The desired state from a checker snapshot: its config (with runtime
/// weight changes) and its per-pool effective weights.
pub fn desired(snap: &Snapshot) -> Desired {
    desired_for(snap, &Scope::All)
}

/// Like [`desired`], computing only the frontends `scope` covers (a
/// targeted sync must not pay for every VIP).
pub fn desired_for(snap: &Snapshot, scope: &Scope) -> Desired {
    desired_from(&snap.config, scope, |fe| {
        snap.frontends.get(fe).map(|v| {
            v.pools
                .iter()
                .flat_map(|p| p.members.iter())
                .map(|m| (m.backend.clone(), m.effective.weight, m.effective.flush))
                .collect()
        })
    })
}

/// The desired state from a config and, per frontend, each member's
/// (backend, weight, flush). Members missing from `weights` get weight 0.
pub fn desired_from(
    cfg: &Config,
    scope: &Scope,
    weights: impl Fn(&str) -> Option<Vec<(String, u8, bool)>>,
) -> Desired {
    let conf = Some(ConfWanted {
        ip4_src: cfg.vpp.lb.ipv4_src_address,
        ip6_src: cfg.vpp.lb.ipv6_src_address,
        sticky_buckets_per_core: cfg.vpp.lb.sticky_buckets_per_core,
        flow_timeout: cfg.vpp.lb.flow_timeout.as_secs() as u32,
    });
    let mut vips = BTreeMap::new();
    for (name, fe) in &cfg.frontends {
        if !scope.covers(name) {
            continue;
        }
        let members = weights(name).unwrap_or_default();
        let mut ases: BTreeMap<IpAddr, DesiredAs> = BTreeMap::new();
        for (backend, weight, flush) in members {
            let Some(b) = cfg.backends.get(&backend) else {
                continue;
            };
            // A backend listed twice (or two backends on one address)
            // is one AS: the larger weight wins; flush only if it drains.
            let e = ases.entry(b.address).or_insert(DesiredAs { weight, flush });
            if weight > e.weight {
                *e = DesiredAs { weight, flush };
            } else if weight == e.weight {
                e.flush &= flush;
            }
        }
        let family_of = ases.keys().next().copied().unwrap_or(fe.address);
        let key = vip_key(fe);
        vips.insert(
            key,
            DesiredVip {
                frontend: name.clone(),
                spec: VipSpec {
                    key,
                    encap: Encap::for_backend(family_of),
                    src_ip_sticky: fe.src_ip_sticky,
                    new_flows_table_length: fe.new_flows_table_length,
                },
                ases,
            },
        );
    }
    Desired { conf, vips }
}

/// An AS as VPP reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActualAs {
    /// Weight.
    pub weight: u8,
    /// False: deleted, waiting for garbage collection.
    pub in_use: bool,
    /// New-flow table entries.
    pub buckets: u32,
    /// Sticky entries pinned to it (`flows:` of `show lb vips verbose`;
    /// expired ones count until their slot is reused; 0 if unknown).
    pub flows: u32,
}

/// A VIP as VPP reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualVip {
    /// Encapsulation.
    pub encap: Encap,
    /// From `show lb vips verbose`; `None` if the scrape failed.
    pub sticky: Option<bool>,
    /// Pool index (stats counter index), from the same scrape.
    pub index: Option<u32>,
    /// Buckets of the new-flow table.
    pub table_len: u32,
    /// ASes by address.
    pub ases: BTreeMap<IpAddr, ActualAs>,
}

impl ActualVip {
    /// The fingerprint of the new-flow table its in-use ASes make
    /// ([`super::maglev::fingerprint`]) and the largest gap, in
    /// percentage points, between an AS's share of it and of the weights
    /// ([`super::maglev::share_error`]), from one build of the table;
    /// `None` for a table length VPP would not have accepted.
    pub fn table_facts(&self) -> Option<(String, f64)> {
        let size = self.table_len as usize;
        if !size.is_power_of_two() {
            return None;
        }
        let members = self.members();
        let table = super::maglev::build_table(&members, size);
        Some((
            super::maglev::fingerprint_of(&members, &table),
            super::maglev::share_error_of(&members, &table),
        ))
    }

    /// Its in-use ASes as Maglev members.
    fn members(&self) -> Vec<super::maglev::Member> {
        self.ases
            .iter()
            .filter(|(_, a)| a.in_use)
            .map(|(addr, a)| super::maglev::Member {
                addr: *addr,
                weight: a.weight,
            })
            .collect()
    }
}

/// Allowed gap between a backend's share of new flows and its share of the
/// weights, in percentage points.
pub const SHARE_TOLERANCE: f64 = 1.0;

/// The Maglev members of `frontend`'s VIP for the given weights (backend
/// name → weight), at the backends' addresses.
pub fn members_of(
    cfg: &Config,
    weights: impl IntoIterator<Item = (String, u8)>,
) -> Vec<super::maglev::Member> {
    let mut out: Vec<super::maglev::Member> = Vec::new();
    for (b, w) in weights {
        let Some(addr) = cfg.backends.get(&b).map(|x| x.address) else {
            continue;
        };
        match out.iter_mut().find(|m| m.addr == addr) {
            Some(m) => m.weight = m.weight.max(w),
            None => out.push(super::maglev::Member { addr, weight: w }),
        }
    }
    out
}

/// Warnings for frontends whose table is too small for their pools'
/// configured weights (each pool as it would serve alone): a backend's
/// share of new flows would be more than [`SHARE_TOLERANCE`] off its
/// weight share. Names the smallest power of two that fits.
pub fn table_fit_warnings(cfg: &Config) -> Vec<crate::config::Problem> {
    let mut out = Vec::new();
    for (name, fe) in &cfg.frontends {
        let size = fe.new_flows_table_length as usize;
        for pool in &fe.pools {
            let members = members_of(cfg, pool.backends.iter().map(|(b, w)| (b.clone(), *w)));
            let err = super::maglev::share_error(&members, size);
            if err <= SHARE_TOLERANCE {
                continue;
            }
            let fits = match super::maglev::fitting_size(&members, size, SHARE_TOLERANCE) {
                Some(s) => format!("new-flows-table-length: {s} fits"),
                None => "no table up to 65536 fits".to_string(),
            };
            out.push(crate::config::Problem {
                path: format!("maglev.frontends.{name}.new-flows-table-length"),
                line: None,
                message: format!(
                    "pool {}: with {size} buckets a backend's share of new flows is {err:.1} percentage points off its weight share; {fits}",
                    pool.name
                ),
            });
        }
    }
    out
}

/// VPP's lb state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actual {
    /// `lb_conf_get`.
    pub conf: Option<LbConfig>,
    /// In-use VIPs by key.
    pub vips: BTreeMap<LbVip, ActualVip>,
    /// ASes of deleted VIPs that VPP has not collected yet, in dump order
    /// (known only when `show lb vips verbose` could be read).
    pub orphans: Vec<OrphanAs>,
}

impl Actual {
    /// Our record of VPP after `op` succeeded: what the reconciler keeps
    /// between reads, and what a preview predicts.
    pub fn apply(&mut self, op: &Op) {
        match *op {
            Op::Conf(c) => self.conf = Some(c),
            Op::AddVip(spec) => {
                self.vips.insert(
                    spec.key,
                    ActualVip {
                        encap: spec.encap,
                        sticky: Some(spec.src_ip_sticky),
                        index: None,
                        table_len: spec.new_flows_table_length,
                        ases: BTreeMap::new(),
                    },
                );
            }
            Op::DelVip(key) => {
                self.vips.remove(&key);
            }
            Op::AddAs { vip, addr, weight } => {
                if let Some(v) = self.vips.get_mut(&vip) {
                    v.ases.insert(
                        addr,
                        ActualAs {
                            weight,
                            in_use: true,
                            buckets: 0,
                            flows: 0,
                        },
                    );
                }
            }
            Op::DelAs { vip, addr, .. } => {
                if let Some(a) = self.vips.get_mut(&vip).and_then(|v| v.ases.get_mut(&addr)) {
                    a.in_use = false;
                }
            }
            Op::SetWeight {
                vip, addr, weight, ..
            } => {
                if let Some(a) = self.vips.get_mut(&vip).and_then(|v| v.ases.get_mut(&addr)) {
                    a.weight = weight;
                }
            }
        }
    }

    /// What VPP holds when it holds exactly `desired` (bucket counts and
    /// indexes unknown; `lb_conf` left out): the basis of a preview while
    /// VPP is not connected.
    pub fn predicted(desired: &Desired) -> Actual {
        let mut a = Actual::default();
        for (k, v) in &desired.vips {
            a.vips.insert(
                *k,
                ActualVip {
                    encap: v.spec.encap,
                    sticky: Some(v.spec.src_ip_sticky),
                    index: None,
                    table_len: v.spec.new_flows_table_length,
                    ases: v
                        .ases
                        .iter()
                        .map(|(ip, x)| {
                            let a = ActualAs {
                                weight: x.weight,
                                in_use: true,
                                buckets: 0,
                                flows: 0,
                            };
                            (*ip, a)
                        })
                        .collect(),
                },
            );
        }
        a
    }
}

/// An AS of a deleted VIP, waiting for VPP's garbage collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanAs {
    /// The deleted VIP's key (a live VIP may have the same one).
    pub vip: LbVip,
    /// The deleted VIP's pool index.
    pub index: u32,
    /// AS address.
    pub addr: IpAddr,
    /// Its last weight.
    pub weight: u8,
    /// Sticky entries still pinned to it.
    pub flows: u32,
}

/// One AS line of a `show lb vips verbose` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerboseAs {
    /// AS address.
    pub addr: IpAddr,
    /// `flows:`.
    pub flows: u32,
    /// `used` (false: ` removed`).
    pub used: bool,
}

/// One VIP block of `show lb vips verbose`, deleted ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerboseVip {
    /// Prefix, protocol, port.
    pub key: LbVip,
    /// VPP's pool index of the VIP.
    pub index: u32,
    /// `src_ip_sticky`.
    pub sticky: bool,
    /// Deleted, waiting for garbage collection (` removed`).
    pub removed: bool,
    /// Its AS slots in slot order (the order of `lb_as_v2_dump`).
    pub ases: Vec<VerboseAs>,
}

/// Every VIP block of `show lb vips verbose`, in pool-index order (the
/// order `lb_as_v2_dump` visits VIPs in).
pub fn parse_vips_verbose(text: &str) -> Vec<VerboseVip> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        // " <type> [<index>] <prefix>[ src_ip_sticky][ removed]"
        let Some(rest) = line.strip_prefix(' ') else {
            continue;
        };
        if rest.starts_with(' ') {
            continue;
        }
        let mut words = rest.split(' ');
        let (Some(_ty), Some(idx), Some(pfx)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Some(idx) = idx
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(pfx) = pfx.parse::<Prefix>() else {
            continue;
        };
        let flags: Vec<&str> = words.collect();
        let sticky = flags.contains(&"src_ip_sticky");
        let removed = flags.contains(&"removed");
        let (mut protocol, mut port) = (255u8, 0u16);
        let mut ases = Vec::new();
        // The block's own lines follow; protocol/port is among the first,
        // the AS lines (`<address> weight:... flows:<n> dpo:<d> used`) last.
        while let Some(next) = lines.peek() {
            if !next.starts_with("  ") {
                break;
            }
            let l = lines.next().unwrap_or_default().trim();
            if let Some(pp) = l.strip_prefix("protocol:") {
                let mut it = pp.split(" port:");
                if let (Some(p), Some(o)) = (it.next(), it.next()) {
                    protocol = p.trim().parse().unwrap_or(255);
                    port = o.trim().parse().unwrap_or(0);
                }
            } else if let Some((addr, rest)) = l.split_once(' ') {
                if let Ok(a) = addr.parse::<IpAddr>() {
                    let flows = rest
                        .split(' ')
                        .find_map(|w| w.strip_prefix("flows:"))
                        .and_then(|n| n.parse::<u32>().ok())
                        .unwrap_or(0);
                    ases.push(VerboseAs {
                        addr: a,
                        flows,
                        used: !rest.ends_with("removed"),
                    });
                }
            }
        }
        out.push(VerboseVip {
            key: LbVip {
                pfx,
                protocol,
                port,
            },
            index: idx,
            sticky,
            removed,
            ases,
        });
    }
    out
}

/// Which VIP block each `lb_as_v2_dump` row belongs to, by position in
/// `blocks`. The dump names a row's VIP only by prefix, protocol and port,
/// so while a deleted VIP with the same key awaits garbage collection its
/// ASes look like the live VIP's. Both the dump and the CLI visit VIPs in
/// pool-index order and AS slots in slot order, so the rows with one key
/// are, in order, the AS lines of that key's blocks. `None` when the two
/// reads disagree (VPP changed between them): the caller falls back to
/// the key.
fn attribute_rows(rows: &[LbAsV2Details], blocks: &[VerboseVip]) -> Option<Vec<usize>> {
    // Per key: the (block, AS line) sequence the rows must follow.
    let mut expected: BTreeMap<LbVip, std::collections::VecDeque<(usize, IpAddr)>> =
        BTreeMap::new();
    for (bi, b) in blocks.iter().enumerate() {
        let q = expected.entry(b.key).or_default();
        q.extend(b.ases.iter().map(|a| (bi, a.addr)));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (bi, addr) = expected.get_mut(&r.vip)?.pop_front()?;
        if addr != r.app_srv {
            return None;
        }
        out.push(bi);
    }
    expected.values().all(|q| q.is_empty()).then_some(out)
}

/// Assembles [`Actual`] from the three reads.
pub fn actual_from(
    conf: Option<LbConfig>,
    vips: &[LbVipDetails],
    ases: &[LbAsV2Details],
    verbose: Option<&str>,
) -> Actual {
    let blocks = verbose.map(parse_vips_verbose).unwrap_or_default();
    let live: BTreeMap<LbVip, usize> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.removed)
        .map(|(i, b)| (b.key, i))
        .collect();
    let owners = verbose.and_then(|_| attribute_rows(ases, &blocks));
    let mut out = Actual {
        conf,
        vips: BTreeMap::new(),
        orphans: Vec::new(),
    };
    for v in vips {
        let key = v.vip;
        let (index, sticky) = match live.get(&key).map(|&i| &blocks[i]) {
            Some(b) => (Some(b.index), Some(b.sticky)),
            None => (None, None),
        };
        out.vips.insert(
            key,
            ActualVip {
                encap: v.encap,
                sticky,
                index,
                table_len: if v.flow_table_length == 0 {
                    65536
                } else {
                    u32::from(v.flow_table_length)
                },
                ases: BTreeMap::new(),
            },
        );
    }
    for (row, a) in ases.iter().enumerate() {
        let in_use = a.flags & 1 == 1;
        // Without a row-by-row match, the live VIP of the key.
        let block = match &owners {
            Some(o) => Some(&blocks[o[row]]),
            None => live.get(&a.vip).map(|&i| &blocks[i]),
        };
        let flows = block
            .and_then(|b| b.ases.iter().find(|x| x.addr == a.app_srv))
            .map_or(0, |x| x.flows);
        if let Some(b) = block.filter(|b| b.removed) {
            // An AS of a deleted VIP: not the live VIP's, whatever the key.
            out.orphans.push(OrphanAs {
                vip: a.vip,
                index: b.index,
                addr: a.app_srv,
                weight: a.weight,
                flows,
            });
            continue;
        }
        let Some(v) = out.vips.get_mut(&a.vip) else {
            continue;
        };
        let prev = v.ases.get(&a.app_srv);
        // A revived slot and a lingering deleted one: the live one counts.
        if prev.is_some_and(|p| p.in_use) && !in_use {
            continue;
        }
        v.ases.insert(
            a.app_srv,
            ActualAs {
                weight: a.weight,
                in_use,
                buckets: a.num_buckets,
                flows,
            },
        );
    }
    out
}

/// One mutating VPP call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `lb_conf`.
    Conf(LbConfig),
    /// `lb_add_del_vip_v2` add.
    AddVip(VipSpec),
    /// `lb_add_del_vip_v2` delete.
    DelVip(LbVip),
    /// `lb_add_del_as_v2` add.
    AddAs {
        /// VIP.
        vip: LbVip,
        /// AS.
        addr: IpAddr,
        /// Weight.
        weight: u8,
    },
    /// `lb_add_del_as_v2` delete.
    DelAs {
        /// VIP.
        vip: LbVip,
        /// AS.
        addr: IpAddr,
        /// Flush its sticky flows.
        flush: bool,
    },
    /// `lb_as_set_weight`.
    SetWeight {
        /// VIP.
        vip: LbVip,
        /// AS.
        addr: IpAddr,
        /// New weight.
        weight: u8,
        /// Flush its sticky flows.
        flush: bool,
    },
}

/// What kind of change an [`Op`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    /// `lb_conf`.
    ConfSet,
    /// A VIP added.
    VipAdded,
    /// A VIP removed.
    VipRemoved,
    /// An AS added.
    AsAdded,
    /// An AS removed.
    AsRemoved,
    /// An AS's weight changed.
    AsWeightUpdated,
}

impl OpKind {
    /// The label value (`maglev_vpp_lbsync_total{kind}`, as the original's).
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::ConfSet => "conf_set",
            OpKind::VipAdded => "vip_added",
            OpKind::VipRemoved => "vip_removed",
            OpKind::AsAdded => "as_added",
            OpKind::AsRemoved => "as_removed",
            OpKind::AsWeightUpdated => "as_weight_updated",
        }
    }
}

impl Op {
    /// The VIP it changes (`None`: `lb_conf`).
    pub fn vip(&self) -> Option<LbVip> {
        match *self {
            Op::Conf(_) => None,
            Op::AddVip(s) => Some(s.key),
            Op::DelVip(k) => Some(k),
            Op::AddAs { vip, .. } | Op::DelAs { vip, .. } | Op::SetWeight { vip, .. } => Some(vip),
        }
    }

    /// What kind of change it is.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Conf(_) => OpKind::ConfSet,
            Op::AddVip(_) => OpKind::VipAdded,
            Op::DelVip(_) => OpKind::VipRemoved,
            Op::AddAs { .. } => OpKind::AsAdded,
            Op::DelAs { .. } => OpKind::AsRemoved,
            Op::SetWeight { .. } => OpKind::AsWeightUpdated,
        }
    }
}

fn fmt_vip(v: &LbVip) -> String {
    format!("{}:{}/{}", v.pfx, v.protocol, v.port)
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Conf(c) => write!(
                f,
                "lb-conf ip4-src={} ip6-src={} sticky-buckets={} flow-timeout={}",
                c.ip4_src, c.ip6_src, c.sticky_buckets_per_core, c.flow_timeout
            ),
            Op::AddVip(s) => write!(
                f,
                "vip-add vip={} encap={} src-ip-sticky={}",
                fmt_vip(&s.key),
                s.encap,
                s.src_ip_sticky
            ),
            Op::DelVip(v) => write!(f, "vip-del vip={}", fmt_vip(v)),
            Op::AddAs { vip, addr, weight } => {
                write!(f, "as-add vip={} as={addr} weight={weight}", fmt_vip(vip))
            }
            Op::DelAs { vip, addr, flush } => {
                write!(f, "as-del vip={} as={addr} flush={flush}", fmt_vip(vip))
            }
            Op::SetWeight {
                vip,
                addr,
                weight,
                flush,
            } => write!(
                f,
                "as-weight vip={} as={addr} weight={weight} flush={flush}",
                fmt_vip(vip)
            ),
        }
    }
}

/// Which part of VPP a sync may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything, stale VIPs included.
    All,
    /// Only these frontends' VIPs; never removes a VIP.
    Frontends(BTreeSet<String>),
}

impl Scope {
    /// Whether it reaches `frontend`.
    pub fn covers(&self, frontend: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Frontends(s) => s.contains(frontend),
        }
    }

    /// Whether it is a full or a targeted sync.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::All => ScopeKind::All,
            Scope::Frontends(_) => ScopeKind::Vip,
        }
    }
}

/// A sync's reach, without the frontend names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScopeKind {
    /// A full sync.
    All,
    /// A sync of some frontends' VIPs.
    Vip,
}

impl ScopeKind {
    /// The label value (`maglev_vpp_lbsync_total{scope}`, logs, replies).
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::All => "all",
            ScopeKind::Vip => "vip",
        }
    }
}

impl std::fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `lb_conf` to send, if VPP's differs from what we want.
fn conf_op(want: &ConfWanted, have: &LbConfig) -> Option<LbConfig> {
    let next = LbConfig {
        ip4_src: want.ip4_src.unwrap_or(have.ip4_src),
        ip6_src: want.ip6_src.unwrap_or(have.ip6_src),
        sticky_buckets_per_core: want.sticky_buckets_per_core,
        flow_timeout: want.flow_timeout,
    };
    (next != *have).then_some(next)
}

fn add_vip_ops(ops: &mut Vec<Op>, d: &DesiredVip) {
    ops.push(Op::AddVip(d.spec));
    for (&addr, a) in &d.ases {
        ops.push(Op::AddAs {
            vip: d.spec.key,
            addr,
            weight: a.weight,
        });
    }
}

fn del_vip_ops(ops: &mut Vec<Op>, key: LbVip, v: &ActualVip) {
    for (&addr, a) in &v.ases {
        if a.in_use {
            ops.push(Op::DelAs {
                vip: key,
                addr,
                flush: true,
            });
        }
    }
    ops.push(Op::DelVip(key));
}

/// What a checker event asks of the next sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// These frontends' VIPs.
    Frontends(Vec<String>),
    /// Every frontend, stale VIPs included (a reload, or events lost).
    All,
    /// Nothing VPP holds.
    Nothing,
}

/// The one rule from checker events to syncs, used by the reconciler and
/// by previews alike: which frontends `ev` changes, and the flushes it
/// asks for (added to `flushes`), against `snap`, the snapshot that
/// reflects it. A backend that goes down, disabled or away asks its
/// frontends to flush it; a weight set with `flush` asks for that flush.
pub fn event_effect(
    snap: &Snapshot,
    ev: &crate::checker::events::Event,
    flushes: &mut FlushRequests,
) -> Effect {
    use crate::checker::events::Event;
    use crate::health::state::State;
    match ev {
        Event::Backend(e) => {
            let addr = snap
                .backends
                .get(e.backend.as_str())
                .map(|b| b.config.address);
            let flushy = matches!(e.to, State::Down | State::Disabled | State::Removed);
            let users = snap.users_of(&e.backend).to_vec();
            if let (true, Some(a)) = (flushy, addr) {
                for fe in &users {
                    flushes.transitions.insert((fe.clone(), a));
                }
            }
            Effect::Frontends(users)
        }
        Event::WeightChanged { frontend, flush } => {
            if let Some(v) = flush.as_ref().and_then(|b| snap.backends.get(b.as_str())) {
                flushes
                    .explicit
                    .insert((frontend.clone(), v.config.address));
            }
            Effect::Frontends(vec![frontend.clone()])
        }
        Event::ConfigReloaded | Event::Lagged { .. } => Effect::All,
        Event::Frontend(_) | Event::Dataplane(_) | Event::Announce(_) => Effect::Nothing,
    }
}

/// Flushes asked for since the last sync, by (frontend, AS address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushRequests {
    /// Backends that went down, disabled or away: their flush is sent when
    /// their desired state flushes, even if the weight is already right (a
    /// backend drained to 0 by pool failover and then disabled still needs
    /// its sticky flows cut).
    pub transitions: BTreeSet<(String, IpAddr)>,
    /// Flushes the operator asked for with a weight change: always sent.
    pub explicit: BTreeSet<(String, IpAddr)>,
}

impl FlushRequests {
    /// Forgets the requests of `frontend` (it was just synced).
    pub fn clear_frontend(&mut self, frontend: &str) {
        self.transitions.retain(|(f, _)| f != frontend);
        self.explicit.retain(|(f, _)| f != frontend);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.transitions.clear();
        self.explicit.clear();
    }
}

/// The operations that make `actual` what `desired` says, within `scope`,
/// with the flushes `flushes` asks for.
///
/// Order: `lb_conf`; stale VIPs (full sync only); then VIPs in key order,
/// ASes within a VIP in address order (IPv4 before IPv6, numeric).
pub fn diff(desired: &Desired, actual: &Actual, scope: &Scope, flushes: &FlushRequests) -> Vec<Op> {
    let mut ops = Vec::new();
    if let (Some(want), Some(have)) = (&desired.conf, &actual.conf) {
        if let Some(c) = conf_op(want, have) {
            ops.push(Op::Conf(c));
        }
    }
    if *scope == Scope::All {
        for (key, v) in &actual.vips {
            if !desired.vips.contains_key(key) {
                del_vip_ops(&mut ops, *key, v);
            }
        }
    }
    for (key, d) in &desired.vips {
        if !scope.covers(&d.frontend) {
            continue;
        }
        let Some(a) = actual.vips.get(key) else {
            add_vip_ops(&mut ops, d);
            continue;
        };
        let sticky_differs = a.sticky.is_some_and(|s| s != d.spec.src_ip_sticky);
        let table_differs = a.table_len != d.spec.new_flows_table_length;
        if a.encap != d.spec.encap || sticky_differs || table_differs {
            del_vip_ops(&mut ops, *key, a);
            add_vip_ops(&mut ops, d);
            continue;
        }
        // Make before break: everything that gives the VIP capacity (new
        // ASes, higher weights) goes out before anything that takes it
        // away, so a VIP that had a serving AS never has none, not even
        // between two messages. Each group stays in address order.
        let mut raise = Vec::new();
        let mut lower = Vec::new();
        let addrs: BTreeSet<IpAddr> = d.ases.keys().chain(a.ases.keys()).copied().collect();
        for addr in addrs {
            match (d.ases.get(&addr), a.ases.get(&addr)) {
                (Some(w), None) => raise.push(Op::AddAs {
                    vip: *key,
                    addr,
                    weight: w.weight,
                }),
                (Some(w), Some(x)) if !x.in_use => raise.push(Op::AddAs {
                    vip: *key,
                    addr,
                    weight: w.weight,
                }),
                (Some(w), Some(x)) => {
                    let k = (d.frontend.clone(), addr);
                    let explicit = flushes.explicit.contains(&k);
                    let forced = w.flush && flushes.transitions.contains(&k);
                    if x.weight != w.weight || forced || explicit {
                        let op = Op::SetWeight {
                            vip: *key,
                            addr,
                            weight: w.weight,
                            flush: w.flush || explicit,
                        };
                        if w.weight > x.weight {
                            raise.push(op);
                        } else {
                            lower.push(op);
                        }
                    }
                }
                (None, Some(x)) if x.in_use => lower.push(Op::DelAs {
                    vip: *key,
                    addr,
                    flush: true,
                }),
                _ => {}
            }
        }
        ops.append(&mut raise);
        ops.append(&mut lower);
    }
    ops
}

/// Per frontend of `desired`, how many operations VPP (as `actual` says)
/// still needs to hold it as desired: 0 means held. `lb_conf` is no
/// frontend's; a stale VIP is nobody's.
pub fn unheld(desired: &Desired, actual: &Actual) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = desired
        .vips
        .values()
        .map(|d| (d.frontend.clone(), 0))
        .collect();
    let scope = Scope::Frontends(out.keys().cloned().collect());
    for op in diff(desired, actual, &scope, &FlushRequests::default()) {
        if let Some(d) = op.vip().and_then(|v| desired.vips.get(&v)) {
            *out.entry(d.frontend.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// ASes whose bucket count in VPP differs from what [`maglev`] predicts
/// for the VIP's in-use ASes and weights: (VIP, AS, VPP's, predicted).
pub fn drift(actual: &Actual) -> Vec<(LbVip, IpAddr, u32, u32)> {
    let mut out = Vec::new();
    for (key, v) in &actual.vips {
        if !v.table_len.is_power_of_two() {
            continue;
        }
        let live: Vec<(IpAddr, &ActualAs)> = v
            .ases
            .iter()
            .filter(|(_, a)| a.in_use)
            .map(|(ip, a)| (*ip, a))
            .collect();
        let members: Vec<Member> = live
            .iter()
            .map(|(addr, a)| Member {
                addr: *addr,
                weight: a.weight,
            })
            .collect();
        let predicted = maglev::bucket_counts(&members, v.table_len as usize);
        for ((addr, a), p) in live.iter().zip(predicted) {
            if a.buckets != p {
                out.push((*key, *addr, a.buckets, p));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn key(a: &str, protocol: u8, port: u16) -> LbVip {
        LbVip {
            pfx: Prefix::host(ip(a)),
            protocol,
            port,
        }
    }

    fn dvip(fe: &str, k: LbVip, sticky: bool, ases: &[(&str, u8, bool)]) -> DesiredVip {
        let ases: BTreeMap<IpAddr, DesiredAs> = ases
            .iter()
            .map(|(a, w, f)| {
                (
                    ip(a),
                    DesiredAs {
                        weight: *w,
                        flush: *f,
                    },
                )
            })
            .collect();
        let fam = ases.keys().next().copied().unwrap_or(k.pfx.addr);
        DesiredVip {
            frontend: fe.into(),
            spec: VipSpec {
                key: k,
                encap: Encap::for_backend(fam),
                src_ip_sticky: sticky,
                new_flows_table_length: 1024,
            },
            ases,
        }
    }

    fn desired(vips: Vec<DesiredVip>) -> Desired {
        Desired {
            conf: None,
            vips: vips.into_iter().map(|v| (v.spec.key, v)).collect(),
        }
    }

    /// What VPP would hold after applying `d` exactly.
    fn mirror(d: &Desired) -> Actual {
        let mut a = Actual::predicted(d);
        for v in a.vips.values_mut() {
            v.index = Some(1);
        }
        a
    }

    fn none() -> FlushRequests {
        FlushRequests::default()
    }

    #[test]
    fn unheld_counts_what_vpp_lacks_per_frontend() {
        let web = key("192.0.2.1", 6, 80);
        let web6 = key("2001:db8::1", 6, 443);
        let d = desired(vec![
            dvip(
                "web",
                web,
                false,
                &[("10.0.0.1", 100, false), ("10.0.0.2", 50, false)],
            ),
            dvip("web6", web6, false, &[("2001:db8:1::1", 100, false)]),
        ]);
        let mut a = mirror(&d);
        assert_eq!(
            unheld(&d, &a),
            BTreeMap::from([("web".into(), 0), ("web6".into(), 0)])
        );
        // VPP refused web6's AS; web lost a weight; a stale VIP is nobody's.
        a.vips.get_mut(&web6).unwrap().ases.clear();
        a.vips
            .get_mut(&web)
            .unwrap()
            .ases
            .get_mut(&ip("10.0.0.2"))
            .unwrap()
            .weight = 0;
        a.vips.insert(key("192.0.2.9", 6, 80), a.vips[&web].clone());
        assert_eq!(
            unheld(&d, &a),
            BTreeMap::from([("web".into(), 1), ("web6".into(), 1)])
        );
        a.vips.remove(&web6);
        assert_eq!(unheld(&d, &a)["web6"], 2, "the VIP and its AS");
    }

    #[test]
    fn from_empty_adds_vips_then_ases_in_numeric_order() {
        let k = key("192.0.2.1", 6, 80);
        let d = desired(vec![dvip(
            "web",
            k,
            false,
            &[
                ("10.0.0.10", 100, false),
                ("10.0.0.2", 50, false),
                ("10.0.0.9", 0, false),
            ],
        )]);
        let ops = diff(&d, &Actual::default(), &Scope::All, &none());
        let s: Vec<String> = ops.iter().map(Op::to_string).collect();
        assert_eq!(
            s,
            vec![
                "vip-add vip=192.0.2.1/32:6/80 encap=gre4 src-ip-sticky=false",
                "as-add vip=192.0.2.1/32:6/80 as=10.0.0.2 weight=50",
                "as-add vip=192.0.2.1/32:6/80 as=10.0.0.9 weight=0",
                "as-add vip=192.0.2.1/32:6/80 as=10.0.0.10 weight=100",
            ]
        );
    }

    /// Applies `ops` one by one to `a` and asserts that after every
    /// message each VIP that had a serving AS (weight > 0) still has one.
    fn assert_never_empty(a: &Actual, ops: &[Op]) {
        let serving = |a: &Actual, k: &LbVip| {
            a.vips
                .get(k)
                .is_some_and(|v| v.ases.values().any(|x| x.in_use && x.weight > 0))
        };
        let had: Vec<LbVip> = a.vips.keys().filter(|k| serving(a, k)).copied().collect();
        let mut now = a.clone();
        for (i, op) in ops.iter().enumerate() {
            now.apply(op);
            for k in &had {
                assert!(
                    serving(&now, k),
                    "after op {i} ({op}) {k:?} has no serving AS"
                );
            }
        }
    }

    #[test]
    fn failover_raises_the_fallback_before_lowering_the_primary() {
        let k = key("192.0.2.1", 6, 80);
        // Primary pool (low addresses) serving, fallback (high) at 0.
        let before = desired(vec![dvip(
            "web",
            k,
            false,
            &[
                ("10.0.0.1", 100, false),
                ("10.0.0.2", 100, false),
                ("10.0.0.21", 0, false),
                ("10.0.0.22", 0, false),
            ],
        )]);
        // The primary failed: its ASes go to 0, the fallback's to 100,
        // one fallback AS is new and one primary AS leaves the config.
        let after = desired(vec![dvip(
            "web",
            k,
            false,
            &[
                ("10.0.0.1", 0, true),
                ("10.0.0.21", 100, false),
                ("10.0.0.22", 100, false),
                ("10.0.0.23", 100, false),
            ],
        )]);
        let a = mirror(&before);
        let ops = diff(&after, &a, &Scope::All, &none());
        let s: Vec<String> = ops.iter().map(Op::to_string).collect();
        assert_eq!(
            s,
            vec![
                "as-weight vip=192.0.2.1/32:6/80 as=10.0.0.21 weight=100 flush=false",
                "as-weight vip=192.0.2.1/32:6/80 as=10.0.0.22 weight=100 flush=false",
                "as-add vip=192.0.2.1/32:6/80 as=10.0.0.23 weight=100",
                "as-weight vip=192.0.2.1/32:6/80 as=10.0.0.1 weight=0 flush=true",
                "as-del vip=192.0.2.1/32:6/80 as=10.0.0.2 flush=true",
            ]
        );
        assert_never_empty(&a, &ops);
        // And back: the primary returns before the fallback steps down.
        let back = diff(&before, &mirror(&after), &Scope::All, &none());
        assert_never_empty(&mirror(&after), &back);
        assert!(matches!(
            back[0],
            Op::AddAs { .. } | Op::SetWeight { weight: 100, .. }
        ));
    }

    #[test]
    fn nothing_to_change_means_no_operation() {
        let d = desired(vec![
            dvip(
                "a",
                key("192.0.2.1", 6, 80),
                true,
                &[("10.0.0.1", 100, false)],
            ),
            dvip(
                "b",
                key("2001:db8::1", 17, 53),
                false,
                &[("2001:db8:1::1", 0, true)],
            ),
        ]);
        let a = mirror(&d);
        assert!(diff(&d, &a, &Scope::All, &none()).is_empty());
        assert!(diff(&d, &a, &Scope::Frontends(["a".into()].into()), &none()).is_empty());
    }

    #[test]
    fn weight_changes_and_flush_rules() {
        let k = key("192.0.2.1", 6, 80);
        let before = desired(vec![dvip(
            "web",
            k,
            false,
            &[("10.0.0.1", 100, false), ("10.0.0.2", 100, false)],
        )]);
        let a = mirror(&before);
        // 10.0.0.1 goes down (flush-on-down): weight 0 with flush.
        let d = desired(vec![dvip(
            "web",
            k,
            false,
            &[("10.0.0.1", 0, true), ("10.0.0.2", 100, false)],
        )]);
        let ops = diff(&d, &a, &Scope::All, &none());
        assert_eq!(
            ops,
            vec![Op::SetWeight {
                vip: k,
                addr: ip("10.0.0.1"),
                weight: 0,
                flush: true
            }]
        );
        // Already at 0 (drained by failover), then disabled: flush still sent
        // because the transition asked for it ...
        let drained = mirror(&d);
        let forced = FlushRequests {
            transitions: [("web".to_string(), ip("10.0.0.1"))].into(),
            explicit: BTreeSet::new(),
        };
        let ops = diff(&d, &drained, &Scope::All, &forced);
        assert_eq!(
            ops,
            vec![Op::SetWeight {
                vip: k,
                addr: ip("10.0.0.1"),
                weight: 0,
                flush: true
            }]
        );
        // ... but not on every periodic sync,
        assert!(diff(&d, &drained, &Scope::All, &none()).is_empty());
        // and not for a backend whose state does not flush (paused/unknown).
        let paused = desired(vec![dvip(
            "web",
            k,
            false,
            &[("10.0.0.1", 0, false), ("10.0.0.2", 100, false)],
        )]);
        assert!(diff(&paused, &drained, &Scope::All, &forced).is_empty());
        // An operator's explicit flush is sent whatever the state.
        let explicit = FlushRequests {
            transitions: BTreeSet::new(),
            explicit: [("web".to_string(), ip("10.0.0.2"))].into(),
        };
        assert_eq!(
            diff(&paused, &drained, &Scope::All, &explicit),
            vec![Op::SetWeight {
                vip: k,
                addr: ip("10.0.0.2"),
                weight: 100,
                flush: true
            }]
        );
    }

    #[test]
    fn extra_ases_are_deleted_with_flush_and_deleted_ones_revived() {
        let k = key("192.0.2.1", 6, 80);
        let d = desired(vec![dvip(
            "web",
            k,
            false,
            &[("10.0.0.1", 100, false), ("10.0.0.3", 70, false)],
        )]);
        let mut a = mirror(&d);
        let v = a.vips.get_mut(&k).unwrap();
        v.ases.insert(
            ip("10.0.0.2"),
            ActualAs {
                weight: 100,
                in_use: true,
                buckets: 0,
                flows: 0,
            },
        );
        v.ases.get_mut(&ip("10.0.0.3")).unwrap().in_use = false;
        v.ases.insert(
            ip("10.0.0.4"),
            ActualAs {
                weight: 100,
                in_use: false,
                buckets: 0,
                flows: 0,
            },
        );
        let ops = diff(&d, &a, &Scope::All, &none());
        assert_eq!(
            ops,
            // Make before break: the revived AS before the deletion.
            vec![
                Op::AddAs {
                    vip: k,
                    addr: ip("10.0.0.3"),
                    weight: 70
                },
                Op::DelAs {
                    vip: k,
                    addr: ip("10.0.0.2"),
                    flush: true
                },
            ]
        );
    }

    #[test]
    fn sticky_or_encap_change_recreates_the_vip() {
        let k = key("192.0.2.1", 6, 80);
        let old = desired(vec![dvip("web", k, false, &[("10.0.0.1", 100, false)])]);
        let a = mirror(&old);
        let new = desired(vec![dvip("web", k, true, &[("10.0.0.1", 100, false)])]);
        let ops = diff(&new, &a, &Scope::All, &none());
        let s: Vec<String> = ops.iter().map(Op::to_string).collect();
        assert_eq!(
            s,
            vec![
                "as-del vip=192.0.2.1/32:6/80 as=10.0.0.1 flush=true",
                "vip-del vip=192.0.2.1/32:6/80",
                "vip-add vip=192.0.2.1/32:6/80 encap=gre4 src-ip-sticky=true",
                "as-add vip=192.0.2.1/32:6/80 as=10.0.0.1 weight=100",
            ]
        );
        // Backends flipped to IPv6: encap gre6.
        let v6 = desired(vec![dvip("web", k, false, &[("2001:db8::10", 100, false)])]);
        let ops = diff(&v6, &a, &Scope::All, &none());
        assert!(matches!(ops[2], Op::AddVip(s) if s.encap == Encap::Gre6));
        // Sticky unknown (scrape failed): no recreate.
        let mut unknown = a.clone();
        unknown.vips.get_mut(&k).unwrap().sticky = None;
        assert!(diff(&new, &unknown, &Scope::All, &none()).is_empty());
    }

    #[test]
    fn stale_vips_only_go_in_a_full_sync() {
        let keep = key("192.0.2.1", 6, 80);
        let stale = key("192.0.2.99", 6, 80);
        let d = desired(vec![dvip("web", keep, false, &[("10.0.0.1", 100, false)])]);
        let mut a = mirror(&d);
        let mut s = mirror(&desired(vec![dvip(
            "x",
            stale,
            false,
            &[("10.0.0.7", 100, false)],
        )]));
        a.vips.append(&mut s.vips);
        assert!(diff(&d, &a, &Scope::Frontends(["web".into()].into()), &none()).is_empty());
        assert_eq!(
            diff(&d, &a, &Scope::All, &none()),
            vec![
                Op::DelAs {
                    vip: stale,
                    addr: ip("10.0.0.7"),
                    flush: true
                },
                Op::DelVip(stale),
            ]
        );
    }

    #[test]
    fn targeted_scope_leaves_other_frontends_alone() {
        let a_key = key("192.0.2.1", 6, 80);
        let b_key = key("192.0.2.2", 6, 80);
        let d = desired(vec![
            dvip("a", a_key, false, &[("10.0.0.1", 100, false)]),
            dvip("b", b_key, false, &[("10.0.0.2", 100, false)]),
        ]);
        let ops = diff(
            &d,
            &Actual::default(),
            &Scope::Frontends(["b".into()].into()),
            &none(),
        );
        assert!(
            ops.iter().all(|o| !o.to_string().contains("192.0.2.1/")),
            "{ops:?}"
        );
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn lb_conf_only_when_it_differs() {
        let have = LbConfig {
            ip4_src: "192.0.2.254".parse().unwrap(),
            ip6_src: "2001:db8::fe".parse().unwrap(),
            sticky_buckets_per_core: 65536,
            flow_timeout: 40,
        };
        let mut d = Desired {
            conf: Some(ConfWanted {
                ip4_src: Some(have.ip4_src),
                ip6_src: None,
                sticky_buckets_per_core: 65536,
                flow_timeout: 40,
            }),
            vips: BTreeMap::new(),
        };
        let a = Actual {
            conf: Some(have),
            ..Actual::default()
        };
        assert!(diff(&d, &a, &Scope::All, &none()).is_empty());
        d.conf.as_mut().unwrap().flow_timeout = 30;
        let ops = diff(&d, &a, &Scope::All, &none());
        assert_eq!(
            ops,
            vec![Op::Conf(LbConfig {
                flow_timeout: 30,
                ..have
            })],
            "unset ip6 source keeps VPP's"
        );
    }

    #[test]
    fn desired_from_config_follows_the_original_rules() {
        let yaml = "maglev:
  vpp:
    lb: { ipv4-src-address: 192.0.2.254, ipv6-src-address: 2001:db8::fe }
  healthchecks:
    t: { type: tcp, port: 80 }
  backends:
    a: { address: 10.0.0.1, healthcheck: t }
    b: { address: 10.0.0.2, healthcheck: t }
    c: { address: 10.0.0.3, healthcheck: t }
  frontends:
    v6-vip-v4-backends:
      address: 2001:db8::1
      protocol: tcp
      port: 443
      src-ip-sticky: true
      pools:
        - name: p
          backends: { a: { weight: 40 }, b: {} }
        - name: f
          backends: { c: {} }
    any-port:
      address: 192.0.2.7
      port: 0
      pools:
        - name: p
          backends: { a: {} }
";
        let cfg = crate::config::parse(yaml, Path::new("t.yaml")).expect("valid");
        let d = desired_from(&cfg, &Scope::All, |fe| {
            Some(match fe {
                "v6-vip-v4-backends" => vec![
                    ("a".into(), 40, false),
                    ("b".into(), 0, true),
                    ("c".into(), 0, false),
                ],
                _ => vec![("a".into(), 100, false)],
            })
        });
        let v = &d.vips[&key("2001:db8::1", 6, 443)];
        assert_eq!(
            v.spec.encap,
            Encap::Gre4,
            "encap follows the backends' family"
        );
        assert!(v.spec.src_ip_sticky);
        assert_eq!(v.spec.new_flows_table_length, 1024);
        assert_eq!(
            v.ases[&ip("10.0.0.2")],
            DesiredAs {
                weight: 0,
                flush: true
            }
        );
        let any = &d.vips[&key("192.0.2.7", 255, 0)];
        assert_eq!(any.ases.len(), 1);
        assert_eq!(
            d.conf.unwrap().sticky_buckets_per_core,
            cfg.vpp.lb.sticky_buckets_per_core
        );
    }

    #[test]
    fn parses_show_lb_vips_verbose() {
        let text = " ip4-gre4 [1] 192.0.2.1/32 src_ip_sticky
  new_size:1024
  protocol:6 port:80
  counters:
    packet from existing sessions: 18342
    first session packet: 211
    untracked packet: 0
    no server configured: 0
  #as:1
    10.0.0.1 weight:50 buckets:1024 flows:37 dpo:14 used

 ip6-gre6 [2] 2001:db8::1/128 removed
  new_size:1024
  protocol:17 port:53
  counters:
    packet from existing sessions: 0
    first session packet: 5
    untracked packet: 0
    no server configured: 0
  #as:0

 ip4-l3dsr [3] 198.51.100.7/32
  new_size:1024
  dscp:34
  counters:
    packet from existing sessions: 0
    first session packet: 0
    untracked packet: 0
    no server configured: 96
  #as:0

";
        let got: Vec<(LbVip, u32, bool, bool)> = parse_vips_verbose(text)
            .iter()
            .map(|v| (v.key, v.index, v.sticky, v.removed))
            .collect();
        assert_eq!(
            got,
            vec![
                (key("192.0.2.1", 6, 80), 1, true, false),
                (key("2001:db8::1", 17, 53), 2, false, true),
                (key("198.51.100.7", 255, 0), 3, false, false),
            ]
        );
        assert_eq!(
            parse_vips_verbose(text)[0].ases,
            vec![VerboseAs {
                addr: ip("10.0.0.1"),
                flows: 37,
                used: true
            }]
        );
    }

    fn as_row(vip: LbVip, addr: &str, weight: u8, in_use: bool, buckets: u32) -> LbAsV2Details {
        LbAsV2Details {
            context: 0,
            vip,
            app_srv: ip(addr),
            flags: u8::from(in_use),
            in_use_since: 0,
            weight,
            num_buckets: buckets,
        }
    }

    fn block(vip: LbVip, index: u32, removed: bool, ases: &[(&str, u32, bool)]) -> String {
        let mut s = format!(
            " ip4-gre4 [{index}] {}{}\n  new_size:1024\n  protocol:{} port:{}\n  #as:{}\n",
            vip.pfx,
            if removed { " removed" } else { "" },
            vip.protocol,
            vip.port,
            ases.len()
        );
        for (a, flows, used) in ases {
            s.push_str(&format!(
                "    {a} weight:100 buckets:0 flows:{flows} dpo:1 {}\n",
                if *used { "used" } else { " removed" }
            ));
        }
        s + "\n"
    }

    /// A VIP deleted and re-added with the same key: VPP's dump gives the
    /// old one's ASes (flags 0) under the same key; the CLI's pool indexes
    /// say they are not the live VIP's.
    #[test]
    fn ases_of_a_deleted_vip_with_the_live_key_are_orphans() {
        let k = key("192.0.2.1", 6, 80);
        let vip = LbVipDetails {
            context: 0,
            vip: k,
            encap: Encap::Gre4,
            dscp: 0,
            srv_type: 0,
            target_port: 0,
            flow_table_length: 4096,
        };
        // Slot 1: the deleted VIP (a and b); slot 2: the live one (a, and
        // c deleted from it a moment ago).
        let rows = [
            as_row(k, "10.0.0.1", 100, false, 0),
            as_row(k, "10.0.0.2", 50, false, 0),
            as_row(k, "10.0.0.1", 100, true, 4096),
            as_row(k, "10.0.0.3", 100, false, 0),
        ];
        let text = block(
            k,
            1,
            true,
            &[("10.0.0.1", 5, false), ("10.0.0.2", 6, false)],
        ) + &block(
            k,
            2,
            false,
            &[("10.0.0.1", 7, true), ("10.0.0.3", 0, false)],
        );
        let a = actual_from(None, std::slice::from_ref(&vip), &rows, Some(&text));
        let v = &a.vips[&k];
        assert_eq!(v.index, Some(2));
        let ases: Vec<(IpAddr, bool, u32)> = v
            .ases
            .iter()
            .map(|(a, x)| (*a, x.in_use, x.flows))
            .collect();
        assert_eq!(
            ases,
            vec![(ip("10.0.0.1"), true, 7), (ip("10.0.0.3"), false, 0)],
            "10.0.0.2 was never an AS of the live VIP"
        );
        let orphans: Vec<(u32, IpAddr, u8, u32)> = a
            .orphans
            .iter()
            .map(|o| (o.index, o.addr, o.weight, o.flows))
            .collect();
        assert_eq!(
            orphans,
            vec![(1, ip("10.0.0.1"), 100, 5), (1, ip("10.0.0.2"), 50, 6)]
        );
        // The dump and the CLI disagree (VPP changed in between): by key.
        let a = actual_from(None, std::slice::from_ref(&vip), &rows[..3], Some(&text));
        assert!(a.orphans.is_empty());
        assert!(a.vips[&k].ases.contains_key(&ip("10.0.0.2")));
        // Without the CLI: by key, as before.
        let a = actual_from(None, &[vip], &rows, None);
        assert_eq!(a.vips[&k].ases.len(), 3);
        assert_eq!(a.vips[&k].index, None);
    }

    #[test]
    fn drift_compares_buckets_with_maglev() {
        let k = key("192.0.2.1", 6, 80);
        let d = desired(vec![dvip(
            "web",
            k,
            false,
            &[("10.0.0.1", 50, false), ("10.0.0.2", 100, false)],
        )]);
        let mut a = mirror(&d);
        let v = a.vips.get_mut(&k).unwrap();
        v.ases.get_mut(&ip("10.0.0.1")).unwrap().buckets = 350;
        v.ases.get_mut(&ip("10.0.0.2")).unwrap().buckets = 674;
        assert!(drift(&a).is_empty());
        a.vips
            .get_mut(&k)
            .unwrap()
            .ases
            .get_mut(&ip("10.0.0.2"))
            .unwrap()
            .buckets = 600;
        assert_eq!(drift(&a), vec![(k, ip("10.0.0.2"), 600, 674)]);
    }
}
