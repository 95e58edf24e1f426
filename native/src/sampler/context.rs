//! The context of one item (SPEC §6): which cells of which rows, in which order.
//!
//! From the item row `t` the walk takes nodes one at a time:
//! - parents (f2p) go on a stack and are taken first, at depth + 1;
//! - children (p2f) are queued per depth and taken from the lowest non-empty depth, at
//!   a random position; only children whose timestamp is none or ≤ t's are followed
//!   (a binary search over the per-parent time-sorted edges), at most `max_bfs_width`
//!   of them drawn at random in O(width);
//! - children in task tables are followed only when t lies in that very task table,
//!   under the same time bound;
//! - a node already taken at a depth ≤ the current one is skipped; one taken deeper is
//!   taken again to re-expand its neighbours from the shallower depth, but its cells
//!   enter the context once.
//!
//! Cells: t's target cell first (so it survives any cut), then the other cells of each
//! taken node until `ctx_len`; NaN cells are skipped; leakage columns are dropped from
//! t and from rows whose timestamp equals t's. The result is ordered by column id,
//! stably (ties keep walk order).

use crate::sampler::rng::{sample_distinct, PickSet, Rng};
use crate::sampler::store::{at, StoreView};
use crate::sampler::validate::{NO_TIME, TEXT};

/// Bounds of one context.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub ctx_len: usize,
    pub max_bfs_width: usize,
    /// Nodes taken at most, so rows without cells cannot keep the walk going long.
    pub max_visits: usize,
}

/// The item a context is built for.
#[derive(Debug, Clone, Copy)]
pub struct Seed<'s> {
    pub node: u32,
    /// Index of t's target cell in the cell arrays.
    pub target_cell: usize,
    /// t's timestamp, `NO_TIME` for none.
    pub time: i64,
    /// t's table when it is a task table: the only task table whose rows are followed.
    pub task_table: Option<u32>,
    /// Leakage column ids, sorted.
    pub leakage: &'s [u32],
}

/// Scratch memory of one worker, reused for every context it builds.
#[derive(Default)]
pub struct Workspace {
    /// Per node: `stamp << 32 | depth` of its latest taking during context `stamp`.
    taken: Vec<u64>,
    stamp: u32,
    stack: Vec<(u32, u32)>,
    queues: Vec<Vec<u32>>,
    lowest_queue: usize,
    picks: PickSet,
    picked: Vec<u64>,
    /// `column << 32 | position`, sorted at the end: column order, ties by position.
    order: Vec<u64>,
    nodes: Vec<u32>,
    cells: Vec<usize>,
}

impl Workspace {
    fn begin(&mut self, num_nodes: usize) {
        if self.taken.len() < num_nodes {
            self.taken.resize(num_nodes, 0);
        }
        // Stamps make "taken" per context without clearing an N-sized array each time;
        // on wrap-around the array is cleared once.
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.taken.iter_mut().for_each(|t| *t = 0);
            self.stamp = 1;
        }
        self.stack.clear();
        self.queues.iter_mut().for_each(Vec::clear);
        self.lowest_queue = 0;
        self.order.clear();
        self.nodes.clear();
        self.cells.clear();
    }

    /// Number of cells collected.
    pub fn num_cells(&self) -> usize {
        self.nodes.len()
    }

    /// The collected `(node, cell)` pairs in context order (after `build`).
    pub fn context(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.order.iter().map(|&key| {
            let pos = (key & 0xFFFF_FFFF) as usize;
            (self.nodes[pos], self.cells[pos])
        })
    }

    #[inline]
    fn push_cell(&mut self, node: u32, cell: usize, column: u32) {
        self.order
            .push(u64::from(column) << 32 | self.nodes.len() as u64);
        self.nodes.push(node);
        self.cells.push(cell);
    }

    fn enqueue(&mut self, depth: u32, node: u32) {
        let d = depth as usize;
        if self.queues.len() <= d {
            self.queues.resize_with(d + 1, Vec::new);
        }
        self.queues[d].push(node);
        self.lowest_queue = self.lowest_queue.min(d);
    }

    /// Remove a random node of the lowest non-empty depth.
    fn dequeue(&mut self, rng: &mut Rng) -> Option<(u32, u32)> {
        while let Some(queue) = self.queues.get_mut(self.lowest_queue) {
            if !queue.is_empty() {
                let r = rng.below(queue.len() as u64) as usize;
                return Some((self.lowest_queue as u32, queue.swap_remove(r)));
            }
            self.lowest_queue += 1;
        }
        None
    }
}

