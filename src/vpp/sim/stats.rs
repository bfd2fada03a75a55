//! The simulator's stats segment: a memfd laid out exactly like VPP's
//! (STATS.md §10), written with VPP's locking protocol, so VPP's own
//! readers (vpp_papi's `VPPStats`) and `vpp::stats` read it unchanged.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{Ordering, fence};

use memmap2::MmapMut;

use crate::vpp::stats::{ENTRY_LEN, NAME_LEN, VERSION, header, kind};

/// A per-thread counter row: offset, length and capacity.
type Row = (usize, usize, usize);

/// One directory entry as the writer tracks it.
struct Slot {
    kind: u32,
    value: u64,
    name: String,
    /// Counter entries: offset, length and capacity of each thread's row.
    rows: Vec<Row>,
    /// Bytes per counter element (8 simple, 16 combined).
    elem: usize,
}

/// Writes a VPP-layout stats segment.
pub struct SegmentWriter {
    file: File,
    map: MmapMut,
    base: u64,
    next: usize,
    threads: usize,
    slots: Vec<Slot>,
    dir_off: usize,
}

impl SegmentWriter {
    /// A new segment of `size` bytes with `threads` counter rows (main
    /// thread plus workers) and the fixed `/sys` entries.
    pub fn new(size: usize, threads: usize, boottime: u64) -> std::io::Result<SegmentWriter> {
        let fd =
            nix::sys::memfd::memfd_create(c"stat segment", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
        let file = File::from(fd);
        file.set_len(size as u64)?;
        // SAFETY: a shared mapping of our own memfd, written only by us.
        let map = unsafe { MmapMut::map_mut(&file)? };
        let base = map.as_ptr() as u64;
        let mut w = SegmentWriter {
            file,
            map,
            base,
            next: 4096,
            threads: threads.max(1),
            slots: Vec::new(),
            dir_off: 0,
        };
        w.put(header::VERSION, VERSION);
        w.put(header::BASE, base);
        w.put(header::EPOCH, 1);
        w.put(header::IN_PROGRESS, 0);
        for name in ["/sys/heartbeat", "/sys/last_stats_clear", "/sys/boottime"] {
            w.slots.push(Slot {
                kind: kind::SCALAR_INDEX,
                value: 0,
                name: name.into(),
                rows: Vec::new(),
                elem: 0,
            });
        }
        w.slots[2].value = boottime;
        let small = || std::io::Error::other("stats segment too small");
        for name in ["/net/route/to", "/net/route/via"] {
            w.add_counter(name, kind::COUNTER_VECTOR_COMBINED, 16, 1)
                .ok_or_else(small)?;
        }
        w.write_directory().ok_or_else(small)?;
        Ok(w)
    }

    /// The segment file, to hand to readers.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Raw fd of the segment.
    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    fn put(&mut self, off: usize, v: u64) {
        // SAFETY: callers pass offsets inside the mapping (allocations are
        // checked in `alloc`); volatile because readers map it concurrently.
        unsafe {
            std::ptr::write_volatile(
                self.map.as_mut_ptr().add(off) as *mut [u8; 8],
                v.to_le_bytes(),
            )
        };
    }

    fn put_u32(&mut self, off: usize, v: u32) {
        // SAFETY: as in `put`.
        unsafe {
            std::ptr::write_volatile(
                self.map.as_mut_ptr().add(off) as *mut [u8; 4],
                v.to_le_bytes(),
            )
        };
    }

    fn get(&self, off: usize) -> u64 {
        // SAFETY: as in `put`.
        let b = unsafe { std::ptr::read_volatile(self.map.as_ptr().add(off) as *const [u8; 8]) };
        u64::from_le_bytes(b)
    }

    /// A vector of `len` elements of `elem` bytes, 64-byte aligned, with
    /// VPP's 16-byte header in front. New memory every time: readers may
    /// still be reading an old vector.
    /// `None` when the segment is full (then nothing changes: the caller
    /// keeps what it had, as a VPP whose stats heap is exhausted would not
    /// grow a vector either).
    fn alloc(&mut self, len: usize, elem: usize) -> Option<usize> {
        self.alloc_cap(len, len, elem)
    }

    fn alloc_cap(&mut self, len: usize, cap: usize, elem: usize) -> Option<usize> {
        let off = (self.next + 16).div_ceil(64) * 64;
        let end = cap
            .max(len)
            .checked_mul(elem)
            .map(|b| b.max(8))
            .and_then(|b| off.checked_add(b))
            .filter(|end| *end <= self.map.len())?;
        self.map[off..end].fill(0);
        self.put(off - 16, 0);
        self.put_u32(off - 8, len as u32);
        self.map[off - 4] = 2;
        self.map[off - 3] = 6;
        self.map[off - 2] = 0;
        self.map[off - 1] = 0;
        self.next = end;
        Some(off)
    }

    fn lock(&mut self) {
        self.put(header::IN_PROGRESS, 1);
        fence(Ordering::Release);
    }

    fn unlock(&mut self) {
        fence(Ordering::Release);
        let e = self.get(header::EPOCH);
        self.put(header::EPOCH, e + 1);
        fence(Ordering::Release);
        self.put(header::IN_PROGRESS, 0);
    }

    fn write_directory(&mut self) -> Option<()> {
        let n = self.slots.len();
        let off = self.alloc(n, ENTRY_LEN)?;
        for i in 0..n {
            let e = off + i * ENTRY_LEN;
            let (k, v) = (self.slots[i].kind, self.slots[i].value);
            self.put_u32(e, k);
            self.put(e + 8, v);
            let name = self.slots[i].name.clone().into_bytes();
            let len = name.len().min(NAME_LEN - 1);
            self.map[e + 16..e + 16 + len].copy_from_slice(&name[..len]);
        }
        self.dir_off = off;
        self.put(header::DIRECTORY, self.base + off as u64);
        Some(())
    }

    fn add_counter(&mut self, name: &str, k: u32, elem: usize, len: usize) -> Option<()> {
        let (value, rows) = self.new_rows(elem, len, &[])?;
        self.slots.push(Slot {
            kind: k,
            value,
            name: name.into(),
            rows,
            elem,
        });
        Some(())
    }

    /// Fresh per-thread rows of `len` elements (old values copied) and the
    /// thread vector pointing at them.
    fn new_rows(&mut self, elem: usize, len: usize, old: &[Row]) -> Option<(u64, Vec<Row>)> {
        // Room to grow, as vppinfra vectors have: most growth is then an
        // in-place length change without the lock.
        let cap = old.first().map_or(len, |r| len.max(2 * r.2));
        let mut rows = Vec::with_capacity(self.threads);
        for t in 0..self.threads {
            let r = self.alloc_cap(len, cap, elem)?;
            if let Some(&(o, ol, _)) = old.get(t) {
                let n = ol.min(len) * elem;
                self.map.copy_within(o..o + n, r);
            }
            rows.push((r, len, cap));
        }
        let tv = self.alloc(self.threads, 8)?;
        for (t, &(r, _, _)) in rows.iter().enumerate() {
            self.put(tv + 8 * t, self.base + r as u64);
        }
        Some((self.base + tv as u64, rows))
    }

    fn slot(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.name == name)
    }

