//! A cheap hasher for the hot maps keyed by numbers that are ours: backend
//! ids, probe sequence numbers, backend addresses from the configuration.
//!
//! The standard hasher (SipHash) resists keys chosen by an attacker, which
//! these are not (a received packet only *looks up* a sequence number; it
//! never inserts one); its cost showed in the prober's profile at 10,000
//! backends (3 % of the daemon in map lookups). This one is a multiply and a
//! rotate per word.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hashing (Knuth): the constant is 2^64 / φ, odd.
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(26) ^ v).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits (the table's bucket index)
        // depending only on the key's low bits; fold the high ones down.
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }

    fn write_u16(&mut self, v: u16) {
        self.mix(u64::from(v));
    }

    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }
}

/// A `HashMap` with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn sequential_ids_spread_over_the_buckets() {
        // 10,000 consecutive ids into 16,384 buckets (the low 14 bits, as
        // the table indexes): no bucket gets more than a few.
        let b = BuildHasherDefault::<IdHasher>::default();
        let mut load = vec![0u32; 1 << 14];
        for id in 1u32..=10_000 {
            load[(b.hash_one(id) as usize) & ((1 << 14) - 1)] += 1;
        }
        assert!(*load.iter().max().unwrap() <= 6, "{:?}", load.iter().max());
        // Tuples and addresses hash by their parts.
        assert_ne!(b.hash_one((false, 7u32)), b.hash_one((true, 7u32)));
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let c: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        assert_ne!(b.hash_one(a), b.hash_one(c));
    }

    #[test]
    fn a_map_works() {
        let mut m: IdMap<u32, &str> = IdMap::default();
        m.insert(1, "a");
        m.insert(2, "b");
        assert_eq!(m.get(&2), Some(&"b"));
        assert_eq!(m.remove(&1), Some("a"));
        assert_eq!(m.len(), 1);
    }
}
