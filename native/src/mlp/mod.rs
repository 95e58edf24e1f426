//! Fused random-MLP kernels: evaluate a small MLP row by row and fold its output into
//! an accumulator without materialising `(n, width)` intermediates.
//!
//! Semantics are those of `plurel_ray.synth.mlp.RandomMLP.__call__` followed by
//! `scm.Encoder` (term clamp) and `scm._aggregate`: per hidden layer
//! `h = clip(act(h), ±clamp) @ W`, with `out_j = Σ_i h_i W_ij` summed in ascending `i`.
//!
//! Speed: see `kernel` (tiles of rows, one build per instruction set, identical bits).

use std::fmt;

use crate::activations::{Activation, PARAMS_PER_LAYER};
use crate::aggregate::{check_accumulators, Agg};

mod kernel;
use kernel::{accumulate_isa, forward_isa, Isa, Padded};

/// Widest layer the kernels accept (hidden width, input and output included).
pub const MAX_WIDTH: usize = 64;

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
    if !input.len().is_multiple_of(n_in) {
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
