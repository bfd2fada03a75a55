//! `vpp::stats` against the simulator's segment: a writer reallocating
//! vectors while we read, damaged segments, and a VPP restart.

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TempDir;
use vpp_maglev::vpp::sim::lb::{VipArgs, VipCounters};
use vpp_maglev::vpp::sim::stats::SegmentWriter;
use vpp_maglev::vpp::sim::{Sim, SimOptions};
use vpp_maglev::vpp::stats::{Segment, StatsError, kind};
use vpp_maglev::vpp::wire::{LbVip, Prefix};

#[test]
fn concurrent_growth_never_yields_torn_or_stale_values() {
    let w = Arc::new(std::sync::Mutex::new(
        SegmentWriter::new(64 << 20, 3, 1).unwrap(),
    ));
    let file = w.lock().unwrap().file().try_clone().unwrap();
    let seg = Segment::from_file(file).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (w2, s2) = (Arc::clone(&w), Arc::clone(&stop));
    // The writer grows the vector one slot at a time and writes counter
    // k = 3 * k split over three rows.
    let writer = std::thread::spawn(move || {
        for len in 1..3000usize {
            if s2.load(Ordering::Relaxed) {
                break;
            }
            let mut w = w2.lock().unwrap();
            // Mostly in-place growth (no epoch change), with reallocations
            // and, every 50 steps, a new directory entry (epoch changes).
            w.ensure("first session packet", kind::COUNTER_VECTOR_SIMPLE, len);
            if len % 50 == 0 {
                w.ensure(&format!("/churn/{len}"), kind::COUNTER_VECTOR_SIMPLE, 1);
            }
            let k = len - 1;
            w.set_simple("first session packet", k, &[k as u64, k as u64, k as u64]);
            drop(w);
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let t0 = Instant::now();
    let mut reads = 0;
    let mut epochs = std::collections::BTreeSet::new();
    while !writer.is_finished() && t0.elapsed() < Duration::from_secs(20) {
        let r = seg.read(&[5, 500, 2000], &[]).expect("consistent read");
        for (i, c) in &r.vips {
            // Each thread's row is written on its own, as VPP's workers
            // do (no protocol guards counter values, only structure): a
            // sum may catch some rows written and others not, but never a
            // torn or foreign u64 — each row is 0 or the index.
            let v = c[1];
            let i = u64::from(*i);
            assert!(
                v % i.max(1) == 0 && v <= 3 * i,
                "torn value {v} at index {i}"
            );
        }
        epochs.insert(r.epoch);
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let r = seg.read(&[5, 500, 2000], &[]).unwrap();
    assert_eq!(r.vips[&2000][1], 6000);
    assert!(
        reads > 10 && epochs.len() > 5,
        "{reads} reads over {} epochs",
        epochs.len()
    );
}

#[test]
fn garbage_and_truncated_segments_are_errors() {
    let dir = TempDir::new("statsbad");
    // Not a segment at all.
    let p = dir.path("garbage");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&[0xa5; 8192]).unwrap();
    drop(f);
    let err = Segment::from_file(std::fs::File::open(&p).unwrap())
        .err()
        .unwrap();
    assert!(matches!(err, StatsError::Incompatible(_)), "{err}");
    // Too short for a header.
    let p = dir.path("short");
    std::fs::write(&p, [2u8; 10]).unwrap();
    assert!(Segment::from_file(std::fs::File::open(&p).unwrap()).is_err());
    // A real segment cut in half: pointers lead outside the file.
    let mut w = SegmentWriter::new(1 << 20, 2, 7).unwrap();
    w.ensure("first session packet", kind::COUNTER_VECTOR_SIMPLE, 50_000);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut w.file().try_clone().unwrap(), &mut bytes).unwrap();
    let p = dir.path("cut");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    // Make the copy's pointers refer to the copy (same base as the writer).
    let seg = Segment::from_file(std::fs::File::open(&p).unwrap()).unwrap();
    let err = seg.read(&[1], &[]).expect_err("an error, not a crash");
    assert!(matches!(err, StatsError::Corrupt(_)), "{err}");
    // Random corruption of a valid segment never panics.
    let mut rng = 0x1234_5678_9abc_def1u64;
    for _ in 0..300 {
        let mut b = bytes[..64 * 1024].to_vec();
        for _ in 0..8 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = (rng as usize) % b.len();
            b[i] = (rng >> 40) as u8;
        }
        b[..8].copy_from_slice(&2u64.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        if let Ok(seg) = Segment::from_file(std::fs::File::open(&p).unwrap()) {
            let _ = seg.read(&[0, 1, 49_999], &[0, 3]);
        }
    }
}

#[test]
fn a_restarted_vpp_has_a_new_segment() {
    let dir = TempDir::new("statsrestart");
    let mut opts = SimOptions::new(dir.path("api.sock"));
    opts.stats_socket = Some(dir.path("stats.sock"));
    let sim = Sim::start(opts).unwrap();
    let key = LbVip {
        pfx: Prefix::host("192.0.2.1".parse().unwrap()),
        protocol: 6,
        port: 80,
    };
    let now = Instant::now();
    sim.with_state(|s| {
        s.add_vip(&VipArgs::new(key.pfx, 6, 80), now);
        s.add_traffic(
            &key,
            VipCounters {
                existing_sessions: 10,
                first_packet: 2,
                untracked: 0,
                no_server: 1,
            },
        )
    });
    let old = Segment::connect(&dir.path("stats.sock"), Duration::from_secs(1)).unwrap();
    let r1 = old.read(&[1], &[40]).unwrap();
    assert_eq!(r1.vips[&1], [10, 2, 0, 1]);
    assert_eq!(r1.routes[&40], (13, 1300));
    sim.restart();
    // The old mapping stays readable but belongs to the dead VPP; a new
    // connection maps the new segment, with a new boot time and no VIPs.
    let new = Segment::connect(&dir.path("stats.sock"), Duration::from_secs(1)).unwrap();
    let r2 = new.read(&[1], &[40]).unwrap();
    assert!(
        r2.boottime > r1.boottime,
        "{} vs {}",
        r2.boottime,
        r1.boottime
    );
    assert_eq!(r2.vips[&1], [0, 0, 0, 0]);
    assert_eq!(old.read(&[1], &[]).unwrap().boottime, r1.boottime);
    // Heartbeat ticks in the live segment only.
    let h = new.read(&[], &[]).unwrap().heartbeat;
    std::thread::sleep(Duration::from_millis(1100));
    assert!(new.read(&[], &[]).unwrap().heartbeat > h);
}

#[test]
fn nothing_listening_is_a_socket_error() {
    let dir = TempDir::new("statsnone");
    let err = Segment::connect(&dir.path("none.sock"), Duration::from_millis(100))
        .err()
        .unwrap();
    assert!(matches!(err, StatsError::Socket(_)), "{err}");
}

#[test]
fn the_stats_thread_follows_a_vpp_restart() {
    use vpp_maglev::snapshot::Published;
    use vpp_maglev::vpp::reconciler::{VipStatus, VppStatus};
    use vpp_maglev::vpp::scraper::Scraper;

    let dir = TempDir::new("scraper");
    let mut opts = SimOptions::new(dir.path("api.sock"));
    opts.stats_socket = Some(dir.path("stats.sock"));
    let sim = Sim::start(opts).unwrap();
    let key = LbVip {
        pfx: Prefix::host("192.0.2.1".parse().unwrap()),
        protocol: 6,
        port: 80,
    };
    let traffic = |n: u64| VipCounters {
        existing_sessions: n,
        first_packet: 1,
        untracked: 0,
        no_server: 0,
    };
    let now = Instant::now();
    sim.with_state(|s| {
        s.add_vip(&VipArgs::new(key.pfx, 6, 80), now);
        s.add_traffic(&key, traffic(10))
    });
    let session = |t: u64| VppStatus {
        connected: true,
        connected_at: Some(std::time::UNIX_EPOCH + Duration::from_secs(t)),
        version: None,
        pid: None,
        vips: vec![VipStatus {
            frontend: Some("web".into()),
            key,
            index: Some(1),
            stats_index: Some(40),
            flows: Default::default(),
            fingerprint: None,
            share_error_centi: 0,
        }],
        frontends: Default::default(),
    };
    let status = Published::new(session(1));
    let scraper = Scraper::start(
        Some(dir.path("stats.sock")),
        Duration::from_millis(50),
        status.clone(),
    )
    .unwrap();
    let latest = scraper.latest();
    let wait = |pred: &dyn Fn(&vpp_maglev::vpp::scraper::LbCounters) -> bool| {
        common::wait_until("stats thread", Duration::from_secs(3), || {
            pred(&latest.load())
        });
    };
    wait(&|c| {
        c.vips
            .first()
            .is_some_and(|v| v.next == 10 && v.route == Some((11, 1100)))
    });
    let boot1 = latest.load().boottime;
    // VPP restarts; the reconciler reconnects (a new session) and re-adds
    // the VIP; traffic starts from zero in the new segment.
    sim.restart();
    sim.with_state(|s| {
        s.add_vip(&VipArgs::new(key.pfx, 6, 80), now);
        s.add_traffic(&key, traffic(3))
    });
    status.store(Arc::new(session(2)));
    wait(&|c| c.boottime > boot1 && c.vips.first().is_some_and(|v| v.next == 3));
    // Disconnected: the snapshot is cleared.
    status.store(Arc::new(VppStatus::default()));
    wait(&|c| c.vips.is_empty() && c.at.is_none());
    scraper.shutdown();
}

#[test]
fn a_segment_cut_under_the_reader_is_an_error_not_sigbus() {
    let w = SegmentWriter::new(8 << 20, 2, 1).unwrap();
    let file = w.file().try_clone().unwrap();
    let seg = Segment::from_file(w.file().try_clone().unwrap()).unwrap();
    assert!(seg.read(&[0], &[0]).is_ok());
    // A hostile or broken writer cuts the file while we read it.
    let reader = std::thread::spawn(move || {
        let mut errors = 0;
        for _ in 0..2000 {
            if seg.read(&[0, 1, 2], &[0]).is_err() {
                errors += 1;
            }
        }
        errors
    });
    std::thread::sleep(Duration::from_millis(2));
    file.set_len(64).unwrap();
    let errors = reader.join().expect("the reader survived");
    assert!(errors > 0, "reads after the cut must fail");
    drop(w);
}
