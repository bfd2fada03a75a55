//! When each backend is probed: the prober thread's timing policy, without
//! sockets or a clock (the thread passes `now`).
//!
//! - A backend is probed every `interval` with ±10 % jitter, measured from
//!   the start of its previous probe (so a slow backend is not probed less
//!   often), never while its previous probe still runs (the turn is
//!   skipped, not queued: a `timeout` above `interval` cannot pile up).
//! - Wake-ups are aligned to a [`TICK`] grid: a due probe waits at most one
//!   tick, and the thread wakes at most 100 times a second however many
//!   backends it has.
//! - Start timers live in a timing wheel of one slot per tick, [`SLOTS`]
//!   ticks ahead (later ones wait in a heap and move in as the wheel
//!   turns): starting a probe and timing the next are O(1), where a heap of
//!   10,000 backends cost 6 % of the daemon. One live timer per backend;
//!   superseded ones are dropped as they surface, and before the thread is
//!   told when to wake, so it never wakes for nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
#[cfg(test)]
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::BackendId;
use super::idhash::IdMap;

/// Spreads `interval` by ±10 % using `unit`, a random number in [0, 1).
///
/// After a restart every backend would otherwise be probed on the same tick.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
    // Never panics: an interval too large to scale stays as it is.
    Duration::try_from_secs_f64(interval.as_secs_f64() * factor).unwrap_or(interval)
}

/// The random numbers jitter needs (xorshift64*: plenty for spreading
/// probes, no dependency). One definition for the prober and the checker.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded by `seed` (any value).
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// Seeded from the clock and `salt` (e.g. a thread index).
    pub fn from_clock(salt: u64) -> Jitter {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        Jitter::new(t ^ salt.rotate_left(48))
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The wake-up grid.
pub const TICK: Duration = Duration::from_millis(10);

/// Where a time would overflow the clock: as good as never (a century).
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `t + d`, saturating at [`FAR`] from `t`.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(FAR)).unwrap_or(t)
}

/// Slots of the wheel: 1,024 ticks, 10.24 s ahead.
pub const SLOTS: u64 = 1024;

/// A start timer: `id` is due at `at`, if `stamp` is still its live one.
#[derive(Debug, Clone, Copy)]
struct Timer {
    at: Instant,
    stamp: u64,
    id: BackendId,
}

struct Entry<T> {
    data: T,
    interval: Duration,
    /// The sequence number of its live heap entry; heap entries with
    /// another one are stale (numbers are never reused, so a replaced
    /// backend's old entry is stale too).
    stamp: u64,
    last_start: Option<Instant>,
    busy: bool,
}

/// Probe start times of many backends, each carrying the caller's `T`.
pub struct Schedule<T> {
    epoch: Instant,
    jobs: IdMap<BackendId, Entry<T>>,
    /// Slot `t % SLOTS` holds the timers of tick `t`, for the ticks from
    /// `cursor` to `cursor + SLOTS`.
    wheel: Vec<Vec<Timer>>,
    /// The first tick whose slot is not known to be empty.
    cursor: u64,
    /// Timers in the wheel (stale ones included).
    in_wheel: usize,
    /// Timers beyond the wheel.
    far: BinaryHeap<Reverse<(Instant, u64, BackendId)>>,
    seq: u64,
    rng: Jitter,
}

impl<T> Schedule<T> {
    /// An empty schedule whose tick grid starts at `epoch`, jittered by
    /// `rng`.
    pub fn new(epoch: Instant, rng: Jitter) -> Schedule<T> {
        Schedule {
            epoch,
            jobs: IdMap::default(),
            wheel: (0..SLOTS).map(|_| Vec::new()).collect(),
            cursor: 0,
            in_wheel: 0,
            far: BinaryHeap::new(),
            seq: 0,
            rng,
        }
    }

    fn unit(&mut self) -> f64 {
        self.rng.unit()
    }

