#!/usr/bin/env python3
"""Drives vppsim with vpp_papi, VPP's official Python binding.

If papi's encoder, decoder and socket transport are happy with every answer
and the answers carry VPP's semantics, the simulator speaks real VPP.

usage: test_vppsim.py VPPSIM_BINARY API_JSON_DIR
"""

import glob
import os
import subprocess
import sys
import tempfile
import time

from vpp_papi import VPPApiClient

VPPSIM, API_DIR = sys.argv[1], sys.argv[2]
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def maglev_buckets(members, size=1024):
    """Bucket counts from vpp::maglev (vppsim maglev-buckets)."""
    out = subprocess.run(
        [VPPSIM, "maglev-buckets", str(size)] + [f"{a}:{w}" for a, w in members],
        check=True, capture_output=True, text=True).stdout
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}


def main():
    tmp = tempfile.mkdtemp(prefix="vppsim-papi-")
    sock = os.path.join(tmp, "api.sock")
    stats_sock = os.path.join(tmp, "stats.sock")
    sim = subprocess.Popen([VPPSIM, "--api-socket", sock, "--stats-socket", stats_sock])
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        run(sock, stats_sock)
    finally:
        sim.terminate()
        rc = sim.wait(timeout=5)
        check(rc == 0, f"vppsim exits 0 on SIGTERM (got {rc})")
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("all vpp_papi checks passed")


def stats_checks(vpp, stats_sock):
    """The simulator's stats segment read by VPPStats (the official reader)
    and by vpp::stats (through `vppsim stats-read`) must agree."""
    from vpp_papi.vpp_stats import VPPStats

    r = vpp.api.cli_inband(cmd="vppsim traffic 192.0.2.1/32 6 80 18342 211 3 4")
    check(r.retval == 0, "inject traffic into the simulator")
    verbose = vpp.api.cli_inband(cmd="show lb vips verbose").reply
    index = int(verbose.split("[", 1)[1].split("]", 1)[0])
    # VPP's ip46 rule: an IPv6 address whose first 96 bits are zero is IPv4
    # to the lb plugin, refused on a GRE6 VIP (PROTOCOL.md section 7).
    v6b = dict(pfx="2001:db8::99/128", protocol=6, port=443)
    check(vpp.api.lb_add_del_vip_v2(encap=1, **v6b).retval == 0, "second IPv6 VIP (gre6)")
    for a, want in [("::1", -97), ("::2:1", -97), ("::ffff:1.2.3.4", 0), ("fd00::1", 0)]:
        r = vpp.api.lb_add_del_as_v2(as_address=a, weight=100, **v6b)
        check(r.retval == want, f"AS {a} on a gre6 VIP: {r.retval}, VPP answers {want}")
    check(vpp.api.lb_add_del_vip_v2(is_del=True, **v6b).retval == 0, "second IPv6 VIP deleted")

    # VPP's own test_lb_api.py, through the CLI as there.
    r = vpp.api.cli_inband(cmd="lb vip 2001::/16 encap gre6")
    check(r.retval == 0, f"lb vip 2001::/16 encap gre6: {r.reply!r}")
    rv = vpp.api.lb_vip_dump()
    check(str(rv[-1].vip.pfx) == "2001::/16", f"test_lb_vip_dump: {rv[-1].vip.pfx}")
    r = vpp.api.cli_inband(cmd="lb as 2001::/16 2000::1")
    check(r.retval == 0, f"lb as 2001::/16 2000::1: {r.reply!r}")
    rv = [a for a in vpp.api.lb_as_dump() if str(a.vip.pfx) == "2001::/16"]
    check(len(rv) == 1 and str(rv[0].app_srv) == "2000::1", f"test_lb_as_dump: {rv}")
    r = vpp.api.cli_inband(cmd="lb vip 2001::/16 del")
    check(r.retval == 0 and all(str(x.vip.pfx) != "2001::/16" for x in vpp.api.lb_vip_dump()),
          "lb vip 2001::/16 del")

    route = vpp.api.ip_route_lookup(table_id=0, exact=1, prefix="192.0.2.1/32").route.stats_index

    st = VPPStats(socketname=stats_sock)
    st.connect()
    papi = [int(st[name][:, index].sum()) for name in (
        "packet from existing sessions", "first session packet",
        "untracked packet", "no server configured")]
    pkts = int(st["/net/route/to"][:, route].sum_packets())
    octets = int(st["/net/route/to"][:, route].sum_octets())
    boot = int(st["/sys/boottime"])
    threads = len(st["first session packet"])
    st.disconnect()
    check(papi == [18342, 211, 3, 4], f"VPPStats reads the lb counters of VIP [{index}]: {papi}")
    check(threads == 3, f"three counter rows (main + 2 workers): {threads}")
    check(pkts == 18342 + 211 + 3 + 4 and octets == pkts * 100,
          f"VPPStats reads /net/route/to[{route}]: {pkts} packets {octets} bytes")
    out = subprocess.run([VPPSIM, "stats-read", "--stats-socket", stats_sock,
                          "--vip", str(index), "--route", str(route)],
                         check=True, capture_output=True, text=True).stdout.split("\n")
    ours = {line.split()[0] + (" " + line.split()[1] if line.startswith(("vip", "route")) else ""):
            [int(x) for x in line.split()[1 if not line.startswith(("vip", "route")) else 2:]]
            for line in out if line}
    check(ours[f"vip {index}"] == papi, f"vpp::stats agrees on the lb counters: {ours[f'vip {index}']}")
    check(ours[f"route {route}"] == [pkts, octets], f"vpp::stats agrees on the route: {ours[f'route {route}']}")
    check(ours["boottime"] == [boot], f"vpp::stats agrees on /sys/boottime: {boot}")


