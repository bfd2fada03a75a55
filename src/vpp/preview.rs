//! What a change would do to VPP, before anyone makes it: the operations a
//! sync would send, and how many of each VIP's new flows would go
//! elsewhere. Pure: the same [`lb::diff`] the reconciler runs, the same
//! record of VPP it keeps ([`Actual::apply`]), and the Maglev table VPP
//! builds ([`maglev::build_table`]) before and after.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::lb::{self, Actual, ActualVip, Desired, FlushRequests, Op, Scope};
use super::maglev::{self, Member};
use super::wire::LbVip;

/// Buckets whose AS would change, over the flow-hash space of a VIP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Buckets compared (the larger of the two tables).
    pub buckets: usize,
    /// Moved to or from an AS whose weight changed.
    pub necessary: usize,
    /// Moved between ASes the change did not touch.
    pub collateral: usize,
}

impl Moved {
    /// Percent of new flows that `n` buckets carry.
    pub fn percent(&self, n: usize) -> f64 {
        if self.buckets == 0 {
            0.0
        } else {
            n as f64 * 100.0 / self.buckets as f64
        }
    }
}

/// One AS of a VIP, before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsPlan {
    /// Address.
    pub addr: IpAddr,
    /// In-use weight now (`None`: not an AS of the VIP, or removed).
    pub weight_before: Option<u8>,
    /// In-use weight after.
    pub weight_after: Option<u8>,
    /// New-flow buckets now.
    pub buckets_before: u32,
    /// New-flow buckets after.
    pub buckets_after: u32,
}

impl AsPlan {
    /// Whether the change touches this AS.
    pub fn changed(&self) -> bool {
        self.weight_before.unwrap_or(0) != self.weight_after.unwrap_or(0)
    }
}

/// What a change does to one VIP.
#[derive(Debug, Clone, PartialEq)]
pub struct VipPlan {
    /// The VIP.
    pub key: LbVip,
    /// The frontend it belongs to (`None`: a stale VIP a full sync removes).
    pub frontend: Option<String>,
    /// The operations for it, in the order they are sent.
    pub ops: Vec<Op>,
    /// Deleted and added again (table length, encapsulation or
    /// stickiness changed): its established flows are cut.
    pub recreated: bool,
    /// Table length now (`None`: no such VIP yet).
    pub table_before: Option<u32>,
    /// Table length after (`None`: removed).
    pub table_after: Option<u32>,
    /// Every AS now or after, in address order.
    pub ases: Vec<AsPlan>,
    /// The buckets that change hands.
    pub moved: Moved,
    /// Table fingerprint now ([`maglev::fingerprint`]).
    pub fingerprint_before: Option<String>,
    /// And after.
    pub fingerprint_after: Option<String>,
}

/// What a change does to VPP.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The `lb_conf` to send first, if any.
    pub conf: Option<Op>,
    /// The VIPs that change, in the order their operations are sent.
    pub vips: Vec<VipPlan>,
}

impl Plan {
    /// Every operation, in the order a sync sends them.
    pub fn ops(&self) -> Vec<Op> {
        self.conf
            .iter()
            .copied()
            .chain(self.vips.iter().flat_map(|v| v.ops.iter().copied()))
            .collect()
    }
}

/// The VIP an operation is about (`None` for `lb_conf`).
fn vip_of(op: &Op) -> Option<LbVip> {
    match *op {
        Op::Conf(_) => None,
        Op::AddVip(s) => Some(s.key),
        Op::DelVip(k) => Some(k),
        Op::AddAs { vip, .. } | Op::DelAs { vip, .. } | Op::SetWeight { vip, .. } => Some(vip),
    }
}

/// The in-use ASes of a VIP as Maglev members, with their table.
fn table(v: Option<&ActualVip>) -> Option<(Vec<Member>, Vec<Option<usize>>)> {
    let v = v?;
    let size = v.table_len as usize;
    if !size.is_power_of_two() {
        return None;
    }
    let members: Vec<Member> = v
        .ases
        .iter()
        .filter(|(_, a)| a.in_use)
        .map(|(addr, a)| Member {
            addr: *addr,
            weight: a.weight,
        })
        .collect();
    let t = maglev::build_table(&members, size);
    Some((members, t))
}