/// Length of the prefix of `times` (sorted ascending, none = `NO_TIME` first) that a
/// context of an item at `bound` may see: times none or ≤ bound; everything when the
/// item itself has no timestamp.
pub fn visible_prefix(times: &[i64], bound: i64) -> usize {
    if bound == NO_TIME {
        times.len()
    } else {
        times.partition_point(|&t| t <= bound)
    }
}

/// Build the context of `seed` into `ws` (read it with `ws.context()`).
pub fn build(view: &StoreView, seed: &Seed, limits: &Limits, rng: &mut Rng, ws: &mut Workspace) {
    ws.begin(view.num_nodes());
    ws.stack.push((0, seed.node));
    let mut visits = 0;
    while ws.num_cells() < limits.ctx_len && visits < limits.max_visits {
        let Some((depth, node)) = ws.stack.pop().or_else(|| ws.dequeue(rng)) else {
            break;
        };
        let n = node as usize;
        let stamp = u64::from(ws.stamp);
        let previous = ws.taken[n];
        let seen = previous >> 32 == stamp;
        if seen && (previous & 0xFFFF_FFFF) as u32 <= depth {
            continue;
        }
        visits += 1;
        ws.taken[n] = stamp << 32 | u64::from(depth);
        if !seen {
            add_cells(view, seed, node, limits.ctx_len, ws);
            if ws.num_cells() >= limits.ctx_len {
                break;
            }
        }
        for &parent in view.parents(node) {
            ws.stack.push((depth + 1, parent));
        }
        add_children(view, seed, node, depth + 1, limits.max_bfs_width, rng, ws);
    }
    ws.order.sort_unstable();
}

fn add_cells(view: &StoreView, seed: &Seed, node: u32, ctx_len: usize, ws: &mut Workspace) {
    let is_seed = node == seed.node;
    if is_seed {
        ws.push_cell(node, seed.target_cell, view.cell_column[seed.target_cell]);
    }
    let drop_leakage =
        is_seed || (seed.time != NO_TIME && view.node_time[node as usize] == seed.time);
    for cell in view.cells(node) {
        if ws.num_cells() >= ctx_len {
            return;
        }
        if is_seed && cell == seed.target_cell {
            continue;
        }
        if view.cell_type[cell] != TEXT && view.cell_value[cell].is_nan() {
            continue;
        }
        let column = view.cell_column[cell];
        if drop_leakage && seed.leakage.binary_search(&column).is_ok() {
            continue;
        }
        ws.push_cell(node, cell, column);
    }
}

fn add_children(
    view: &StoreView,
    seed: &Seed,
    node: u32,
    depth: u32,
    width: usize,
    rng: &mut Rng,
    ws: &mut Workspace,
) {
    let n = node as usize;
    let lo = at(view.p2f_offsets[n]);
    let visible = visible_prefix(&view.p2f_time[lo..at(view.p2f_offsets[n + 1])], seed.time);
    let children = &view.p2f_nodes[lo..lo + visible];
    if children.len() <= width {
        for &child in children {
            ws.enqueue(depth, child);
        }
    } else {
        let mut picked = std::mem::take(&mut ws.picked);
        picked.clear();
        sample_distinct(
            children.len() as u64,
            width,
            rng,
            &mut ws.picks,
            &mut picked,
        );
        for &i in &picked {
            ws.enqueue(depth, children[i as usize]);
        }
        ws.picked = picked;
    }
    if let Some(task) = seed.task_table {
        let (lo, hi) = (
            at(view.task_p2f_offsets[n]),
            at(view.task_p2f_offsets[n + 1]),
        );
        let tables = &view.task_p2f_table[lo..hi];
        let start = lo + tables.partition_point(|&t| t < task);
        let end = lo + tables.partition_point(|&t| t <= task);
        let visible = visible_prefix(&view.task_p2f_time[start..end], seed.time);
        for &child in &view.task_p2f_nodes[start..start + visible] {
            ws.enqueue(depth, child);
        }
    }
}
