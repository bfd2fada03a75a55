//! Prober threads: a timing wheel and `ppoll(2)` over many non-blocking sockets.
//!
//! Not a thread per backend and not a blocking call per probe: each prober
//! thread owns a share of the backends (by id), keeps their next probe time
//! in a [`Schedule`], starts due probes, and waits in one `ppoll(2)` for
//! whichever socket, timer or command comes first. The checker tells the
//! engine what to probe and at which period; the engine reports every
//! outcome back and never waits on the checker.
//!
//! The engine knows no probe kind's packets or protocol: each kind is a
//! [`Kind`] (see [`super::kind`]) that starts probes, names the
//! descriptors it wants polled and says what their readiness or a
//! deadline means; the engine owns the timers (schedule, deadlines,
//! report batching), the descriptor budget, the connections kept between
//! checks, the pollset, and the dispatch.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError, unbounded};
use log::{debug, error, warn};
use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::conn::ConnKind;
use super::icmp::IcmpKind;
use super::kind::{Event, Kind, Start, Tag};
use super::schedule::{Jitter, Schedule};
use super::stream::Kept;
use super::syn::SynKind;
use super::{Code, Interest, Outcome, ProbeSpec, errno_detail};
use crate::heartbeat::Beat;

pub use super::BackendId;

/// What the checker asks of the engine.
#[derive(Debug, Clone)]
pub enum Command {
    /// Probe `id` every `interval` from `first_in` on (replaces any job).
    Start {
        /// Backend.
        id: BackendId,
        /// Its name, for the `probe-start` debug line.
        name: Arc<str>,
        /// Generation: reports carry it so stale ones can be told apart.
        generation: u64,
        /// What to probe.
        spec: Arc<ProbeSpec>,
        /// Period.
        interval: Duration,
        /// Delay of the first probe.
        first_in: Duration,
    },
    /// Change the period (the state's cadence changed).
    SetInterval {
        /// Backend.
        id: BackendId,
        /// Generation it applies to.
        generation: u64,
        /// New period.
        interval: Duration,
    },
    /// Stop probing `id`; an in-flight probe is abandoned silently.
    Stop {
        /// Backend.
        id: BackendId,
    },
}

/// One finished probe.
#[derive(Debug, Clone)]
pub struct Report {
    /// Backend.
    pub id: BackendId,
    /// Generation of the job that ran it.
    pub generation: u64,
    /// What it found.
    pub outcome: Outcome,
    /// When it finished.
    pub at: SystemTime,
}

/// Prober wake-ups are aligned to this grid (see [`super::schedule`]).
pub use super::schedule::TICK;

/// Reports of one prober wake-up, delivered together (one wake-up of the
/// checker per batch instead of one per probe).
pub type ReportBatch = Vec<Report>;

/// Width of one lateness histogram bucket.
const LATE_BUCKET_US: u64 = 250;
/// Buckets (the last one collects everything above 250 ms).
const LATE_BUCKETS: usize = 1001;

