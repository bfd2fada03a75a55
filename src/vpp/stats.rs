//! VPP's stats segment: shared memory that VPP's workers write counters
//! into and readers map read-only (STATS.md).
//!
//! maglevd gets the segment's file descriptor over `stats.sock`
//! (SEQPACKET, `SCM_RIGHTS`) and reads it with VPP's optimistic protocol:
//! note the epoch, wait for no writer, copy what is needed, check the
//! epoch again, retry on change. It reads with `pread(2)` rather than a
//! mapping: a file that shrinks under a mapping kills the reader with
//! SIGBUS, while a short `pread` is just an error. Every pointer in the
//! segment is VPP's own address: it is translated by subtracting `base`
//! and checked against the file's size (taken at the start of every pass)
//! before anything is read, so a corrupt, truncated or shrinking segment
//! is an error, never a crash.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// The only layout version this reader (and vpp_papi) accepts.
pub const VERSION: u64 = 2;
/// Bytes of the shared header.
pub const HEADER_LEN: usize = 40;
/// Bytes of one directory entry (`vlib_stats_entry_t`).
pub const ENTRY_LEN: usize = 144;
/// Bytes of an entry's name field.
pub const NAME_LEN: usize = 128;

/// Offsets of the header fields.
pub mod header {
    /// Layout version.
    pub const VERSION: usize = 0;
    /// VPP's address of offset 0.
    pub const BASE: usize = 8;
    /// Bumped after each structural change.
    pub const EPOCH: usize = 16;
    /// 1 while a writer changes the structure.
    pub const IN_PROGRESS: usize = 24;
    /// Pointer to the directory vector.
    pub const DIRECTORY: usize = 32;
}

/// Directory entry types used here.
pub mod kind {
    /// A u64 in the entry.
    pub const SCALAR_INDEX: u32 = 1;
    /// Per-thread vectors of u64.
    pub const COUNTER_VECTOR_SIMPLE: u32 = 2;
    /// Per-thread vectors of (packets, bytes).
    pub const COUNTER_VECTOR_COMBINED: u32 = 3;
    /// A vector of strings.
    pub const NAME_VECTOR: u32 = 4;
    /// A deleted entry.
    pub const EMPTY: u32 = 5;
    /// An alias of one column of another entry.
    pub const SYMLINK: u32 = 6;
    /// A u64 gauge in the entry.
    pub const GAUGE: u32 = 9;
}

/// The lb plugin's four per-VIP counters, in maglevd's order.
pub const LB_COUNTERS: [&str; 4] = [
    "packet from existing sessions",
    "first session packet",
    "untracked packet",
    "no server configured",
];

/// Why the segment could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsError {
    /// `stats.sock` could not be used.
    Socket(String),
    /// Not a segment this reader understands.
    Incompatible(String),
    /// A pointer or length points outside the segment.
    Corrupt(String),
    /// A writer kept changing the structure through every retry.
    Busy,
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsError::Socket(m) => write!(f, "stats socket: {m}"),
            StatsError::Incompatible(m) => write!(f, "incompatible stats segment: {m}"),
            StatsError::Corrupt(m) => write!(f, "corrupt stats segment: {m}"),
            StatsError::Busy => f.write_str("stats segment kept changing during the read"),
        }
    }
}

impl std::error::Error for StatsError {}

type Result<T> = std::result::Result<T, StatsError>;

/// Bounds-checked reads of a segment another process writes.
#[derive(Clone, Copy)]
struct View {
    /// The segment file; read with `pread`, never mapped: a writer that
    /// shrinks the file makes a read come up short (an error), where a
    /// mapping would have killed the process with SIGBUS.
    fd: RawFd,
    /// The file's size when the pass began.
    len: usize,
    base: u64,
}

impl View {
    /// Exactly `buf.len()` bytes at `off`, or an error (out of bounds, or
    /// the file shrank under us).
    fn read_at(&self, off: usize, buf: &mut [u8]) -> Result<()> {
        if off.checked_add(buf.len()).is_none_or(|end| end > self.len) {
            return Err(StatsError::Corrupt(format!(
                "{} bytes at {off:#x} beyond {:#x}",
                buf.len(),
                self.len
            )));
        }
        // SAFETY: `fd` belongs to the Segment that outlives every View.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let mut done = 0;
        while done < buf.len() {
            match nix::sys::uio::pread(fd, &mut buf[done..], (off + done) as i64) {
                Ok(0) => {
                    return Err(StatsError::Corrupt(format!(
                        "segment shrank below {:#x}",
                        off + done
                    )));
                }
                Ok(n) => done += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(StatsError::Socket(format!("pread: {e}"))),
            }
        }
        Ok(())
    }

