//! Training items, their per-epoch shuffle and the share of each rank.
//!
//! The items of all sources form one list `0..n`. Epoch `e` orders it by a keyed
//! pseudo-random permutation (a Feistel network over the next even power of two,
//! cycle-walked into `[0, n)`): a bijection computed per slot in O(1), so no epoch ever
//! materialises or sorts an n-element array and any batch of any epoch is random-access.
//! Global batch `k` takes slots `[k·B·W, (k+1)·B·W)`; rank `r` takes `[r·B, (r+1)·B)`
//! of those.

use crate::sampler::error::{invalid, SamplerError};
use crate::sampler::rng::{derive, mix64, PURPOSE_SHUFFLE};
use crate::sampler::store::{StoreSource, StoreView};
use crate::sampler::validate::{NO_TIME, TASK_TABLE, TEXT};

/// Where items come from: rows of `table` in store `store` that hold `target`, and, for
/// one split of an autocomplete task (whose items are rows of a database table), only
/// the rows of that split.
#[derive(Debug, Clone, Default)]
pub struct SourceSpec {
    pub store: usize,
    pub table: u32,
    pub target: u32,
    pub leakage: Vec<u32>,
    pub split: Option<RowSplit>,
}

/// The rows of a table that belong to one split of an autocomplete task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowSplit {
    /// Row positions `[start, end)` within the table (tables without a time column).
    Positions { start: u32, end: u32 },
    /// Rows whose timestamp is in `(after, up_to]`, a missing bound open; rows without a
    /// timestamp belong to no split.
    Times {
        after: Option<i64>,
        up_to: Option<i64>,
    },
}

impl RowSplit {
    fn contains(&self, position: u32, time: i64) -> bool {
        match *self {
            Self::Positions { start, end } => (start..end).contains(&position),
            Self::Times { after, up_to } => {
                time != NO_TIME && after.is_none_or(|a| time > a) && up_to.is_none_or(|u| time <= u)
            }
        }
    }
}

/// A source checked against its store, ready for sampling.
pub struct Source {
    pub store: usize,
    pub target: u32,
    /// Sorted, for binary search.
    pub leakage: Vec<u32>,
    /// When the items lie in a task table: every split table of that task (the task
    /// tables sharing its name), ascending; empty otherwise.
    pub task_tables: Vec<u32>,
}

/// Check `spec` (source number `i`) against its store.
pub fn resolve<S: StoreSource>(
    stores: &[S],
    i: usize,
    spec: &SourceSpec,
) -> Result<Source, SamplerError> {
    let Some(store) = stores.get(spec.store) else {
        return invalid(format!(
            "source {i}: store {} out of range ({} stores)",
            spec.store,
            stores.len()
        ));
    };
    let info = store.info();
    let place = store.location().display();
    if spec.table as usize >= info.tables {
        return invalid(format!(
            "source {i}: table {} out of range ({} tables in {place})",
            spec.table, info.tables
        ));
    }
    if let Some(&c) = std::iter::once(&spec.target)
        .chain(&spec.leakage)
        .find(|&&c| c as usize >= info.columns)
    {
        return invalid(format!(
            "source {i}: column {c} out of range ({} columns in {place})",
            info.columns
        ));
    }
    if let Some(RowSplit::Positions { start, end }) = spec.split {
        let t = spec.table as usize;
        let rows = store.view().table_nodes[t + 1] - store.view().table_nodes[t];
        if start > end || u64::from(end) > rows {
            return invalid(format!(
                "source {i}: split rows [{start}, {end}) outside table {} of {rows} rows in {place}",
                spec.table
            ));
        }
    }
    let mut leakage = spec.leakage.clone();
    leakage.sort_unstable();
    leakage.dedup();
    let view = store.view();
    let (kinds, names) = (view.table_kind, view.table_name);
    let task_tables = if kinds[spec.table as usize] == TASK_TABLE {
        let name = names[spec.table as usize];
        (0..kinds.len() as u32)
            .filter(|&t| kinds[t as usize] == TASK_TABLE && names[t as usize] == name)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Source {
        store: spec.store,
        target: spec.target,
        leakage,
        task_tables,
    })
}

/// The rows of `spec.table` (in `spec.split`) that hold a non-NaN cell of `spec.target`,
/// in node order.
pub fn rows_with_target(view: &StoreView, spec: &SourceSpec) -> Vec<u32> {
    let (t, column) = (spec.table as usize, spec.target);
    let (lo, hi) = (view.table_nodes[t] as u32, view.table_nodes[t + 1] as u32);
    (lo..hi)
        .filter(|&node| {
            spec.split
                .is_none_or(|split| split.contains(node - lo, view.node_time[node as usize]))
        })
        .filter(|&node| match view.cell_of(node, column) {
            Some(cell) => view.cell_type[cell] == TEXT || !view.cell_value[cell].is_nan(),
            None => false,
        })
        .collect()
}

