//! Edges as CSR arrays: child → parent (f2p) from foreign keys in the table's key order,
//! and their reverse (p2f) per parent, split into children in database tables (sorted by
//! time, none first, then child id) and children in task tables (sorted by child table,
//! time, child id). A child reaching one parent through several keys is listed once
//! under that parent.

use super::keys::{KeyList, PkeyIndex};

/// Compressed sparse rows: the neighbours of node n are `nodes[offsets[n]..offsets[n+1]]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Csr {
    pub offsets: Vec<u64>,
    pub nodes: Vec<u32>,
}

impl Csr {
    pub fn row(&self, n: usize) -> &[u32] {
        &self.nodes[self.offsets[n] as usize..self.offsets[n + 1] as usize]
    }

    /// The largest number of neighbours of any node.
    pub fn max_degree(&self) -> u64 {
        self.offsets
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }
}

/// The parent side of a foreign key: the parent table's first node and key index.
pub struct Parent<'a> {
    pub first_node: u32,
    pub index: &'a PkeyIndex,
}

/// A table's rows with their foreign keys.
pub struct Child<'a> {
    pub rows: usize,
    pub fkeys: Vec<(&'a KeyList, Parent<'a>)>,
}

/// f2p edges of every table in node order, and per table the number of key values that
/// name no parent row (dangling).
pub fn f2p(tables: &[Child<'_>]) -> (Csr, Vec<u64>) {
    let mut csr = Csr {
        offsets: vec![0],
        nodes: Vec::new(),
    };
    let mut dangling = Vec::with_capacity(tables.len());
    for table in tables {
        let mut missing: u64 = table.fkeys.iter().map(|(keys, _)| keys.unmatchable).sum();
        for r in 0..table.rows {
            for (keys, parent) in &table.fkeys {
                for key in keys.row(r) {
                    match parent.index.lookup(key) {
                        Some(row) => csr.nodes.push(parent.first_node + row),
                        None => missing += 1,
                    }
                }
            }
            csr.offsets.push(csr.nodes.len() as u64);
        }
        dangling.push(missing);
    }
    (csr, dangling)
}

/// The reverse of the `f2p` edges whose child passes `include`, each parent's children
/// sorted by `key` (which must end with the child id) and deduplicated.
pub fn reverse<K: Ord>(f2p: &Csr, include: impl Fn(u32) -> bool, key: impl Fn(u32) -> K) -> Csr {
    let n = f2p.offsets.len() - 1;
    let children = |f: &mut dyn FnMut(u32, u32)| {
        for child in 0..n as u32 {
            if include(child) {
                for &parent in f2p.row(child as usize) {
                    f(child, parent);
                }
            }
        }
    };
    let mut start = vec![0u64; n + 1];
    children(&mut |_, parent| start[parent as usize + 1] += 1);
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut nodes = vec![0u32; start[n] as usize];
    children(&mut |child, parent| {
        nodes[fill[parent as usize] as usize] = child;
        fill[parent as usize] += 1;
    });
    // Sort each parent's slice and compact it in place, dropping repeated children.
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0u64);
    let mut out = 0usize;
    for p in 0..n {
        let (a, b) = (start[p] as usize, start[p + 1] as usize);
        nodes[a..b].sort_unstable_by_key(|&c| key(c));
        for i in a..b {
            if i == a || nodes[i] != nodes[i - 1] {
                nodes[out] = nodes[i];
                out += 1;
            }
        }
        offsets.push(out as u64);
    }
    nodes.truncate(out);
    Csr { offsets, nodes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::keys::{int_keys, list_keys};

    #[test]
    fn f2p_keeps_key_order_and_counts_dangling() {
        // Parents: nodes 0..3 with keys 10, 20, 30 (hashed); children: 3 rows, two keys.
        let (index, _) = PkeyIndex::build(&int_keys(&[Some(10), Some(20), Some(30)])).unwrap();
        let a = int_keys(&[Some(30), None, Some(99)]);
        let b = list_keys(&[vec![10, 20], vec![], vec![30, 30]]);
        let parent = || Parent {
            first_node: 0,
            index: &index,
        };
        let tables = [Child {
            rows: 3,
            fkeys: vec![(&a, parent()), (&b, parent())],
        }];
        let (csr, dangling) = f2p(&tables);
        assert_eq!(csr.offsets, [0, 3, 3, 5]);
        assert_eq!(csr.nodes, [2, 0, 1, 2, 2]);
        assert_eq!(dangling, [1]);
        assert_eq!(csr.max_degree(), 3);
    }

    #[test]
    fn reverse_sorts_by_time_none_first_then_child_and_dedupes() {
        // Node 0 is the parent; children 1..5 with times; child 4 refers twice.
        let f2p = Csr {
            offsets: vec![0, 0, 1, 2, 3, 5, 6],
            nodes: vec![0, 0, 0, 0, 0, 0],
        };
        let time = [0, 50, i64::MIN, 50, 10, 7];
        let task = [false, false, false, false, false, true];
        let db = reverse(&f2p, |c| !task[c as usize], |c| (time[c as usize], c));
        assert_eq!(db.offsets, [0, 4, 4, 4, 4, 4, 4]);
        assert_eq!(db.nodes, [2, 4, 1, 3]);
        let tasks = reverse(&f2p, |c| task[c as usize], |c| (time[c as usize], c));
        assert_eq!(tasks.nodes, [5]);
        assert_eq!(tasks.row(0), [5]);
    }
}