def run(sock, stats_sock):
    apifiles = glob.glob(os.path.join(API_DIR, "*.api.json"))
    vpp = VPPApiClient(apifiles=apifiles, server_address=sock)
    check(vpp.connect("papi-test") == 0, "connect (sockclnt_create handshake)")

    v = vpp.api.show_version()
    check(v.retval == 0 and v.program == "vpe" and v.version.startswith("26.10"),
          f"show_version: {v.program} {v.version}")

    c = vpp.api.lb_conf_get()
    check(str(c.ip4_src_address) == "255.255.255.255" and c.sticky_buckets_per_core == 1024
          and c.flow_timeout == 40, "lb_conf_get of a fresh VPP")
    r = vpp.api.lb_conf(ip4_src_address="192.0.2.254", ip6_src_address="2001:db8::fe",
                        sticky_buckets_per_core=2048, flow_timeout=30)
    check(r.retval == 0, "lb_conf")
    r = vpp.api.lb_conf(ip4_src_address="192.0.2.254", ip6_src_address="2001:db8::fe",
                        sticky_buckets_per_core=1000)
    check(r.retval == -70, f"lb_conf with a non-power-of-two bucket count: {r.retval}")
    c = vpp.api.lb_conf_get()
    check(str(c.ip4_src_address) == "192.0.2.254" and str(c.ip6_src_address) == "2001:db8::fe"
          and c.sticky_buckets_per_core == 2048 and c.flow_timeout == 30, "lb_conf_get after lb_conf")

    r = vpp.api.lb_add_del_vip_v2(pfx="192.0.2.1/32", protocol=6, port=80, encap=0,
                                  src_ip_sticky=True)
    check(r.retval == 0, "IPv4 VIP add (gre4, sticky)")
    r = vpp.api.lb_add_del_vip_v2(pfx="2001:db8::1/128", protocol=17, port=53, encap=1)
    check(r.retval == 0, "IPv6 VIP add (gre6)")
    r = vpp.api.lb_add_del_vip_v2(pfx="192.0.2.1/32", protocol=6, port=80, encap=0)
    check(r.retval == -81, f"duplicate VIP is VALUE_EXIST: {r.retval}")

    v4 = dict(pfx="192.0.2.1/32", protocol=6, port=80)
    v6 = dict(pfx="2001:db8::1/128", protocol=17, port=53)
    for a, w in [("10.0.0.1", 100), ("10.0.0.2", 100), ("10.0.0.3", 100), ("10.0.0.4", 100)]:
        r = vpp.api.lb_add_del_as_v2(as_address=a, weight=w, **v4)
        check(r.retval == 0, f"AS {a} weight {w}")
    for a in ("2001:db8:1::10", "2001:db8:1::11"):
        check(vpp.api.lb_add_del_as_v2(as_address=a, weight=100, **v6).retval == 0, f"AS {a}")
    r = vpp.api.lb_add_del_as_v2(as_address="10.0.0.9", weight=100, pfx="203.0.113.9/32",
                                 protocol=6, port=80)
    check(r.retval == -6, f"AS on a missing VIP is NO_SUCH_ENTRY: {r.retval}")
    r = vpp.api.lb_add_del_as_v2(as_address="2001:db8:1::12", weight=100, **v4)
    check(r.retval == -97, f"IPv6 AS on a gre4 VIP is INVALID_ADDRESS_FAMILY: {r.retval}")

    r = vpp.api.lb_as_set_weight(as_address="10.0.0.1", weight=50, is_flush=True, **v4)
    check(r.retval == 0, "lb_as_set_weight 10.0.0.1 -> 50 with flush")
    r = vpp.api.lb_as_set_weight(as_address="10.0.0.2", weight=0, is_flush=False, **v4)
    check(r.retval == 0, "lb_as_set_weight 10.0.0.2 -> 0 (drain)")

    ases = vpp.api.lb_as_v2_dump()
    got = {str(a.app_srv): (a.weight, a.num_buckets, a.flags) for a in ases
           if str(a.vip.pfx) == "192.0.2.1/32"}
    want_w = {"10.0.0.1": 50, "10.0.0.2": 0, "10.0.0.3": 100, "10.0.0.4": 100}
    want_b = maglev_buckets(list(want_w.items()))
    check(all(got[a][0] == w for a, w in want_w.items()), f"dumped weights {got}")
    check(all(got[a][1] == want_b[a] for a in want_w), f"bucket counts equal vpp::maglev {want_b}")
    check(want_b == {"10.0.0.1": 208, "10.0.0.2": 0, "10.0.0.3": 408, "10.0.0.4": 408},
          "vpp::maglev gives VPP's reference numbers (test_lb.py)")
    six = {str(a.app_srv): a.num_buckets for a in ases if str(a.vip.pfx) == "2001:db8::1/128"}
    check(six == {"2001:db8:1::10": 512, "2001:db8:1::11": 512}, f"IPv6 buckets {six}")
    filtered = vpp.api.lb_as_v2_dump(pfx="192.0.2.1/32", protocol=6, port=80)
    check(len(filtered) == 0, "IPv4-filtered lb_as_v2_dump is empty (VPP quirk)")
    filtered = vpp.api.lb_as_v2_dump(pfx="2001:db8::1/128", protocol=17, port=53)
    check(len(filtered) == 2, "IPv6-filtered lb_as_v2_dump works")

    vips = vpp.api.lb_vip_dump()
    desc = sorted((str(x.vip.pfx), x.vip.protocol, x.vip.port, x.encap, x.flow_table_length)
                  for x in vips)
    check(desc == [("192.0.2.1/32", 6, 80, 0, 1024), ("2001:db8::1/128", 17, 53, 1, 1024)],
          f"lb_vip_dump {desc}")

    out = vpp.api.cli_inband(cmd="show lb vips verbose")
    text = out.reply
    check(out.retval == 0 and text.startswith(" ip4-gre4 [1] 192.0.2.1/32 src_ip_sticky\n"),
          "show lb vips verbose header line")
    check("    10.0.0.1 weight:50 buckets:208 " in text, "verbose AS line with buckets")
    check(" ip6-gre6 [2] 2001:db8::1/128\n" in text, "verbose IPv6 VIP")
    bad = vpp.api.cli_inband(cmd="show lb bogus")
    check(bad.retval == -1 and "unknown input" in bad.reply, f"failing CLI: {bad.reply!r}")

    stats_checks(vpp, stats_sock)

    r = vpp.api.lb_add_del_as_v2(as_address="10.0.0.4", is_del=True, is_flush=True, **v4)
    check(r.retval == 0, "AS delete with flush")
    dead = [a for a in vpp.api.lb_as_v2_dump() if str(a.app_srv) == "10.0.0.4"]
    check(len(dead) == 1 and dead[0].flags == 0 and dead[0].num_buckets == 0,
          "deleted AS lingers with flags 0 until collected")
    r = vpp.api.lb_add_del_vip_v2(is_del=True, **v6)
    check(r.retval == 0, "VIP delete with ASes succeeds")
    check(len(vpp.api.lb_vip_dump()) == 1, "deleted VIP gone from lb_vip_dump")

    route = vpp.api.ip_route_lookup(table_id=0, exact=1, prefix="192.0.2.1/32")
    check(route.retval == 0 and route.route.n_paths == 1, "ip_route_lookup of a VIP")
    miss = vpp.api.ip_route_lookup(table_id=0, exact=1, prefix="198.51.100.1/32")
    check(miss.retval == -6, "ip_route_lookup exact miss is NO_SUCH_ENTRY")

    rv = vpp.disconnect()
    check(getattr(rv, "response", None) == 1, f"disconnect: sockclnt_delete_reply response 1 ({rv})")


if __name__ == "__main__":
    main()
