//! Fused random-MLP kernels: evaluate a small MLP row by row and fold its output into
//! an accumulator without materialising `(n, width)` intermediates.
//!
//! Semantics are those of `plurel_ray.synth.mlp.RandomMLP.__call__` followed by
//! `scm.Encoder` (term clamp) and `scm._aggregate`: per hidden layer
//! `h = clip(act(h), ±clamp) @ W`, with `out_j = Σ_i h_i W_ij` summed in ascending `i`.
//!
//! Speed: rows go in tiles of `TILE`, each row a `[f32; H]` with `H` ∈ {16, 32, 64} the
//! smallest lane count holding every layer width; padded lanes meet zero weights and
//! never reach an output. With `H` a constant the lane loops vectorise, and on x86_64
//! CPUs with AVX2 the same code is compiled a second time for 8-lane registers. No FMA
//! is used, so both builds give identical bits.

use std::fmt;

use crate::activations::{Activation, PARAMS_PER_LAYER};
use crate::aggregate::{check_accumulators, fold, Agg};

/// Widest layer the kernels accept (hidden width, input and output included).
pub const MAX_WIDTH: usize = 64;
/// Rows per tile: enough to amortise the per-layer activation dispatch, small enough
/// that a tile's two `(TILE, H)` buffers stay in L1.
const TILE: usize = 8;

/// An invalid argument; the message names it and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlpError(pub String);

impl fmt::Display for MlpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MlpError {}

fn err<T>(msg: String) -> Result<T, MlpError> {
    Err(MlpError(msg))
}

/// One bias-free linear layer: row-major `(n_in, n_out)` weights.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    /// Input width (rows of the weight matrix).
    pub n_in: usize,
    /// Output width (columns).
    pub n_out: usize,
    /// `n_in · n_out` weights, row-major.
    pub weights: &'a [f32],
}

/// A validated MLP: chained layers of width ≤ `MAX_WIDTH`, and per hidden layer (every
/// layer but the last) an activation and a clamp applied to its output.
#[derive(Debug)]
pub struct Mlp<'a> {
    layers: Vec<Layer<'a>>,
    hidden: Vec<(Activation, f32)>,
}

impl<'a> Mlp<'a> {
    /// Check shapes and ids and build the MLP.
    ///
    /// Args: `layers` in order; `act_ids` (len(layers) - 1) config activation ids;
    /// `act_params` the flat `(len(layers) - 1, 21)` random_sine parameters; `clamps`
    /// (len(layers) - 1) non-negative bounds, applied after each activation.
    pub fn new(
        layers: Vec<Layer<'a>>,
        act_ids: &[u8],
        act_params: &[f32],
        clamps: &[f64],
    ) -> Result<Self, MlpError> {
        if layers.is_empty() {
            return err("weights is empty: an MLP needs at least one layer".into());
        }
        for (l, layer) in layers.iter().enumerate() {
            let (i, o) = (layer.n_in, layer.n_out);
            if !(1..=MAX_WIDTH).contains(&i) || !(1..=MAX_WIDTH).contains(&o) {
                return err(format!(
                    "weights[{l}] has shape ({i}, {o}): widths must be in 1..={MAX_WIDTH}"
                ));
            }
            if layer.weights.len() != i * o {
                return err(format!(
                    "weights[{l}] holds {} values, shape ({i}, {o}) needs {}",
                    layer.weights.len(),
                    i * o
                ));
            }
            if l > 0 && layers[l - 1].n_out != i {
                return err(format!(
                    "weights[{l}] has {i} input rows but weights[{}] has {} outputs: \
                     layer widths must chain",
                    l - 1,
                    layers[l - 1].n_out
                ));
            }
        }
        let num_hidden = layers.len() - 1;
        if act_ids.len() != num_hidden {
            return err(format!(
                "act_ids has {} entries, need len(weights) - 1 = {num_hidden}",
                act_ids.len()
            ));
        }
        if clamps.len() != num_hidden {
            return err(format!(
                "clamps has {} entries, need len(weights) - 1 = {num_hidden}",
                clamps.len()
            ));
        }
        if act_params.len() != num_hidden * PARAMS_PER_LAYER {
            return err(format!(
                "act_params holds {} values, need shape ({num_hidden}, {PARAMS_PER_LAYER})",
                act_params.len()
            ));
        }
        let mut hidden = Vec::with_capacity(num_hidden);
        for (l, ((&id, params), &c)) in act_ids
            .iter()
            .zip(act_params.chunks_exact(PARAMS_PER_LAYER))
            .zip(clamps)
            .enumerate()
        {
            let row: &[f32; PARAMS_PER_LAYER] = params
                .try_into()
                .map_err(|_| MlpError("act_params row has the wrong length".into()))?;
            let act =
                Activation::from_id(id, row).map_err(|e| MlpError(format!("act_ids[{l}]: {e}")))?;
            if c.is_nan() || c < 0.0 {
                return err(format!(
                    "clamps[{l}] is {c}: clamps must be >= 0 (inf is allowed)"
                ));
            }
            hidden.push((act, c as f32));
        }
        Ok(Mlp { layers, hidden })
    }

