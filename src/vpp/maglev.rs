//! The Maglev new-flow table VPP's lb plugin builds for a VIP, reproduced
//! bucket for bucket (PROTOCOL.md §9.2).
//!
//! Pure. The simulator reports `num_buckets` from it, and the daemon can use
//! it to check VPP's table or preview how many buckets a change moves.

use std::net::IpAddr;

const P1: u64 = 11400714785074694791;
const P2: u64 = 14029467366897019727;
const P3: u64 = 1609587929392839161;
const P4: u64 = 9650029242287828579;
const P5: u64 = 2870177450012600261;

/// VPP's 64-bit `clib_xxhash` of one u64 key.
pub fn clib_xxhash(key: u64) -> u64 {
    let mut k = key.wrapping_mul(P2);
    k = k.rotate_left(31);
    k = k.wrapping_mul(P1);
    let mut h = 0x9e3779b97f4a7c13u64.wrapping_add(P5).wrapping_add(8);
    h ^= k;
    h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

/// An AS as the table builder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The AS address.
    pub addr: IpAddr,
    /// Weight (replicas); 0 = no buckets.
    pub weight: u8,
}

/// VPP's 16-byte internal address form (IPv4 as `::a.b.c.d`): what the
/// table sorts by, and what lb dump filters compare against.
pub fn internal(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[12..].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// Builds the table: entry `i` holds the index into `members` of the AS
/// new flows hashing to `i` go to, or `None` for "no server".
/// `size` must be a power of two (VPP rejects anything else).
pub fn build_table(members: &[Member], size: usize) -> Vec<Option<usize>> {
    assert!(size.is_power_of_two(), "table size must be a power of two");
    let mask = (size - 1) as u64;
    // VPP sorts the elements by (replica, address) and fills round robin.
    // Every element of the first round claims one entry, so once `size`
    // elements exist the table fills within that round: later elements
    // never place anything and are not made (or hashed) at all.
    let mut order: Vec<(usize, [u8; 16])> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.weight > 0)
        .map(|(i, m)| (i, internal(m.addr)))
        .collect();
    order.sort_by_key(|e| e.1);
    let rounds = members.iter().map(|m| m.weight).max().unwrap_or(0);
    let mut elems: Vec<(usize, u64, u64)> = Vec::new();
    'make: for r in 0..rounds {
        for (i, addr) in &order {
            if members[*i].weight <= r {
                continue;
            }
            let lo = u64::from_le_bytes(addr[..8].try_into().expect("8 bytes"));
            let hi = u64::from_le_bytes(addr[8..].try_into().expect("8 bytes"));
            let seed = clib_xxhash(lo ^ hi ^ u64::from(r));
            let skip = ((seed & 0xffff_ffff) | 1) & mask;
            let next = (seed >> 32) & mask;
            elems.push((*i, skip, next));
            if elems.len() == size {
                break 'make;
            }
        }
    }
    let mut table = vec![None; size];
    if elems.is_empty() {
        return table;
    }
    let mut filled = 0;
    'fill: loop {
        for e in elems.iter_mut() {
            let (idx, skip, next) = e;
            let mut c;
            loop {
                c = *next;
                *next = (*next + *skip) & mask;
                if table[c as usize].is_none() {
                    break;
                }
            }
            table[c as usize] = Some(*idx);
            filled += 1;
            if filled == size {
                break 'fill;
            }
        }
    }
    table
}

/// A short, stable name of the table `members` build: FNV-1a (64 bits)
/// over every bucket's AS, in VPP's internal 16-byte form (all 0xff for
/// "no server"), as 16 hex digits. The same ASes and weights give the same
/// fingerprint in any order and on any router; a change that moves a
/// bucket changes it (up to the odds of a 64-bit collision).
pub fn fingerprint(members: &[Member], size: usize) -> String {
    fingerprint_of(members, &build_table(members, size))
}