    fn u64_at(&self, off: usize) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_at(off, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn u32_at(&self, off: usize) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_at(off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn bytes(&self, off: usize, n: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.read_at(off, &mut v)?;
        Ok(v)
    }

    /// A VPP pointer as an offset into the segment (`None` for null).
    fn offset(&self, p: u64) -> Result<Option<usize>> {
        if p == 0 {
            return Ok(None);
        }
        let off = p.wrapping_sub(self.base);
        if off == 0 || off >= self.len as u64 || off + 8 >= self.len as u64 || off < 16 {
            return Err(StatsError::Corrupt(format!(
                "pointer {p:#x} outside the segment"
            )));
        }
        Ok(Some(off as usize))
    }

    /// The element count of the vector at `off`, checked to fit.
    fn vec_len(&self, off: usize, elem: usize) -> Result<usize> {
        let n = self.u32_at(off - 8)? as usize;
        if n.checked_mul(elem)
            .and_then(|b| b.checked_add(off))
            .is_none_or(|end| end > self.len)
        {
            return Err(StatsError::Corrupt(format!(
                "vector at {off:#x} of {n} elements overruns"
            )));
        }
        Ok(n)
    }
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its type.
    pub kind: u32,
    /// The union: value, pointer, or index1 | index2 << 32.
    pub value: u64,
    /// Its name.
    pub name: String,
}

/// What one read returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// Epoch the read was consistent at.
    pub epoch: u64,
    /// `/sys/heartbeat`.
    pub heartbeat: u64,
    /// `/sys/boottime` (Unix seconds; changes when VPP restarts).
    pub boottime: u64,
    /// Per VIP pool index: the four lb counters, summed over threads.
    pub vips: BTreeMap<u32, [u64; 4]>,
    /// Per FIB stats index: `/net/route/to` packets and bytes.
    pub routes: BTreeMap<u32, (u64, u64)>,
}

/// A stats segment (the file VPP handed over).
pub struct Segment {
    file: File,
}

/// How many times a read is retried while writers change the structure.
const RETRIES: usize = 1000;

impl Segment {
    /// Receives the segment from VPP's `stats.sock` and maps it.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Segment> {
        // stats.sock is SEQPACKET (std only has STREAM): connect by hand.
        let fd = seqpacket_connect(path)?;
        let file = recv_fd(fd, timeout);
        let _ = nix::unistd::close(fd);
        Segment::from_file(file?)
    }

    /// Maps an already received segment file.
    pub fn from_file(file: File) -> Result<Segment> {
        let size = file
            .metadata()
            .map_err(|e| StatsError::Socket(format!("fstat: {e}")))?
            .len();
        if size < HEADER_LEN as u64 {
            return Err(StatsError::Incompatible(format!("segment of {size} bytes")));
        }
        let seg = Segment { file };
        let v = seg.view_raw()?;
        let version = v.u64_at(header::VERSION)?;
        if version != VERSION {
            return Err(StatsError::Incompatible(format!(
                "version {version}, expected {VERSION}"
            )));
        }
        Ok(seg)
    }

    /// A view of the file at its current size (checked before every
    /// pass: a segment may be replaced or, by a hostile writer, cut).
    fn view_raw(&self) -> Result<View> {
        use std::os::fd::AsRawFd;
        let len = self
            .file
            .metadata()
            .map_err(|e| StatsError::Socket(format!("fstat: {e}")))?
            .len();
        Ok(View {
            fd: self.file.as_raw_fd(),
            len: usize::try_from(len).unwrap_or(usize::MAX),
            base: 0,
        })
    }

    fn view(&self) -> Result<View> {
        let mut v = self.view_raw()?;
        v.base = v.u64_at(header::BASE)?;
        Ok(v)
    }

