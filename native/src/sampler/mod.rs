//! The context sampler (docs/contexts.md): items of many stores and tasks at once, shuffled per
//! epoch, sharded over ranks, each turned into a context of `ctx_len` cells.
//!
//! `store` maps and `validate` cross-checks a store directory; `items` lists items and
//! shuffles them; `context` walks the graph of one item; `batch` writes the sequences
//! of a batch in parallel straight into the caller's arrays; `vocab` merges the stores'
//! vocabularies and embeddings. Python's face is `plurel_ray/store/sampler.py`.

pub mod batch;
pub mod context;
pub mod error;
pub mod items;
pub mod rng;
pub mod store;
pub mod validate;
pub mod vocab;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_items;

use std::sync::Mutex;

use rayon::prelude::*;

use crate::context_rules::ContextRules;
use batch::{write_sequence, BatchSlices, Shape, StoreIds};
use context::{Limits, Seed, Workspace};
use error::invalid;
pub use error::{SamplerError, StoreError};
use items::{resolve, Items, Permutation, Source};
pub use items::{RowSplit, SourceSpec};
use rng::{derive, Rng, PURPOSE_CONTEXT, PURPOSE_ITEM_CONTEXT};
use store::StoreSource;
use vocab::{Embeddings, Vocab};

/// Longest context: positions are packed into 32 bits while sorting, and a longer
/// sequence is far beyond what the model attends over.
pub const MAX_CTX_LEN: usize = 1 << 20;
/// Nodes a context may take, per cell of `ctx_len`: rows without cells (link tables)
/// cannot keep a walk going for long.
const VISITS_PER_CELL: usize = 4;

/// Batch geometry, sharding and randomness of a sampler.
#[derive(Debug, Clone)]
pub struct Config {
    pub batch_size: usize,
    pub ctx_len: usize,
    pub max_bfs_width: usize,
    pub seed: u64,
    pub rank: usize,
    pub world_size: usize,
    /// Parents per position in `f2p_nbr_idxs`; None = the most any node has.
    pub max_f2p: Option<usize>,
    /// The rules every store was written under (the caller checks they agree).
    pub rules: ContextRules,
}

/// Items of all sources, their per-epoch order, and what a context is built from.
pub struct Sampler<S: StoreSource> {
    stores: Vec<S>,
    sources: Vec<Source>,
    items: Items,
    vocab: Vocab,
    /// The merged embeddings, or why there are none.
    embeddings: Result<Embeddings, String>,
    config: Config,
    max_f2p: usize,
    workspaces: Mutex<Vec<Workspace>>,
}

fn check_config(c: &Config) -> Result<(), SamplerError> {
    if c.batch_size == 0 || c.world_size == 0 || c.max_bfs_width == 0 {
        return invalid(format!(
            "batch_size ({}), world_size ({}) and max_bfs_width ({}) must be at least 1",
            c.batch_size, c.world_size, c.max_bfs_width
        ));
    }
    if c.ctx_len == 0 || c.ctx_len > MAX_CTX_LEN {
        return invalid(format!(
            "ctx_len must be in 1..={MAX_CTX_LEN}, got {}",
            c.ctx_len
        ));
    }
    if c.rank >= c.world_size {
        return invalid(format!(
            "rank {} must be below world_size {}",
            c.rank, c.world_size
        ));
    }
    if (c.batch_size as u64)
        .checked_mul(c.world_size as u64)
        .is_none()
    {
        return invalid("batch_size × world_size overflows");
    }
    Ok(())
}

