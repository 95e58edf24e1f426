//! The tile loops behind `mlp::accumulate` and `mlp::forward`, and their per-ISA builds.
//!
//! Rows go in tiles of `TILE`, each row a `[f32; H]` with `H` ∈ {16, 32, 64} the
//! smallest lane count holding every layer width; padded lanes meet zero weights and
//! never reach an output. With `H` a constant the lane loops vectorise, and on x86_64
//! the same code is compiled again for AVX2 + FMA (8 lanes) and AVX-512 + FMA (16
//! lanes). Every lane accumulates `acc = fma(h_i, w_i, acc)` in ascending input order,
//! and `fma` (`f32::mul_add`) is correctly rounded: one `vfmadd` in the FMA builds, a
//! call to libm's `fmaf` in the SSE2 fallback (for CPUs without FMA; slow, same bits).
//! Rust never contracts `a * b + c` by itself, so all builds run the same operation
//! tree and give identical bits.

use super::Mlp;
use crate::activations::Activation;
use crate::aggregate::{fold, Agg};
use crate::fastmath::fma;
use crate::simd::{self, Level};

/// Rows per tile: enough to amortise the per-layer activation dispatch, small enough
/// that a tile's `(TILE, H)` buffers stay in L1.
pub(super) const TILE: usize = 8;

/// An `Mlp` with each weight row zero-padded to `H` lanes.
pub(super) struct Padded<const H: usize> {
    pub(super) layers: Vec<Vec<[f32; H]>>,
    hidden: Vec<(Activation, f32)>,
    /// The last layer's single weight column when it has one output (a dot product).
    last_column: Option<Vec<f32>>,
}

impl<const H: usize> Padded<H> {
    pub(super) fn new(mlp: &Mlp<'_>) -> Self {
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
        let last = &mlp.layers[mlp.layers.len() - 1];
        Padded {
            layers,
            hidden: mlp.hidden.clone(),
            last_column: (last.n_out == 1 && mlp.layers.len() > 1).then(|| last.weights.to_vec()),
        }
    }
}

pub(super) type Tile<const H: usize> = [[f32; H]; TILE];

/// `out = h @ w` for blocks of rows, each lane accumulating `fma(h_i, w_i, acc)` in
/// ascending `i`
/// (w has n_in ≤ H rows). Each row of the block gets its own named accumulator: written
/// as a loop over the block's rows, LLVM vectorised that loop (across rows, with
/// gathers and scatters on AVX-512, ~35x slower) instead of the lane loop.
macro_rules! matmul_block {
    ($h:expr, $w:expr, $out:expr, $lanes:ident, $rows:literal, $(($acc:ident, $r:literal)),+) => {{
        // Lanes in chunks of `$lanes` (H, or V = 16 on AVX-512, where 32-lane rows as
        // two zmm each made LLVM shuffle the weight rows: ~1.5x slower).
        let (hb, _) = $h.as_chunks::<$rows>();
        let (ob, _) = $out.as_chunks_mut::<$rows>();
        let n = $w.len().min(H);
        for (hb, ob) in hb.iter().zip(ob) {
            for c in 0..H / $lanes {
                $(let mut $acc = [0.0f32; $lanes];)+
                for (i, wr) in $w[..n].iter().enumerate() {
                    // A copy: borrowed, LLVM rebuilt the fma builds' weight vector
                    // with 7 inserts per row block (AVX-512 matmul ~17% slower).
                    let wr: [f32; $lanes] = wr.as_chunks::<$lanes>().0[c];
                    $(
                        let a = hb[$r][i];
                        for (o, &wv) in $acc.iter_mut().zip(&wr) {
                            *o = fma(a, wv, *o);
                        }
                    )+
                }
                $(ob[$r].as_chunks_mut::<$lanes>().0[c] = $acc;)+
            }
        }
    }};
}

