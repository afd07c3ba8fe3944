//! Maps keyed by a node id (a `u16`), looked up per packet: the per-source counters of
//! a proxy link, a proxy's routing table.

use std::collections::HashMap;

/// A map keyed by a node id, hashed with [`BuildIdHasher`].
pub(crate) type IdMap<V> = HashMap<u16, V, BuildIdHasher>;

/// Hashes a node id with one multiplication instead of SipHash (about a sixth of a
/// node's receive cost per packet on a proxy link). Flooding the table is not a
/// concern: there are 65,536 ids, so at most `65,536 / buckets` of them share a bucket,
/// and the keys are the stamps of a trusted proxy, configured routes and the ids a
/// proxy gives its own clients.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct BuildIdHasher;

impl core::hash::BuildHasher for BuildIdHasher {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See [`BuildIdHasher`].
#[derive(Debug)]
pub(crate) struct IdHasher(u64);

impl core::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.0 = u64::from(n);
    }
    fn finish(&self) -> u64 {
        // Fibonacci hashing spreads the id over the high bits (the table's control
        // bytes); folding them down makes every low bit (its buckets) depend on the
        // whole id, so ids that differ only in their high bits do not share buckets
        let h = self.0.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::BuildHasher;

    #[test]
    fn the_hasher_spreads_every_id_over_the_tables_bits() {
        let hashes: Vec<u64> = (0..=u16::MAX)
            .map(|id| BuildIdHasher.hash_one(id))
            .collect();
        let mut distinct = hashes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 1 << 16, "two ids share a hash");
        // the top 7 bits (the table's control bytes) and the low bits (its buckets) both
        // take every value, so neither a run of ids nor a stride piles into one place
        let mut top = [0u32; 128];
        let mut low = [0u32; 256];
        for h in &hashes {
            top[(h >> 57) as usize] += 1;
            low[(h & 0xFF) as usize] += 1;
        }
        assert!(top.iter().all(|&n| n >= 256), "{top:?}");
        assert!(low.iter().all(|&n| n >= 128), "{low:?}");
        // ids 256 apart (the same low byte) still spread over the low bits
        let mut strided: Vec<u64> = (0..=255u16)
            .map(|i| BuildIdHasher.hash_one(i << 8) & 0xFF)
            .collect();
        strided.sort_unstable();
        strided.dedup();
        assert!(
            strided.len() >= 128,
            "ids 256 apart share {} low bytes",
            strided.len()
        );
    }
}
