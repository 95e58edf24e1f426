//! Sampler tests on hand-made in-memory stores (`testing::Builder`).

use super::batch::{BatchSlices, EmbeddingSlices};
use super::context::{build, visible, Limits, Seed, Workspace};
use super::rng::Rng;
use super::store::{OwnedStore, StoreSource, StoreView};
use super::testing::{Builder, Value::*};
use super::validate::{check, NO_TIME};
use super::*;
use crate::context_rules::ContextRules::{self, Reference, Strict};

/// users ← orders ← items, plus a task table "churn/train" of rows pointing at users.
/// Orders at times 10, 20, 20, 30 (user 0) and 15 (user 1); each order has one item at
/// its time. Columns: age, name (users), amount, note (orders), price, shipped (items),
/// label.
pub(super) struct Shop {
    pub(super) b: Builder,
    users: [u32; 2],
    pub(super) orders: [u32; 5],
    items: [u32; 5],
    tasks: [u32; 2],
    amount: u32,
    label: u32,
}

pub(super) fn shop() -> Shop {
    let mut b = Builder::default();
    let (users_t, orders_t, items_t) = (
        b.table("users", 0),
        b.table("orders", 0),
        b.table("items", 0),
    );
    let task_t = b.table("churn", 1);
    let (age, name) = (b.column(users_t, "age"), b.column(users_t, "name"));
    let (amount, note) = (b.column(orders_t, "amount"), b.column(orders_t, "note"));
    let (price, shipped) = (b.column(items_t, "price"), b.column(items_t, "shipped"));
    let label = b.column(task_t, "label");
    let users = [
        b.node(users_t, None, &[(age, Num(0.5)), (name, Text("ann"))], &[]),
        b.node(users_t, None, &[(age, Num(-0.5)), (name, Text("bob"))], &[]),
    ];
    let order_spec = [(10, 0), (20, 0), (20, 0), (30, 0), (15, 1)];
    let orders = order_spec.map(|(t, u)| {
        b.node(
            orders_t,
            Some(t),
            &[(amount, Num(t as f32)), (note, Text("gift"))],
            &[users[u]],
        )
    });
    let items = std::array::from_fn(|i| {
        b.node(
            items_t,
            Some(order_spec[i].0),
            &[(price, Num(1.0)), (shipped, Date(0.5))],
            &[orders[i]],
        )
    });
    let tasks = [
        b.node(task_t, Some(20), &[(label, Bool(true))], &[users[0]]),
        b.node(task_t, Some(40), &[(label, Bool(false))], &[users[0]]),
    ];
    Shop {
        b,
        users,
        orders,
        items,
        tasks,
        amount,
        label,
    }
}

/// Limits under the strict rules, which most tests here pin (the reference rules'
/// differences are the golden tests of tests/unit/test_context_rules.py).
fn limits(ctx_len: usize, width: usize) -> Limits {
    limits_under(Strict, ctx_len, width)
}

fn limits_under(rules: ContextRules, ctx_len: usize, width: usize) -> Limits {
    Limits {
        ctx_len,
        max_bfs_width: width,
        max_visits: 4 * ctx_len,
        rules,
    }
}

/// The seed of `node`; a task row's task is its own table alone (one split).
fn seed_of<'a>(view: &StoreView<'a>, node: u32, column: u32, leakage: &'a [u32]) -> Seed<'a> {
    let table = &view.node_table[node as usize];
    let is_task = view.table_kind[*table as usize] == 1;
    Seed {
        node,
        target_cell: view.cell_of(node, column).unwrap(),
        time: view.node_time[node as usize],
        task_tables: if is_task {
            std::slice::from_ref(table)
        } else {
            &[]
        },
        leakage,
    }
}

fn context(store: &OwnedStore, seed: &Seed, limits: Limits, rng_seed: u64) -> Vec<(u32, usize)> {
    let mut ws = Workspace::default();
    build(
        &store.view(),
        seed,
        &limits,
        &mut Rng::new(rng_seed),
        &mut ws,
    );
    ws.context().collect()
}