/// `out = h @ w` per row, with the block size for `V`-lane vectors and `REGS` registers.
#[inline(always)]
fn matmul<const H: usize, const V: usize, const REGS: usize>(
    h: &Tile<H>,
    w: &[[f32; H]],
    out: &mut Tile<H>,
) {
    // Constants per monomorphisation: only one arm survives. Each block keeps its
    // accumulators in half the vector registers (REGS), the rest hold weights and
    // broadcasts: fewer rows wait on add latency and reload each weight row per row,
    // more spill. AVX-512 (32 zmm): 8 rows × one 16-lane chunk. AVX2 and SSE2 (16
    // registers): AVX2 2 whole rows of ≤ 32 lanes, else 1 (measured best).
    if V >= 16 && REGS >= 32 {
        matmul_block!(
            h,
            w,
            out,
            V,
            8,
            (a0, 0),
            (a1, 1),
            (a2, 2),
            (a3, 3),
            (a4, 4),
            (a5, 5),
            (a6, 6),
            (a7, 7)
        )
    } else if H <= 32 && V >= 8 {
        matmul_block!(h, w, out, H, 2, (a0, 0), (a1, 1))
    } else {
        matmul_block!(h, w, out, H, 1, (a0, 0))
    }
}

/// `out[r] = Σ_i h[r][i] · w[i]` in ascending `i` (fused multiply-adds): a one-output last layer, with the
/// tile's rows in the vector lanes instead of 31 padded, wasted ones.
#[inline(always)]
fn dot_rows<const H: usize>(h: &Tile<H>, w: &[f32], out: &mut [f32; TILE]) {
    let mut acc = [0.0f32; TILE];
    for (i, &wv) in w[..w.len().min(H)].iter().enumerate() {
        for (a, hr) in acc.iter_mut().zip(h) {
            *a = fma(hr[i], wv, *a);
        }
    }
    *out = acc;
}

/// Run the hidden layers on `h` (the first layer's output) up to layer `end`
/// (exclusive); returns the buffer holding the last output (`h` or `tmp`).
#[inline(always)]
fn hidden_layers<'t, const H: usize, const V: usize, const REGS: usize>(
    net: &Padded<H>,
    end: usize,
    h: &'t mut Tile<H>,
    tmp: &'t mut Tile<H>,
) -> &'t mut Tile<H> {
    let (mut cur, mut next) = (h, tmp);
    for ((act, c), w) in net.hidden.iter().zip(&net.layers[1..end]) {
        act.apply_clipped(cur.as_flattened_mut(), *c);
        matmul::<H, V, REGS>(cur, w, next);
        std::mem::swap(&mut cur, &mut next);
    }
    cur
}

/// First layer from one scalar per row (`h = x · W0[0]`, as `fma(x, w, 0)`), hidden
/// layers, then fold the clipped terms into the accumulators.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the kernel's arguments
pub(super) fn accumulate_tiles<const H: usize, const V: usize, const REGS: usize>(
    x: &[f32],
    net: &Padded<H>,
    term_clamp: f32,
    agg: Agg,
    width: usize,
    acc: &mut [f32],
    acc2: &mut [f32],
) {
    let (mut inp, mut h, mut tmp) = (
        [[0.0f32; H]; TILE],
        [[0.0f32; H]; TILE],
        [[0.0f32; H]; TILE],
    );
    let uses_acc2 = agg == Agg::LogExp;
    let end = net.layers.len();
    for (t, (xs, acc)) in x.chunks(TILE).zip(acc.chunks_mut(TILE * width)).enumerate() {
        // The first layer as a one-input matmul (lane 0 holds x): written as a loop
        // over rows, LLVM vectorised it across rows with scatters on AVX-512, ~18 % of
        // the kernel's time. Rows past the end of x compute on 0 and are never folded.
        for (r, row) in inp.iter_mut().enumerate() {
            row[0] = xs.get(r).copied().unwrap_or(0.0);
        }
        matmul::<H, V, REGS>(&inp, &net.layers[0], &mut h);
        let out = hidden_layers::<H, V, REGS>(net, end, &mut h, &mut tmp);
        let lo = t * TILE * width;
        let acc2 = match acc2.get_mut(lo..lo + acc.len()) {
            Some(rows) if uses_acc2 => rows,
            _ => &mut [],
        };
        fold(agg, term_clamp, out, width, acc, acc2);
    }
}