    /// Makes counter `name` exist with room for index `len - 1` (adding
    /// the entry or reallocating its rows under the lock, as VPP does).
    /// False when the segment is full: the counter then stays as it was
    /// and writes beyond its length are dropped.
    pub fn ensure(&mut self, name: &str, k: u32, len: usize) -> bool {
        let elem = if k == kind::COUNTER_VECTOR_COMBINED {
            16
        } else {
            8
        };
        match self.slot(name) {
            None => {
                self.lock();
                let dir = self.dir_off;
                let done = self.add_counter(name, k, elem, len).is_some()
                    && self.write_directory().is_some();
                if !done && self.slots.last().is_some_and(|s| s.name == name) {
                    // The directory could not grow: the old one stays.
                    self.slots.pop();
                    self.dir_off = dir;
                }
                self.unlock();
                return done;
            }
            Some(i)
                if self.slots[i]
                    .rows
                    .first()
                    .is_some_and(|r| r.1 < len && len <= r.2) =>
            {
                // Spare capacity: lengthen in place, no lock, no epoch
                // change (readers must re-read lengths every time).
                for t in 0..self.slots[i].rows.len() {
                    let (off, _, cap) = self.slots[i].rows[t];
                    self.put_u32(off - 8, len as u32);
                    self.slots[i].rows[t] = (off, len, cap);
                }
            }
            Some(i) if self.slots[i].rows.first().is_some_and(|r| r.1 < len) => {
                self.lock();
                let old = self.slots[i].rows.clone();
                let grown = self.new_rows(elem, len, &old);
                if let Some((value, rows)) = &grown {
                    self.slots[i].value = *value;
                    self.slots[i].rows = rows.clone();
                    let e = self.dir_off + i * ENTRY_LEN;
                    self.put(e + 8, *value);
                }
                self.unlock();
                return grown.is_some();
            }
            Some(_) => {}
        }
        true
    }

    /// Sets a simple counter's per-thread values (no lock: plain stores,
    /// like VPP's workers).
    pub fn set_simple(&mut self, name: &str, index: usize, per_thread: &[u64]) {
        let Some(i) = self.slot(name) else { return };
        for (t, v) in per_thread.iter().enumerate() {
            if let Some(&(r, len, _)) = self.slots[i].rows.get(t) {
                if index < len && self.slots[i].elem == 8 {
                    self.put(r + 8 * index, *v);
                }
            }
        }
    }