    /// Input width of the first layer.
    pub fn n_in(&self) -> usize {
        self.layers[0].n_in
    }

    /// Output width of the last layer.
    pub fn n_out(&self) -> usize {
        self.layers[self.layers.len() - 1].n_out
    }

    /// Lane count for the tile rows: the smallest of 16, 32, 64 that holds every width.
    fn lanes(&self) -> usize {
        let widest = self
            .layers
            .iter()
            .map(|l| l.n_in.max(l.n_out))
            .max()
            .unwrap_or(1);
        widest.next_power_of_two().max(16)
    }
}

/// An `Mlp` with each weight row zero-padded to `H` lanes.
struct Padded<const H: usize> {
    layers: Vec<Vec<[f32; H]>>,
    hidden: Vec<(Activation, f32)>,
}

impl<const H: usize> Padded<H> {
    fn new(mlp: &Mlp<'_>) -> Self {
        let layers = mlp
            .layers
            .iter()
            .map(|layer| {
                layer
                    .weights
                    .chunks_exact(layer.n_out)
                    .map(|row| {
                        let mut padded = [0.0f32; H];
                        padded[..row.len()].copy_from_slice(row);
                        padded
                    })
                    .collect()
            })
            .collect();
        Padded {
            layers,
            hidden: mlp.hidden.clone(),
        }
    }
}

type Tile<const H: usize> = [[f32; H]; TILE];

/// `out = h @ w` per row, summing `h_i · w_i` in ascending `i` (w has n_in ≤ H rows).
#[inline(always)]
fn matmul<const H: usize>(h: &Tile<H>, w: &[[f32; H]], out: &mut Tile<H>) {
    // Two rows at a time when their accumulators fit in 8 AVX2 registers: one row alone
    // waits on each add's latency (32 lanes: 32 vs 22 ns per row and layer, measured),
    // and the two rows share each weight load. Iterators, not `h[r][i]`, keep bounds
    // checks out of the loop (indexing cost ~25% in the full kernel). Activating per
    // 2-row block instead of per tile, to overlap it with the matmul, measured 4% slower.
    if H <= 32 {
        for (hb, ob) in h.chunks_exact(2).zip(out.chunks_exact_mut(2)) {
            let (h0, h1) = (&hb[0], &hb[1]);
            let (mut acc0, mut acc1) = ([0.0f32; H], [0.0f32; H]);
            for ((&a0, &a1), wr) in h0.iter().zip(h1).zip(w) {
                for ((o0, o1), &wv) in acc0.iter_mut().zip(acc1.iter_mut()).zip(wr) {
                    *o0 += a0 * wv;
                    *o1 += a1 * wv;
                }
            }
            ob[0] = acc0;
            ob[1] = acc1;
        }
    } else {
        for (hr, or) in h.iter().zip(out.iter_mut()) {
            let mut acc = [0.0f32; H];
            for (&a, wr) in hr.iter().zip(w) {
                for (o, &wv) in acc.iter_mut().zip(wr) {
                    *o += a * wv;
                }
            }
            *or = acc;
        }
    }
}

