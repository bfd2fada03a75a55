//! `vppsim`: a simulated VPP on a Unix socket, for development and tests.
//! Not shipped in the Debian packages.
//!
//! ```text
//! vppsim --api-socket PATH [--stats-socket PATH] [--gc-delay SECONDS] [--old-lb]
//! vppsim maglev-buckets SIZE ADDR:WEIGHT...
//! vppsim stats-read --stats-socket PATH [--vip INDEX]... [--route INDEX]...
//! ```

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use vpp_maglev::vpp::maglev::{Member, bucket_counts};
use vpp_maglev::vpp::sim::{Flavor, Sim, SimOptions};
use vpp_maglev::vpp::stats::Segment;

const USAGE: &str =
    "usage: vppsim --api-socket PATH [--stats-socket PATH] [--gc-delay SECONDS] [--old-lb]
       vppsim maglev-buckets SIZE ADDR:WEIGHT...
       vppsim stats-read --stats-socket PATH [--vip INDEX]... [--route INDEX]...
       vppsim seed --api-socket PATH    (as a client: lb state an operator made)
       vppsim state --api-socket PATH   (as a client: print the lb state, sorted)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("maglev-buckets") {
        return maglev_buckets(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("stats-read") {
        return stats_read(&args[1..]);
    }
    if let Some(cmd @ ("seed" | "state")) = args.first().map(String::as_str) {
        return client(cmd, &args[1..]);
    }
    let mut socket = None;
    let mut stats_socket = None;
    let mut gc = Duration::from_secs(60);
    let mut flavor = Flavor::Current;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--api-socket" => socket = it.next().cloned(),
            "--stats-socket" => stats_socket = it.next().cloned(),
            "--gc-delay" => match it.next().and_then(|s| s.parse::<f64>().ok()) {
                Some(s) if s >= 0.0 => gc = Duration::from_secs_f64(s),
                _ => return usage("--gc-delay needs a number of seconds"),
            },
            "--old-lb" => flavor = Flavor::OldLb,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(socket) = socket else {
        return usage("--api-socket is required");
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    if let Err(e) = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None) {
        eprintln!("vppsim: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let mut opts = SimOptions::new(&socket);
    opts.gc_delay = gc;
    opts.flavor = flavor;
    opts.stats_socket = stats_socket.map(Into::into);
    let mut sim = match Sim::start(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vppsim: cannot listen on {socket}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sig = mask.wait();
    log::info!("vppsim-stopping signal={sig:?}");
    sim.stop();
    ExitCode::SUCCESS
}

/// `seed` and `state`: the simulator (or a VPP) seen from a client, for
/// tests that must prove something left VPP alone.
fn client(cmd: &str, args: &[String]) -> ExitCode {
    use vpp_maglev::vpp::client::{ApiCounters, Client, ClientConfig, LbConfig, VipSpec};
    use vpp_maglev::vpp::wire::{Encap, LbVip, Prefix};
    let [flag, sock] = args else {
        return usage(&format!("{cmd} needs --api-socket PATH"));
    };
    if flag != "--api-socket" {
        return usage(&format!("{cmd} needs --api-socket PATH"));
    }
    let mut c = match Client::connect(&ClientConfig::new(sock), ApiCounters::new()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vppsim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = if cmd == "seed" {
        // What an operator set up by hand before maglevd arrived.
        let vip = |a: &str, port: u16| LbVip {
            pfx: Prefix::host(a.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
            protocol: 6,
            port,
        };
        (|| {
            c.lb_conf(&LbConfig {
                ip4_src: [198, 51, 100, 254].into(),
                ip6_src: "2001:db8:ffff::254"
                    .parse()
                    .unwrap_or(std::net::Ipv6Addr::LOCALHOST),
                sticky_buckets_per_core: 1024,
                flow_timeout: 60,
            })?;
            for (v, ases) in [
                (
                    vip("203.0.113.10", 443),
                    &["198.51.100.1", "198.51.100.2"][..],
                ),
                (vip("203.0.113.11", 80), &["198.51.100.3"][..]),
            ] {
                c.vip_add_del(
                    &VipSpec {
                        key: v,
                        encap: Encap::Gre4,
                        src_ip_sticky: false,
                        new_flows_table_length: 1024,
                    },
                    false,
                )?;
                for a in ases {
                    c.as_add_del(
                        &v,
                        a.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                        100,
                        false,
                        false,
                    )?;
                }
            }
            Ok(())
        })()
    } else {
        (|| {
            let conf = c.lb_conf_get()?;
            println!(
                "conf ip4-src={} ip6-src={} sticky-buckets={} flow-timeout={}",
                conf.ip4_src, conf.ip6_src, conf.sticky_buckets_per_core, conf.flow_timeout
            );
            let mut lines: Vec<String> = c
                .vip_dump()?
                .iter()
                .map(|v| {
                    format!(
                        "vip {}:{}/{} encap={:?} table={}",
                        v.vip.pfx, v.vip.protocol, v.vip.port, v.encap, v.flow_table_length
                    )
                })
                .collect();
            lines.extend(c.as_dump()?.iter().map(|a| {
                format!(
                    "as {}:{}/{} {} weight={} flags={} buckets={}",
                    a.vip.pfx,
                    a.vip.protocol,
                    a.vip.port,
                    a.app_srv,
                    a.weight,
                    a.flags,
                    a.num_buckets
                )
            }));
            lines.sort();
            for l in lines {
                println!("{l}");
            }
            Ok(())
        })()
    };
    let _ = c.close();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: vpp_maglev::vpp::errors::VppError = e;
            eprintln!("vppsim: {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("vppsim: {msg}\n{USAGE}");
    ExitCode::from(64)
}

/// Prints what `vpp::stats` reads from a stats socket, so other tools (the
/// vpp_papi test) can compare it with VPP's own reader.
fn stats_read(args: &[String]) -> ExitCode {
    let (mut sock, mut vips, mut routes) = (None, Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next();
        match (a.as_str(), v) {
            ("--stats-socket", Some(p)) => sock = Some(p.clone()),
            ("--vip", Some(i)) if i.parse::<u32>().is_ok() => vips.push(i.parse().unwrap_or(0)),
            ("--route", Some(i)) if i.parse::<u32>().is_ok() => routes.push(i.parse().unwrap_or(0)),
            _ => return usage(&format!("bad stats-read argument {a:?}")),
        }
    }
    let Some(sock) = sock else {
        return usage("stats-read needs --stats-socket");
    };
    let seg = match Segment::connect(std::path::Path::new(&sock), Duration::from_secs(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vppsim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match seg.read(&vips, &routes) {
        Ok(r) => {
            println!("boottime {}", r.boottime);
            println!("heartbeat {}", r.heartbeat);
            for (i, c) in &r.vips {
                println!("vip {i} {} {} {} {}", c[0], c[1], c[2], c[3]);
            }
            for (i, (p, b)) in &r.routes {
                println!("route {i} {p} {b}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vppsim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints each member's bucket count (one per line) from `vpp::maglev`,
/// so other tools (the vpp_papi test) can check VPP's numbers against it.
fn maglev_buckets(args: &[String]) -> ExitCode {
    let Some(size) = args.first().and_then(|s| s.parse::<usize>().ok()) else {
        return usage("maglev-buckets needs SIZE");
    };
    if !size.is_power_of_two() {
        return usage("SIZE must be a power of two");
    }
    let mut members = Vec::new();
    for a in &args[1..] {
        let Some((addr, w)) = a.rsplit_once(':') else {
            return usage(&format!("bad member {a:?}, want ADDR:WEIGHT"));
        };
        match (addr.parse::<IpAddr>(), w.parse::<u8>()) {
            (Ok(addr), Ok(weight)) => members.push(Member { addr, weight }),
            _ => return usage(&format!("bad member {a:?}, want ADDR:WEIGHT")),
        }
    }
    for (m, c) in members.iter().zip(bucket_counts(&members, size)) {
        println!("{} {c}", m.addr);
    }
    ExitCode::SUCCESS
}