    /// Sets a combined counter's per-thread (packets, bytes).
    pub fn set_combined(&mut self, name: &str, index: usize, per_thread: &[(u64, u64)]) {
        let Some(i) = self.slot(name) else { return };
        for (t, (p, b)) in per_thread.iter().enumerate() {
            if let Some(&(r, len, _)) = self.slots[i].rows.get(t) {
                if index < len && self.slots[i].elem == 16 {
                    self.put(r + 16 * index, *p);
                    self.put(r + 16 * index + 8, *b);
                }
            }
        }
    }

    /// Sets a scalar entry in place (no epoch change, like VPP).
    pub fn set_scalar(&mut self, name: &str, v: u64) {
        if let Some(i) = self.slot(name) {
            self.slots[i].value = v;
            let e = self.dir_off + i * ENTRY_LEN;
            self.put(e + 8, v);
        }
    }

    /// `/sys/boottime`.
    pub fn boottime(&self) -> u64 {
        self.slots[2].value
    }

    /// Number of counter rows.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Bytes allocated so far (the bump pointer).
    pub fn used(&self) -> usize {
        self.next
    }
}

/// Splits a total over the rows: row 0 (main thread) gets nothing, the
/// workers share it, so readers must sum to get it back.
pub fn split(total: u64, threads: usize) -> Vec<u64> {
    if threads <= 1 {
        return vec![total];
    }
    let workers = (threads - 1) as u64;
    let mut out = vec![0u64; threads];
    for (i, o) in out.iter_mut().enumerate().skip(1) {
        *o = total / workers + u64::from((i as u64 - 1) < total % workers);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vpp::stats::Segment;

    fn reader(w: &SegmentWriter) -> Segment {
        Segment::from_file(w.file().try_clone().unwrap()).unwrap()
    }

    #[test]
    fn split_sums_back() {
        for t in 1..5 {
            for total in [0u64, 1, 7, 1000] {
                assert_eq!(split(total, t).iter().sum::<u64>(), total);
            }
        }
    }

    #[test]
    fn reader_sees_what_the_writer_wrote() {
        let mut w = SegmentWriter::new(1 << 20, 3, 1_700_000_000).unwrap();
        w.set_scalar("/sys/heartbeat", 5);
        for name in crate::vpp::stats::LB_COUNTERS {
            w.ensure(name, kind::COUNTER_VECTOR_SIMPLE, 4);
        }
        w.set_simple("first session packet", 3, &split(211, 3));
        w.ensure("/net/route/to", kind::COUNTER_VECTOR_COMBINED, 43);
        w.set_combined("/net/route/to", 42, &[(1, 100), (2, 200), (3, 300)]);
        let r = reader(&w).read(&[3, 9], &[42, 1000]).unwrap();
        assert_eq!(r.heartbeat, 5);
        assert_eq!(r.boottime, 1_700_000_000);
        assert_eq!(r.vips[&3], [0, 211, 0, 0]);
        assert_eq!(r.vips[&9], [0, 0, 0, 0], "beyond the vector: 0");
        assert_eq!(r.routes[&42], (6, 600));
        assert_eq!(r.routes[&1000], (0, 0));
        // Growth keeps values and bumps the epoch.
        w.ensure("first session packet", kind::COUNTER_VECTOR_SIMPLE, 100);
        let r2 = reader(&w).read(&[3], &[]).unwrap();
        assert_eq!(r2.vips[&3][1], 211);
        assert!(r2.epoch > r.epoch);
    }

    #[test]
    fn a_full_segment_refuses_growth_and_keeps_what_it_has() {
        let mut w = SegmentWriter::new(64 << 10, 2, 1).unwrap();
        assert!(w.ensure("first session packet", kind::COUNTER_VECTOR_SIMPLE, 4));
        w.set_simple("first session packet", 2, &[0, 7]);
        // Far more than 64 KiB: refused, no panic, old rows intact.
        assert!(!w.ensure("first session packet", kind::COUNTER_VECTOR_SIMPLE, 100_000));
        assert!(!w.ensure("/net/route/to", kind::COUNTER_VECTOR_COMBINED, 100_000));
        w.set_simple("first session packet", 50_000, &[1, 1]);
        let r = reader(&w).read(&[2], &[]).unwrap();
        assert_eq!(r.vips[&2][1], 7);
        // A new entry whose directory cannot grow is not half-added.
        while w.ensure(&format!("/x/{}", w.used()), kind::COUNTER_VECTOR_SIMPLE, 1) {}
        assert!(reader(&w).read(&[2], &[]).is_ok());
    }
}