/// Run the hidden layers on `h` (the first layer's output); returns the buffer holding
/// the last layer's output (`h` or `tmp`).
#[inline(always)]
fn hidden_layers<'t, const H: usize>(
    net: &Padded<H>,
    h: &'t mut Tile<H>,
    tmp: &'t mut Tile<H>,
) -> &'t Tile<H> {
    let (mut cur, mut next) = (h, tmp);
    for ((act, c), w) in net.hidden.iter().zip(&net.layers[1..]) {
        act.apply_clipped(cur.as_flattened_mut(), *c);
        matmul(cur, w, next);
        std::mem::swap(&mut cur, &mut next);
    }
    cur
}

/// First layer from one scalar per row (`h = x · W0[0]`), hidden layers, then fold
/// the clipped terms into the accumulators.
#[inline(always)]
fn accumulate_tiles<const H: usize>(
    x: &[f32],
    net: &Padded<H>,
    term_clamp: f32,
    agg: Agg,
    width: usize,
    acc: &mut [f32],
    acc2: &mut [f32],
) {
    let w0 = net.layers[0][0];
    let (mut h, mut tmp) = ([[0.0f32; H]; TILE], [[0.0f32; H]; TILE]);
    let uses_acc2 = agg == Agg::LogExp;
    for (t, (xs, acc)) in x.chunks(TILE).zip(acc.chunks_mut(TILE * width)).enumerate() {
        for (r, hr) in h.iter_mut().enumerate() {
            // Rows past the end of x compute on 0 and are never folded.
            let xv = xs.get(r).copied().unwrap_or(0.0);
            hr.iter_mut().zip(&w0).for_each(|(o, &w)| *o = xv * w);
        }
        let out = hidden_layers(net, &mut h, &mut tmp);
        let lo = t * TILE * width;
        let acc2 = match acc2.get_mut(lo..lo + acc.len()) {
            Some(rows) if uses_acc2 => rows,
            _ => &mut [],
        };
        fold(agg, term_clamp, out, width, acc, acc2);
    }
}

/// First layer as a matmul on `n_in`-wide input rows, hidden layers, then copy the
/// `width` output lanes of each row to `out`.
#[inline(always)]
fn forward_tiles<const H: usize>(
    input: &[f32],
    n_in: usize,
    net: &Padded<H>,
    width: usize,
    out: &mut [f32],
) {
    let (mut inp, mut h, mut tmp) = (
        [[0.0f32; H]; TILE],
        [[0.0f32; H]; TILE],
        [[0.0f32; H]; TILE],
    );
    for (rows_in, rows_out) in input.chunks(TILE * n_in).zip(out.chunks_mut(TILE * width)) {
        // Only the first n_in lanes meet weights; rows past the end keep stale values
        // and are never copied out.
        for (dst, src) in inp.iter_mut().zip(rows_in.chunks_exact(n_in)) {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s);
        }
        matmul(&inp, &net.layers[0], &mut h);
        let res = hidden_layers(net, &mut h, &mut tmp);
        for (dst, src) in rows_out.chunks_exact_mut(width).zip(res) {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s);
        }
    }
}

/// The instruction set a kernel runs with. `Avx2` is only built by `Isa::best`, after
/// the CPU was checked, which is what makes calling the AVX2 builds sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            return Isa::Avx2;
        }
        Isa::Baseline
    }
}

/// `$entry::<H>(isa, args…)` runs `$body::<H>(args…)` compiled for `isa`.
macro_rules! multiversion {
    ($entry:ident, $avx2:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2<const H: usize>($($arg: $ty),*) {
            $body::<H>($($arg),*)
        }

        #[allow(clippy::too_many_arguments)] // the kernel's arguments plus `isa`
        fn $entry<const H: usize>(isa: Isa, $($arg: $ty),*) {
            match isa {
                // SAFETY: Isa::Avx2 exists only where the CPU reported AVX2.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { $avx2::<H>($($arg),*) },
                Isa::Baseline => $body::<H>($($arg),*),
            }
        }
    };
}

