//! Batch buffers: the caller's (NumPy-owned) arrays split into one set of slices per
//! sequence, so sequences are written in parallel straight into their final place.
//!
//! Padding positions: ids and sem_types -1, values 0, flags false except is_padding,
//! timestamps `i64::MIN`, embeddings 0.

use crate::context_rules::ContextRules;
use crate::sampler::context::{Seed, Workspace};
use crate::sampler::store::StoreView;
use crate::sampler::validate::{NO_TIME, TASK_TABLE, TEXT};
use crate::sampler::vocab::Embeddings;

const NUMBER: u8 = 0;
const DATETIME: u8 = 2;
const BOOLEAN: u8 = 3;

/// Every output array of a batch (or of one sequence), flattened row-major.
pub struct BatchSlices<'a> {
    pub node_idxs: &'a mut [i32],
    pub f2p_nbr_idxs: &'a mut [i32],
    pub table_name_idxs: &'a mut [i32],
    pub col_name_idxs: &'a mut [i32],
    pub class_value_idxs: &'a mut [i32],
    pub sem_types: &'a mut [i32],
    pub number_values: &'a mut [f32],
    pub datetime_values: &'a mut [f32],
    pub boolean_values: &'a mut [f32],
    pub masks: &'a mut [bool],
    pub is_targets: &'a mut [bool],
    pub is_task_nodes: &'a mut [bool],
    pub is_padding: &'a mut [bool],
    pub timestamps: &'a mut [i64],
    /// Full form only: bfloat16 bits of the column-name and text embeddings.
    pub embeddings: Option<EmbeddingSlices<'a>>,
}

pub struct EmbeddingSlices<'a> {
    pub col_name_values: &'a mut [u16],
    pub text_values: &'a mut [u16],
}

/// Shape of a batch: sequences, positions, parents per position, embedding width.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub batch: usize,
    pub len: usize,
    pub f2p: usize,
    pub dim: usize,
}

fn split<'a, T>(s: &mut &'a mut [T], n: usize) -> &'a mut [T] {
    let (head, tail) = std::mem::take(s).split_at_mut(n);
    *s = tail;
    head
}

impl<'a> BatchSlices<'a> {
    /// Whether every slice has the length `shape` implies.
    pub fn fits(&self, shape: Shape) -> bool {
        let cells = shape.batch * shape.len;
        let flat = [
            self.node_idxs.len(),
            self.table_name_idxs.len(),
            self.col_name_idxs.len(),
            self.class_value_idxs.len(),
            self.sem_types.len(),
            self.number_values.len(),
            self.datetime_values.len(),
            self.boolean_values.len(),
            self.masks.len(),
            self.is_targets.len(),
            self.is_task_nodes.len(),
            self.is_padding.len(),
            self.timestamps.len(),
        ];
        let emb_ok = self.embeddings.as_ref().is_none_or(|e| {
            e.col_name_values.len() == cells * shape.dim && e.text_values.len() == cells * shape.dim
        });
        flat.iter().all(|&l| l == cells) && self.f2p_nbr_idxs.len() == cells * shape.f2p && emb_ok
    }