fn nodes_of(ctx: &[(u32, usize)]) -> Vec<u32> {
    let mut nodes: Vec<u32> = ctx.iter().map(|&(n, _)| n).collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

#[test]
fn visible_children_follow_time_and_the_rules() {
    let times = [NO_TIME, NO_TIME, 5, 10, 10, 20];
    for rules in [Reference, Strict] {
        assert_eq!(visible(&times, 10, rules, false), 0..5);
        assert_eq!(visible(&times, 4, rules, false), 0..2);
        assert_eq!(visible(&times, 20, rules, false), 0..6);
        assert_eq!(visible(&[], 3, rules, false), 0..0);
    }
    // An untimed item: untimed children only (reference), every child (strict).
    assert_eq!(visible(&times, NO_TIME, Reference, false), 0..2);
    assert_eq!(visible(&times, NO_TIME, Strict, false), 0..6);
    // Label rows: as database rows (reference); strictly earlier and timed (strict).
    assert_eq!(visible(&times, 10, Reference, true), 0..5);
    assert_eq!(visible(&times, NO_TIME, Reference, true), 0..2);
    assert_eq!(visible(&times, 10, Strict, true), 2..3);
    assert_eq!(visible(&times, 5, Strict, true), 2..2);
    assert_eq!(visible(&times, NO_TIME, Strict, true), 0..0);
}

#[test]
fn reference_contexts_hold_whole_rows_below_ctx_len_strict_up_to_it() {
    // users[0] (2 cells) ← orders at 10, 20, 20, 30 (2 cells each): from the user, the
    // walk takes the user and then orders; each order's item is one level deeper.
    let s = shop();
    let store = s.b.store();
    let view = store.view();
    let seed = seed_of(&view, s.orders[3], s.amount, &[]);
    // orders[3] (2 cells), then its parent users[0] (2 cells) from the stack: 4 cells
    // reach ctx_len 4, so the reference stops before the user; strict takes it.
    let reference = context(&store, &seed, limits_under(Reference, 4, 128), 0);
    assert_eq!(nodes_of(&reference), vec![s.orders[3]]);
    let strict = context(&store, &seed, limits_under(Strict, 4, 128), 0);
    assert_eq!(nodes_of(&strict), vec![s.users[0], s.orders[3]]);
    // A row that does not fit whole ends the context under both rules: no cut rows.
    for rules in [Reference, Strict] {
        for rng_seed in 0..8 {
            let ctx = context(&store, &seed, limits_under(rules, 5, 128), rng_seed);
            for node in nodes_of(&ctx) {
                let cells = ctx.iter().filter(|&&(n, _)| n == node).count();
                assert_eq!(cells, view.cells(node).len(), "{rules}: row {node} was cut");
            }
        }
    }
}

#[test]
fn a_context_never_sees_a_child_newer_than_the_item() {
    let s = shop();
    let store = s.b.store();
    let view = store.view();
    let seed = seed_of(&view, s.orders[1], s.amount, &[]);
    for rng_seed in 0..20 {
        let ctx = context(&store, &seed, limits(1024, 128), rng_seed);
        for node in nodes_of(&ctx) {
            let t = view.node_time[node as usize];
            assert!(
                t == NO_TIME || t <= 20,
                "node {node} at {t} leaked into a context at 20"
            );
        }
        // Everything at or before 20 that is reachable is there: user, orders 0..=2, items.
        let want = [
            s.users[0],
            s.orders[0],
            s.orders[1],
            s.orders[2],
            s.items[0],
            s.items[1],
            s.items[2],
        ];
        assert_eq!(nodes_of(&ctx), want.to_vec());
    }
}

#[test]
fn the_target_comes_once_and_survives_any_cut() {
    let s = shop();
    let store = s.b.store();
    let view = store.view();
    // The target column (note) sorts after amount; a 1-cell context still holds it.
    let note = s.amount + 1;
    let seed = seed_of(&view, s.orders[1], note, &[]);
    let ctx = context(&store, &seed, limits(1, 128), 0);
    assert_eq!(ctx, vec![(s.orders[1], seed.target_cell)]);
    let ctx = context(&store, &seed, limits(1024, 128), 0);
    assert_eq!(
        ctx.iter()
            .filter(|&&c| c == (s.orders[1], seed.target_cell))
            .count(),
        1
    );
}

#[test]
fn cells_are_ordered_by_column_and_never_repeat() {
    let s = shop();
    let store = s.b.store();
    let view = store.view();
    let seed = seed_of(&view, s.users[0], 0, &[]);
    let ctx = context(&store, &seed, limits(1024, 128), 3);
    let columns: Vec<u32> = ctx.iter().map(|&(_, c)| view.cell_column[c]).collect();
    assert!(columns.windows(2).all(|w| w[0] <= w[1]), "{columns:?}");
    let mut cells: Vec<usize> = ctx.iter().map(|&(_, c)| c).collect();
    cells.sort_unstable();
    cells.dedup();
    assert_eq!(cells.len(), ctx.len());
    // A user without time sees all its orders and items, but no task rows.
    assert_eq!(nodes_of(&ctx).len(), 1 + 4 + 4);
}

#[test]
fn at_most_max_bfs_width_children_are_followed() {
    let mut b = Builder::default();
    let (users, events) = (b.table("users", 0), b.table("events", 0));
    let (age, x) = (b.column(users, "age"), b.column(events, "x"));
    let user = b.node(users, None, &[(age, Num(1.0))], &[]);
    for t in 0..1000 {
        b.node(events, Some(t), &[(x, Num(0.0))], &[user]);
    }
    let store = b.store();
    let view = store.view();
    let seed = seed_of(&view, user, age, &[]);
    let first = context(&store, &seed, limits(4096, 7), 1);
    assert_eq!(nodes_of(&first).len(), 1 + 7);
    let other = context(&store, &seed, limits(4096, 7), 2);
    assert_ne!(
        nodes_of(&first),
        nodes_of(&other),
        "children are drawn at random"
    );
    assert_eq!(
        context(&store, &seed, limits(4096, 7), 1),
        first,
        "deterministic per stream"
    );
}

#[test]
fn task_rows_are_followed_only_from_their_own_task_table() {
    let s = shop();
    let store = s.b.store();
    let view = store.view();
    let from_db = context(
        &store,
        &seed_of(&view, s.orders[3], s.amount, &[]),
        limits(1024, 128),
        0,
    );
    assert!(!nodes_of(&from_db).iter().any(|n| s.tasks.contains(n)));
    let from_task = context(
        &store,
        &seed_of(&view, s.tasks[0], s.label, &[]),
        limits(1024, 128),
        0,
    );
    let nodes = nodes_of(&from_task);
    assert!(
        nodes.contains(&s.tasks[0]) && !nodes.contains(&s.tasks[1]),
        "task row at 40 is in the future"
    );
    let later = context(
        &store,
        &seed_of(&view, s.tasks[1], s.label, &[]),
        limits(1024, 128),
        0,
    );
    assert!(
        nodes_of(&later).contains(&s.tasks[0]),
        "earlier task rows of the same table are context"
    );
}

#[test]
fn leakage_columns_drop_from_the_item_and_same_time_rows_only() {
    let s = shop();
    let store = s.b.store();
    let view = store.view();
    let note = s.amount + 1;
    let leakage = [s.amount];
    let seed = seed_of(&view, s.orders[1], note, &leakage);
    let ctx = context(&store, &seed, limits(1024, 128), 0);
    let has_amount = |node| {
        ctx.iter()
            .any(|&(n, c)| n == node && view.cell_column[c] == s.amount)
    };
    assert!(!has_amount(s.orders[1]), "dropped from the item");
    assert!(
        !has_amount(s.orders[2]),
        "dropped from a row at the item's time"
    );
    assert!(has_amount(s.orders[0]), "kept on an earlier row");
    // An item without timestamp drops leakage only from itself ("none equals nothing").
    let leakage = [0, s.amount];
    let user_seed = seed_of(&view, s.users[0], 1, &leakage);
    let ctx = context(&store, &user_seed, limits(1024, 128), 0);
    let has = |node, column| {
        ctx.iter()
            .any(|&(n, c)| n == node && view.cell_column[c] == column)
    };
    assert!(!has(s.users[0], 0));
    assert!(has(s.orders[0], s.amount) && has(s.orders[3], s.amount));
}

#[test]
fn the_target_stays_even_when_listed_as_leakage_and_nan_cells_are_skipped() {
    let mut b = Builder::default();
    let t = b.table("t", 0);
    let (a, c) = (b.column(t, "a"), b.column(t, "c"));
    let row = b.node(t, Some(1), &[(a, Num(2.0)), (c, Num(f32::NAN))], &[]);
    let store = b.store();
    let view = store.view();
    let leakage = [a];
    let ctx = context(&store, &seed_of(&view, row, a, &leakage), limits(16, 4), 0);
    assert_eq!(ctx.len(), 1, "target kept, NaN cell skipped");
}

#[test]
fn rows_without_cells_cannot_loop_long() {
    // A cycle of empty link rows: parents of each other, pushed forever.
    let mut b = Builder::default();
    let (t, links) = (b.table("t", 0), b.table("links", 0));
    let a = b.column(t, "a");
    let row = b.node(t, None, &[(a, Num(1.0))], &[]);
    for _ in 0..50 {
        b.node(links, None, &[], &[row]);
    }
    let store = b.store();
    let view = store.view();
    let ctx = context(&store, &seed_of(&view, row, a, &[]), limits(8, 128), 0);
    assert_eq!(ctx.len(), 1);
}

/// Output buffers of one batch.
pub(super) struct Buffers {
    pub(super) i32s: [Vec<i32>; 6],
    pub(super) f32s: [Vec<f32>; 3],
    pub(super) bools: [Vec<bool>; 4],
    pub(super) time: Vec<i64>,
    emb: Option<[Vec<u16>; 2]>,
}

impl Buffers {
    pub(super) fn new(shape: batch::Shape, full: bool) -> Self {
        let cells = shape.batch * shape.len;
        let mut i32s: [Vec<i32>; 6] = std::array::from_fn(|_| vec![7; cells]);
        i32s[1] = vec![7; cells * shape.f2p];
        Buffers {
            i32s,
            f32s: std::array::from_fn(|_| vec![7.0; cells]),
            bools: std::array::from_fn(|_| vec![true; cells]),
            time: vec![7; cells],
            emb: full.then(|| std::array::from_fn(|_| vec![7; cells * shape.dim])),
        }
    }

    pub(super) fn slices(&mut self) -> BatchSlices<'_> {
        let [node, f2p, table, col, class, sem] = &mut self.i32s;
        let [num, date, boolean] = &mut self.f32s;
        let [masks, targets, task, padding] = &mut self.bools;
        BatchSlices {
            node_idxs: node,
            f2p_nbr_idxs: f2p,
            table_name_idxs: table,
            col_name_idxs: col,
            class_value_idxs: class,
            sem_types: sem,
            number_values: num,
            datetime_values: date,
            boolean_values: boolean,
            masks,
            is_targets: targets,
            is_task_nodes: task,
            is_padding: padding,
            timestamps: &mut self.time,
            embeddings: self.emb.as_mut().map(|[c, t]| EmbeddingSlices {
                col_name_values: c,
                text_values: t,
            }),
        }
    }
}