/// Which buckets change hands between two tables, comparing each flow hash
/// `h` at `h & (len - 1)` in each (tables of different lengths included;
/// an absent table sends every flow nowhere). A move is necessary when
/// either AS is in `changed`, collateral otherwise.
pub fn moved(
    before: Option<(&[Member], &[Option<usize>])>,
    after: Option<(&[Member], &[Option<usize>])>,
    changed: &BTreeSet<IpAddr>,
) -> Moved {
    let len = |t: Option<(&[Member], &[Option<usize>])>| t.map_or(0, |(_, t)| t.len());
    let n = len(before).max(len(after));
    let owner = |t: Option<(&[Member], &[Option<usize>])>, i: usize| -> Option<IpAddr> {
        let (m, t) = t?;
        t[i & (t.len() - 1)].map(|x| m[x].addr)
    };
    let mut out = Moved {
        buckets: n,
        ..Moved::default()
    };
    for i in 0..n {
        let (a, b) = (owner(before, i), owner(after, i));
        if a == b {
            continue;
        }
        let touched = |x: Option<IpAddr>| x.is_some_and(|x| changed.contains(&x));
        if touched(a) || touched(b) {
            out.necessary += 1;
        } else {
            out.collateral += 1;
        }
    }
    out
}

fn weights(v: Option<&ActualVip>) -> BTreeMap<IpAddr, u8> {
    v.map(|v| {
        v.ases
            .iter()
            .filter(|(_, a)| a.in_use)
            .map(|(ip, a)| (*ip, a.weight))
            .collect()
    })
    .unwrap_or_default()
}

type Built = Option<(Vec<Member>, Vec<Option<usize>>)>;

fn view(t: &Built) -> Option<(&[Member], &[Option<usize>])> {
    t.as_ref().map(|(m, t)| (m.as_slice(), t.as_slice()))
}

fn counts(t: &Option<(Vec<Member>, Vec<Option<usize>>)>) -> BTreeMap<IpAddr, u32> {
    let mut out = BTreeMap::new();
    if let Some((m, t)) = t {
        for x in t.iter().flatten() {
            *out.entry(m[*x].addr).or_insert(0) += 1;
        }
    }
    out
}

