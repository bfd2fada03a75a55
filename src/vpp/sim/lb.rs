//! The lb plugin's data model as the simulator keeps it: VIP and AS pools
//! with VPP's slot reuse, the checks and error codes in VPP's order, the
//! quirks maglevd must survive, and the CLI text (PROTOCOL.md §7.5, 9, 10).
//!
//! No I/O: the server feeds it decoded requests with the time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::vpp::maglev::{self, Member, internal};
use crate::vpp::wire::{Encap, FibPath, IpRoute, LbVip, Prefix};

/// Bytes the simulator counts per packet of injected traffic.
pub const ROUTE_BYTES_PER_PACKET: u64 = 100;

/// `VNET_API_ERROR_NO_SUCH_FIB`.
pub const NO_SUCH_FIB: i32 = -3;
/// `VNET_API_ERROR_NO_SUCH_ENTRY`.
pub const NO_SUCH_ENTRY: i32 = -6;
/// `VNET_API_ERROR_INVALID_MEMORY_SIZE`.
pub const INVALID_MEMORY_SIZE: i32 = -70;
/// `VNET_API_ERROR_INVALID_ARGUMENT`.
pub const INVALID_ARGUMENT: i32 = -73;
/// `VNET_API_ERROR_VALUE_EXIST`.
pub const VALUE_EXIST: i32 = -81;
/// `VNET_API_ERROR_INVALID_ADDRESS_FAMILY`.
pub const INVALID_ADDRESS_FAMILY: i32 = -97;

/// A vppinfra pool: freed slots are reused most-recent-first.
#[derive(Debug, Clone)]
struct Pool<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Pool<T> {
    fn new() -> Pool<T> {
        Pool {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    fn alloc(&mut self, v: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(v);
                i
            }
            None => {
                self.slots.push(Some(v));
                self.slots.len() - 1
            }
        }
    }

    fn free_slot(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i) {
            if s.take().is_some() {
                self.free.push(i);
            }
        }
    }

    fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i).and_then(Option::as_mut)
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|v| (i, v)))
    }

    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// VPP's VIP types (family of the VIP, then encapsulation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipType {
    /// IPv6 VIP, GRE6.
    Ip6Gre6,
    /// IPv6 VIP, GRE4.
    Ip6Gre4,
    /// IPv4 VIP, GRE6.
    Ip4Gre6,
    /// IPv4 VIP, GRE4.
    Ip4Gre4,
    /// IPv4 VIP, L3DSR.
    Ip4L3dsr,
    /// IPv4 VIP, NAT4.
    Ip4Nat4,
    /// IPv6 VIP, NAT6.
    Ip6Nat6,
}

impl VipType {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            VipType::Ip6Gre6 => "ip6-gre6",
            VipType::Ip6Gre4 => "ip6-gre4",
            VipType::Ip4Gre6 => "ip4-gre6",
            VipType::Ip4Gre4 => "ip4-gre4",
            VipType::Ip4L3dsr => "ip4-l3dsr",
            VipType::Ip4Nat4 => "ip4-nat4",
            VipType::Ip6Nat6 => "ip6-nat6",
        }
    }

    fn encap(self) -> Encap {
        match self {
            VipType::Ip6Gre4 | VipType::Ip4Gre4 => Encap::Gre4,
            VipType::Ip6Gre6 | VipType::Ip4Gre6 => Encap::Gre6,
            VipType::Ip4L3dsr => Encap::L3dsr,
            VipType::Ip4Nat4 => Encap::Nat4,
            VipType::Ip6Nat6 => Encap::Nat6,
        }
    }

    /// Whether ASes of this VIP type must be IPv4.
    fn wants_ipv4_as(self) -> bool {
        matches!(
            self,
            VipType::Ip6Gre4 | VipType::Ip4Gre4 | VipType::Ip4L3dsr | VipType::Ip4Nat4
        )
    }

    /// The type VPP derives from the prefix family and `encap`: IPv6 turns
    /// L3DSR, NAT4 and unknown values silently into GRE6; IPv4 has no
    /// type for NAT6 or unknown values (`None`: rejected later with -97).
    fn derive(v6: bool, encap: u32) -> Option<VipType> {
        match (v6, encap) {
            (false, 0) => Some(VipType::Ip4Gre4),
            (false, 1) => Some(VipType::Ip4Gre6),
            (false, 2) => Some(VipType::Ip4L3dsr),
            (false, 3) => Some(VipType::Ip4Nat4),
            (false, _) => None,
            (true, 0) => Some(VipType::Ip6Gre4),
            (true, 4) => Some(VipType::Ip6Nat6),
            (true, _) => Some(VipType::Ip6Gre6),
        }
    }
}

/// Per-VIP counters, in the stats segment's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VipCounters {
    /// Packets that hit a sticky entry.
    pub existing_sessions: u64,
    /// New flows assigned to an AS.
    pub first_packet: u64,
    /// Packets whose flow could not be stored.
    pub untracked: u64,
    /// New flows with no server (dropped).
    pub no_server: u64,
}

#[derive(Debug, Clone)]
struct Vip {
    pfx: Prefix,
    protocol: u8,
    port: u16,
    vtype: VipType,
    dscp: u8,
    table_len: u32,
    sticky: bool,
    in_use: bool,
    as_slots: Pool<usize>,
    counters: VipCounters,
}

#[derive(Debug, Clone)]
struct As {
    addr: IpAddr,
    vip: usize,
    weight: u8,
    in_use: bool,
    deleted_at: Option<Instant>,
    in_use_since: u32,
    buckets: u32,
    dpo: u32,
}

/// One entry of the sticky flow table (one worker's, as the simulator
/// has one worker).
#[derive(Debug, Clone)]
struct StickyEntry {
    /// The flow (the simulator's stand-in for its 5-tuple hash).
    flow: u64,
    vip: usize,
    /// AS pool index it is pinned to.
    as_index: usize,
    /// Last packet.
    last: Instant,
}

/// Entries per sticky bucket (VPP's `LBHASH_ENTRY_PER_BUCKET`).
const STICKY_ENTRIES_PER_BUCKET: usize = 4;

/// What `vppsim flows` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowReport {
    /// New flows pinned to an AS.
    pub new: u64,
    /// Packets of flows already pinned (entry refreshed).
    pub hit: u64,
    /// New flows forwarded but not stored (their bucket was full of live
    /// entries).
    pub untracked: u64,
    /// New flows with no AS to go to.
    pub no_server: u64,
}

/// The lb plugin state of one simulated VPP.
#[derive(Debug, Clone)]
pub struct LbState {
    ip4_src: Ipv4Addr,
    ip6_src: Ipv6Addr,
    sticky_buckets: u32,
    flow_timeout: u32,
    vips: Pool<Vip>,
    ases: Pool<As>,
    routes: BTreeMap<Prefix, u32>,
    next_stats_index: u32,
    next_dpo: u32,
    gc_delay: Duration,
    started: Instant,
    route_traffic: BTreeMap<u32, (u64, u64)>,
    /// The worker's sticky table: `sticky_buckets` × 4 entries, created at
    /// the first packet with the sizes and idle timeout of that moment.
    sticky_table: Vec<Option<StickyEntry>>,
    /// The idle timeout copied into the table when it was created.
    sticky_timeout: Duration,
}

/// The settings `lb_conf_get` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conf {
    /// GRE4 outer source.
    pub ip4_src: Ipv4Addr,
    /// GRE6 outer source.
    pub ip6_src: Ipv6Addr,
    /// Sticky buckets per worker.
    pub sticky_buckets_per_core: u32,
    /// Sticky idle timeout in seconds.
    pub flow_timeout: u32,
}

/// One VIP as dumps report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipView {
    /// Pool index (stats counter index).
    pub index: usize,
    /// Key.
    pub key: LbVip,
    /// Encap as dumped.
    pub encap: Encap,
    /// DSCP.
    pub dscp: u8,
    /// Buckets.
    pub table_len: u32,
    /// Sticky flag.
    pub sticky: bool,
    /// False for deleted, not yet collected.
    pub in_use: bool,
    /// Counters.
    pub counters: VipCounters,
}