fn config(batch_size: usize, rank: usize, world_size: usize) -> Config {
    Config {
        batch_size,
        ctx_len: 16,
        max_bfs_width: 4,
        seed: 9,
        rank,
        world_size,
        max_f2p: None,
        rules: Strict,
    }
}

pub(super) fn shop_sampler(rank: usize, world_size: usize) -> Sampler<OwnedStore> {
    let s = shop();
    let spec = SourceSpec {
        store: 0,
        table: 1,
        target: s.amount,
        leakage: vec![],
        split: None,
    };
    Sampler::new(vec![s.b.store()], &[spec], config(2, rank, world_size)).unwrap()
}

fn run(sampler: &Sampler<OwnedStore>, index: u64, full: bool, threads: usize) -> (usize, Buffers) {
    let mut buf = Buffers::new(sampler.shape(full).unwrap(), full);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let real = pool
        .install(|| sampler.fill_batch(index, buf.slices()))
        .unwrap();
    (real, buf)
}

#[test]
fn batches_are_identical_on_any_number_of_threads() {
    let sampler = shop_sampler(0, 1);
    for index in 0..6 {
        let (r1, a) = run(&sampler, index, false, 1);
        let (r4, b) = run(&sampler, index, false, 4);
        assert_eq!(r1, r4);
        assert_eq!(a.i32s, b.i32s);
        assert_eq!(
            a.f32s
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
            b.f32s
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        );
        assert_eq!(a.bools, b.bools);
    }
}