/// The items of every source, concatenated.
#[derive(Default)]
pub struct Items {
    nodes: Vec<u32>,
    /// `starts[s]..starts[s + 1]` are the items of source `s`.
    starts: Vec<usize>,
}

impl Items {
    pub fn push_source(&mut self, rows: Vec<u32>) {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        self.nodes.extend(rows);
        self.starts.push(self.nodes.len());
    }

    pub fn count(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// The source and node of item `i < len()`.
    pub fn get(&self, i: u64) -> (usize, u32) {
        let i = i as usize;
        let source = self.starts.partition_point(|&s| s <= i) - 1;
        (source, self.nodes[i])
    }
}

const ROUNDS: usize = 4;

/// A keyed bijection of `[0, n)`.
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; ROUNDS],
}

impl Permutation {
    /// The shuffle of epoch `epoch` for `seed` over `n` items.
    pub fn new(n: u64, seed: u64, epoch: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let keys = std::array::from_fn(|r| derive(&[seed, epoch, PURPOSE_SHUFFLE, r as u64]));
        Self { n, half_bits, keys }
    }

    /// The item at slot `x < n`.
    pub fn apply(&self, mut x: u64) -> u64 {
        // Cycle walking: the network permutes [0, 4^half_bits) ⊇ [0, n); following the
        // cycle from x until it re-enters [0, n) restricts it to a bijection of
        // [0, n). The domain is < 4n, so this takes < 4 rounds on average.
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let next = left ^ (mix64(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

/// Batches per epoch: every item once, the last global batch possibly short.
pub fn batches_per_epoch(num_items: u64, global_batch: u64) -> u64 {
    num_items.div_ceil(global_batch)
}

/// What batch `index` of one rank holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub epoch: u64,
    /// Global slot of the batch's first sequence.
    pub first_slot: u64,
    /// How many of its sequences are real items; the rest are padding.
    pub real: usize,
}

/// The shard of rank `rank` for its batch `index` (counting across epochs).
pub fn shard(index: u64, num_items: u64, batch: u64, rank: u64, world: u64) -> Shard {
    let per_epoch = batches_per_epoch(num_items, batch * world);
    let (epoch, k) = (index / per_epoch, index % per_epoch);
    let first_slot = k * batch * world + rank * batch;
    let real = num_items.saturating_sub(first_slot).min(batch) as usize;
    Shard {
        epoch,
        first_slot,
        real,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection_for_every_size() {
        for n in [1u64, 2, 3, 5, 16, 17, 100, 1000, 4097] {
            let perm = Permutation::new(n, 42, 3);
            let mut seen: Vec<u64> = (0..n).map(|x| perm.apply(x)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn epochs_and_seeds_reshuffle() {
        let order = |seed, epoch| -> Vec<u64> {
            let perm = Permutation::new(1000, seed, epoch);
            (0..1000).map(|x| perm.apply(x)).collect()
        };
        assert_eq!(order(1, 0), order(1, 0));
        assert_ne!(order(1, 0), order(1, 1));
        assert_ne!(order(1, 0), order(2, 0));
        // Not the identity nor a near-identity.
        let fixed = order(1, 0)
            .iter()
            .enumerate()
            .filter(|(i, &x)| *i as u64 == x)
            .count();
        assert!(fixed < 10, "{fixed} fixed points");
    }

    #[test]
    fn ranks_share_every_epoch_disjointly_with_a_short_tail() {
        let (n, batch, world) = (23u64, 4u64, 3u64);
        assert_eq!(batches_per_epoch(n, batch * world), 2);
        let mut slots = Vec::new();
        for index in 0..2 {
            for rank in 0..world {
                let s = shard(index, n, batch, rank, world);
                assert_eq!(s.epoch, 0);
                slots.extend(s.first_slot..s.first_slot + s.real as u64);
            }
        }
        assert_eq!(slots, (0..n).collect::<Vec<_>>());
        assert_eq!(shard(1, n, batch, 2, world).real, 3);
        assert_eq!(
            shard(2, n, batch, 0, world),
            Shard {
                epoch: 1,
                first_slot: 0,
                real: 4
            }
        );
        // A rank past the tail gets a batch of padding only.
        assert_eq!(shard(1, 13, batch, 2, world).real, 0);
    }
}