/// One AS as dumps report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsView {
    /// Its VIP.
    pub vip: LbVip,
    /// Address.
    pub addr: IpAddr,
    /// Bit 0 = in use.
    pub flags: u8,
    /// Seconds since start at deletion.
    pub in_use_since: u32,
    /// Weight.
    pub weight: u8,
    /// New-flow table entries.
    pub buckets: u32,
}

/// An address as VPP's lb plugin holds it. VPP keeps every address in a
/// 16-byte `ip46_address_t` and, by `ip46_address_is_ip4`, calls one whose
/// first 12 bytes are zero IPv4: an IPv6 `::1` or `::2:1` is 0.0.0.1 or
/// 0.0.2.1 to it (refused on an IPv6-encap VIP with -97, taken as an IPv4
/// AS on a GRE4 one, and dumped back as IPv4), while `::ffff:1.2.3.4` and
/// `fd00::1` stay IPv6 (PROTOCOL.md §7, measured on VPP 26.10-rc0).
pub fn ip46(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) if a.octets()[..12].iter().all(|&b| b == 0) => {
            let o = a.octets();
            IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        }
        a => a,
    }
}

/// A VIP prefix as VPP's lb plugin holds it: `ip46_prefix_is_ip4` (lb's
/// util.h) calls a prefix IPv4 when its length is 96 or more and its
/// address is IPv4 by [`ip46`], so an IPv6 VIP inside ::/96 becomes an
/// IPv4 VIP of length - 96 (typed ip4-*, and dumped as IPv4).
pub fn ip46_prefix(p: Prefix) -> Prefix {
    match (p.addr, ip46(p.addr)) {
        (IpAddr::V6(_), v4 @ IpAddr::V4(_)) if p.len >= 96 => Prefix {
            addr: v4,
            len: p.len - 96,
        },
        _ => p,
    }
}

/// The raw 16-byte union of an address as a request carries it.
fn raw_union(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// An address as VPP's `%U format_ip46_address` prints it.
pub fn fmt_ip(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => fmt_ip6(a),
    }
}