#[test]
fn a_batch_marks_one_masked_target_per_real_sequence_and_pads_the_tail() {
    let sampler = shop_sampler(0, 1);
    assert_eq!((sampler.num_items(), sampler.batches_per_epoch()), (5, 3));
    let (real, buf) = run(&sampler, 2, false, 2);
    assert_eq!(real, 1, "the tail batch holds the fifth item");
    let l = 16;
    let [masks, targets, _, padding] = &buf.bools;
    assert_eq!(targets[..l].iter().filter(|&&t| t).count(), 1);
    assert_eq!(masks[..l], targets[..l]);
    let used = padding[..l].iter().position(|&p| p).unwrap_or(l);
    assert!(padding[used..l].iter().all(|&p| p) && !padding[..used].iter().any(|&p| p));
    assert!(
        padding[l..].iter().all(|&p| p),
        "the second sequence is padding"
    );
    assert!(buf.i32s[0][l..].iter().all(|&n| n == -1));
    assert!(buf.time[l..].iter().all(|&t| t == NO_TIME));
}

#[test]
fn ranks_split_every_epoch_disjointly() {
    let mut seen = Vec::new();
    for rank in 0..2 {
        let sampler = shop_sampler(rank, 2);
        assert_eq!(sampler.batches_per_epoch(), 2);
        for index in 0..2 {
            let (_, buf) = run(&sampler, index, false, 1);
            for seq in 0..2 {
                let range = seq * 16..(seq + 1) * 16;
                if let Some(p) = buf.bools[1][range.clone()].iter().position(|&t| t) {
                    seen.push(buf.i32s[0][range.start + p]);
                }
            }
        }
    }
    seen.sort_unstable();
    let s = shop();
    assert_eq!(seen, s.orders.map(|o| o as i32).to_vec());
}