impl<S: StoreSource> Sampler<S> {
    /// A sampler over `stores` (already validated) drawing items from `specs`.
    pub fn new(stores: Vec<S>, specs: &[SourceSpec], config: Config) -> Result<Self, SamplerError> {
        check_config(&config)?;
        if specs.is_empty() {
            return invalid("no sources: name at least one (store, table, target column)");
        }
        let mut sources = Vec::with_capacity(specs.len());
        let mut items = Items::default();
        for (i, spec) in specs.iter().enumerate() {
            let source = resolve(&stores, i, spec)?;
            let rows = items::rows_with_target(&stores[spec.store].view(), spec);
            if rows.is_empty() {
                return Err(SamplerError::EmptySource {
                    source: i,
                    table: spec.table,
                    store: stores[spec.store].location().to_path_buf(),
                    column: spec.target,
                });
            }
            items.push_source(rows);
            sources.push(source);
        }
        let (widest, store) = stores
            .iter()
            .map(|s| (s.info().max_f2p, s.location()))
            .max_by_key(|&(f, _)| f)
            .unwrap_or((0, std::path::Path::new("")));
        let max_f2p = config.max_f2p.unwrap_or(widest);
        if max_f2p < widest {
            return invalid(format!(
                "max_f2p={max_f2p}, but a node of {} has {widest} foreign keys; raise max_f2p \
                 to at least {widest} or leave it unset",
                store.display()
            ));
        }
        let views: Vec<_> = stores.iter().map(|s| s.view()).collect();
        let vocab = Vocab::merge(&views)?;
        let dims: Vec<_> = stores.iter().map(|s| s.info().emb_dim).collect();
        let embeddings = Embeddings::merge(&views, &dims, &vocab);
        Ok(Self {
            stores,
            sources,
            items,
            vocab,
            embeddings,
            config,
            max_f2p,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    pub fn stores(&self) -> &[S] {
        &self.stores
    }

    pub fn num_items(&self) -> u64 {
        self.items.count()
    }

    pub fn max_f2p(&self) -> usize {
        self.max_f2p
    }

    pub fn rules(&self) -> ContextRules {
        self.config.rules
    }

    fn global_batch(&self) -> u64 {
        (self.config.batch_size * self.config.world_size) as u64
    }

    pub fn batches_per_epoch(&self) -> u64 {
        items::batches_per_epoch(self.num_items(), self.global_batch())
    }

    pub fn epoch_of(&self, index: u64) -> u64 {
        index / self.batches_per_epoch()
    }

    /// The merged embeddings, or a SamplerError saying how to get them.
    pub fn embeddings(&self) -> Result<&Embeddings, SamplerError> {
        self.embeddings.as_ref().map_err(|why| {
            SamplerError::Invalid(format!(
                "the full batch form needs text embeddings of one model and width in every \
                 store, but {why}; run plurel_ray.store.embed on the stores, or use the \
                 compact form"
            ))
        })
    }

    /// Array geometry of a batch; `full` adds the embedding width.
    pub fn shape(&self, full: bool) -> Result<Shape, SamplerError> {
        let dim = if full { self.embeddings()?.dim } else { 0 };
        Ok(Shape {
            batch: self.config.batch_size,
            len: self.config.ctx_len,
            f2p: self.max_f2p,
            dim,
        })
    }

    /// The merged vocabulary, in global id order.
    pub fn vocabulary(&self) -> Vec<String> {
        let views: Vec<_> = self.stores.iter().map(|s| s.view()).collect();
        self.vocab.strings(&views).map(str::to_owned).collect()
    }

    /// Fill `out` with batch `index` of this rank (counting across epochs); returns how
    /// many sequences are real items. Sequences are built in parallel on the current
    /// rayon pool; each depends only on (seed, epoch, global slot).
    pub fn fill_batch(&self, index: u64, out: BatchSlices<'_>) -> Result<usize, SamplerError> {
        let c = &self.config;
        let shard = items::shard(
            index,
            self.num_items(),
            c.batch_size as u64,
            c.rank as u64,
            c.world_size as u64,
        );
        let perm = Permutation::new(self.num_items(), c.seed, shard.epoch);
        self.fill_sequences(out, |j| {
            (j < shard.real).then(|| {
                let slot = shard.first_slot + j as u64;
                let rng = derive(&[c.seed, shard.epoch, slot, PURPOSE_CONTEXT]);
                (perm.apply(slot), rng)
            })
        })?;
        Ok(shard.real)
    }

    /// The (source, node) of every item, in item order: the sources in the order given,
    /// each one's rows in node order. Item `i` of `fill_items` is entry `i`.
    pub fn item_nodes(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        (0..self.num_items()).map(|i| self.items.get(i))
    }

    /// Fill `out` with the contexts of `items` (item numbers, at most `batch_size`), the
    /// rest padding; returns `items.len()`. Item `i`'s context is drawn from
    /// (seed, i) alone, never from the epoch, rank or the other items of the batch, so a
    /// prediction does not depend on how the items are batched or spread over workers.
    pub fn fill_items(&self, items: &[u64], out: BatchSlices<'_>) -> Result<usize, SamplerError> {
        let c = &self.config;
        if items.len() > c.batch_size {
            return invalid(format!(
                "{} items for a batch of {}; pass at most batch_size items",
                items.len(),
                c.batch_size
            ));
        }
        if let Some(&bad) = items.iter().find(|&&i| i >= self.num_items()) {
            return invalid(format!(
                "item {bad} out of range: the sources hold {} items",
                self.num_items()
            ));
        }
        self.fill_sequences(out, |j| {
            items
                .get(j)
                .map(|&item| (item, derive(&[c.seed, item, PURPOSE_ITEM_CONTEXT])))
        })?;
        Ok(items.len())
    }

    /// Write sequence `j` of `out` as the context of item `pick(j) = (item, rng seed)`,
    /// or padding when `pick(j)` is None, in parallel on the current rayon pool.
    fn fill_sequences<F>(&self, out: BatchSlices<'_>, pick: F) -> Result<(), SamplerError>
    where
        F: Fn(usize) -> Option<(u64, u64)> + Sync,
    {
        let emb = match out.embeddings {
            Some(_) => Some(self.embeddings()?),
            None => None,
        };
        let shape = self.shape(emb.is_some())?;
        if !out.fits(shape) {
            return invalid(format!(
                "batch arrays do not have the sampler's shape {shape:?}"
            ));
        }
        let c = &self.config;
        let limits = Limits {
            ctx_len: c.ctx_len,
            max_bfs_width: c.max_bfs_width,
            max_visits: VISITS_PER_CELL * c.ctx_len,
            rules: c.rules,
        };
        out.into_sequences(shape)
            .into_par_iter()
            .enumerate()
            .for_each_init(
                || Lease::new(&self.workspaces),
                |lease, (j, mut seq)| {
                    let Some((item, rng_seed)) = pick(j) else {
                        return seq.pad(0);
                    };
                    let (s, node) = self.items.get(item);
                    let source = &self.sources[s];
                    let view = self.stores[source.store].view();
                    // Items are rows holding the target, so the cell exists.
                    let Some(target_cell) = view.cell_of(node, source.target) else {
                        return seq.pad(0);
                    };
                    let seed = Seed {
                        node,
                        target_cell,
                        time: view.node_time[node as usize],
                        task_tables: &source.task_tables,
                        leakage: &source.leakage,
                    };
                    let mut rng = Rng::new(rng_seed);
                    context::build(&view, &seed, &limits, &mut rng, &mut lease.ws);
                    let ids = StoreIds {
                        text: &self.vocab.global[source.store],
                        tables: &self.vocab.tables[source.store],
                        columns: &self.vocab.columns[source.store],
                    };
                    write_sequence(&view, &ids, emb, &seed, c.rules, &lease.ws, &mut seq);
                },
            );
        Ok(())
    }
}

/// A workspace borrowed from the sampler's pool for one rayon job, returned on drop,
/// so its N-sized arrays are allocated once per thread rather than once per batch.
struct Lease<'a> {
    pool: &'a Mutex<Vec<Workspace>>,
    ws: Workspace,
}

impl<'a> Lease<'a> {
    fn new(pool: &'a Mutex<Vec<Workspace>>) -> Self {
        let ws = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Self {
            pool,
            ws: ws.unwrap_or_default(),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let ws = std::mem::take(&mut self.ws);
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(ws);
    }
}