    /// One `BatchSlices` per sequence (needs `fits(shape)`).
    pub fn into_sequences(mut self, shape: Shape) -> Vec<BatchSlices<'a>> {
        let (l, f, d) = (shape.len, shape.f2p, shape.dim);
        (0..shape.batch)
            .map(|_| BatchSlices {
                node_idxs: split(&mut self.node_idxs, l),
                f2p_nbr_idxs: split(&mut self.f2p_nbr_idxs, l * f),
                table_name_idxs: split(&mut self.table_name_idxs, l),
                col_name_idxs: split(&mut self.col_name_idxs, l),
                class_value_idxs: split(&mut self.class_value_idxs, l),
                sem_types: split(&mut self.sem_types, l),
                number_values: split(&mut self.number_values, l),
                datetime_values: split(&mut self.datetime_values, l),
                boolean_values: split(&mut self.boolean_values, l),
                masks: split(&mut self.masks, l),
                is_targets: split(&mut self.is_targets, l),
                is_task_nodes: split(&mut self.is_task_nodes, l),
                is_padding: split(&mut self.is_padding, l),
                timestamps: split(&mut self.timestamps, l),
                embeddings: self.embeddings.as_mut().map(|e| EmbeddingSlices {
                    col_name_values: split(&mut e.col_name_values, l * d),
                    text_values: split(&mut e.text_values, l * d),
                }),
            })
            .collect()
    }

    /// Fill positions `from..` of this sequence with padding.
    pub fn pad(&mut self, from: usize) {
        let f = self.f2p_nbr_idxs.len() / self.node_idxs.len().max(1);
        self.node_idxs[from..].fill(-1);
        self.f2p_nbr_idxs[from * f..].fill(-1);
        self.table_name_idxs[from..].fill(-1);
        self.col_name_idxs[from..].fill(-1);
        self.class_value_idxs[from..].fill(-1);
        self.sem_types[from..].fill(-1);
        self.number_values[from..].fill(0.0);
        self.datetime_values[from..].fill(0.0);
        self.boolean_values[from..].fill(0.0);
        self.masks[from..].fill(false);
        self.is_targets[from..].fill(false);
        self.is_task_nodes[from..].fill(false);
        self.is_padding[from..].fill(true);
        self.timestamps[from..].fill(NO_TIME);
        if let Some(e) = self.embeddings.as_mut() {
            let d = e.col_name_values.len() / self.node_idxs.len().max(1);
            e.col_name_values[from * d..].fill(0);
            e.text_values[from * d..].fill(0);
        }
    }
}

/// Global vocabulary ids of one store's strings.
pub struct StoreIds<'v> {
    pub text: &'v [i32],
    pub tables: &'v [i32],
    pub columns: &'v [i32],
}

/// Write the context held in `ws` for `seed` into `out`, then pad the rest.
///
/// A cell is a task cell when its row lies in a task table, and under
/// `ContextRules::Reference` also when it is in the item's target column (as the
/// reference flags them: the target column's cells of other rows of an autocomplete
/// task's table).
pub fn write_sequence(
    view: &StoreView,
    ids: &StoreIds,
    emb: Option<&Embeddings>,
    seed: &Seed,
    rules: ContextRules,
    ws: &Workspace,
    out: &mut BatchSlices,
) {
    let f = out.f2p_nbr_idxs.len() / out.node_idxs.len().max(1);
    let target_column = view.cell_column[seed.target_cell];
    let flag_target_column = rules == ContextRules::Reference;
    let mut p = 0;
    for (node, cell) in ws.context() {
        let n = node as usize;
        let table = view.node_table[n] as usize;
        let (ty, value) = (view.cell_type[cell], view.cell_value[cell]);
        let local_column = view.cell_column[cell];
        let column = ids.columns[local_column as usize];
        let class = if ty == TEXT {
            ids.text[view.cell_text[cell] as usize]
        } else {
            -1
        };
        out.node_idxs[p] = node as i32;
        let nbrs = &mut out.f2p_nbr_idxs[p * f..(p + 1) * f];
        let parents = view.parents(node);
        for (slot, &parent) in nbrs.iter_mut().zip(parents) {
            *slot = parent as i32;
        }
        nbrs[parents.len().min(f)..].fill(-1);
        out.table_name_idxs[p] = ids.tables[table];
        out.col_name_idxs[p] = column;
        out.class_value_idxs[p] = class;
        out.sem_types[p] = i32::from(ty);
        out.number_values[p] = if ty == NUMBER { value } else { 0.0 };
        out.datetime_values[p] = if ty == DATETIME { value } else { 0.0 };
        out.boolean_values[p] = if ty == BOOLEAN { value } else { 0.0 };
        let is_target = node == seed.node && cell == seed.target_cell;
        out.masks[p] = is_target;
        out.is_targets[p] = is_target;
        out.is_task_nodes[p] = view.table_kind[table] == TASK_TABLE
            || (flag_target_column && local_column == target_column);
        out.is_padding[p] = false;
        out.timestamps[p] = view.node_time[n];
        if let (Some(e), Some(emb)) = (out.embeddings.as_mut(), emb) {
            let d = emb.dim;
            e.col_name_values[p * d..(p + 1) * d].copy_from_slice(emb.row_bf16(column as usize));
            let text = &mut e.text_values[p * d..(p + 1) * d];
            if class >= 0 {
                text.copy_from_slice(emb.row_bf16(class as usize));
            } else {
                text.fill(0);
            }
        }
        p += 1;
    }
    out.pad(p);
}
