//! One vocabulary over all stores of a sampler. Thousands of synthetic databases share
//! strings ("feature_3 of table_2", table names, category labels), so ids are merged by
//! string: the batch carries global ids, and the model gathers from one embedding
//! matrix instead of receiving 384 values per cell.

use std::collections::HashMap;

use crate::sampler::error::{invalid, SamplerError};
use crate::sampler::store::StoreView;

/// The merged vocabulary and, per store, the global id of every local string.
pub struct Vocab {
    /// `(store, local id)` of each global string's first occurrence.
    first: Vec<(u32, u32)>,
    /// Per store: local vocabulary id → global id.
    pub global: Vec<Vec<i32>>,
    /// Per store and table: global id of the table's name.
    pub tables: Vec<Vec<i32>>,
    /// Per store and column: global id of "<column> of <table>".
    pub columns: Vec<Vec<i32>>,
}

impl Vocab {
    /// Merge the vocabularies of `views`, in store order.
    pub fn merge(views: &[StoreView]) -> Result<Self, SamplerError> {
        let mut ids: HashMap<&str, i32> = HashMap::new();
        let mut first = Vec::new();
        let mut global = Vec::with_capacity(views.len());
        for (s, view) in views.iter().enumerate() {
            let local_count = view.vocab_offsets.len() - 1;
            let mut map = Vec::with_capacity(local_count);
            for local in 0..local_count {
                let text = view.vocab_str(local);
                let next = first.len();
                let id = *ids.entry(text).or_insert_with(|| {
                    first.push((s as u32, local as u32));
                    next as i32
                });
                map.push(id);
            }
            if first.len() > i32::MAX as usize {
                return invalid(
                    "the merged vocabulary exceeds 2^31 strings; use fewer stores per sampler",
                );
            }
            global.push(map);
        }
        let remap = |ids: &[u32], map: &[i32]| ids.iter().map(|&i| map[i as usize]).collect();
        let tables = views
            .iter()
            .zip(&global)
            .map(|(v, m)| remap(v.table_name, m))
            .collect();
        let columns = views
            .iter()
            .zip(&global)
            .map(|(v, m)| remap(v.column_name, m))
            .collect();
        Ok(Self {
            first,
            global,
            tables,
            columns,
        })
    }

    pub fn num_strings(&self) -> usize {
        self.first.len()
    }

    /// The strings in global id order.
    pub fn strings<'a>(&'a self, views: &'a [StoreView<'a>]) -> impl Iterator<Item = &'a str> + 'a {
        self.first
            .iter()
            .map(move |&(s, local)| views[s as usize].vocab_str(local as usize))
    }
}

/// bfloat16 bits of `x`, rounded to nearest even (NaN stays a quiet NaN).
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The merged embedding matrix, as float32 and as bfloat16 bits.
pub struct Embeddings {
    pub dim: usize,
    pub values: Vec<f32>,
    pub bf16: Vec<u16>,
}

impl Embeddings {
    /// Row `v` is the embedding of global string `v`, taken from its first store.
    /// Err explains why not every store can contribute (missing or mismatched).
    pub fn merge(
        views: &[StoreView],
        dims: &[Option<usize>],
        vocab: &Vocab,
    ) -> Result<Self, String> {
        let Some(&Some(dim)) = dims.first() else {
            return Err("store 0 has no text embeddings".into());
        };
        if let Some(s) = dims.iter().position(|&d| d != Some(dim)) {
            return Err(match dims[s] {
                None => format!("store {s} has no text embeddings"),
                Some(d) => format!("store {s} has {d}-dimensional embeddings, store 0 {dim}"),
            });
        }
        let mut values = Vec::with_capacity(vocab.num_strings() * dim);
        for &(s, local) in &vocab.first {
            let emb = views[s as usize].text_emb.unwrap_or_default();
            let start = local as usize * dim;
            values.extend_from_slice(&emb[start..start + dim]);
        }
        let bf16 = values.iter().map(|&x| bf16_bits(x)).collect();
        Ok(Self { dim, values, bf16 })
    }

    /// bfloat16 row of global id `id`.
    #[inline]
    pub fn row_bf16(&self, id: usize) -> &[u16] {
        &self.bf16[id * self.dim..(id + 1) * self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3F80);
        assert_eq!(bf16_bits(-2.0), 0xC000);
        // 1 + 2^-8 lies exactly between two bf16 values: ties go to the even one (1.0).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3F80);
        // Just above the tie rounds up.
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3F81);
        assert!(f32::from_bits(u32::from(bf16_bits(f32::NAN)) << 16).is_nan());
        assert_eq!(bf16_bits(f32::INFINITY), 0x7F80);
    }
}