#[test]
fn construction_rejects_bad_sources_and_a_too_small_max_f2p() {
    let s = shop();
    let spec = |table, target| SourceSpec {
        store: 0,
        table,
        target,
        leakage: vec![],
        split: None,
    };
    let err = |specs: &[SourceSpec], cfg: Config| {
        Sampler::new(vec![s.b.store()], specs, cfg)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(err(&[spec(9, 0)], config(2, 0, 1)).contains("table 9 out of range"));
    assert!(err(&[spec(1, 99)], config(2, 0, 1)).contains("column 99 out of range"));
    assert!(err(&[spec(1, 0)], config(2, 0, 1)).contains("nothing to sample"));
    assert!(err(&[], config(2, 0, 1)).contains("no sources"));
    assert!(err(&[spec(1, s.amount)], config(2, 2, 2)).contains("rank 2"));
    let mut small = config(2, 0, 1);
    small.max_f2p = Some(0);
    assert!(err(&[spec(1, s.amount)], small).contains("max_f2p=0"));
}

#[test]
fn the_full_form_gathers_bf16_embeddings_of_the_global_ids() {
    let mut s = shop();
    s.b.emb_dim = Some(3);
    let spec = SourceSpec {
        store: 0,
        table: 0,
        target: 1,
        leakage: vec![],
        split: None,
    };
    // Two copies of the store share every string: the merged vocabulary is one copy.
    let sampler = Sampler::new(vec![s.b.store(), s.b.store()], &[spec], config(2, 0, 1)).unwrap();
    assert_eq!(sampler.vocabulary().len(), s.b.store().info().vocab);
    let emb = sampler.embeddings().unwrap();
    let (_, buf) = run(&sampler, 0, true, 1);
    let [col_values, text_values] = buf.emb.as_ref().unwrap();
    for p in 0..32 {
        let (col, class) = (buf.i32s[3][p], buf.i32s[4][p]);
        let got = &col_values[p * 3..(p + 1) * 3];
        if col < 0 {
            assert_eq!(got, [0, 0, 0]);
            continue;
        }
        assert_eq!(got, emb.row_bf16(col as usize));
        let text = &text_values[p * 3..(p + 1) * 3];
        assert_eq!(
            text,
            if class >= 0 {
                emb.row_bf16(class as usize).to_vec()
            } else {
                vec![0; 3]
            }
        );
    }
}

fn corrupt(mutate: impl Fn(&mut store::OwnedArrays)) -> String {
    let mut arrays = shop().b.build();
    mutate(&mut arrays);
    let err = check(&arrays.view(), None).expect_err("corruption detected");
    format!("{}: {}", err.file, err.reason)
}

#[test]
fn validation_names_the_file_of_every_inconsistency() {
    assert!(corrupt(|a| {
        a.node_time.pop();
    })
    .starts_with("node_time.bin"));
    assert!(corrupt(|a| a.node_cells[2] = 100).starts_with("node_cells.bin"));
    assert!(corrupt(|a| a.node_cells[0] = 1).contains("starts at 1"));
    assert!(corrupt(|a| a.f2p_nodes[0] = 1000).starts_with("f2p_nodes.bin"));
    assert!(corrupt(|a| a.p2f_nodes[0] = 1000).starts_with("p2f_nodes.bin"));
    assert!(corrupt(|a| a.p2f_time[0] = 99).starts_with("p2f_time.bin"));
    assert!(corrupt(|a| a.cell_column[0] = 500).starts_with("cell_column.bin"));
    assert!(corrupt(|a| a.cell_type[0] = 4).starts_with("cell_type.bin"));
    assert!(corrupt(|a| a.cell_text[0] = 3).starts_with("cell_text.bin"));
    assert!(corrupt(|a| a.table_name[0] = 1000).starts_with("table_name.bin"));
    assert!(corrupt(|a| a.table_kind[0] = 7).starts_with("table_kind.bin"));
    assert!(corrupt(|a| a.node_table[0] = 1).starts_with("node_table.bin"));
    assert!(corrupt(|a| a.column_table[0] = 50).starts_with("column_table.bin"));
    assert!(corrupt(|a| a.task_p2f_table[0] = 0).starts_with("task_p2f_table.bin"));
    assert!(corrupt(|a| a.vocab_bytes[0] = 0xFF).starts_with("vocab_bytes.bin"));
    assert!(corrupt(|a| a.vocab_offsets.clear()).starts_with("vocab_offsets.bin"));
    assert!(corrupt(|a| a.table_nodes[1] = 1).starts_with("node_table.bin"));
    assert!(corrupt(|a| { a.cell_column.swap(0, 1) }).contains("strictly ascending"));
    let mut with_emb = shop().b.build();
    with_emb.text_emb = Some(vec![0.0; 5]);
    assert_eq!(
        check(&with_emb.view(), Some(3)).err().unwrap().file,
        "text_emb.bin"
    );
}

#[test]
fn opening_a_directory_reports_missing_truncated_and_corrupted_files() {
    let dir = std::env::temp_dir().join(format!("plurel-sampler-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    shop().b.build().write_dir(&dir).unwrap();
    let store = store::MappedStore::open(&dir, None).unwrap();
    assert_eq!(store.info().nodes, 14);
    let err = |dir: &std::path::Path| {
        store::MappedStore::open(dir, None)
            .err()
            .unwrap()
            .to_string()
    };
    let path = dir.join("p2f_nodes.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert!(err(&dir).contains("p2f_nodes.bin") && err(&dir).contains("truncated"));
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert!(err(&dir).contains("checksum"));
    std::fs::remove_file(&path).unwrap();
    assert!(err(&dir).contains("p2f_nodes.bin") && err(&dir).contains("cannot open"));
    std::fs::write(&path, &bytes).unwrap();
    assert!(store::MappedStore::open(&dir, Some(4))
        .err()
        .unwrap()
        .to_string()
        .contains("text_emb.bin"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_split_restricts_items_to_its_rows() {
    let s = shop();
    let count = |split| {
        let spec = SourceSpec {
            store: 0,
            table: 1,
            target: s.amount,
            leakage: vec![],
            split: Some(split),
        };
        Sampler::new(vec![s.b.store()], &[spec], config(2, 0, 1)).map(|x| x.num_items())
    };
    // Order times are 10, 20, 20, 30, 15.
    let times = |after, up_to| count(RowSplit::Times { after, up_to }).unwrap();
    assert_eq!(times(None, Some(15)), 2);
    assert_eq!(times(Some(15), Some(20)), 2);
    assert_eq!(times(Some(20), None), 1);
    let rows = |start, end| count(RowSplit::Positions { start, end });
    assert_eq!(rows(0, 3).unwrap(), 3);
    assert_eq!(rows(3, 5).unwrap(), 2);
    assert!(rows(4, 6)
        .err()
        .unwrap()
        .to_string()
        .contains("outside table 1"));
    // An empty split is its own variant, so Python can tell it apart by type.
    assert!(matches!(
        rows(2, 2),
        Err(SamplerError::EmptySource {
            source: 0,
            table: 1,
            ..
        })
    ));
}