/// [`fingerprint`] of a table [`build_table`] made from `members`.
pub fn fingerprint_of(members: &[Member], table: &[Option<usize>]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let none = [0xffu8; 16];
    for slot in table {
        let bytes = slot.map_or(none, |i| internal(members[i].addr));
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The largest gap, in percentage points, between a member's share of the
/// table and its share of the weights (0 without weights). VPP places one
/// replica per unit of weight, round robin, and stops when the table is
/// full: once the weights add up to more than the table, shares flatten.
pub fn share_error(members: &[Member], size: usize) -> f64 {
    if members.iter().all(|m| m.weight == 0) || size == 0 {
        return 0.0;
    }
    share_error_of(members, &build_table(members, size))
}

/// [`share_error`] of a table [`build_table`] made from `members`.
pub fn share_error_of(members: &[Member], table: &[Option<usize>]) -> f64 {
    let total: u32 = members.iter().map(|m| u32::from(m.weight)).sum();
    if total == 0 || table.is_empty() {
        return 0.0;
    }
    let mut counts = vec![0u32; members.len()];
    for i in table.iter().flatten() {
        counts[*i] += 1;
    }
    counts
        .iter()
        .zip(members)
        .map(|(c, m)| {
            let share = f64::from(*c) / table.len() as f64;
            let weight = f64::from(m.weight) / f64::from(total);
            (share - weight).abs() * 100.0
        })
        .fold(0.0, f64::max)
}

/// Largest table VPP's dump can report.
pub const MAX_TABLE: usize = 65536;

/// The smallest power of two from `size` up to [`MAX_TABLE`] whose table
/// keeps every share within `points` of the weights (`None`: none does).
pub fn fitting_size(members: &[Member], size: usize, points: f64) -> Option<usize> {
    let mut s = size.max(1).next_power_of_two();
    while s <= MAX_TABLE {
        if share_error(members, s) <= points {
            return Some(s);
        }
        s *= 2;
    }
    None
}

/// How many buckets each member gets, in `members` order.
pub fn bucket_counts(members: &[Member], size: usize) -> Vec<u32> {
    let mut counts = vec![0u32; members.len()];
    for i in build_table(members, size).into_iter().flatten() {
        counts[i] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(a: &str, w: u8) -> Member {
        Member {
            addr: a.parse().unwrap(),
            weight: w,
        }
    }

    // Reference numbers from PROTOCOL.md §9.2 (VPP's own test_lb.py).
    #[test]
    fn four_equal_ases() {
        let ms = [
            m("10.0.0.1", 100),
            m("10.0.0.2", 100),
            m("10.0.0.3", 100),
            m("10.0.0.4", 100),
        ];
        assert_eq!(bucket_counts(&ms, 1024), vec![256, 256, 256, 256]);
    }

    #[test]
    fn one_at_half_weight() {
        let ms = [
            m("10.0.0.1", 50),
            m("10.0.0.2", 100),
            m("10.0.0.3", 100),
            m("10.0.0.4", 100),
        ];
        assert_eq!(bucket_counts(&ms, 1024), vec![150, 292, 291, 291]);
    }

    #[test]
    fn one_drained() {
        let ms = [
            m("10.0.0.1", 50),
            m("10.0.0.2", 0),
            m("10.0.0.3", 100),
            m("10.0.0.4", 100),
        ];
        assert_eq!(bucket_counts(&ms, 1024), vec![208, 0, 408, 408]);
    }

    #[test]
    fn two_ases_50_100() {
        let ms = [m("10.0.0.1", 50), m("10.0.0.2", 100)];
        assert_eq!(bucket_counts(&ms, 1024), vec![350, 674]);
    }

    #[test]
    fn ipv6_pair() {
        let ms = [m("2001:db8:1::10", 100), m("2001:db8:1::11", 100)];
        assert_eq!(bucket_counts(&ms, 1024), vec![512, 512]);
    }

    #[test]
    fn order_of_members_does_not_matter() {
        let a = [m("10.0.0.1", 50), m("10.0.0.2", 100), m("10.0.0.3", 7)];
        let b = [m("10.0.0.3", 7), m("10.0.0.1", 50), m("10.0.0.2", 100)];
        let ca = bucket_counts(&a, 1024);
        let cb = bucket_counts(&b, 1024);
        assert_eq!(ca, vec![cb[1], cb[2], cb[0]]);
    }

    #[test]
    fn no_candidates_means_no_server_everywhere() {
        assert!(
            build_table(&[m("10.0.0.1", 0)], 16)
                .iter()
                .all(Option::is_none)
        );
        assert!(build_table(&[], 16).iter().all(Option::is_none));
    }

    #[test]
    fn every_bucket_filled_when_any_candidate() {
        for size in [1, 2, 64, 1024, 65536] {
            let t = build_table(&[m("10.0.0.1", 1)], size);
            assert!(t.iter().all(|e| *e == Some(0)));
        }
    }

    #[test]
    fn fingerprints_name_the_table_not_the_input_order() {
        let a = [m("10.0.0.1", 100), m("10.0.0.2", 50), m("10.0.0.3", 100)];
        let b = [m("10.0.0.3", 100), m("10.0.0.1", 100), m("10.0.0.2", 50)];
        assert_eq!(fingerprint(&a, 1024), fingerprint(&b, 1024));
        assert_eq!(fingerprint(&a, 1024).len(), 16);
        // Any weight change that moves a bucket changes it.
        for w in [1u8, 49, 51, 100] {
            let c = [m("10.0.0.1", 100), m("10.0.0.2", w), m("10.0.0.3", 100)];
            assert_ne!(bucket_counts(&c, 1024), bucket_counts(&a, 1024));
            assert_ne!(fingerprint(&c, 1024), fingerprint(&a, 1024), "weight {w}");
        }
        // A drained AS (weight 0) and an absent one make the same table.
        let d = [m("10.0.0.1", 100), m("10.0.0.2", 0), m("10.0.0.3", 100)];
        let e = [m("10.0.0.1", 100), m("10.0.0.3", 100)];
        assert_eq!(fingerprint(&d, 1024), fingerprint(&e, 1024));
        assert_ne!(fingerprint(&e, 1024), fingerprint(&[], 1024));
    }

    #[test]
    fn shares_flatten_once_the_weights_outgrow_the_table() {
        // 15 ASes at 100 and 15 at 50: 2,250 replicas for 1,024 buckets.
        let ms: Vec<Member> = (0..30)
            .map(|i| m(&format!("10.0.1.{}", i + 1), if i < 15 { 100 } else { 50 }))
            .collect();
        let counts = bucket_counts(&ms, 1024);
        let (big, small) = (counts[0], counts[20]);
        assert!(
            big.abs_diff(small) <= 2,
            "about 1:1 instead of 2:1: {big} {small}"
        );
        let err = share_error(&ms, 1024);
        assert!(err > 1.0, "{err}");
        let fit = fitting_size(&ms, 1024, 1.0).unwrap();
        assert!(fit > 1024 && share_error(&ms, fit) <= 1.0, "{fit}");
        assert!(share_error(&ms, fit / 2) > 1.0, "the smallest that fits");
        // Four equal ASes fit any table.
        let four = [
            m("10.0.0.1", 100),
            m("10.0.0.2", 100),
            m("10.0.0.3", 100),
            m("10.0.0.4", 100),
        ];
        assert_eq!(share_error(&four, 1024), 0.0);
        assert_eq!(fitting_size(&four, 1024, 1.0), Some(1024));
        assert_eq!(share_error(&[], 1024), 0.0);
    }
}