/// IPv6 as VPP prints it: lowercase, no leading zeros, the first longest
/// run of two or more zero groups as `::`, never dotted IPv4.
pub fn fmt_ip6(a: Ipv6Addr) -> String {
    let g = a.segments();
    let (mut best, mut best_len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        if g[i] == 0 {
            let start = i;
            while i < 8 && g[i] == 0 {
                i += 1;
            }
            if i - start > best_len && i - start >= 2 {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    let hex = |s: &[u16]| {
        s.iter()
            .map(|x| format!("{x:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best == usize::MAX {
        return hex(&g);
    }
    format!("{}::{}", hex(&g[..best]), hex(&g[best + best_len..]))
}

fn fmt_prefix(p: &Prefix) -> String {
    format!("{}/{}", fmt_ip(p.addr), p.len)
}

/// What `lb_add_del_vip(_v2)` carries to add a VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipArgs {
    /// Prefix.
    pub pfx: Prefix,
    /// Protocol (255: any).
    pub protocol: u8,
    /// Port (0: all).
    pub port: u16,
    /// `lb_encap_type` as sent (GRE4 0, GRE6 1, L3DSR 2, NAT4 3, NAT6 4).
    pub encap: u32,
    /// L3DSR's DSCP.
    pub dscp: u8,
    /// New-flow table length.
    pub table_len: u32,
    /// Hash on the source address only.
    pub sticky: bool,
}

impl VipArgs {
    /// A GRE4 VIP with a 1024-bucket table, not sticky.
    pub fn new(pfx: Prefix, protocol: u8, port: u16) -> VipArgs {
        VipArgs {
            pfx,
            protocol,
            port,
            encap: 0,
            dscp: 0,
            table_len: 1024,
            sticky: false,
        }
    }
}

impl LbState {
    /// A freshly started VPP: all-ones sources, 1024 buckets, 40 s; objects
    /// deleted more than `gc_delay` ago are collected.
    pub fn new(gc_delay: Duration) -> LbState {
        let mut vips = Pool::new();
        // Slot 0: the permanent placeholder.
        vips.alloc(Vip {
            pfx: Prefix::any(),
            protocol: 255,
            port: 0,
            vtype: VipType::Ip4Gre4,
            dscp: 0,
            table_len: 0,
            sticky: false,
            in_use: false,
            as_slots: Pool::new(),
            counters: VipCounters::default(),
        });
        let mut ases = Pool::new();
        ases.alloc(As {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            vip: 0,
            weight: 0,
            in_use: false,
            deleted_at: None,
            in_use_since: 0,
            buckets: 0,
            dpo: 0,
        });
        LbState {
            ip4_src: Ipv4Addr::BROADCAST,
            ip6_src: Ipv6Addr::from(u128::MAX),
            sticky_buckets: 1024,
            flow_timeout: 40,
            vips,
            ases,
            routes: BTreeMap::new(),
            next_stats_index: 40,
            next_dpo: 14,
            gc_delay,
            started: Instant::now(),
            route_traffic: BTreeMap::new(),
            sticky_table: Vec::new(),
            sticky_timeout: Duration::ZERO,
        }
    }

    /// Packets of flows `first..first + count` to VIP `key` at `now`, as a
    /// worker handles them (PROTOCOL.md §9.3): a flow with a live sticky
    /// entry refreshes it and goes to its AS; a new one is hashed through
    /// the new-flow table and pinned in a free or expired slot of its
    /// bucket (an expired slot's old reference is then gone), or forwarded
    /// untracked when all four slots are live. `None`: no such VIP.
    pub fn flows(
        &mut self,
        key: &LbVip,
        first: u64,
        count: u64,
        now: Instant,
    ) -> Option<FlowReport> {
        let vi = self.find_vip(key.pfx, key.protocol, key.port)?;
        if self.sticky_table.is_empty() {
            let n = self.sticky_buckets.max(1) as usize * STICKY_ENTRIES_PER_BUCKET;
            self.sticky_table = vec![None; n];
            self.sticky_timeout = Duration::from_secs(u64::from(self.flow_timeout));
        }
        let timeout = self.sticky_timeout;
        let buckets = self.sticky_table.len() / STICKY_ENTRIES_PER_BUCKET;
        // The VIP's new-flow table, as AS pool indexes.
        let (table, live) = {
            let v = self.vips.get(vi)?;
            let (live, members) = self.live_members(vi);
            (maglev::build_table(&members, v.table_len as usize), live)
        };
        let mut r = FlowReport::default();
        for flow in first..first.saturating_add(count) {
            let h = maglev::clib_xxhash(flow);
            let b = (h as usize % buckets) * STICKY_ENTRIES_PER_BUCKET;
            let slots = b..b + STICKY_ENTRIES_PER_BUCKET;
            let expired = |e: &StickyEntry| now.saturating_duration_since(e.last) > timeout;
            if let Some(e) = self.sticky_table[slots.clone()]
                .iter_mut()
                .flatten()
                .find(|e| e.flow == flow && e.vip == vi && !expired(e))
            {
                e.last = now;
                r.hit += 1;
                continue;
            }
            let pick =
                (maglev::clib_xxhash(flow ^ 0x9e37_79b9_7f4a_7c15) as usize) % table.len().max(1);
            let Some(as_index) = table
                .get(pick)
                .copied()
                .flatten()
                .and_then(|m| live.get(m).copied())
            else {
                r.no_server += 1;
                continue;
            };
            let slot = slots
                .clone()
                .find(|&i| self.sticky_table[i].is_none())
                .or_else(|| {
                    slots
                        .clone()
                        .find(|&i| self.sticky_table[i].as_ref().is_some_and(expired))
                });
            match slot {
                Some(i) => {
                    self.sticky_table[i] = Some(StickyEntry {
                        flow,
                        vip: vi,
                        as_index,
                        last: now,
                    });
                    r.new += 1;
                }
                None => r.untracked += 1,
            }
        }
        if let Some(v) = self.vips.get_mut(vi) {
            v.counters.existing_sessions += r.hit;
            v.counters.first_packet += r.new + r.untracked;
            v.counters.untracked += r.untracked;
            v.counters.no_server += r.no_server;
        }
        Some(r)
    }

    /// Sticky entries referencing AS `ai`, expired ones included (VPP counts
    /// an expired entry until its slot is reused or flushed).
    fn flow_count(&self, ai: usize) -> usize {
        self.sticky_table
            .iter()
            .flatten()
            .filter(|e| e.as_index == ai)
            .count()
    }

    /// Flushing: the AS's sticky entries go (its flows are re-hashed).
    fn flush_as(&mut self, ai: usize) {
        for e in &mut self.sticky_table {
            if e.as_ref().is_some_and(|x| x.as_index == ai) {
                *e = None;
            }
        }
    }

    /// `lb_conf`.
    pub fn set_conf(&mut self, c: Conf) -> i32 {
        if c.sticky_buckets_per_core != u32::MAX && !is_pow2(c.sticky_buckets_per_core) {
            return INVALID_MEMORY_SIZE;
        }
        self.ip4_src = c.ip4_src;
        self.ip6_src = c.ip6_src;
        if c.sticky_buckets_per_core != u32::MAX {
            self.sticky_buckets = c.sticky_buckets_per_core;
        }
        if c.flow_timeout != u32::MAX {
            self.flow_timeout = c.flow_timeout;
        }
        0
    }

    /// `lb_conf_get`.
    pub fn conf(&self) -> Conf {
        Conf {
            ip4_src: self.ip4_src,
            ip6_src: self.ip6_src,
            sticky_buckets_per_core: self.sticky_buckets,
            flow_timeout: self.flow_timeout,
        }
    }

    fn key(pfx: Prefix, protocol: u8, port: u16) -> (Prefix, u8, u16) {
        let protocol = if port == 0 { 255 } else { protocol };
        (ip46_prefix(pfx).normalized(), protocol, port)
    }

    fn find_vip(&self, pfx: Prefix, protocol: u8, port: u16) -> Option<usize> {
        let (pfx, protocol, port) = Self::key(pfx, protocol, port);
        self.vips
            .iter()
            .skip(1)
            .find(|(_, v)| v.in_use && v.pfx == pfx && v.protocol == protocol && v.port == port)
            .map(|(i, _)| i)
    }

    /// `lb_add_del_vip(_v2)` with `is_del`: VPP reads only the key then.
    pub fn del_vip(&mut self, pfx: Prefix, protocol: u8, port: u16, now: Instant) -> i32 {
        self.collect(now);
        let Some(i) = self.find_vip(pfx, protocol, port) else {
            return NO_SUCH_ENTRY;
        };
        let since = self.uptime(now);
        let slots: Vec<usize> = self
            .vips
            .get(i)
            .map_or(Vec::new(), |v| v.as_slots.iter().map(|(_, &a)| a).collect());
        for a in slots {
            if let Some(a) = self.ases.get_mut(a) {
                if a.in_use {
                    a.in_use = false;
                    a.deleted_at = Some(now);
                    a.in_use_since = since;
                }
                a.buckets = 0;
            }
        }
        let vp = {
            let Some(v) = self.vips.get_mut(i) else {
                return NO_SUCH_ENTRY;
            };
            v.in_use = false;
            v.pfx
        };
        if !self.vips.iter().any(|(_, v)| v.in_use && v.pfx == vp) {
            self.routes.remove(&vp);
        }
        // The VIP itself goes when its AS slots are gone.
        self.collect(now);
        0
    }

    /// `lb_add_del_vip(_v2)` adding a VIP: the checks of §7.5 in VPP's
    /// order.
    pub fn add_vip(&mut self, v: &VipArgs, now: Instant) -> i32 {
        self.collect(now);
        let VipArgs {
            pfx,
            protocol,
            port,
            encap,
            dscp,
            table_len,
            sticky,
        } = *v;
        let (npfx, protocol, port) = Self::key(pfx, protocol, port);
        if self.find_vip(npfx, protocol, port).is_some() {
            return VALUE_EXIST;
        }
        let same_prefix: Vec<&Vip> = self
            .vips
            .iter()
            .skip(1)
            .filter(|(_, v)| v.in_use && v.pfx == npfx)
            .map(|(_, v)| v)
            .collect();
        if port != 0 && same_prefix.iter().any(|v| v.port == 0) {
            return VALUE_EXIST;
        }
        if port == 0 && same_prefix.iter().any(|v| v.port != 0) {
            return VALUE_EXIST;
        }
        let vtype = VipType::derive(npfx.addr.is_ipv6(), encap);
        if port != 0 && same_prefix.iter().any(|v| Some(v.vtype) != vtype) {
            return INVALID_ARGUMENT;
        }
        // VPP accepts 0 here and then tries to build a 2^32 table; the
        // simulator refuses it instead of exhausting memory.
        if !is_pow2(table_len) || table_len == 0 {
            return INVALID_MEMORY_SIZE;
        }
        let Some(vtype) = vtype else {
            return INVALID_ADDRESS_FAMILY;
        };
        let dscp = if vtype == VipType::Ip4L3dsr {
            dscp & 0x3f
        } else {
            0
        };
        self.vips.alloc(Vip {
            pfx: npfx,
            protocol,
            port,
            vtype,
            dscp,
            table_len,
            sticky,
            in_use: true,
            as_slots: Pool::new(),
            counters: VipCounters::default(),
        });
        if !self.routes.contains_key(&npfx) {
            self.routes.insert(npfx, self.next_stats_index);
            self.next_stats_index += 1;
        }
        0
    }

    fn uptime(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.started).as_secs() as u32
    }

    fn vip_as(&self, vip: usize, addr: IpAddr) -> Option<usize> {
        let v = self.vips.get(vip)?;
        v.as_slots
            .iter()
            .map(|(_, &a)| a)
            .find(|&a| self.ases.get(a).is_some_and(|x| x.addr == addr))
    }

    /// `lb_add_del_as(_v2)`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_del_as(
        &mut self,
        pfx: Prefix,
        protocol: u8,
        port: u16,
        addr: IpAddr,
        weight: u8,
        is_del: bool,
        is_flush: bool,
        now: Instant,
    ) -> i32 {
        self.collect(now);
        let Some(vi) = self.find_vip(pfx, protocol, port) else {
            return NO_SUCH_ENTRY;
        };
        let addr = ip46(addr);
        let existing = self.vip_as(vi, addr);
        if is_del {
            let Some(ai) = existing else {
                return NO_SUCH_ENTRY;
            };
            if is_flush {
                self.flush_as(ai);
            }
            let since = self.uptime(now);
            let Some(a) = self.ases.get_mut(ai) else {
                return NO_SUCH_ENTRY;
            };
            if a.in_use {
                a.in_use = false;
                a.deleted_at = Some(now);
                a.in_use_since = since;
            }
            self.rebuild(vi);
            return 0;
        }
        if let Some(ai) = existing {
            let a = self.ases.get_mut(ai).expect("listed");
            if a.in_use {
                return VALUE_EXIST;
            }
            a.in_use = true;
            a.deleted_at = None;
            a.weight = weight;
            self.rebuild(vi);
            return 0;
        }
        let Some(vtype) = self.vips.get(vi).map(|v| v.vtype) else {
            return NO_SUCH_ENTRY;
        };
        if vtype.wants_ipv4_as() != addr.is_ipv4() {
            return INVALID_ADDRESS_FAMILY;
        }
        let dpo = self.next_dpo;
        self.next_dpo += 1;
        let ai = self.ases.alloc(As {
            addr,
            vip: vi,
            weight,
            in_use: true,
            deleted_at: None,
            in_use_since: 0,
            buckets: 0,
            dpo,
        });
        if let Some(v) = self.vips.get_mut(vi) {
            v.as_slots.alloc(ai);
        }
        self.rebuild(vi);
        0
    }

    /// `lb_as_set_weight`.
    pub fn set_weight(
        &mut self,
        pfx: Prefix,
        protocol: u8,
        port: u16,
        addr: IpAddr,
        weight: u8,
        is_flush: bool,
    ) -> i32 {
        let Some(vi) = self.find_vip(pfx, protocol, port) else {
            return NO_SUCH_ENTRY;
        };
        let Some(ai) = self.vip_as(vi, ip46(addr)) else {
            return NO_SUCH_ENTRY;
        };
        let Some(a) = self.ases.get_mut(ai).filter(|a| a.in_use) else {
            return NO_SUCH_ENTRY;
        };
        a.weight = weight;
        if is_flush {
            self.flush_as(ai);
        }
        self.rebuild(vi);
        0
    }

    /// The in-use ASes of VIP `vi` (pool indexes, slot order) and their
    /// Maglev members: what its new-flow table is built from.
    fn live_members(&self, vi: usize) -> (Vec<usize>, Vec<Member>) {
        let Some(v) = self.vips.get(vi) else {
            return (Vec::new(), Vec::new());
        };
        let live: Vec<usize> = v
            .as_slots
            .iter()
            .map(|(_, &a)| a)
            .filter(|&a| self.ases.get(a).is_some_and(|x| x.in_use))
            .collect();
        let members = live
            .iter()
            .filter_map(|&a| self.ases.get(a))
            .map(|x| Member {
                addr: x.addr,
                weight: x.weight,
            })
            .collect();
        (live, members)
    }

    fn rebuild(&mut self, vi: usize) {
        let Some(v) = self.vips.get(vi) else { return };
        let slots: Vec<usize> = v.as_slots.iter().map(|(_, &a)| a).collect();
        let size = v.table_len as usize;
        let (live, members) = self.live_members(vi);
        let counts = maglev::bucket_counts(&members, size);
        for a in slots {
            if let Some(x) = self.ases.get_mut(a) {
                x.buckets = 0;
            }
        }
        for (a, c) in live.into_iter().zip(counts) {
            if let Some(x) = self.ases.get_mut(a) {
                x.buckets = c;
            }
        }
    }

    /// Garbage collection: frees AS slots deleted more than `gc_delay` ago
    /// and deleted VIPs left without AS slots, in increasing index order.
    pub fn collect(&mut self, now: Instant) {
        let expired: Vec<usize> = self
            .ases
            .iter()
            .skip(1)
            .filter(|(_, a)| {
                !a.in_use
                    && a.deleted_at
                        .is_some_and(|t| now.saturating_duration_since(t) >= self.gc_delay)
            })
            .map(|(i, _)| i)
            .collect();
        for ai in expired {
            let Some(vi) = self.ases.get(ai).map(|a| a.vip) else {
                continue;
            };
            if let Some(v) = self.vips.get_mut(vi) {
                let pos: Vec<usize> = v
                    .as_slots
                    .iter()
                    .filter(|(_, a)| **a == ai)
                    .map(|(p, _)| p)
                    .collect();
                for p in pos {
                    v.as_slots.free_slot(p);
                }
            }
            self.ases.free_slot(ai);
        }
        let dead: Vec<usize> = self
            .vips
            .iter()
            .skip(1)
            .filter(|(_, v)| !v.in_use && v.as_slots.len() == 0)
            .map(|(i, _)| i)
            .collect();
        for vi in dead {
            self.vips.free_slot(vi);
        }
    }

    /// Every in-use VIP in pool order (what `lb_vip_dump` returns).
    pub fn vips(&self) -> Vec<VipView> {
        self.all_vips().into_iter().filter(|v| v.in_use).collect()
    }

    /// Every VIP slot but the placeholder, deleted ones included.
    pub fn all_vips(&self) -> Vec<VipView> {
        self.vips
            .iter()
            .skip(1)
            .map(|(i, v)| VipView {
                index: i,
                key: LbVip {
                    pfx: v.pfx,
                    protocol: v.protocol,
                    port: v.port,
                },
                encap: v.vtype.encap(),
                dscp: v.dscp,
                table_len: v.table_len,
                sticky: v.sticky,
                in_use: v.in_use,
                counters: v.counters,
            })
            .collect()
    }

    /// `lb_as_dump`: all ASes when the filter address is all zero, else
    /// only VIPs whose internal form equals the raw filter bytes (so an
    /// IPv4 filter never matches, as in VPP).
    pub fn ases(&self, filter: Prefix, protocol: u8, port: u16) -> Vec<AsView> {
        let raw = raw_union(filter.addr);
        let all = raw.iter().all(|&b| b == 0);
        let mut out = Vec::new();
        for (_, v) in self.vips.iter().skip(1) {
            if !all && (internal(v.pfx.addr) != raw || v.protocol != protocol || v.port != port) {
                continue;
            }
            for (_, &ai) in v.as_slots.iter() {
                let Some(a) = self.ases.get(ai) else { continue };
                out.push(AsView {
                    vip: LbVip {
                        pfx: v.pfx,
                        protocol: v.protocol,
                        port: v.port,
                    },
                    addr: a.addr,
                    flags: u8::from(a.in_use),
                    in_use_since: a.in_use_since,
                    weight: a.weight,
                    buckets: a.buckets,
                });
            }
        }
        out
    }

    /// `ip_route_lookup` in table `table`: (retval, route).
    pub fn route_lookup(&self, table: u32, exact: bool, prefix: Prefix) -> (i32, IpRoute) {
        let empty = IpRoute {
            table_id: 0,
            stats_index: 0,
            prefix: Prefix::any(),
            paths: Vec::new(),
        };
        if table != 0 {
            return (NO_SUCH_FIB, empty);
        }
        let p = prefix.normalized();
        let hit = if exact {
            self.routes.get(&p).map(|&i| (p, i))
        } else {
            self.routes
                .iter()
                .filter(|(r, _)| {
                    r.addr.is_ipv4() == p.addr.is_ipv4()
                        && r.len <= p.len
                        && Prefix {
                            addr: p.addr,
                            len: r.len,
                        }
                        .normalized()
                            == **r
                })
                .max_by_key(|(r, _)| r.len)
                .map(|(r, &i)| (*r, i))
        };
        match hit {
            Some((r, i)) => (
                0,
                IpRoute {
                    table_id: table,
                    stats_index: i,
                    prefix: r,
                    paths: vec![FibPath::lb_exclusive(r.addr.is_ipv6())],
                },
            ),
            None if exact => (NO_SUCH_ENTRY, empty),
            None => {
                // The default route drops.
                let mut path = FibPath::lb_exclusive(p.addr.is_ipv6());
                path.r#type = 2;
                let any = if p.addr.is_ipv6() {
                    Prefix {
                        addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                        len: 0,
                    }
                } else {
                    Prefix::any()
                };
                (
                    0,
                    IpRoute {
                        table_id: 0,
                        stats_index: 0,
                        prefix: any,
                        paths: vec![path],
                    },
                )
            }
        }
    }

    /// The FIB stats index of every installed VIP prefix.
    pub fn routes(&self) -> Vec<(Prefix, u32)> {
        self.routes.iter().map(|(p, i)| (*p, *i)).collect()
    }

    /// Adds traffic to the counters of the in-use VIP `key` (tests and
    /// demos); false if there is no such VIP.
    pub fn add_traffic(&mut self, key: &LbVip, add: VipCounters) -> bool {
        let Some(i) = self.find_vip(key.pfx, key.protocol, key.port) else {
            return false;
        };
        let Some(v) = self.vips.get_mut(i) else {
            return false;
        };
        let c = &mut v.counters;
        c.existing_sessions += add.existing_sessions;
        c.first_packet += add.first_packet;
        c.untracked += add.untracked;
        c.no_server += add.no_server;
        // Every packet to the VIP was routed to its FIB entry first.
        let pfx = v.pfx;
        if let Some(&si) = self.routes.get(&pfx) {
            let pkts = add.existing_sessions + add.first_packet + add.untracked + add.no_server;
            let r = self.route_traffic.entry(si).or_insert((0, 0));
            r.0 += pkts;
            r.1 += pkts * ROUTE_BYTES_PER_PACKET;
        }
        true
    }

    /// `/net/route/to` (packets, bytes) by FIB stats index.
    pub fn route_traffic(&self) -> BTreeMap<u32, (u64, u64)> {
        self.route_traffic.clone()
    }

    /// `show lb`.
    pub fn show_lb(&self) -> String {
        format!(
            "lb_main ip4-src-address: {} \n ip6-src-address: {} \n #vips: {}\n #ass: {}\n",
            self.ip4_src,
            fmt_ip6(self.ip6_src),
            self.vips.len(),
            self.ases.len() - 1
        )
    }

    /// `show lb vips`.
    pub fn show_vips(&self) -> String {
        let mut s = String::new();
        for (_, v) in self.vips.iter().skip(1) {
            let _ = write!(
                s,
                "{} {} new_size:{} #as:{}{}",
                v.vtype.name(),
                fmt_prefix(&v.pfx),
                v.table_len,
                v.as_slots.len(),
                if v.in_use { "" } else { " removed" }
            );
            if v.port != 0 {
                let _ = write!(s, "  protocol:{} port:{} ", v.protocol, v.port);
            }
            if v.vtype == VipType::Ip4L3dsr {
                let _ = write!(s, "  dscp:{}", v.dscp);
            }
            s.push('\n');
        }
        s
    }

    /// `show lb vips verbose`.
    pub fn show_vips_verbose(&self) -> String {
        let mut s = String::new();
        for (i, v) in self.vips.iter().skip(1) {
            let _ = writeln!(
                s,
                " {} [{i}] {}{}{}",
                v.vtype.name(),
                fmt_prefix(&v.pfx),
                if v.sticky { " src_ip_sticky" } else { "" },
                if v.in_use { "" } else { " removed" }
            );
            let _ = writeln!(s, "  new_size:{}", v.table_len);
            if v.port != 0 {
                let _ = writeln!(s, "  protocol:{} port:{}", v.protocol, v.port);
            }
            if v.vtype == VipType::Ip4L3dsr {
                let _ = writeln!(s, "  dscp:{}", v.dscp);
            }
            let c = &v.counters;
            let _ = writeln!(s, "  counters:");
            let _ = writeln!(
                s,
                "    packet from existing sessions: {}",
                c.existing_sessions
            );
            let _ = writeln!(s, "    first session packet: {}", c.first_packet);
            let _ = writeln!(s, "    untracked packet: {}", c.untracked);
            let _ = writeln!(s, "    no server configured: {}", c.no_server);
            let _ = writeln!(s, "  #as:{}", v.as_slots.len());
            for (_, &ai) in v.as_slots.iter() {
                let Some(a) = self.ases.get(ai) else { continue };
                let _ = writeln!(
                    s,
                    "    {} weight:{} buckets:{} flows:{} dpo:{} {}",
                    fmt_ip(a.addr),
                    a.weight,
                    a.buckets,
                    self.flow_count(ai),
                    a.dpo,
                    if a.in_use { "used" } else { " removed" }
                );
            }
            s.push('\n');
        }
        s
    }

    /// `cli_inband`: (retval, text) for the commands VPP would answer.
    pub fn cli(&mut self, cmd: &str) -> (i32, String) {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            // Simulator-only test hook (VPP would answer "unknown input").
            ["vppsim", "traffic", pfx, proto, port, e, f, u, n] => {
                let parsed = (|| {
                    let key = LbVip {
                        pfx: pfx.parse().ok()?,
                        protocol: proto.parse().ok()?,
                        port: port.parse().ok()?,
                    };
                    let c = VipCounters {
                        existing_sessions: e.parse().ok()?,
                        first_packet: f.parse().ok()?,
                        untracked: u.parse().ok()?,
                        no_server: n.parse().ok()?,
                    };
                    Some((key, c))
                })();
                match parsed {
                    Some((key, c)) if self.add_traffic(&key, c) => (0, "ok\n".into()),
                    Some(_) => (-1, "vppsim traffic: no such VIP\n".into()),
                    None => (
                        -1,
                        "vppsim traffic: PREFIX PROTO PORT EXISTING FIRST UNTRACKED NOSERVER\n"
                            .into(),
                    ),
                }
            }
            // Simulator-only test hook: packets of flows FIRST..FIRST+COUNT.
            ["vppsim", "flows", pfx, proto, port, first, count] => {
                let parsed = (|| {
                    let key = LbVip {
                        pfx: pfx.parse().ok()?,
                        protocol: proto.parse().ok()?,
                        port: port.parse().ok()?,
                    };
                    Some((key, first.parse::<u64>().ok()?, count.parse::<u64>().ok()?))
                })();
                match parsed {
                    Some((key, first, count)) => {
                        match self.flows(&key, first, count, Instant::now()) {
                            Some(r) => (
                                0,
                                format!(
                                    "new {} hit {} untracked {} no-server {}\n",
                                    r.new, r.hit, r.untracked, r.no_server
                                ),
                            ),
                            None => (-1, "vppsim flows: no such VIP\n".into()),
                        }
                    }
                    None => (-1, "vppsim flows: PREFIX PROTO PORT FIRST COUNT\n".into()),
                }
            }
            ["lb", "vip", rest @ ..] => self.cli_vip(rest),
            ["lb", "as", rest @ ..] => self.cli_as(rest),
            ["show", "lb"] => (0, self.show_lb()),
            ["show", "lb", "vips"] => (0, self.show_vips()),
            ["show", "lb", "vips", "verbose"] => (0, self.show_vips_verbose()),
            ["show", "version"] => (0, "vpp v26.10-rc0~vppsim built by vpp-maglev\n".into()),
            [] => (0, String::new()),
            ["show", "lb", "vips", rest @ ..] => (-1, unknown("show lb vips", &rest.join(" "))),
            ["show", "lb", rest @ ..] => (-1, unknown("show lb", &rest.join(" "))),
            ["show", rest @ ..] => (-1, unknown("show", &rest.join(" "))),
            _ => (-1, unknown("", cmd.trim())),
        }
    }
}

impl LbState {
    /// `lb vip <prefix> [protocol (tcp|udp) port <n>] [encap (gre4|gre6|
    /// l3dsr|nat4|nat6)] [dscp <n>] [new_len <n>] [del]`, with the checks
    /// and messages of VPP's lb `cli.c` (the VIP type chosen as there, the
    /// add itself by [`LbState::add_vip`]).
    fn cli_vip(&mut self, words: &[&str]) -> (i32, String) {
        let fail = |m: String| (-1, format!("lb vip: {m}\n"));
        let Some(pfx) = words.first().and_then(|w| w.parse::<Prefix>().ok()) else {
            return fail(format!(
                "invalid vip prefix: '{}'",
                words.first().copied().unwrap_or("")
            ));
        };
        let (mut protocol, mut port, mut encap, mut dscp, mut table_len, mut del) =
            (255u8, 0u16, 0u32, None::<u32>, 1024u32, false);
        let mut it = words[1..].iter();
        while let Some(&w) = it.next() {
            match w {
                "del" => del = true,
                "protocol" => match num_word(&mut it) {
                    Some("tcp") => protocol = 6,
                    Some("udp") => protocol = 17,
                    other => {
                        return fail(format!("parse error: 'protocol {}'", other.unwrap_or("")));
                    }
                },
                "port" => match num_word(&mut it).and_then(|v| v.parse::<u16>().ok()) {
                    Some(v) => port = v,
                    None => return fail("parse error: 'port'".into()),
                },
                "new_len" => match num_word(&mut it).and_then(|v| v.parse().ok()) {
                    Some(v) => table_len = v,
                    None => return fail("parse error: 'new_len'".into()),
                },
                "dscp" => match num_word(&mut it).and_then(|v| v.parse().ok()) {
                    Some(v) => dscp = Some(v),
                    None => return fail("parse error: 'dscp'".into()),
                },
                "encap" => {
                    encap = match num_word(&mut it) {
                        Some("gre4") => 0,
                        Some("gre6") => 1,
                        Some("l3dsr") => 2,
                        Some("nat4") => 3,
                        Some("nat6") => 4,
                        other => {
                            return fail(format!("parse error: 'encap {}'", other.unwrap_or("")));
                        }
                    }
                }
                other => return fail(format!("parse error: '{other}'")),
            }
        }
        if port == 0 {
            protocol = 255;
        }
        if encap != 2 && dscp.is_some() {
            return fail("lb_vip_add error: should not configure dscp for none L3DSR.".into());
        }
        if encap == 2 && dscp.is_some_and(|d| d >= 64) {
            return fail("lb_vip_add error: dscp for L3DSR should be less than 64.".into());
        }
        let v4 = ip46_prefix(pfx).addr.is_ipv4();
        match (v4, encap) {
            (true, 4) => return fail("currently does not support NAT46".into()),
            (false, 3) => return fail("currently does not support NAT64".into()),
            _ => {}
        }
        let now = Instant::now();
        if del {
            if self.find_vip(pfx, protocol, port).is_none() {
                return fail(format!("lb_vip_find_index error {NO_SUCH_ENTRY}"));
            }
            return match self.del_vip(pfx, protocol, port, now) {
                0 => (0, String::new()),
                rv => fail(format!("lb_vip_del error {rv}")),
            };
        }
        let args = VipArgs {
            encap,
            dscp: dscp.unwrap_or(0) as u8,
            table_len,
            ..VipArgs::new(pfx, protocol, port)
        };
        match self.add_vip(&args, now) {
            0 => {
                let index = self.find_vip(pfx, protocol, port).unwrap_or(0);
                (0, format!("lb_vip_add ok {index}\n"))
            }
            rv => fail(format!("lb_vip_add error {rv}")),
        }
    }

    /// `lb as <vip-prefix> [protocol (tcp|udp) port <n>] [<address> ...]
    /// [del] [flush]`, as VPP's lb `cli.c` (weight 100 on add).
    fn cli_as(&mut self, words: &[&str]) -> (i32, String) {
        let fail = |m: String| (-1, format!("lb as: {m}\n"));
        let Some(pfx) = words.first().and_then(|w| w.parse::<Prefix>().ok()) else {
            return fail(format!(
                "invalid as address: '{}'",
                words.first().copied().unwrap_or("")
            ));
        };
        let (mut protocol, mut port, mut del, mut flush) = (0u8, 0u16, false, false);
        let mut addrs = Vec::new();
        let mut it = words[1..].iter();
        while let Some(&w) = it.next() {
            match w {
                "del" => del = true,
                "flush" => flush = true,
                "protocol" => match num_word(&mut it) {
                    Some("tcp") => protocol = 6,
                    Some("udp") => protocol = 17,
                    other => {
                        return fail(format!("parse error: 'protocol {}'", other.unwrap_or("")));
                    }
                },
                "port" => match num_word(&mut it).and_then(|v| v.parse::<u16>().ok()) {
                    Some(v) => port = v,
                    None => return fail("parse error: 'port'".into()),
                },
                other => match other.parse::<IpAddr>() {
                    Ok(a) => addrs.push(a),
                    Err(_) => return fail(format!("parse error: '{other}'")),
                },
            }
        }
        if port == 0 {
            protocol = 255;
        }
        if self.find_vip(pfx, protocol, port).is_none() {
            return fail(format!("lb_vip_find_index error {NO_SUCH_ENTRY}"));
        }
        if addrs.is_empty() {
            return fail("No AS address provided".into());
        }
        let now = Instant::now();
        for a in addrs {
            let rv = self.add_del_as(pfx, protocol, port, a, 100, del, flush, now);
            if rv != 0 {
                let what = if del {
                    "lb_vip_del_ass"
                } else {
                    "lb_vip_add_ass"
                };
                return fail(format!("{what} error {rv}"));
            }
        }
        (0, String::new())
    }
}

/// The next word of a CLI line.
fn num_word<'a>(it: &mut std::slice::Iter<'_, &'a str>) -> Option<&'a str> {
    it.next().copied()
}

/// VPP's "unknown input" error text (rest quoted, cut at 30 characters).
fn unknown(parent: &str, rest: &str) -> String {
    let mut q: String = rest
        .chars()
        .take(30)
        .flat_map(|c| match c {
            '\r' => "\\r".chars().collect::<Vec<_>>(),
            '\n' => "\\n".chars().collect(),
            '\t' => "\\t".chars().collect(),
            c => vec![c],
        })
        .collect();
    if rest.chars().count() > 30 {
        q.push_str("...");
    }
    if parent.is_empty() {
        format!("unknown input `{q}'\n")
    } else {
        format!("{parent}: unknown input `{q}'\n")
    }
}

fn is_pow2(v: u32) -> bool {
    v & v.wrapping_sub(1) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn state() -> (LbState, Instant) {
        (LbState::new(Duration::from_secs(60)), Instant::now())
    }

    #[test]
    fn vip_add_errors_in_vpp_order() {
        let (mut s, t) = state();
        assert_eq!(s.add_vip(&VipArgs::new(p("192.0.2.1/32"), 6, 80), t), 0);
        assert_eq!(
            s.add_vip(&VipArgs::new(p("192.0.2.1/32"), 6, 80), t),
            VALUE_EXIST
        );
        // all-port vs per-port on the same prefix
        assert_eq!(
            s.add_vip(&VipArgs::new(p("192.0.2.1/32"), 6, 0), t),
            VALUE_EXIST
        );
        // other per-port VIP with a different type
        assert_eq!(
            s.add_vip(
                &VipArgs {
                    encap: 1,
                    ..VipArgs::new(p("192.0.2.1/32"), 6, 443)
                },
                t
            ),
            INVALID_ARGUMENT
        );
        assert_eq!(
            s.add_vip(
                &VipArgs {
                    table_len: 1000,
                    ..VipArgs::new(p("192.0.2.1/32"), 6, 443)
                },
                t
            ),
            INVALID_MEMORY_SIZE
        );
        assert_eq!(
            s.add_vip(
                &VipArgs {
                    encap: 4,
                    ..VipArgs::new(p("192.0.2.9/32"), 6, 80)
                },
                t
            ),
            INVALID_ADDRESS_FAMILY
        );
        // IPv6 with L3DSR silently becomes GRE6
        assert_eq!(
            s.add_vip(
                &VipArgs {
                    encap: 2,
                    ..VipArgs::new(p("2001:db8::1/128"), 17, 53)
                },
                t
            ),
            0
        );
        assert_eq!(s.vips()[1].encap, Encap::Gre6);
        // port 0 forces protocol 255
        assert_eq!(
            s.add_vip(
                &VipArgs {
                    encap: 2,
                    dscp: 34,
                    ..VipArgs::new(p("198.51.100.7/32"), 6, 0)
                },
                t
            ),
            0
        );
        assert_eq!(s.vips()[2].key.protocol, 255);
        assert_eq!(s.del_vip(p("203.0.113.1/32"), 6, 80, t), NO_SUCH_ENTRY);
    }

    #[test]
    fn as_semantics_and_buckets() {
        let (mut s, t) = state();
        let v = p("192.0.2.1/32");
        assert_eq!(
            s.add_del_as(v, 6, 80, ip("10.0.0.1"), 50, false, false, t),
            NO_SUCH_ENTRY
        );
        s.add_vip(
            &VipArgs {
                sticky: true,
                ..VipArgs::new(v, 6, 80)
            },
            t,
        );
        assert_eq!(
            s.add_del_as(v, 6, 80, ip("2001:db8::1"), 50, false, false, t),
            INVALID_ADDRESS_FAMILY
        );
        assert_eq!(
            s.add_del_as(v, 6, 80, ip("10.0.0.1"), 50, false, false, t),
            0
        );
        assert_eq!(
            s.add_del_as(v, 6, 80, ip("10.0.0.2"), 100, false, false, t),
            0
        );
        assert_eq!(
            s.add_del_as(v, 6, 80, ip("10.0.0.2"), 100, false, false, t),
            VALUE_EXIST
        );
        let b: Vec<u32> = s
            .ases(Prefix::any(), 0, 0)
            .iter()
            .map(|a| a.buckets)
            .collect();
        assert_eq!(b, vec![350, 674]);
        assert_eq!(
            s.set_weight(v, 6, 80, ip("10.0.0.9"), 1, false),
            NO_SUCH_ENTRY
        );
        assert_eq!(s.add_del_as(v, 6, 80, ip("10.0.0.1"), 0, true, false, t), 0);
        assert_eq!(
            s.set_weight(v, 6, 80, ip("10.0.0.1"), 100, false),
            NO_SUCH_ENTRY
        );
        let a = s.ases(Prefix::any(), 0, 0);
        assert_eq!((a[0].flags, a[0].buckets, a[1].buckets), (0, 0, 1024));
        // IPv4 filter never matches
        assert!(s.ases(v, 6, 80).is_empty());
        // revive keeps the slot position
        assert_eq!(
            s.add_del_as(v, 6, 80, ip("10.0.0.1"), 50, false, false, t),
            0
        );
        let a = s.ases(Prefix::any(), 0, 0);
        assert_eq!(a[0].addr, ip("10.0.0.1"));
        assert_eq!((a[0].buckets, a[1].buckets), (350, 674));
    }

    /// lb.c `lb_vip_add_ass`: `ip46_address_type(address) != type` ->
    /// VNET_API_ERROR_INVALID_ADDRESS_FAMILY, where the type of an address
    /// is `ip46_address_is_ip4` (first 12 bytes zero) and that of the VIP
    /// is its encap's (GRE4, L3DSR, NAT4: IPv4).
    #[test]
    fn as_family_is_vpps_ip46_rule() {
        let (mut s, t) = state();
        let v6 = p("2001:db8::1/128");
        let gre6 = VipArgs {
            encap: 1,
            ..VipArgs::new(v6, 6, 80)
        };
        assert_eq!(s.add_vip(&gre6, t), 0);
        for refused in ["::1", "::2:1", "::", "10.0.0.1"] {
            assert_eq!(
                s.add_del_as(v6, 6, 80, ip(refused), 100, false, false, t),
                INVALID_ADDRESS_FAMILY,
                "{refused} on a GRE6 VIP"
            );
        }
        for taken in ["::ffff:1.2.3.4", "fd00::1", "::1:0:0:1"] {
            assert_eq!(
                s.add_del_as(v6, 6, 80, ip(taken), 100, false, false, t),
                0,
                "{taken} on a GRE6 VIP"
            );
        }
        // On a GRE4 VIP, ::1 is the IPv4 AS 0.0.0.1, and dumped as such.
        let v4 = p("192.0.2.1/32");
        assert_eq!(s.add_vip(&VipArgs::new(v4, 6, 80), t), 0);
        assert_eq!(s.add_del_as(v4, 6, 80, ip("::1"), 100, false, false, t), 0);
        let a = s.ases(Prefix::any(), 0, 0);
        assert_eq!(a.last().map(|a| a.addr), Some(ip("0.0.0.1")));
        assert_eq!(
            s.add_del_as(v4, 6, 80, ip("0.0.0.1"), 100, false, false, t),
            VALUE_EXIST,
            "the same AS to VPP"
        );
        assert_eq!(s.set_weight(v4, 6, 80, ip("::1"), 7, false), 0);
    }

    /// lb util.h `ip46_prefix_is_ip4`: `len >= 96 && ip46_address_is_ip4`,
    /// so an IPv6 VIP inside ::/96 is typed as IPv4 by the API handler
    /// (and dumped as IPv4 with length - 96); then lb.c `lb_vip_add`'s
    /// family check refuses an IPv6-only encap (NAT6) with -97.
    #[test]
    fn vip_inside_96_is_an_ipv4_vip_to_vpp() {
        let (mut s, t) = state();
        let mapped = p("::c000:201/128");
        let gre6 = VipArgs {
            encap: 1,
            ..VipArgs::new(mapped, 6, 80)
        };
        assert_eq!(s.add_vip(&gre6, t), 0);
        let v = s.vips();
        assert_eq!(v[0].key.pfx, p("192.0.2.1/32"));
        assert_eq!(v[0].encap, Encap::Gre6);
        assert!(s.show_vips().contains("ip4-gre6"), "{}", s.show_vips());
        let nat6 = VipArgs {
            encap: 4,
            ..VipArgs::new(p("::c000:202/128"), 6, 80)
        };
        assert_eq!(s.add_vip(&nat6, t), INVALID_ADDRESS_FAMILY);
        // A short IPv6 prefix stays IPv6 (len < 96).
        let short = VipArgs {
            encap: 1,
            ..VipArgs::new(p("::/64"), 6, 80)
        };
        assert_eq!(s.add_vip(&short, t), 0);
        assert!(s.vips()[1].key.pfx.addr.is_ipv6());
    }

    /// VPP's test_lb_api.py: empty dumps on a fresh VPP (the placeholder
    /// hidden); `lb vip 2001::/16 encap gre6` dumps as 2001::/16; `lb as
    /// 2001::/16 2000::1` dumps with that VIP and AS; and the CLI's own
    /// checks and messages (cli.c).
    #[test]
    fn cli_answers_as_vpps_lb_api_tests() {
        let (mut s, _) = state();
        assert!(s.vips().is_empty());
        assert!(s.ases(Prefix::any(), 0, 0).is_empty());
        assert_eq!(
            s.cli("lb vip 2001::/16 encap gre6"),
            (0, "lb_vip_add ok 1\n".into())
        );
        assert_eq!(s.vips().last().map(|v| v.key.pfx), Some(p("2001::/16")));
        assert_eq!(s.cli("lb as 2001::/16 2000::1"), (0, String::new()));
        let a = s.ases(Prefix::any(), 0, 0);
        assert_eq!((a[0].vip.pfx, a[0].addr), (p("2001::/16"), ip("2000::1")));
        assert_eq!(
            s.cli("lb as 2001::/16 ::1"),
            (-1, "lb as: lb_vip_add_ass error -97\n".into())
        );
        assert_eq!(
            s.cli("lb vip 2001::/16 encap gre6"),
            (-1, "lb vip: lb_vip_add error -81\n".into())
        );
        assert_eq!(
            s.cli("lb as 2001::/16"),
            (-1, "lb as: No AS address provided\n".into())
        );
        assert_eq!(
            s.cli("lb as 2002::/16 2000::1"),
            (-1, "lb as: lb_vip_find_index error -6\n".into())
        );
        assert_eq!(
            s.cli("lb vip 10.0.0.0/24 encap nat6").1,
            "lb vip: currently does not support NAT46\n"
        );
        assert_eq!(
            s.cli("lb vip 10.0.0.0/24 dscp 3").1,
            "lb vip: lb_vip_add error: should not configure dscp for none L3DSR.\n"
        );
        assert_eq!(
            s.cli("lb vip 10.0.0.0/24 new_len 1000").1,
            "lb vip: lb_vip_add error -70\n"
        );
        assert_eq!(s.cli("lb vip 2001::/16 del"), (0, String::new()));
        assert!(s.vips().is_empty());
        assert_eq!(
            s.cli("lb vip 2001::/16 del").1,
            "lb vip: lb_vip_find_index error -6\n"
        );
    }

    #[test]
    fn vip_delete_with_ases_lingers_until_collected() {
        let (mut s, t) = state();
        let v = p("192.0.2.1/32");
        s.add_vip(&VipArgs::new(v, 6, 80), t);
        s.add_del_as(v, 6, 80, ip("10.0.0.1"), 100, false, false, t);
        assert_eq!(s.del_vip(v, 6, 80, t), 0);
        assert!(s.vips().is_empty());
        assert!(s.show_vips().contains(" removed"));
        assert_eq!(s.ases(Prefix::any(), 0, 0)[0].flags, 0);
        // re-adding meanwhile takes a new index
        s.add_vip(&VipArgs::new(v, 6, 80), t);
        assert_eq!(s.vips()[0].index, 2);
        s.collect(t + Duration::from_secs(61));
        assert_eq!(s.all_vips().len(), 1);
        // the freed slot 1 is reused next
        s.add_vip(&VipArgs::new(p("192.0.2.2/32"), 6, 80), t);
        assert_eq!(s.vips()[0].index, 1);
    }

    #[test]
    fn route_lookup() {
        let (mut s, t) = state();
        s.add_vip(&VipArgs::new(p("192.0.2.1/32"), 6, 80), t);
        s.add_vip(&VipArgs::new(p("192.0.2.1/32"), 17, 53), t);
        let (rv, r) = s.route_lookup(0, true, p("192.0.2.1/32"));
        assert_eq!((rv, r.stats_index, r.paths.len()), (0, 40, 1));
        assert_eq!(s.route_lookup(0, true, p("192.0.2.2/32")).0, NO_SUCH_ENTRY);
        assert_eq!(s.route_lookup(7, true, p("192.0.2.1/32")).0, NO_SUCH_FIB);
        assert_eq!(s.route_lookup(0, false, p("8.8.8.8/32")).1.prefix.len, 0);
    }

    #[test]
    fn conf_rules() {
        let (mut s, _) = state();
        let c = s.conf();
        assert_eq!(c.ip4_src, Ipv4Addr::BROADCAST);
        let mut n = c;
        n.sticky_buckets_per_core = 1000;
        assert_eq!(s.set_conf(n), INVALID_MEMORY_SIZE);
        n.sticky_buckets_per_core = u32::MAX;
        n.flow_timeout = 10;
        n.ip4_src = "192.0.2.254".parse().unwrap();
        assert_eq!(s.set_conf(n), 0);
        assert_eq!(s.conf().sticky_buckets_per_core, 1024);
        assert_eq!(s.conf().flow_timeout, 10);
    }

    #[test]
    fn cli_text_matches_protocol_md_example() {
        let (mut s, t) = state();
        let cfg = Conf {
            ip4_src: "192.0.2.254".parse().unwrap(),
            ip6_src: "2001:db8::fe".parse().unwrap(),
            sticky_buckets_per_core: u32::MAX,
            flow_timeout: u32::MAX,
        };
        s.set_conf(cfg);
        s.add_vip(
            &VipArgs {
                sticky: true,
                ..VipArgs::new(p("192.0.2.1/32"), 6, 80)
            },
            t,
        );
        s.add_vip(
            &VipArgs {
                encap: 1,
                ..VipArgs::new(p("2001:db8::1/128"), 17, 53)
            },
            t,
        );
        s.add_vip(
            &VipArgs {
                encap: 2,
                dscp: 34,
                ..VipArgs::new(p("198.51.100.7/32"), 0, 0)
            },
            t,
        );
        assert_eq!(
            s.show_vips(),
            "ip4-gre4 192.0.2.1/32 new_size:1024 #as:0  protocol:6 port:80 \n\
             ip6-gre6 2001:db8::1/128 new_size:1024 #as:0  protocol:17 port:53 \n\
             ip4-l3dsr 198.51.100.7/32 new_size:1024 #as:0  dscp:34\n"
        );
        s.add_del_as(
            p("192.0.2.1/32"),
            6,
            80,
            ip("10.0.0.1"),
            50,
            false,
            false,
            t,
        );
        s.add_del_as(
            p("192.0.2.1/32"),
            6,
            80,
            ip("10.0.0.2"),
            100,
            false,
            false,
            t,
        );
        let v = s.show_vips_verbose();
        assert!(v.starts_with(
            " ip4-gre4 [1] 192.0.2.1/32 src_ip_sticky\n  new_size:1024\n  protocol:6 port:80\n  counters:\n"
        ));
        assert!(v.contains("  #as:2\n    10.0.0.1 weight:50 buckets:350 flows:0 dpo:14 used\n"));
        assert!(v.contains(" ip4-l3dsr [3] 198.51.100.7/32\n  new_size:1024\n  dscp:34\n"));
        assert!(v.ends_with("  #as:0\n\n"));
        assert_eq!(
            s.show_lb(),
            "lb_main ip4-src-address: 192.0.2.254 \n ip6-src-address: 2001:db8::fe \n #vips: 4\n #ass: 2\n"
        );
        assert_eq!(s.cli("show lb foo").0, -1);
        assert_eq!(s.cli("bogus").1, "unknown input `bogus'\n");
    }

    /// The `flows:` of an AS in `show lb vips verbose`.
    fn flows_of(s: &LbState, addr: &str) -> u32 {
        let v = s.show_vips_verbose();
        let line = v
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{addr} ")))
            .unwrap();
        line.split("flows:")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn sticky_flows_are_counted_until_their_slot_is_reused_or_flushed() {
        let t = Instant::now();
        let mut s = LbState::new(Duration::from_secs(60));
        s.set_conf(Conf {
            ip4_src: "192.0.2.254".parse().unwrap(),
            ip6_src: Ipv6Addr::UNSPECIFIED,
            sticky_buckets_per_core: 16,
            flow_timeout: 2,
        });
        let v = p("192.0.2.1/32");
        s.add_vip(&VipArgs::new(v, 6, 80), t);
        s.add_del_as(v, 6, 80, ip("10.0.0.1"), 100, false, false, t);
        s.add_del_as(v, 6, 80, ip("10.0.0.2"), 100, false, false, t);
        let key = LbVip {
            pfx: v,
            protocol: 6,
            port: 80,
        };
        let r = s.flows(&key, 0, 40, t).unwrap();
        assert_eq!(r.new + r.untracked, 40);
        let (a, b) = (flows_of(&s, "10.0.0.1"), flows_of(&s, "10.0.0.2"));
        assert_eq!(u64::from(a + b), r.new);
        assert!(a > 5 && b > 5, "both ASes get flows: {a} {b}");
        // Packets of the same flows are hits, not new flows.
        let again = s
            .flows(&key, 0, 40, t + Duration::from_millis(500))
            .unwrap();
        assert_eq!(again.hit, r.new);
        // Draining (weight 0, no flush): pinned flows stay, and they stay
        // counted after they expire (PROTOCOL.md §9.3)...
        s.set_weight(v, 6, 80, ip("10.0.0.2"), 0, false);
        let later = t + Duration::from_secs(10);
        assert_eq!(flows_of(&s, "10.0.0.2"), b);
        // ...until new flows reuse the expired slots.
        s.flows(&key, 1000, 2000, later).unwrap();
        assert_eq!(flows_of(&s, "10.0.0.2"), 0, "every stale slot reused");
        assert!(flows_of(&s, "10.0.0.1") > 0);
        // A flush removes an AS's entries at once.
        s.set_weight(v, 6, 80, ip("10.0.0.1"), 100, true);
        assert_eq!(flows_of(&s, "10.0.0.1"), 0);
        assert!(s.flows(&LbVip { port: 81, ..key }, 0, 1, t).is_none());
    }

    #[test]
    fn ipv6_formatting_like_vpp() {
        assert_eq!(
            fmt_ip6("2001:db8:0:0:1:0:0:1".parse().unwrap()),
            "2001:db8::1:0:0:1"
        );
        assert_eq!(fmt_ip6("::ffff:10.0.0.1".parse().unwrap()), "::ffff:a00:1");
        assert_eq!(
            fmt_ip6("2001:db8:0:1:1:1:1:1".parse().unwrap()),
            "2001:db8:0:1:1:1:1:1"
        );
        assert_eq!(fmt_ip6("::".parse().unwrap()), "::");
        assert_eq!(
            fmt_ip6(Ipv6Addr::from(u128::MAX)),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
    }
}
