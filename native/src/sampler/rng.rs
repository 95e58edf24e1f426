//! Deterministic randomness for the sampler. Every stream is a pure function of
//! (seed, epoch, global item slot, purpose), never of thread scheduling, so a batch is
//! the same on 1 thread or 64.

use crate::init::SplitMix64;

/// Purposes, so streams derived from the same (seed, epoch, slot) stay independent.
pub const PURPOSE_SHUFFLE: u64 = 0x5348_5546;
pub const PURPOSE_CONTEXT: u64 = 0x4354_5854;
/// The context of one item drawn from (seed, item), whatever batch it is in.
pub const PURPOSE_ITEM_CONTEXT: u64 = 0x4954_454D;

/// The SplitMix64 finaliser: a bijective, well-mixing 64-bit hash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash a path of words (seed, epoch, slot, purpose …) into one seed.
pub fn derive(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x6A09_E667_F3BC_C908, |h, &w| mix64(h ^ mix64(w)))
}

/// A small generator with unbiased bounded draws.
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    /// Uniform in `[0, n)` (Lemire's multiply-shift with rejection); `n` must be > 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        let mut m = u128::from(self.0.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.0.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }
}

/// A set of at most `k` positions, reused across draws: open addressing over a
/// power-of-two table at least twice as large, emptied by erasing only what was put in.
#[derive(Default)]
pub struct PickSet {
    slots: Vec<u64>,
}

const EMPTY: u64 = u64::MAX;

impl PickSet {
    fn prepare(&mut self, k: usize) {
        let want = (2 * k).next_power_of_two().max(16);
        if self.slots.len() < want {
            self.slots = vec![EMPTY; want];
        }
    }

    #[inline]
    fn slot(&self, value: u64) -> usize {
        let mask = self.slots.len() - 1;
        (value.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
    }

    /// Insert `value`; false when it was already there.
    #[inline]
    fn insert(&mut self, value: u64) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = self.slot(value);
        loop {
            match self.slots[i] {
                EMPTY => {
                    self.slots[i] = value;
                    return true;
                }
                v if v == value => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn clear(&mut self, values: &[u64]) {
        // Erasing in insertion order could break a probe chain of a later value, so
        // the whole cluster around each value is wiped instead.
        let mask = self.slots.len() - 1;
        for &v in values {
            let mut i = self.slot(v);
            while self.slots[i] != EMPTY {
                self.slots[i] = EMPTY;
                i = (i + 1) & mask;
            }
        }
    }
}

/// Append `k` distinct positions drawn uniformly from `[0, n)` to `out` (Floyd's
/// algorithm): O(k) time and memory however large `n` is. Needs `k <= n`.
pub fn sample_distinct(n: u64, k: usize, rng: &mut Rng, set: &mut PickSet, out: &mut Vec<u64>) {
    let start = out.len();
    set.prepare(k);
    for j in n - k as u64..n {
        let t = rng.below(j + 1);
        // Floyd: t is new, or t was taken by an earlier step and j (never drawn
        // before this step) takes its place.
        let pick = if set.insert(t) {
            t
        } else {
            set.insert(j);
            j
        };
        out.push(pick);
    }
    set.clear(&out[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        let mut rng = Rng::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[rng.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }

    #[test]
    fn floyd_draws_distinct_positions_uniformly() {
        let (mut rng, mut set, mut out) = (Rng::new(1), PickSet::default(), Vec::new());
        let mut counts = vec![0usize; 10];
        for _ in 0..4000 {
            out.clear();
            sample_distinct(10, 3, &mut rng, &mut set, &mut out);
            let mut sorted = out.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 3);
            out.iter().for_each(|&p| counts[p as usize] += 1);
        }
        // Each position is picked with probability 3/10: 1200 of 4000 on average.
        assert!(
            counts.iter().all(|&c| (1050..1350).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn floyd_on_a_huge_range_costs_only_k() {
        let (mut rng, mut set, mut out) = (Rng::new(2), PickSet::default(), Vec::new());
        sample_distinct(1 << 40, 128, &mut rng, &mut set, &mut out);
        assert_eq!(out.len(), 128);
        assert!(set.slots.len() <= 256);
        assert!(
            set.slots.iter().all(|&s| s == EMPTY),
            "the set is left empty"
        );
        sample_distinct(128, 128, &mut rng, &mut set, &mut out);
        let mut all: Vec<u64> = out[128..].to_vec();
        all.sort_unstable();
        assert_eq!(all, (0..128).collect::<Vec<_>>());
    }

    #[test]
    fn derive_separates_paths() {
        assert_ne!(derive(&[1, 2]), derive(&[2, 1]));
        assert_ne!(derive(&[0, 0]), derive(&[0]));
        assert_eq!(derive(&[3, 4, 5]), derive(&[3, 4, 5]));
    }
}