/// Counters the engine keeps for benchmarks and metrics.
pub struct Stats {
    /// Probes started.
    pub started: AtomicU64,
    /// Probes finished (reported).
    pub finished: AtomicU64,
    /// Largest lateness seen, in µs.
    pub max_late_us: AtomicU64,
    /// Sum of all lateness, in µs (the histogram's `_sum`).
    pub late_sum_us: AtomicU64,
    late: Vec<AtomicU64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty counters.
    pub fn new() -> Stats {
        Stats {
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            max_late_us: AtomicU64::new(0),
            late_sum_us: AtomicU64::new(0),
            late: (0..LATE_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record_lateness(&self, late: Duration) {
        let us = late.as_micros().min(u128::from(u64::MAX)) as u64;
        let b = ((us / LATE_BUCKET_US) as usize).min(LATE_BUCKETS - 1);
        self.late[b].fetch_add(1, Ordering::Relaxed);
        self.max_late_us.fetch_max(us, Ordering::Relaxed);
        self.late_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Probes that started at most `le` late, for each bound (cumulative,
    /// to the 250 µs resolution of the record; bounds ascending), and all
    /// of them last.
    pub fn lateness_cumulative(&self, le: &[Duration]) -> (Vec<u64>, u64) {
        let counts: Vec<u64> = self
            .late
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total = counts.iter().sum();
        let out = le
            .iter()
            .map(|b| {
                // Bucket i holds [i, i+1) × 250 µs: count those that end
                // at or below the bound.
                let full = (b.as_micros() as u64 / LATE_BUCKET_US) as usize;
                counts.iter().take(full.min(LATE_BUCKETS - 1)).sum()
            })
            .collect();
        (out, total)
    }

    /// The `q` quantile (0..=1) of how late probes started versus schedule,
    /// to 250 µs resolution (upper bucket bound).
    pub fn lateness_quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .late
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                if i == LATE_BUCKETS - 1 {
                    return Duration::from_micros(self.max_late_us.load(Ordering::Relaxed));
                }
                return Duration::from_micros((i as u64 + 1) * LATE_BUCKET_US);
            }
        }
        Duration::from_micros(self.max_late_us.load(Ordering::Relaxed))
    }

    /// Clears the lateness histogram (benchmarks skip warm-up this way).
    pub fn reset_lateness(&self) {
        for c in &self.late {
            c.store(0, Ordering::Relaxed);
        }
        self.max_late_us.store(0, Ordering::Relaxed);
    }
}

enum Msg {
    Cmd(Command),
    /// Answer this watchdog question on the thread's [`Beat`].
    Heartbeat(u64),
    Shutdown,
}

/// Wakes a prober out of `ppoll(2)` when a command is queued.
struct Waker {
    write: OwnedFd,
}

impl Waker {
    fn wake(&self) {
        // A full pipe already guarantees a wake-up; nothing else can fail
        // usefully here.
        let _ = nix::unistd::write(&self.write, &[1]);
    }
}

struct ProberHandle {
    tx: Sender<Msg>,
    waker: Waker,
    join: Option<JoinHandle<()>>,
    beat: Beat,
}

/// The prober threads.
pub struct Engine {
    workers: Vec<ProberHandle>,
}

impl Engine {
    /// Starts `threads` prober threads (entering network namespace `netns`
    /// first when given); reports go to `reports`, counters to `stats`.
    pub fn start(
        threads: usize,
        netns: Option<String>,
        reports: Sender<ReportBatch>,
        stats: Arc<Stats>,
    ) -> std::io::Result<Engine> {
        // Many backends mean many sockets at once: the whole hard limit,
        // shared out so probes never take the descriptors the rest needs.
        let budget = crate::limits::probe_budget(crate::limits::raise_nofile());
        let per_thread = (budget / threads.max(1) as u64).max(1) as usize;
        let mut workers = Vec::new();
        for index in 0..threads.max(1) {
            let (tx, rx) = unbounded();
            let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
            let beat = Beat::new();
            let mut prober = Prober::new(index, rx, read, reports.clone(), Arc::clone(&stats));
            prober.beat = beat.clone();
            prober.max_inflight = per_thread;
            let ns = netns.clone();
            let join = std::thread::Builder::new()
                .name(format!("prober-{index}"))
                .spawn(move || {
                    if let Some(ns) = ns {
                        prober.enter_netns(&ns);
                    }
                    prober.run();
                })?;
            workers.push(ProberHandle {
                tx,
                waker: Waker { write },
                join: Some(join),
                beat,
            });
        }
        Ok(Engine { workers })
    }

    /// Queues a command for the thread that owns the backend.
    pub fn send(&self, cmd: Command) {
        let id = match &cmd {
            Command::Start { id, .. } | Command::SetInterval { id, .. } | Command::Stop { id } => {
                *id
            }
        };
        let w = &self.workers[id as usize % self.workers.len()];
        if w.tx.send(Msg::Cmd(cmd)).is_ok() {
            w.waker.wake();
        }
    }

    /// Asks every prober thread to answer `seq` on its beat (watchdog).
    pub fn heartbeat(&self, seq: u64) {
        for w in &self.workers {
            if w.tx.send(Msg::Heartbeat(seq)).is_ok() {
                w.waker.wake();
            }
        }
    }

    /// Each prober thread's beat, named `prober-N`.
    pub fn beats(&self) -> Vec<(String, Beat)> {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("prober-{i}"), w.beat.clone()))
            .collect()
    }