/// First layer as a matmul on `n_in`-wide input rows, hidden layers, then copy the
/// `width` output lanes of each row to `out` (a one-output last layer is a dot product).
#[inline(always)]
pub(super) fn forward_tiles<const H: usize, const V: usize, const REGS: usize>(
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
    let dot = net.last_column.as_deref();
    let end = net.layers.len() - usize::from(dot.is_some());
    for (rows_in, rows_out) in input.chunks(TILE * n_in).zip(out.chunks_mut(TILE * width)) {
        // Only the first n_in lanes meet weights; rows past the end keep stale values
        // and are never copied out.
        for (dst, src) in inp.iter_mut().zip(rows_in.chunks_exact(n_in)) {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s);
        }
        matmul::<H, V, REGS>(&inp, &net.layers[0], &mut h);
        let res = hidden_layers::<H, V, REGS>(net, end, &mut h, &mut tmp);
        if let Some(w) = dot {
            let (act, c) = net.hidden[end - 1];
            act.apply_clipped(res.as_flattened_mut(), c);
            let mut col = [0.0f32; TILE];
            dot_rows(res, w, &mut col);
            rows_out.iter_mut().zip(col).for_each(|(d, s)| *d = s);
        } else {
            for (dst, src) in rows_out.chunks_exact_mut(width).zip(res.iter()) {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s);
            }
        }
    }
}

/// The instruction set a kernel runs with. `Avx2` and `Avx512` (both with FMA) are only
/// built by `Isa::best` and `Isa::available`, from the levels `simd` found on the CPU,
/// which is what makes calling those builds sound. `Baseline` (SSE2) is the fallback
/// for CPUs without FMA: its `fma` calls libm's `fmaf`, slow but bit-identical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The build for `level`, which `simd` reported the CPU runs.
    fn of(level: Level) -> Isa {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => Isa::Avx2,
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => Isa::Avx512,
            // Baseline, and (never reported off x86_64) the x86 levels elsewhere.
            _ => Isa::Baseline,
        }
    }

    /// The build for the active level: the CPU's widest, capped by `PLUREL_RAY_SIMD`.
    pub(super) fn best() -> Isa {
        Isa::of(simd::active())
    }

    /// Every build this CPU runs, slowest first (the cap does not apply).
    #[cfg(test)]
    pub(super) fn available() -> Vec<Isa> {
        simd::supported().into_iter().map(Isa::of).collect()
    }
}

/// `$entry::<H>(isa, args…)` runs `$body::<H, V, REGS>(args…)` compiled for `isa`,
/// with `V` its f32 lanes per vector and `REGS` its vector register count.
macro_rules! multiversion {
    ($entry:ident, $avx2:ident, $avx512:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx2<const H: usize>($($arg: $ty),*) {
            $body::<H, 8, 16>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx512<const H: usize>($($arg: $ty),*) {
            $body::<H, 16, 32>($($arg),*)
        }

        #[allow(clippy::too_many_arguments)] // the kernel's arguments plus `isa`
        pub(super) fn $entry<const H: usize>(isa: Isa, $($arg: $ty),*) {
            match isa {
                // SAFETY: Isa::Avx2 / Isa::Avx512 exist only where the CPU reported
                // the features their builds enable.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { $avx2::<H>($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { $avx512::<H>($($arg),*) },
                Isa::Baseline => $body::<H, 4, 16>($($arg),*),
            }
        }
    };
}

multiversion!(accumulate_isa, accumulate_avx2, accumulate_avx512, accumulate_tiles, (
    x: &[f32], net: &Padded<H>, term_clamp: f32, agg: Agg, width: usize,
    acc: &mut [f32], acc2: &mut [f32]
));
multiversion!(forward_isa, forward_avx2, forward_avx512, forward_tiles, (
    input: &[f32], n_in: usize, net: &Padded<H>, width: usize, out: &mut [f32]
));

/// The matmul alone, for `bench_matmul`.
#[cfg(test)]
#[inline(always)]
pub(super) fn matmul_for_bench<const H: usize, const V: usize, const REGS: usize>(
    h: &Tile<H>,
    w: &[[f32; H]],
    out: &mut Tile<H>,
) {
    matmul::<H, V, REGS>(h, w, out)
}