    /// Runs `f` under the optimistic protocol until a consistent result.
    fn consistent<T>(&self, f: impl Fn(&View) -> Result<T>) -> Result<(u64, T)> {
        let v = self.view()?;
        let mut last_err = None;
        for attempt in 0..RETRIES {
            let epoch = v.u64_at(header::EPOCH)?;
            if v.u64_at(header::IN_PROGRESS)? != 0 {
                if attempt > 10 {
                    std::thread::sleep(Duration::from_micros(100));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            let r = f(&v);
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            if v.u64_at(header::IN_PROGRESS)? == 0 && v.u64_at(header::EPOCH)? == epoch {
                return r.map(|x| (epoch, x));
            }
            if let Err(e) = r {
                last_err = Some(e);
            }
        }
        Err(last_err.unwrap_or(StatsError::Busy))
    }

    /// The whole directory.
    pub fn directory(&self) -> Result<Vec<Entry>> {
        self.consistent(read_directory).map(|(_, d)| d)
    }

    /// Reads the system scalars, the lb counters of `vip_indexes` and the
    /// `/net/route/to` counters of `route_indexes`, in one consistent pass.
    pub fn read(&self, vip_indexes: &[u32], route_indexes: &[u32]) -> Result<Reading> {
        let (epoch, mut r) = self.consistent(|v| {
            let dir = read_directory(v)?;
            let find = |name: &str| dir.iter().find(|e| e.name == name && e.kind != kind::EMPTY);
            let scalar = |name: &str| find(name).map_or(0, |e| e.value);
            let mut out = Reading {
                epoch: 0,
                heartbeat: scalar("/sys/heartbeat"),
                boottime: scalar("/sys/boottime"),
                vips: BTreeMap::new(),
                routes: BTreeMap::new(),
            };
            let vi: Vec<usize> = vip_indexes.iter().map(|&i| i as usize).collect();
            let mut cols = Vec::with_capacity(LB_COUNTERS.len());
            for name in LB_COUNTERS {
                cols.push(match find(name) {
                    Some(e) => Some(Column::read(v, e, kind::COUNTER_VECTOR_SIMPLE, &vi)?),
                    None => None,
                });
            }
            for &i in vip_indexes {
                let mut c = [0u64; 4];
                for (k, col) in cols.iter().enumerate() {
                    if let Some(col) = col {
                        c[k] = col.sum(i as usize, 0);
                    }
                }
                out.vips.insert(i, c);
            }
            let ri: Vec<usize> = route_indexes.iter().map(|&i| i as usize).collect();
            let routes = match find("/net/route/to") {
                Some(e) => Some(Column::read(v, e, kind::COUNTER_VECTOR_COMBINED, &ri)?),
                None => None,
            };
            for &i in route_indexes {
                let pb = routes
                    .as_ref()
                    .map_or((0, 0), |c| (c.sum(i as usize, 0), c.sum(i as usize, 1)));
                out.routes.insert(i, pb);
            }
            Ok(out)
        })?;
        r.epoch = epoch;
        Ok(r)
    }

    /// A simple counter by name and index, summed over threads.
    pub fn simple(&self, name: &str, index: u32) -> Result<u64> {
        self.consistent(|v| {
            let dir = read_directory(v)?;
            match dir.iter().find(|e| e.name == name) {
                Some(e) => {
                    let i = index as usize;
                    Column::read(v, e, kind::COUNTER_VECTOR_SIMPLE, &[i]).map(|c| c.sum(i, 0))
                }
                None => Ok(0),
            }
        })
        .map(|(_, x)| x)
    }
}

fn read_directory(v: &View) -> Result<Vec<Entry>> {
    let p = v.u64_at(header::DIRECTORY)?;
    let Some(off) = v.offset(p)? else {
        return Ok(Vec::new());
    };
    let n = v.vec_len(off, ENTRY_LEN)?;
    // One read for the whole directory (vec_len checked it fits).
    let all = v.bytes(off, n * ENTRY_LEN)?;
    let mut out = Vec::with_capacity(n);
    for e in all.chunks_exact(ENTRY_LEN) {
        let kind = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let mut value = [0u8; 8];
        value.copy_from_slice(&e[8..16]);
        let value = u64::from_le_bytes(value);
        let raw = &e[16..16 + NAME_LEN];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        out.push(Entry {
            kind,
            value,
            name: String::from_utf8_lossy(&raw[..end]).into_owned(),
        });
    }
    Ok(out)
}

/// The per-thread rows of a counter entry: offsets of each row's data.
fn rows(v: &View, e: &Entry) -> Result<Vec<Option<usize>>> {
    let Some(t) = v.offset(e.value)? else {
        return Ok(Vec::new());
    };
    let n = v.vec_len(t, 8)?;
    (0..n).map(|i| v.offset(v.u64_at(t + 8 * i)?)).collect()
}

/// A counter entry's per-thread rows, each read in one `pread` over the
/// span of the indexes wanted (one read per row, not one per index).
struct Column {
    elem: usize,
    /// Per row: the first index held and the bytes from it.
    rows: Vec<(usize, Vec<u8>)>,
}

impl Column {
    fn read(v: &View, e: &Entry, want_kind: u32, indexes: &[usize]) -> Result<Column> {
        if e.kind != want_kind {
            return Err(StatsError::Incompatible(format!(
                "{} has type {}, expected {want_kind}",
                e.name, e.kind
            )));
        }
        let elem = if want_kind == kind::COUNTER_VECTOR_COMBINED {
            16
        } else {
            8
        };
        let mut col = Column {
            elem,
            rows: Vec::new(),
        };
        let (Some(&lo), Some(&hi)) = (indexes.iter().min(), indexes.iter().max()) else {
            return Ok(col);
        };
        for row in rows(v, e)?.into_iter().flatten() {
            let n = v.vec_len(row, elem)?;
            let end = hi.saturating_add(1).min(n);
            let data = if lo < end {
                v.bytes(row + lo * elem, (end - lo) * elem)?
            } else {
                Vec::new()
            };
            col.rows.push((lo, data));
        }
        Ok(col)
    }

    /// Field `field` (0, or 1 for a combined counter's bytes) of `index`,
    /// summed over threads (a row too short for it counts 0).
    fn sum(&self, index: usize, field: usize) -> u64 {
        let mut sum = 0u64;
        for (lo, data) in &self.rows {
            let Some(rel) = index.checked_sub(*lo) else {
                continue;
            };
            let off = rel * self.elem + field * 8;
            if let Some(b) = data.get(off..off + 8) {
                let mut x = [0u8; 8];
                x.copy_from_slice(b);
                sum = sum.wrapping_add(u64::from_le_bytes(x));
            }
        }
        sum
    }
}

fn seqpacket_connect(path: &Path) -> Result<RawFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use std::os::fd::IntoRawFd;
    // Non-blocking connect: a stats socket whose backlog is full (a VPP
    // that never accepts) answers EAGAIN instead of blocking forever.
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| StatsError::Socket(format!("socket: {e}")))?;
    let addr =
        UnixAddr::new(path).map_err(|e| StatsError::Socket(format!("{}: {e}", path.display())))?;
    let raw = fd.into_raw_fd();
    let fail = |why: String| {
        let _ = nix::unistd::close(raw);
        StatsError::Socket(why)
    };
    match connect(raw, &addr) {
        Ok(()) => {}
        Err(nix::errno::Errno::EAGAIN) => {
            return Err(fail(format!(
                "connect {}: not accepting connections (listen backlog full)",
                path.display()
            )));
        }
        Err(e) => return Err(fail(format!("connect {}: {e}", path.display()))),
    }
    // Blocking again for recvmsg, which has its own timeout.
    // SAFETY: `raw` is open and ours until returned or closed.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    let flags = nix::fcntl::fcntl(b, nix::fcntl::FcntlArg::F_GETFL);
    let set = flags.and_then(|f| {
        let mut f = nix::fcntl::OFlag::from_bits_truncate(f);
        f.remove(nix::fcntl::OFlag::O_NONBLOCK);
        nix::fcntl::fcntl(b, nix::fcntl::FcntlArg::F_SETFL(f))
    });
    if let Err(e) = set {
        return Err(fail(format!("fcntl: {e}")));
    }
    Ok(raw)
}

fn recv_fd(fd: RawFd, timeout: Duration) -> Result<File> {
    use nix::sys::socket::{setsockopt, sockopt};
    use nix::sys::time::TimeVal;
    use std::os::fd::BorrowedFd;
    // SAFETY: `fd` is open for the duration of this call (the caller closes it).
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let tv = TimeVal::new(timeout.as_secs() as i64, timeout.subsec_micros() as i64);
    let _ = setsockopt(&b, sockopt::ReceiveTimeout, &tv);
    let mut buf = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| StatsError::Socket(format!("recvmsg: {e}")))?;
    let cmsgs = msg
        .cmsgs()
        .map_err(|e| StatsError::Socket(format!("control data: {e}")))?;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = c {
            let mut it = fds.into_iter();
            if let Some(first) = it.next() {
                for extra in it {
                    let _ = nix::unistd::close(extra);
                }
                // SAFETY: the kernel just installed `first` in our table
                // for us; nobody else owns it.
                return Ok(unsafe { File::from_raw_fd(first) });
            }
        }
    }
    Err(StatsError::Socket("no file descriptor received".into()))
}
