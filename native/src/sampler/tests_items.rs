//! `fill_items`: contexts of chosen items, each drawn from (seed, item) alone, so an
//! item's sequence is the same whatever else shares its batch and on any thread count.

use super::store::OwnedStore;
use super::tests::{shop, shop_sampler, Buffers};
use super::*;

const L: usize = 16; // the ctx_len of `tests::config`

/// The batch of `items` built on `threads` threads.
fn items_batch(sampler: &Sampler<OwnedStore>, items: &[u64], threads: usize) -> Buffers {
    let mut buf = Buffers::new(sampler.shape(false).unwrap(), false);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let real = pool
        .install(|| sampler.fill_items(items, buf.slices()))
        .unwrap();
    assert_eq!(real, items.len());
    buf
}

/// Every field of sequence `j` (values as bits, so NaN compares equal to itself).
fn sequence(buf: &Buffers, j: usize) -> (Vec<i32>, Vec<u32>, Vec<bool>, Vec<i64>) {
    let cells = j * L..(j + 1) * L;
    let ints = [0, 2, 3, 4, 5]
        .iter()
        .flat_map(|&k| buf.i32s[k][cells.clone()].to_vec())
        .collect();
    let bits = buf
        .f32s
        .iter()
        .flat_map(|v| v[cells.clone()].iter().map(|x| x.to_bits()))
        .collect();
    let flags = buf
        .bools
        .iter()
        .flat_map(|v| v[cells.clone()].to_vec())
        .collect();
    (ints, bits, flags, buf.time[cells].to_vec())
}

/// The node of the target cell of sequence `j`.
fn target_node(buf: &Buffers, j: usize) -> i32 {
    let at = buf.bools[1][j * L..(j + 1) * L]
        .iter()
        .position(|&t| t)
        .unwrap();
    buf.i32s[0][j * L + at]
}

#[test]
fn an_items_context_does_not_depend_on_its_batch_or_the_threads() {
    let sampler = shop_sampler(0, 1);
    for item in 0..sampler.num_items() {
        let alone = items_batch(&sampler, &[item], 1);
        let other = (item + 1) % sampler.num_items();
        let second = items_batch(&sampler, &[other, item], 2);
        assert_eq!(sequence(&alone, 0), sequence(&second, 1), "item {item}");
        assert!(
            alone.bools[3][L..].iter().all(|&p| p),
            "the unused sequence is padding"
        );
    }
}

#[test]
fn item_nodes_name_the_row_each_item_predicts() {
    let sampler = shop_sampler(0, 1);
    let nodes: Vec<_> = sampler.item_nodes().collect();
    assert_eq!(
        nodes,
        shop().orders.map(|o| (0, o)).to_vec(),
        "rows in node order"
    );
    let buf = items_batch(&sampler, &[4, 0], 1);
    assert_eq!(target_node(&buf, 0), nodes[4].1 as i32);
    assert_eq!(target_node(&buf, 1), nodes[0].1 as i32);
}

#[test]
fn another_seed_draws_other_item_contexts() {
    // The same item under another seed is a fresh draw: with width 1 out of several
    // children the walk can differ; at least one item's context must change.
    let s = shop();
    let spec = SourceSpec {
        store: 0,
        table: 0,
        target: 0,
        leakage: vec![],
        split: None,
    };
    let with_seed = |seed| {
        let config = Config {
            batch_size: 1,
            ctx_len: L,
            max_bfs_width: 1,
            seed,
            rank: 0,
            world_size: 1,
            max_f2p: None,
            rules: crate::context_rules::ContextRules::Strict,
        };
        let sampler = Sampler::new(vec![s.b.store()], std::slice::from_ref(&spec), config).unwrap();
        (0..sampler.num_items())
            .map(|i| sequence(&items_batch(&sampler, &[i], 1), 0))
            .collect::<Vec<_>>()
    };
    assert_eq!(with_seed(3), with_seed(3));
    assert!((4..12).any(|seed| with_seed(seed) != with_seed(3)));
}

#[test]
fn too_many_items_and_unknown_items_are_refused() {
    let sampler = shop_sampler(0, 1);
    let mut buf = Buffers::new(sampler.shape(false).unwrap(), false);
    let err = sampler.fill_items(&[0, 1, 2], buf.slices()).unwrap_err();
    assert!(
        err.to_string().contains("3 items for a batch of 2"),
        "{err}"
    );
    let err = sampler.fill_items(&[5], buf.slices()).unwrap_err();
    assert!(err.to_string().contains("item 5 out of range"), "{err}");
}