multiversion!(accumulate_isa, accumulate_avx2, accumulate_tiles, (
    x: &[f32], net: &Padded<H>, term_clamp: f32, agg: Agg, width: usize,
    acc: &mut [f32], acc2: &mut [f32]
));
multiversion!(forward_isa, forward_avx2, forward_tiles, (
    input: &[f32], n_in: usize, net: &Padded<H>, width: usize, out: &mut [f32]
));

/// Run `$call` with `H` bound to the MLP's lane count and `$net` to its padded weights.
macro_rules! with_lanes {
    ($mlp:expr, |$net:ident: H| $call:expr) => {
        match $mlp.lanes() {
            16 => {
                const H: usize = 16;
                let $net = Padded::<H>::new($mlp);
                $call
            }
            32 => {
                const H: usize = 32;
                let $net = Padded::<H>::new($mlp);
                $call
            }
            _ => {
                const H: usize = 64;
                let $net = Padded::<H>::new($mlp);
                $call
            }
        }
    };
}

/// Evaluate `mlp` on the scalars `x` and fold each row's output, clipped to
/// ±`term_clamp`, into row `i` of `acc` (`(n, mlp.n_out())`, row-major; `acc2` the
/// logexp sums). Everything is checked before anything is written.
pub fn accumulate(
    x: &[f32],
    mlp: &Mlp<'_>,
    term_clamp: f64,
    agg: Agg,
    acc: &mut [f32],
    acc2: Option<&mut [f32]>,
) -> Result<(), MlpError> {
    accumulate_with(Isa::best(), x, mlp, term_clamp, agg, acc, acc2)
}

fn accumulate_with(
    isa: Isa,
    x: &[f32],
    mlp: &Mlp<'_>,
    term_clamp: f64,
    agg: Agg,
    acc: &mut [f32],
    acc2: Option<&mut [f32]>,
) -> Result<(), MlpError> {
    if mlp.n_in() != 1 {
        return err(format!(
            "weights[0] has shape ({}, {}): mlp_accumulate takes one scalar per row, so \
             the first layer must have 1 input row (use mlp_forward for wider input)",
            mlp.n_in(),
            mlp.layers[0].n_out
        ));
    }
    if term_clamp.is_nan() || term_clamp < 0.0 {
        return err(format!("term_clamp is {term_clamp}: it must be >= 0"));
    }
    let width = mlp.n_out();
    let acc2 = check_accumulators(x.len(), width, agg, acc, acc2)?;
    let clamp = term_clamp as f32;
    with_lanes!(mlp, |net: H| accumulate_isa::<H>(
        isa, x, &net, clamp, agg, width, acc, acc2
    ));
    Ok(())
}

/// Evaluate `mlp` on `n = input.len() / mlp.n_in()` rows (row-major) into `out`
/// (`(n, mlp.n_out())`), without a term clamp.
pub fn forward(input: &[f32], mlp: &Mlp<'_>, out: &mut [f32]) -> Result<(), MlpError> {
    forward_with(Isa::best(), input, mlp, out)
}

fn forward_with(isa: Isa, input: &[f32], mlp: &Mlp<'_>, out: &mut [f32]) -> Result<(), MlpError> {
    let (n_in, width) = (mlp.n_in(), mlp.n_out());
    if input.len() % n_in != 0 {
        return err(format!(
            "h holds {} values, not whole rows of weights[0]'s {n_in} inputs",
            input.len()
        ));
    }
    let n = input.len() / n_in;
    if out.len() != n * width {
        return err(format!(
            "out holds {} values, need ({n}, {width})",
            out.len()
        ));
    }
    with_lanes!(mlp, |net: H| forward_isa::<H>(
        isa, input, n_in, &net, width, out
    ));
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bench;