    /// Stops every prober thread and waits for them.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for w in &self.workers {
            let _ = w.tx.send(Msg::Shutdown);
            w.waker.wake();
        }
        for w in &mut self.workers {
            if let Some(j) = w.join.take() {
                let _ = j.join();
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// What the prober keeps per backend beside its schedule.
struct Job {
    name: Arc<str>,
    generation: u64,
    spec: Arc<ProbeSpec>,
    /// The slot of the probe in flight.
    busy: Option<usize>,
    /// The connection the last check left for the next (`reuse-connection`).
    kept: Option<Kept>,
}

/// A probe in flight, as the engine sees it: whose, since when, until
/// when, and which kind runs it (the kind keeps the rest under the same
/// slot).
struct Inflight {
    id: BackendId,
    generation: u64,
    token: u64,
    started: Instant,
    kind: Tag,
}

/// What a polled descriptor is.
#[derive(Clone, Copy)]
enum Source {
    Wake,
    /// A kind's descriptor, with the kind's handle for it.
    Kind(Tag, u32),
}

/// When a probe must be over: (deadline, slot, token).
type Deadline = (Instant, usize, u64);

/// Every kind of one prober thread: the dispatch table.
struct Kinds {
    icmp: IcmpKind,
    syn: SynKind,
    conn: ConnKind,
}

impl Kinds {
    /// The kind `tag` names.
    fn get(&mut self, tag: Tag) -> &mut dyn Kind {
        match tag {
            Tag::Icmp => &mut self.icmp,
            Tag::Syn => &mut self.syn,
            Tag::Conn => &mut self.conn,
        }
    }

    /// Every kind, for the pollset.
    fn all(&self) -> [(Tag, &dyn Kind); 3] {
        [
            (Tag::Icmp, &self.icmp),
            (Tag::Syn, &self.syn),
            (Tag::Conn, &self.conn),
        ]
    }
}

/// One prober thread: the schedule, the slots and deadlines of its probes
/// in flight, the pollset, and the dispatch of readiness to the kinds.
struct Prober {
    index: usize,
    rx: Receiver<Msg>,
    wake_read: OwnedFd,
    reports: Sender<ReportBatch>,
    outbox: ReportBatch,
    /// When the oldest report in `outbox` was made: reports go out once
    /// a [`TICK`], so the checker wakes at most that often for them.
    outbox_since: Option<Instant>,
    stats: Arc<Stats>,
    beat: Beat,
    /// Who is probed when (the timing policy, tested on its own).
    schedule: Schedule<Job>,
    /// Probes (descriptors) this thread may have in flight: its share of
    /// the process's budget (see [`crate::limits`]).
    max_inflight: usize,
    /// Whether the budget is reached now (logged once per episode).
    at_budget: bool,
    /// Connections kept between checks: descriptors too, at most half
    /// the budget (beyond it a check closes its connection as if it did
    /// not keep it), so checks can always start.
    kept: usize,
    /// Probe deadlines, one FIFO per distinct timeout: probes start in
    /// time order, so each FIFO is sorted and finished probes' entries are
    /// dropped in O(1) when they reach the front. This keeps the heap to
    /// one entry per backend (it was the engine's largest user-space cost).
    deadlines: Vec<(Duration, VecDeque<Deadline>)>,
    tiebreak: u64,
    slots: Vec<Option<Inflight>>,
    free: Vec<usize>,
    /// The probe kinds, each with its own state of the probes it runs.
    kinds: Kinds,
    /// What the kinds reported from one readiness.
    events: Vec<Event>,
    netns_error: Option<String>,
    pollfds: Vec<nix::libc::pollfd>,
    sources: Vec<Source>,
}

impl Prober {
    fn new(
        index: usize,
        rx: Receiver<Msg>,
        wake_read: OwnedFd,
        reports: Sender<ReportBatch>,
        stats: Arc<Stats>,
    ) -> Prober {
        Prober {
            index,
            rx,
            wake_read,
            reports,
            outbox: Vec::new(),
            outbox_since: None,
            stats,
            beat: Beat::new(),
            schedule: Schedule::new(Instant::now(), Jitter::from_clock(index as u64 + 1)),
            max_inflight: usize::MAX,
            at_budget: false,
            kept: 0,
            deadlines: Vec::new(),
            tiebreak: 0,
            slots: Vec::new(),
            free: Vec::new(),
            kinds: Kinds {
                icmp: IcmpKind::new(index),
                syn: SynKind::new({
                    use std::hash::{BuildHasher, Hasher};
                    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                    h.write_usize(index);
                    h.finish() as u32
                }),
                conn: ConnKind::default(),
            },
            events: Vec::new(),
            netns_error: None,
            pollfds: Vec::new(),
            sources: Vec::new(),
        }
    }

    /// Enters `/run/netns/<ns>` once; on failure every probe fails with the
    /// reason instead of silently probing from the wrong namespace.
    fn enter_netns(&mut self, ns: &str) {
        let path = format!("/run/netns/{ns}");
        let r = std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| errno_detail(e).into_owned())
            });
        if let Err(e) = r {
            let msg = format!("enter netns {ns:?}: {e}");
            error!("prober-netns-failed thread={} error={msg:?}", self.index);
            self.netns_error = Some(msg);
        }
    }

    fn run(&mut self) {
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(Msg::Cmd(c)) => self.apply(c),
                    Ok(Msg::Heartbeat(seq)) => self.beat.answer(seq),
                    Ok(Msg::Shutdown) | Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            self.expire_deadlines(now);
            // Due probes start while the descriptor budget allows; the
            // rest wait (late, not failed) for a probe to end.
            while self.inflight() + self.kept < self.max_inflight {
                let Some((id, at)) = self.schedule.pop_due(now) else {
                    break;
                };
                self.stats
                    .record_lateness(now.saturating_duration_since(at));
                self.start_probe(id, now);
            }
            let full = self.inflight() + self.kept >= self.max_inflight;
            if full != self.at_budget {
                self.at_budget = full;
                if full {
                    warn!(
                        "prober-at-fd-budget thread={} inflight={} probes-wait",
                        self.index,
                        self.inflight()
                    );
                }
            }
            if self.outbox_since.is_some_and(|t| now >= t + TICK) {
                self.flush_reports();
            }
            // At the budget, only a probe's end (socket or deadline) can
            // let another start: do not wake for due starts.
            let starts = if full {
                None
            } else {
                self.schedule.next_start()
            };
            let flush = self.outbox_since.map(|t| t + TICK);
            let next = [starts, self.next_deadline(), flush]
                .into_iter()
                .flatten()
                .min();
            // To the nanosecond (`ppoll`): `poll`'s milliseconds, rounded
            // up, made every probe start up to 1 ms later than its tick.
            let timeout = next.map(|at| {
                let wake = self.schedule.on_tick(at);
                let wait = wake
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(60));
                nix::libc::timespec {
                    tv_sec: wait.as_secs() as nix::libc::time_t,
                    tv_nsec: wait.subsec_nanos() as nix::libc::c_long,
                }
            });
            self.build_pollset();
            // SAFETY: `pollfds` is a valid, exclusively borrowed array of
            // `pollfd` whose fds stay open for the duration of the call (they
            // belong to `self`, which is not touched until poll returns);
            // the timeout, when given, is a live local; no signal mask.
            let n = unsafe {
                nix::libc::ppoll(
                    self.pollfds.as_mut_ptr(),
                    self.pollfds.len() as nix::libc::nfds_t,
                    timeout
                        .as_ref()
                        .map_or(std::ptr::null(), |t| t as *const nix::libc::timespec),
                    std::ptr::null(),
                )
            };
            if n < 0 {
                let e = Errno::last();
                if e != Errno::EINTR {
                    error!("prober-poll-failed thread={} error={e}", self.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            if n == 0 {
                continue;
            }
            let now = Instant::now();
            for i in 0..self.pollfds.len() {
                let revents = self.pollfds[i].revents;
                if revents == 0 {
                    continue;
                }
                match self.sources[i] {
                    Source::Wake => self.drain_wake(),
                    Source::Kind(tag, handle) => {
                        use nix::libc::{POLLERR, POLLHUP};
                        let error = revents & (POLLERR | POLLHUP) != 0;
                        let mut events = std::mem::take(&mut self.events);
                        self.kinds.get(tag).ready(handle, error, now, &mut events);
                        for e in events.drain(..) {
                            self.on_event(e, now);
                        }
                        self.events = events;
                    }
                }
            }
        }
    }

    /// Probes in flight.
    fn inflight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn is_live(&self, slot: usize, token: u64) -> bool {
        matches!(self.slots.get(slot), Some(Some(f)) if f.token == token)
    }

    fn push_deadline(&mut self, timeout: Duration, at: Instant, slot: usize, token: u64) {
        let q = match self.deadlines.iter().position(|(t, _)| *t == timeout) {
            Some(i) => &mut self.deadlines[i].1,
            None => {
                self.deadlines.push((timeout, VecDeque::new()));
                &mut self.deadlines.last_mut().expect("just pushed").1
            }
        };
        q.push_back((at, slot, token));
    }

    /// Times out every live probe whose deadline has passed.
    fn expire_deadlines(&mut self, now: Instant) {
        for i in 0..self.deadlines.len() {
            while let Some(&(at, slot, token)) = self.deadlines[i].1.front() {
                if self.is_live(slot, token) && at > now {
                    break;
                }
                self.deadlines[i].1.pop_front();
                if self.is_live(slot, token) {
                    self.time_out(slot, token, now);
                }
            }
        }
    }

    /// The earliest deadline of a probe still running.
    fn next_deadline(&mut self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        for i in 0..self.deadlines.len() {
            while let Some(&(at, slot, token)) = self.deadlines[i].1.front() {
                if self.is_live(slot, token) {
                    best = Some(best.map_or(at, |b| b.min(at)));
                    break;
                }
                self.deadlines[i].1.pop_front();
            }
        }
        self.deadlines.retain(|(_, q)| !q.is_empty());
        best
    }

    fn flush_reports(&mut self) {
        self.outbox_since = None;
        if !self.outbox.is_empty() {
            let batch = std::mem::take(&mut self.outbox);
            let _ = self.reports.send(batch);
        }
    }

    fn build_pollset(&mut self) {
        use nix::libc::{POLLIN, POLLOUT, pollfd};
        self.pollfds.clear();
        self.sources.clear();
        let (fds, sources) = (&mut self.pollfds, &mut self.sources);
        let mut add = |fd: RawFd, events: i16, source| {
            fds.push(pollfd {
                fd,
                events,
                revents: 0,
            });
            sources.push(source);
        };
        add(self.wake_read.as_raw_fd(), POLLIN, Source::Wake);
        for (tag, kind) in self.kinds.all() {
            kind.watch(&mut |fd, interest, handle| {
                let ev = match interest {
                    Interest::Read => POLLIN,
                    Interest::Write => POLLOUT,
                };
                add(fd, ev, Source::Kind(tag, handle));
            });
        }
    }

    fn drain_wake(&mut self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(&self.wake_read, &mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }

    fn apply(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Start {
                id,
                name,
                generation,
                spec,
                interval,
                first_in,
            } => {
                let job = Job {
                    name,
                    generation,
                    spec,
                    busy: None,
                    kept: None,
                };
                if let Some(old) = self.schedule.insert(id, job, interval, first_in, now) {
                    self.forget(old);
                }
            }
            Command::SetInterval {
                id,
                generation,
                interval,
            } => {
                if self
                    .schedule
                    .get(id)
                    .is_some_and(|j| j.generation == generation)
                {
                    self.schedule.set_interval(id, interval, now);
                }
            }
            Command::Stop { id } => {
                if let Some(old) = self.schedule.remove(id) {
                    self.forget(old);
                }
            }
        }
    }

    /// A job replaced or removed: its probe in flight and its kept
    /// connection go (closed with RST).
    fn forget(&mut self, job: Job) {
        if let Some(slot) = job.busy {
            self.release(slot);
        }
        if job.kept.is_some() {
            self.kept -= 1;
        }
    }

    /// Frees `slot` (the kind has let go of its probe already).
    fn free(&mut self, slot: usize) -> Option<Inflight> {
        let f = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(f)
    }

    /// Abandons the probe in `slot`, silently.
    fn release(&mut self, slot: usize) {
        if let Some(f) = self.free(slot) {
            self.kinds.get(f.kind).cancel(slot);
        }
    }

    /// The probe in `slot` reached its deadline.
    fn time_out(&mut self, slot: usize, token: u64, now: Instant) {
        let Some(Some(f)) = self.slots.get(slot) else {
            return;
        };
        if f.token != token {
            return;
        }
        let o = self.kinds.get(f.kind).timed_out(slot, now);
        let o =
            o.unwrap_or_else(|| Outcome::new(Code::Local, "internal: probe lost", Duration::ZERO));
        self.finish(slot, o, None, now);
    }

    fn start_probe(&mut self, id: BackendId, now: Instant) {
        let Some(job) = self.schedule.get(id) else {
            return;
        };
        let spec = Arc::clone(&job.spec);
        let generation = job.generation;
        debug!(
            "probe-start backend={} address={} type={}",
            job.name,
            spec.address,
            spec.probe.check_type()
        );
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = &self.netns_error {
            let o = Outcome::new(Code::Local, e.clone(), Duration::ZERO);
            self.complete(id, generation, now, o, now);
            return;
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let kept = self.take_kept(id);
        let mut kind = Tag::of(&spec.probe);
        let mut start = self.kinds.get(kind).start(slot, &spec, kept, now);
        if let Start::Instead(other) = start {
            kind = other;
            start = self.kinds.get(kind).start(slot, &spec, None, now);
        }
        let (outcome, kept) = match start {
            Start::Pending => {
                self.tiebreak += 1;
                let token = self.tiebreak;
                self.slots[slot] = Some(Inflight {
                    id,
                    generation,
                    token,
                    started: now,
                    kind,
                });
                if let Some(job) = self.schedule.get_mut(id) {
                    job.busy = Some(slot);
                }
                self.push_deadline(spec.timeout, now + spec.timeout, slot, token);
                return;
            }
            Start::Done(o, kept) => (o, kept),
            // A kind sends elsewhere at most once.
            Start::Instead(_) => {
                let o = Outcome::new(Code::Local, "internal: no kind runs it", Duration::ZERO);
                (o, None)
            }
        };
        self.free.push(slot);
        if let Some(k) = kept {
            self.park(id, generation, k);
        }
        self.complete(id, generation, now, outcome, now);
    }

    /// What a kind reported.
    fn on_event(&mut self, e: Event, now: Instant) {
        match e {
            Event::Done {
                slot,
                outcome,
                kept,
            } => self.finish(slot, outcome, kept, now),
            Event::Restarted { slot } => {
                // A new deadline: the new connection gets the whole
                // timeout, as the check it replaces did.
                let Some(Some(f)) = self.slots.get(slot) else {
                    return;
                };
                let Some(timeout) = self.schedule.get(f.id).map(|j| j.spec.timeout) else {
                    self.release(slot);
                    return;
                };
                self.tiebreak += 1;
                let token = self.tiebreak;
                if let Some(Some(f)) = self.slots.get_mut(slot) {
                    f.token = token;
                }
                self.push_deadline(timeout, now + timeout, slot, token);
            }
        }
    }

    /// Takes the connection `id`'s last check kept, if any.
    fn take_kept(&mut self, id: BackendId) -> Option<Kept> {
        let k = self.schedule.get_mut(id)?.kept.take()?;
        self.kept -= 1;
        Some(k)
    }

    /// The probe in `slot` is over (the kind let go of it): reported, and
    /// its connection kept for the next check when it left one.
    fn finish(&mut self, slot: usize, outcome: Outcome, kept: Option<Kept>, now: Instant) {
        let Some(f) = self.free(slot) else {
            return;
        };
        if let Some(k) = kept {
            self.park(f.id, f.generation, k);
        }
        self.complete(f.id, f.generation, f.started, outcome, now);
    }

    /// Keeps `k` for the next check of `id` (of `generation`), within the
    /// kept half of the descriptor budget; else it closes.
    fn park(&mut self, id: BackendId, generation: u64, k: Kept) {
        let room = self.kept < self.max_inflight / 2;
        match self.schedule.get_mut(id) {
            Some(job) if room && job.generation == generation && job.kept.is_none() => {
                job.kept = Some(k);
                self.kept += 1;
            }
            _ => drop(k),
        }
    }

    /// Reports `outcome` and schedules the job's next probe.
    fn complete(
        &mut self,
        id: BackendId,
        generation: u64,
        started: Instant,
        outcome: Outcome,
        now: Instant,
    ) {
        if let Some(job) = self.schedule.get_mut(id) {
            if job.generation == generation {
                job.busy = None;
                self.schedule.finished(id, started, now);
            }
        }
        self.stats.finished.fetch_add(1, Ordering::Relaxed);
        self.outbox_since.get_or_insert(now);
        self.outbox.push(Report {
            id,
            generation,
            outcome,
            at: SystemTime::now(),
        });
    }
}
