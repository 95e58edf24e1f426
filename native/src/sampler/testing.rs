//! Hand-made in-memory stores for the sampler's tests: declare tables, columns and
//! rows; `build` lays them out exactly as docs/store-format.md prescribes.

use std::collections::HashMap;

use crate::sampler::store::{OwnedArrays, OwnedStore};
use crate::sampler::validate::{NO_TIME, TEXT};

#[derive(Clone, Copy)]
pub enum Value {
    Num(f32),
    Text(&'static str),
    Date(f32),
    Bool(bool),
}

struct Node {
    table: u32,
    time: i64,
    cells: Vec<(u32, Value)>,
    parents: Vec<u32>,
}

#[derive(Default)]
pub struct Builder {
    tables: Vec<(u32, u8)>,
    columns: Vec<(u32, u32)>,
    nodes: Vec<Node>,
    vocab: Vec<String>,
    ids: HashMap<String, u32>,
    pub emb_dim: Option<usize>,
}

impl Builder {
    fn word(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        self.vocab.push(s.to_owned());
        self.ids.insert(s.to_owned(), self.vocab.len() as u32 - 1);
        self.vocab.len() as u32 - 1
    }

    /// A table (`kind` 0 database, 1 task); tables must be declared in node order.
    pub fn table(&mut self, name: &str, kind: u8) -> u32 {
        let name = self.word(name);
        self.tables.push((name, kind));
        self.tables.len() as u32 - 1
    }

    pub fn column(&mut self, table: u32, name: &str) -> u32 {
        let table_name = self.vocab[self.tables[table as usize].0 as usize].clone();
        let name = self.word(&format!("{name} of {table_name}"));
        self.columns.push((name, table));
        self.columns.len() as u32 - 1
    }

    /// A row; nodes must be added table by table. `time` None = no timestamp.
    pub fn node(
        &mut self,
        table: u32,
        time: Option<i64>,
        cells: &[(u32, Value)],
        parents: &[u32],
    ) -> u32 {
        for &(_, v) in cells {
            if let Value::Text(s) = v {
                self.word(s);
            }
        }
        self.nodes.push(Node {
            table,
            time: time.unwrap_or(NO_TIME),
            cells: cells.to_vec(),
            parents: parents.to_vec(),
        });
        self.nodes.len() as u32 - 1
    }

    pub fn build(&self) -> OwnedArrays {
        let mut a = OwnedArrays::default();
        let n = self.nodes.len();
        let (mut children, mut task_children) = (vec![Vec::new(); n], vec![Vec::new(); n]);
        a.node_cells.push(0);
        a.f2p_offsets.push(0);
        for (id, node) in self.nodes.iter().enumerate() {
            a.node_table.push(node.table);
            a.node_time.push(node.time);
            let mut cells = node.cells.clone();
            cells.sort_by_key(|&(c, _)| c);
            for (column, value) in cells {
                let (ty, v, text) = match value {
                    Value::Num(x) => (0, x, -1),
                    Value::Text(s) => (TEXT, 0.0, self.ids[s] as i32),
                    Value::Date(x) => (2, x, -1),
                    Value::Bool(b) => (3, f32::from(u8::from(b)), -1),
                };
                a.cell_column.push(column);
                a.cell_type.push(ty);
                a.cell_value.push(v);
                a.cell_text.push(text);
            }
            a.node_cells.push(a.cell_column.len() as u64);
            a.f2p_nodes.extend(&node.parents);
            a.f2p_offsets.push(a.f2p_nodes.len() as u64);
            let task = self.tables[node.table as usize].1 == 1;
            for &p in &node.parents {
                let key = (node.table, node.time, id as u32);
                if task {
                    task_children[p as usize].push(key)
                } else {
                    children[p as usize].push(key)
                }
            }
        }
        a.p2f_offsets.push(0);
        a.task_p2f_offsets.push(0);
        for p in 0..n {
            children[p].sort_by_key(|&(_, time, id)| (time, id));
            for &(_, time, id) in &children[p] {
                a.p2f_nodes.push(id);
                a.p2f_time.push(time);
            }
            a.p2f_offsets.push(a.p2f_nodes.len() as u64);
            task_children[p].sort();
            for &(table, time, id) in &task_children[p] {
                a.task_p2f_nodes.push(id);
                a.task_p2f_table.push(table);
                a.task_p2f_time.push(time);
            }
            a.task_p2f_offsets.push(a.task_p2f_nodes.len() as u64);
        }
        a.table_nodes.push(0);
        for t in 0..self.tables.len() as u32 {
            let end = self.nodes.iter().filter(|node| node.table <= t).count();
            a.table_nodes.push(end as u64);
        }
        a.table_name = self.tables.iter().map(|&(name, _)| name).collect();
        a.table_kind = self.tables.iter().map(|&(_, kind)| kind).collect();
        a.column_name = self.columns.iter().map(|&(name, _)| name).collect();
        a.column_table = self.columns.iter().map(|&(_, table)| table).collect();
        a.vocab_offsets.push(0);
        for s in &self.vocab {
            a.vocab_bytes.extend(s.as_bytes());
            a.vocab_offsets.push(a.vocab_bytes.len() as u64);
        }
        if let Some(d) = self.emb_dim {
            a.text_emb = Some((0..self.vocab.len() * d).map(|i| i as f32 / 8.0).collect());
        }
        a
    }

    pub fn store(&self) -> OwnedStore {
        OwnedStore::new(self.build(), self.emb_dim).expect("hand-made store is valid")
    }
}
