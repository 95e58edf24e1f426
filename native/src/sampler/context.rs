//! The context of one item (docs/contexts.md): which cells of which rows, in which order.
//!
//! From the item row `t` the walk takes nodes one at a time:
//! - parents (f2p) go on a stack and are taken first, at depth + 1;
//! - children (p2f) are queued per depth and taken from the lowest non-empty depth, at
//!   a random position; which children are visible depends on time and on the rules
//!   (`visible`), found by binary search over the per-parent time-sorted edges; at most
//!   `max_bfs_width` database children are drawn at random in O(width);
//! - children in task tables are followed only when t lies in a table of the same task
//!   (any of its splits: the splits are one table for the walk);
//! - a node already taken at a depth ≤ the current one is skipped; one taken deeper is
//!   taken again to re-expand its neighbours from the shallower depth, but its cells
//!   enter the context once.
//!
//! Rows enter whole: the walk stops before the first row that does not fit (rules:
//! `ContextRules`); only t's own row can be cut, and t's target cell comes first so it
//! survives. NaN cells are skipped; leakage columns are dropped from t and from rows
//! whose timestamp equals t's. The result is ordered by column id, stably (ties keep
//! walk order).

use std::ops::Range;

use crate::context_rules::ContextRules;
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
    pub rules: ContextRules,
}

/// The item a context is built for.
#[derive(Debug, Clone, Copy)]
pub struct Seed<'s> {
    pub node: u32,
    /// Index of t's target cell in the cell arrays.
    pub target_cell: usize,
    /// t's timestamp, `NO_TIME` for none.
    pub time: i64,
    /// When t lies in a task table: the tables of every split of its task, ascending —
    /// the only task tables whose rows are followed.
    pub task_tables: &'s [u32],
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

    /// Keep the first `len` cells collected.
    fn truncate(&mut self, len: usize) {
        self.order.truncate(len);
        self.nodes.truncate(len);
        self.cells.truncate(len);
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

/// The part of `times` (sorted ascending, none = `NO_TIME` first) that a context of an
/// item at `bound` may follow, for database children or, with `label_rows`, for rows of
/// the item's task tables.
///
/// Both rules follow children without a timestamp and those at or before a timed item.
/// An item without a timestamp follows only children without one under `Reference`,
/// every child under `Strict` (it has no time to leak across). Label rows under
/// `Strict` are only those strictly earlier than a timed item: none at its own
/// timestamp, none without a timestamp, none for an untimed item.
pub fn visible(times: &[i64], bound: i64, rules: ContextRules, label_rows: bool) -> Range<usize> {
    let untimed = || times.partition_point(|&t| t == NO_TIME);
    match (rules, label_rows, bound == NO_TIME) {
        (ContextRules::Strict, true, true) => 0..0,
        (ContextRules::Strict, true, false) => untimed()..times.partition_point(|&t| t < bound),
        (ContextRules::Strict, false, true) => 0..times.len(),
        (ContextRules::Reference, _, true) => 0..untimed(),
        (_, _, false) => 0..times.partition_point(|&t| t <= bound),
    }
}

/// Build the context of `seed` into `ws` (read it with `ws.context()`).
pub fn build(view: &StoreView, seed: &Seed, limits: &Limits, rng: &mut Rng, ws: &mut Workspace) {
    ws.begin(view.num_nodes());
    ws.stack.push((0, seed.node));
    let mut visits = 0;
    // Reference budget: the cells of every row taken, a row taken again counted again,
    // leakage cells included — as the reference sampler counts them.
    let mut budget = 0;
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
        if limits.rules == ContextRules::Reference {
            budget += view.cells(node).len();
            if budget >= limits.ctx_len && node != seed.node {
                break;
            }
        }
        visits += 1;
        ws.taken[n] = stamp << 32 | u64::from(depth);
        if !seen {
            let before = ws.num_cells();
            add_cells(view, seed, limits.rules, node, ws);
            if ws.num_cells() > limits.ctx_len {
                if node != seed.node {
                    // Strict: the row does not fit whole, so the context ends before it.
                    ws.truncate(before);
                    break;
                }
                // Only the item's own row is cut; its target cell came first.
                ws.truncate(limits.ctx_len);
            }
        }
        for &parent in view.parents(node) {
            ws.stack.push((depth + 1, parent));
        }
        add_children(view, seed, limits, node, depth + 1, rng, ws);
    }
    ws.order.sort_unstable();
}

fn add_cells(view: &StoreView, seed: &Seed, rules: ContextRules, node: u32, ws: &mut Workspace) {
    let is_seed = node == seed.node;
    if is_seed {
        ws.push_cell(node, seed.target_cell, view.cell_column[seed.target_cell]);
    }
    // The reference compares optional timestamps, so an untimed item also drops leakage
    // columns from every untimed row; strict drops them from rows at t's timestamp only.
    let same_time = view.node_time[node as usize] == seed.time
        && (seed.time != NO_TIME || rules == ContextRules::Reference);
    let drop_leakage = is_seed || same_time;
    for cell in view.cells(node) {
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
    limits: &Limits,
    node: u32,
    depth: u32,
    rng: &mut Rng,
    ws: &mut Workspace,
) {
    let n = node as usize;
    let (lo, hi) = (
        at(view.task_p2f_offsets[n]),
        at(view.task_p2f_offsets[n + 1]),
    );
    // Label rows first, as the reference queues them; all of them, never drawn.
    if lo < hi && !seed.task_tables.is_empty() {
        let tables = &view.task_p2f_table[lo..hi];
        for &task in seed.task_tables {
            let start = lo + tables.partition_point(|&t| t < task);
            let end = lo + tables.partition_point(|&t| t <= task);
            let seen = visible(
                &view.task_p2f_time[start..end],
                seed.time,
                limits.rules,
                true,
            );
            for &child in &view.task_p2f_nodes[start + seen.start..start + seen.end] {
                ws.enqueue(depth, child);
            }
        }
    }
    let lo = at(view.p2f_offsets[n]);
    let times = &view.p2f_time[lo..at(view.p2f_offsets[n + 1])];
    let seen = visible(times, seed.time, limits.rules, false);
    let children = &view.p2f_nodes[lo + seen.start..lo + seen.end];
    if children.len() <= limits.max_bfs_width {
        for &child in children {
            ws.enqueue(depth, child);
        }
    } else {
        let mut picked = std::mem::take(&mut ws.picked);
        picked.clear();
        sample_distinct(
            children.len() as u64,
            limits.max_bfs_width,
            rng,
            &mut ws.picks,
            &mut picked,
        );
        for &i in &picked {
            ws.enqueue(depth, children[i as usize]);
        }
        ws.picked = picked;
    }
}