    /// The tick `at` falls in.
    fn tick(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch).as_nanos() / TICK.as_nanos();
        since.min(u128::from(u64::MAX)) as u64
    }

    fn push(&mut self, id: BackendId, at: Instant) {
        let Some(e) = self.jobs.get_mut(&id) else {
            return;
        };
        self.seq += 1;
        e.stamp = self.seq;
        let timer = Timer {
            at,
            stamp: self.seq,
            id,
        };
        self.place(timer);
    }

    fn place(&mut self, t: Timer) {
        let tick = self.tick(t.at).max(self.cursor);
        if tick - self.cursor < SLOTS {
            self.wheel[(tick % SLOTS) as usize].push(t);
            self.in_wheel += 1;
        } else {
            self.far.push(Reverse((t.at, t.stamp, t.id)));
        }
    }

    fn is_live(&self, t: &Timer) -> bool {
        self.jobs.get(&t.id).is_some_and(|e| e.stamp == t.stamp)
    }

    /// Turns the wheel to `tick` (the slots passed are empty), moving in
    /// the far timers that now fit.
    fn turn_to(&mut self, tick: u64) {
        self.cursor = self.cursor.max(tick);
        while let Some(Reverse((at, stamp, id))) = self.far.peek().copied() {
            if self.tick(at).saturating_sub(self.cursor) >= SLOTS {
                break;
            }
            self.far.pop();
            self.place(Timer { at, stamp, id });
        }
    }

    /// Probes `id` every `interval`, the first time `first_in` from `now`;
    /// replaces (and returns) an existing entry's data.
    pub fn insert(
        &mut self,
        id: BackendId,
        data: T,
        interval: Duration,
        first_in: Duration,
        now: Instant,
    ) -> Option<T> {
        let old = self.jobs.insert(
            id,
            Entry {
                data,
                interval,
                stamp: 0,
                last_start: None,
                busy: false,
            },
        );
        self.push(id, later(now, first_in));
        old.map(|e| e.data)
    }

    /// Stops probing `id`.
    pub fn remove(&mut self, id: BackendId) -> Option<T> {
        self.jobs.remove(&id).map(|e| e.data)
    }

    /// The data of `id`.
    pub fn get(&self, id: BackendId) -> Option<&T> {
        self.jobs.get(&id).map(|e| &e.data)
    }

    /// The data of `id`, mutably.
    pub fn get_mut(&mut self, id: BackendId) -> Option<&mut T> {
        self.jobs.get_mut(&id).map(|e| &mut e.data)
    }

    /// Backends scheduled.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// A new period for `id` (its health cadence changed): the next probe
    /// moves to one new period after the last start (at once if that has
    /// passed); a running probe keeps running and the period applies from
    /// its end.
    pub fn set_interval(&mut self, id: BackendId, interval: Duration, now: Instant) {
        let u = self.unit();
        let Some(e) = self.jobs.get_mut(&id) else {
            return;
        };
        if e.interval == interval {
            return;
        }
        e.interval = interval;
        if e.busy {
            return;
        }
        let due = e
            .last_start
            .map_or(now, |s| later(s, jittered(interval, u)).max(now));
        self.push(id, due);
    }

    /// The next backend to probe at `now`, with the time it was due (for
    /// lateness); marks it running. A backend still running its previous
    /// probe skips the turn. Call until `None`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(BackendId, Instant)> {
        let now_tick = self.tick(now);
        loop {
            if self.in_wheel == 0 {
                // Skip the empty slots at once: to the first far timer.
                let first = self.far.peek().map(|r| self.tick(r.0.0))?;
                if first > now_tick {
                    return None;
                }
                self.turn_to(first);
                continue;
            }
            let slot = &mut self.wheel[(self.cursor % SLOTS) as usize];
            // A past tick is all due; the current one up to `now`.
            let found = if self.cursor < now_tick {
                slot.pop()
            } else {
                slot.iter()
                    .rposition(|t| t.at <= now)
                    .map(|i| slot.swap_remove(i))
            };
            let Some(t) = found else {
                if self.cursor >= now_tick {
                    return None;
                }
                self.turn_to(self.cursor + 1);
                continue;
            };
            self.in_wheel -= 1;
            let u = self.unit();
            let Some(e) = self.jobs.get_mut(&t.id) else {
                continue;
            };
            if e.stamp != t.stamp {
                continue; // superseded
            }
            if e.busy {
                // Previous probe still running: skip this turn.
                let next = later(now, jittered(e.interval, u));
                self.push(t.id, next);
                continue;
            }
            e.busy = true;
            e.last_start = Some(now);
            return Some((t.id, t.at));
        }
    }

    /// The probe of `id` that started at `started` ended at `now`: the
    /// next one is due one (jittered) period after `started`, or at once.
    pub fn finished(&mut self, id: BackendId, started: Instant, now: Instant) {
        let u = self.unit();
        let Some(e) = self.jobs.get_mut(&id) else {
            return;
        };
        e.busy = false;
        let due = later(started, jittered(e.interval, u)).max(now);
        self.push(id, due);
    }

    /// The earliest start time, stale timers dropped first.
    pub fn next_start(&mut self) -> Option<Instant> {
        let mut tick = self.cursor;
        while self.in_wheel > 0 && tick < self.cursor + SLOTS {
            let i = (tick % SLOTS) as usize;
            if !self.wheel[i].is_empty() {
                let mut slot = std::mem::take(&mut self.wheel[i]);
                let before = slot.len();
                slot.retain(|t| self.is_live(t));
                self.in_wheel -= before - slot.len();
                let first = slot.iter().map(|t| t.at).min();
                self.wheel[i] = slot;
                if first.is_some() {
                    return first;
                }
            }
            tick += 1;
        }
        while let Some(Reverse((at, stamp, id))) = self.far.peek().copied() {
            if self.is_live(&Timer { at, stamp, id }) {
                return Some(at);
            }
            self.far.pop();
        }
        None
    }

    /// The first tick of the grid at or after `at`.
    pub fn on_tick(&self, at: Instant) -> Instant {
        let since = at.saturating_duration_since(self.epoch).as_nanos();
        let tick = TICK.as_nanos();
        let ticks = since.div_ceil(tick);
        self.epoch + Duration::from_nanos((ticks * tick).min(u128::from(u64::MAX)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    /// Runs the schedule like the prober thread, with a fake clock: wakes
    /// exactly at the tick the schedule asks for, starts what is due,
    /// lets each probe take `probe` time. Returns each backend's start
    /// times and the number of wake-ups.
    fn drive(
        s: &mut Schedule<()>,
        t0: Instant,
        until: Duration,
        probe: Duration,
    ) -> (HashMap<BackendId, Vec<Duration>>, usize) {
        let mut starts: HashMap<BackendId, Vec<Duration>> = HashMap::new();
        let mut running: Vec<(Instant, BackendId, Instant)> = Vec::new();
        let mut now = t0;
        let mut wakeups = 0;
        loop {
            running.retain(|&(end, id, started)| {
                if end <= now {
                    s.finished(id, started, now);
                    false
                } else {
                    true
                }
            });
            while let Some((id, at)) = s.pop_due(now) {
                assert!(now >= at);
                assert!(now - at <= TICK, "started {:?} late", now - at);
                starts.entry(id).or_default().push(now - t0);
                running.push((now + probe, id, now));
            }
            let next_start = s.next_start().map(|t| s.on_tick(t));
            let next_end = running.iter().map(|r| r.0).min();
            let next = match (next_start, next_end) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            assert!(next > now, "a wake-up at or before now");
            if next > t0 + until {
                break;
            }
            now = next;
            // Probe ends come from sockets in the real thread; count only
            // the wake-ups the schedule asks for.
            if Some(next) == next_start {
                wakeups += 1;
            }
        }
        (starts, wakeups)
    }

    #[test]
    fn probes_every_interval_with_jitter_on_the_tick_grid() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Jitter::new(42));
        for id in 0..100 {
            s.insert(id, (), SEC, Duration::from_millis(u64::from(id) * 10), t0);
        }
        let (starts, wakeups) = drive(&mut s, t0, Duration::from_secs(60), 2 * MS);
        for (id, v) in &starts {
            // About 60 probes each, gaps within the jitter (plus a tick).
            assert!((54..=68).contains(&v.len()), "backend {id}: {}", v.len());
            for w in v.windows(2) {
                let gap = w[1] - w[0];
                assert!(gap >= 900 * MS && gap <= 1100 * MS + TICK, "gap {gap:?}");
            }
        }
        // 100 backends, 6,000 probes: one wake-up per 10 ms tick at most.
        assert!(wakeups <= 6000 + 100, "{wakeups} wake-ups");
    }

    #[test]
    fn periods_beyond_the_wheel_wait_in_the_heap_and_keep_time() {
        // 30 s and 60 s periods (beyond the wheel's 10.24 s) beside 1 s
        // ones; the 60 s ones start after a long quiet spell.
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Jitter::new(11));
        for id in 0..20 {
            s.insert(id, (), SEC, Duration::from_millis(u64::from(id) * 7), t0);
        }
        for id in 100..110 {
            s.insert(id, (), 30 * SEC, Duration::from_millis(u64::from(id)), t0);
        }
        for id in 200..205 {
            s.insert(id, (), 60 * SEC, 45 * SEC, t0);
        }
        let (starts, _) = drive(&mut s, t0, Duration::from_secs(240), 2 * MS);
        for id in 100..110 {
            let v = &starts[&id];
            assert!((8..=9).contains(&v.len()), "backend {id}: {v:?}");
            for w in v.windows(2) {
                let gap = w[1] - w[0];
                assert!(gap >= 27 * SEC && gap <= 33 * SEC + TICK, "gap {gap:?}");
            }
        }
        for id in 200..205 {
            let v = &starts[&id];
            assert!(v[0] >= 45 * SEC && v[0] <= 45 * SEC + TICK, "{v:?}");
            assert!((4..=5).contains(&v.len()), "backend {id}: {v:?}");
        }
        assert!((216..=268).contains(&starts[&0].len()));
    }

    #[test]
    fn nothing_scheduled_means_no_wakeup() {
        let t0 = Instant::now();
        let mut s: Schedule<()> = Schedule::new(t0, Jitter::new(1));
        assert_eq!(s.next_start(), None);
        s.insert(7, (), SEC, Duration::ZERO, t0);
        s.remove(7);
        // Its stale heap entry is dropped, not woken for.
        assert_eq!(s.next_start(), None);
        assert_eq!(s.pop_due(t0 + SEC), None);
    }

    #[test]
    fn a_probe_slower_than_its_interval_skips_turns_instead_of_piling_up() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Jitter::new(3));
        // interval 1 s, the probe takes 2.5 s (timeout above interval):
        // the next starts when the previous ends, never two at once.
        s.insert(1, (), SEC, Duration::ZERO, t0);
        let (starts, _) = drive(&mut s, t0, Duration::from_secs(30), 2500 * MS);
        let v = &starts[&1];
        for w in v.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap >= 2500 * MS && gap <= 2500 * MS + TICK, "gap {gap:?}");
        }
        assert_eq!(v.len(), 13);
    }

    #[test]
    fn a_new_interval_applies_from_the_last_start() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Jitter::new(9));
        s.insert(1, (), Duration::from_secs(10), Duration::ZERO, t0);
        assert_eq!(s.pop_due(t0).map(|x| x.0), Some(1));
        s.finished(1, t0, t0 + 5 * MS);
        // Goes degraded: fast interval 1 s, measured from the last start.
        s.set_interval(1, SEC, t0 + 200 * MS);
        let next = s.next_start().unwrap();
        assert!(
            next >= t0 + 900 * MS && next <= t0 + 1100 * MS,
            "{:?}",
            next - t0
        );
        // A change to a period already over starts at once.
        s.set_interval(1, 100 * MS, t0 + 500 * MS);
        assert_eq!(s.next_start(), Some(t0 + 500 * MS));
        // Setting the same interval changes nothing.
        s.set_interval(1, 100 * MS, t0 + 600 * MS);
        assert_eq!(s.next_start(), Some(t0 + 500 * MS));
    }

    #[test]
    fn replacing_returns_the_old_data_and_drops_its_timer() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Jitter::new(5));
        assert!(s.insert(1, "a", SEC, Duration::ZERO, t0).is_none());
        assert_eq!(s.insert(1, "b", SEC, 5 * SEC, t0), Some("a"));
        assert_eq!(s.pop_due(t0), None, "the old start is superseded");
        assert_eq!(s.next_start(), Some(t0 + 5 * SEC));
        assert_eq!(s.get(1), Some(&"b"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn absurd_intervals_do_not_overflow() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Jitter::new(5));
        let huge = Duration::from_secs(u64::MAX / 2);
        s.insert(1, (), huge, huge, t0);
        assert_eq!(s.pop_due(t0 + SEC), None);
        s.insert(2, (), huge, Duration::ZERO, t0);
        assert_eq!(s.pop_due(t0).map(|x| x.0), Some(2));
        s.finished(2, t0, t0 + MS);
        // Both far in the future, neither in the past.
        assert!(s.next_start().unwrap() > t0 + Duration::from_secs(1_000_000));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let i = Duration::from_secs(1);
        assert_eq!(jittered(i, 0.0), Duration::from_millis(900));
        assert_eq!(jittered(i, 0.5), Duration::from_millis(1000));
        assert!(jittered(i, 0.999_999) <= Duration::from_millis(1100));
        assert_eq!(jittered(i, 7.0), Duration::from_millis(1100), "clamped");
        let mut j = Jitter::new(0);
        for _ in 0..1000 {
            let u = j.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn ticks_round_up_to_the_grid() {
        let t0 = Instant::now();
        let s: Schedule<()> = Schedule::new(t0, Jitter::new(1));
        assert_eq!(s.on_tick(t0), t0);
        assert_eq!(s.on_tick(t0 + MS), t0 + TICK);
        assert_eq!(s.on_tick(t0 + TICK), t0 + TICK);
        assert_eq!(s.on_tick(t0 + TICK + MS), t0 + 2 * TICK);
    }
}