/// What syncing `desired` within `scope` would do to `actual`.
pub fn plan(desired: &Desired, actual: &Actual, scope: &Scope, flushes: &FlushRequests) -> Plan {
    let ops = lb::diff(desired, actual, scope, flushes);
    let mut after = actual.clone();
    let mut out = Plan::default();
    let mut order: Vec<LbVip> = Vec::new();
    let mut by_vip: BTreeMap<LbVip, Vec<Op>> = BTreeMap::new();
    for op in &ops {
        after.apply(op);
        match vip_of(op) {
            None => out.conf = Some(*op),
            Some(k) => {
                if !by_vip.contains_key(&k) {
                    order.push(k);
                }
                by_vip.entry(k).or_default().push(*op);
            }
        }
    }
    for key in order {
        let ops = by_vip.remove(&key).unwrap_or_default();
        let (b, a) = (actual.vips.get(&key), after.vips.get(&key));
        let (tb, ta) = (table(b), table(a));
        let (wb, wa) = (weights(b), weights(a));
        let (cb, ca) = (counts(&tb), counts(&ta));
        let addrs: BTreeSet<IpAddr> = wb.keys().chain(wa.keys()).copied().collect();
        let ases: Vec<AsPlan> = addrs
            .iter()
            .map(|ip| AsPlan {
                addr: *ip,
                weight_before: wb.get(ip).copied(),
                weight_after: wa.get(ip).copied(),
                buckets_before: cb.get(ip).copied().unwrap_or(0),
                buckets_after: ca.get(ip).copied().unwrap_or(0),
            })
            .collect();
        let changed: BTreeSet<IpAddr> = ases
            .iter()
            .filter(|a| a.changed())
            .map(|a| a.addr)
            .collect();
        let print = |t: &Option<(Vec<Member>, Vec<Option<usize>>)>| {
            t.as_ref().map(|(m, t)| maglev::fingerprint_of(m, t))
        };
        out.vips.push(VipPlan {
            key,
            frontend: desired.vips.get(&key).map(|d| d.frontend.clone()),
            recreated: ops.iter().any(|o| matches!(o, Op::DelVip(_)))
                && ops.iter().any(|o| matches!(o, Op::AddVip(_))),
            ops,
            table_before: b.map(|v| v.table_len),
            table_after: a.map(|v| v.table_len),
            moved: moved(view(&tb), view(&ta), &changed),
            fingerprint_before: print(&tb),
            fingerprint_after: print(&ta),
            ases,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vpp::client::VipSpec;
    use crate::vpp::lb::{DesiredAs, DesiredVip};
    use crate::vpp::wire::{Encap, Prefix};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn vip(ases: &[(IpAddr, u8)], len: u32) -> (LbVip, DesiredVip) {
        let key = LbVip {
            pfx: Prefix::host(ip("192.0.2.1")),
            protocol: 6,
            port: 80,
        };
        let d = DesiredVip {
            frontend: "web".into(),
            spec: VipSpec {
                key,
                encap: Encap::Gre4,
                src_ip_sticky: false,
                new_flows_table_length: len,
            },
            ases: ases
                .iter()
                .map(|(a, w)| {
                    (
                        *a,
                        DesiredAs {
                            weight: *w,
                            flush: *w == 0,
                        },
                    )
                })
                .collect(),
        };
        (key, d)
    }

    fn desired(v: (LbVip, DesiredVip)) -> Desired {
        Desired {
            conf: None,
            vips: BTreeMap::from([v]),
        }
    }

    /// VPP's table built the way PROTOCOL.md §9.2 words it, written apart
    /// from `maglev::build_table`: every element's whole permutation is
    /// listed first, then entries are claimed round robin.
    fn independent_table(ases: &[(IpAddr, u8)], m: usize) -> Vec<Option<IpAddr>> {
        let mut elems: Vec<(u8, [u8; 16], IpAddr)> = Vec::new();
        for (a, w) in ases {
            let b = match a {
                IpAddr::V4(v) => {
                    let mut b = [0u8; 16];
                    b[12..].copy_from_slice(&v.octets());
                    b
                }
                IpAddr::V6(v) => v.octets(),
            };
            for r in 0..*w {
                elems.push((r, b, *a));
            }
        }
        elems.sort_by_key(|x| (x.0, x.1));
        let perms: Vec<Vec<usize>> = elems
            .iter()
            .map(|(r, b, _)| {
                let lo = u64::from_le_bytes(b[..8].try_into().unwrap());
                let hi = u64::from_le_bytes(b[8..].try_into().unwrap());
                let seed = maglev::clib_xxhash(lo ^ hi ^ u64::from(*r));
                let mask = (m - 1) as u64;
                let skip = ((seed & 0xffff_ffff) | 1) & mask;
                let offset = (seed >> 32) & mask;
                (0..m as u64 * 4)
                    .map(|j| ((offset + j * skip) & mask) as usize)
                    .collect()
            })
            .collect();
        let mut next = vec![0usize; elems.len()];
        let mut table: Vec<Option<IpAddr>> = vec![None; m];
        let mut filled = 0;
        while filled < m && !elems.is_empty() {
            for (e, (_, _, addr)) in elems.iter().enumerate() {
                while table[perms[e][next[e]]].is_some() {
                    next[e] += 1;
                }
                table[perms[e][next[e]]] = Some(*addr);
                filled += 1;
                if filled == m {
                    break;
                }
            }
        }
        table
    }

    /// Removing one AS of N: the buckets it held move of necessity, and
    /// Maglev moves a few others between the remaining ASes; both counted
    /// against the independent construction.
    #[test]
    fn collateral_of_removing_one_as_matches_an_independent_count() {
        for n in [5usize, 10, 32] {
            let ases: Vec<(IpAddr, u8)> = (1..=n)
                .map(|i| (ip(&format!("10.0.{}.{}", i / 200, i % 200 + 1)), 100))
                .collect();
            let gone = ases[n / 2].0;
            let rest: Vec<(IpAddr, u8)> = ases.iter().copied().filter(|a| a.0 != gone).collect();
            let before = independent_table(&ases, 1024);
            let after = independent_table(&rest, 1024);
            let (mut necessary, mut collateral) = (0, 0);
            for (a, b) in before.iter().zip(&after) {
                if a == b {
                    continue;
                }
                if *a == Some(gone) {
                    necessary += 1;
                } else {
                    collateral += 1;
                }
            }
            let now = Actual::predicted(&desired(vip(&ases, 1024)));
            let (key, mut d) = vip(&ases, 1024);
            *d.ases.get_mut(&gone).unwrap() = DesiredAs {
                weight: 0,
                flush: true,
            };
            let p = plan(
                &desired((key, d)),
                &now,
                &Scope::All,
                &FlushRequests::default(),
            );
            assert_eq!(p.vips.len(), 1);
            let v = &p.vips[0];
            assert_eq!(
                v.ops,
                vec![Op::SetWeight {
                    vip: key,
                    addr: gone,
                    weight: 0,
                    flush: true
                }]
            );
            assert_eq!(v.moved.buckets, 1024);
            assert_eq!(
                (v.moved.necessary, v.moved.collateral),
                (necessary, collateral),
                "n={n}"
            );
            assert!(collateral > 0, "Maglev is not perfectly stable: n={n}");
            let held = v.ases.iter().find(|a| a.addr == gone).unwrap();
            assert_eq!(held.buckets_before as usize, necessary);
            assert_eq!(held.buckets_after, 0);
            assert_eq!(
                v.ases.iter().map(|a| a.buckets_after).sum::<u32>(),
                1024,
                "every bucket has an AS after"
            );
        }
    }

    #[test]
    fn nothing_to_do_is_an_empty_plan_and_a_new_vip_moves_everything() {
        let ases = [(ip("10.0.0.1"), 100), (ip("10.0.0.2"), 100)];
        let d = desired(vip(&ases, 1024));
        let now = Actual::predicted(&d);
        assert_eq!(
            plan(&d, &now, &Scope::All, &FlushRequests::default()),
            Plan::default()
        );
        let p = plan(
            &d,
            &Actual::default(),
            &Scope::All,
            &FlushRequests::default(),
        );
        let v = &p.vips[0];
        assert_eq!(v.ops.len(), 3, "add VIP, two ASes");
        assert_eq!((v.moved.necessary, v.moved.collateral), (1024, 0));
        assert_eq!(v.table_before, None);
        assert_eq!(
            p.ops(),
            lb::diff(
                &d,
                &Actual::default(),
                &Scope::All,
                &FlushRequests::default()
            )
        );
    }

    /// A bigger table: each flow hash keeps its AS only where both tables
    /// agree at its position; the VIP is recreated.
    #[test]
    fn a_table_length_change_recreates_and_compares_over_the_hash_space() {
        let ases = [(ip("10.0.0.1"), 100), (ip("10.0.0.2"), 50)];
        let now = Actual::predicted(&desired(vip(&ases, 1024)));
        let p = plan(
            &desired(vip(&ases, 4096)),
            &now,
            &Scope::All,
            &FlushRequests::default(),
        );
        let v = &p.vips[0];
        assert!(v.recreated);
        assert_eq!((v.table_before, v.table_after), (Some(1024), Some(4096)));
        assert_eq!(v.moved.buckets, 4096);
        assert_eq!(v.moved.necessary, 0, "no weight changed");
        assert!(v.moved.collateral > 0 && v.moved.collateral < 4096);
        assert_ne!(v.fingerprint_before, v.fingerprint_after);
    }
}
