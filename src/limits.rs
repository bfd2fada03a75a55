//! The process's descriptor budget, shared out so that no component can
//! starve the others: probes, `/metrics` clients and the rest each get a
//! bounded share of `RLIMIT_NOFILE`.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept back for everything but probes (control socket and
/// its clients, VPP API and stats, metrics, config files, log).
pub const RESERVED_MIN: u64 = 32;

/// Lifts the soft `RLIMIT_NOFILE` to the hard limit (systemd's default
/// soft limit is 1024) and returns the limit now in force.
pub fn raise_nofile() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// The soft `RLIMIT_NOFILE` in force.
pub fn nofile() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// Descriptors probes may hold at once, over all prober threads: the
/// limit less a reserve of a quarter (at least [`RESERVED_MIN`]).
pub fn probe_budget(nofile: u64) -> u64 {
    let reserve = (nofile / 4).max(RESERVED_MIN);
    nofile.saturating_sub(reserve).max(1)
}

/// Connections `/metrics` may hold at once: 1/16 of the limit, 4..=128.
pub fn metrics_conns(nofile: u64) -> usize {
    (nofile / 16).clamp(4, 128) as usize
}

/// Control-socket clients served at once: 1/8 of the limit, 8..=512.
pub fn control_clients(nofile: u64) -> usize {
    (nofile / 8).clamp(8, 512) as usize
}

/// Hands memory that is free inside the allocator back to the system.
///
/// A reload parses the whole file (for 100,000 backends, hundreds of MB
/// of transient YAML values) on one thread and replaces the state built
/// on another; glibc keeps the freed pages in per-thread arenas, so
/// without this each no-op reload left RSS higher (measured: 500 → 874 MB
/// over four reloads at 100,000 backends). Called after a load and after
/// a reload is applied; a no-op on other C libraries.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// At most two malloc arenas: glibc otherwise gives threads their own
/// (up to 8 per core), and each keeps its freed memory; maglevd's threads
/// allocate little and rarely at once (10,000 backends: 8 MB less RSS).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called at startup.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_leave_room_for_the_rest() {
        assert_eq!(probe_budget(64), 32);
        assert_eq!(probe_budget(1024), 768);
        assert_eq!(probe_budget(10), 1);
        assert_eq!(metrics_conns(64), 4);
        assert_eq!(metrics_conns(1024), 64);
        assert_eq!(metrics_conns(1 << 20), 128);
        assert_eq!(control_clients(64), 8);
        assert_eq!(control_clients(1 << 20), 512);
        for n in [64, 1024, 65536, 1 << 20] {
            let shared = probe_budget(n) + metrics_conns(n) as u64 + control_clients(n) as u64;
            assert!(shared <= n, "{n}: {shared}");
        }
    }
}
