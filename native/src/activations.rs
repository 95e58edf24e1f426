//! The 29 activations of `plurel_ray.synth.activations`, applied in place to a tile.
//!
//! Each arm of `Activation::apply_clipped` is one branch-free loop over the tile, so
//! LLVM vectorises it; the hidden-layer clamp is fused into the same pass. Formulas
//! follow the NumPy reference operation for operation wherever it is pure arithmetic
//! (those activations agree bit for bit); transcendental ones use `fastmath`.

use crate::fastmath::{
    clamp_hi, clamp_lo, clip, cos, erf, exp_in_range, expm1_in_range, fma, ln_1p,
    ln_1p_exp_neg_abs, sigmoid, sin, tanh,
};

/// Activation names in id order: the id is the index in `plurel_ray.config.ACTIVATIONS`.
pub const NAMES: [&str; 29] = [
    "relu",
    "elu",
    "selu",
    "silu",
    "softsign",
    "tanh",
    "sigmoid",
    "hardswish",
    "mish",
    "leaky_relu",
    "gelu",
    "softplus",
    "hardsigmoid",
    "hardtanh",
    "celu",
    "tanhshrink",
    "rrelu",
    "logsigmoid",
    "softshrink",
    "hardshrink",
    "identity",
    "abs",
    "sin",
    "cos",
    "sign",
    "clamp",
    "signed_log1p",
    "smooth_identity",
    "random_sine",
];

/// Components of a `random_sine` (the NumPy side draws 3 to 7).
pub const SINE_SLOTS: usize = 7;
/// Parameters per hidden layer: amplitudes, frequencies, phases, `SINE_SLOTS` each.
pub const PARAMS_PER_LAYER: usize = 3 * SINE_SLOTS;

// Rounded from the f64 values exactly as np.float32(...) rounds them.
const SELU_ALPHA: f32 = 1.673_263_242_354_377_2_f64 as f32;
const SELU_SCALE: f32 = 1.050_700_987_355_480_5_f64 as f32;
const RRELU_SLOPE: f32 = ((1.0 / 8.0 + 1.0 / 3.0) / 2.0) as f32;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// `f(x) = Σ a_k sin(f_k x + p_k)` over the components with a nonzero amplitude.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomSine {
    /// (amplitude, frequency, phase) of each used component, in slot order.
    terms: [(f32, f32, f32); SINE_SLOTS],
    count: usize,
}

impl RandomSine {
    /// From a parameter row `[amplitudes(7), freqs(7), phases(7)]`; zero-amplitude slots
    /// are unused (dropping them changes no value: the NumPy function has no such term).
    pub fn from_params(params: &[f32; PARAMS_PER_LAYER]) -> Self {
        let mut terms = [(0.0, 0.0, 0.0); SINE_SLOTS];
        let mut count = 0;
        for k in 0..SINE_SLOTS {
            let amp = params[k];
            if amp != 0.0 {
                terms[count] = (amp, params[SINE_SLOTS + k], params[2 * SINE_SLOTS + k]);
                count += 1;
            }
        }
        RandomSine { terms, count }
    }
}

/// One activation; `Activation::from_id` maps config ids to variants.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Activation {
    Relu,
    Elu,
    Selu,
    Silu,
    Softsign,
    Tanh,
    Sigmoid,
    Hardswish,
    Mish,
    LeakyRelu,
    Gelu,
    Softplus,
    Hardsigmoid,
    Hardtanh,
    Celu,
    Tanhshrink,
    Rrelu,
    Logsigmoid,
    Softshrink,
    Hardshrink,
    Identity,
    Abs,
    Sin,
    Cos,
    Sign,
    Clamp,
    SignedLog1p,
    SmoothIdentity,
    RandomSine(RandomSine),
}

/// `x ↦ clip(f(x), ±c)` over the tile; one tight loop LLVM can vectorise.
#[inline(always)]
fn map(xs: &mut [f32], c: f32, f: impl Fn(f32) -> f32) {
    for v in xs.iter_mut() {
        *v = clip(f(*v), -c, c);
    }
}

/// `np.sign`: ±1, +0 for ±0, NaN for NaN.
#[inline(always)]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x.is_nan() {
        x
    } else {
        0.0
    }
}

impl Activation {
    /// The activation with config id `id`; `params` is its layer's parameter row
    /// (read only by `random_sine`). Errors name the bad id.
    pub fn from_id(id: u8, params: &[f32; PARAMS_PER_LAYER]) -> Result<Self, String> {
        use Activation::*;
        const FIXED: [Activation; 28] = [
            Relu,
            Elu,
            Selu,
            Silu,
            Softsign,
            Tanh,
            Sigmoid,
            Hardswish,
            Mish,
            LeakyRelu,
            Gelu,
            Softplus,
            Hardsigmoid,
            Hardtanh,
            Celu,
            Tanhshrink,
            Rrelu,
            Logsigmoid,
            Softshrink,
            Hardshrink,
            Identity,
            Abs,
            Sin,
            Cos,
            Sign,
            Clamp,
            SignedLog1p,
            SmoothIdentity,
        ];
        match FIXED.get(usize::from(id)) {
            Some(act) => Ok(*act),
            None if usize::from(id) == FIXED.len() => {
                Ok(RandomSine(self::RandomSine::from_params(params)))
            }
            None => Err(format!(
                "activation id {id} is out of range: ids are 0..{} (plurel_ray.config.ACTIVATIONS)",
                NAMES.len()
            )),
        }
    }

    /// Apply in place, then clip to ±`c` (NaN stays NaN), as `RandomMLP` does per layer.
    #[inline(always)]
    pub fn apply_clipped(&self, xs: &mut [f32], c: f32) {
        use Activation::*;
        match self {
            Relu => map(xs, c, |x| clamp_lo(x, 0.0)),
            // Only x ≤ 0 reaches expm1; clip (not max) keeps NaN.
            Elu | Celu => map(xs, c, |x| {
                if x > 0.0 {
                    x
                } else {
                    expm1_in_range(clip(x, -87.0, 0.0))
                }
            }),
            Selu => map(xs, c, |x| {
                let neg = SELU_ALPHA * expm1_in_range(clip(x, -87.0, 0.0));
                SELU_SCALE * if x > 0.0 { x } else { neg }
            }),
            Silu => map(xs, c, |x| x * sigmoid(x)),
            Softsign => map(xs, c, |x| x / (1.0 + x.abs())),
            Tanh => map(xs, c, tanh),
            Sigmoid => map(xs, c, sigmoid),
            Hardswish => map(xs, c, |x| x * clip(x + 3.0, 0.0, 6.0) / 6.0),
            // tanh(softplus(x)) = t / (t + 2) with t = e^x (e^x + 2): one exp instead
            // of exp, log and tanh. Above x = 20 it is 1 in f32, so capping e^x is exact.
            Mish => map(xs, c, |x| {
                let n = exp_in_range(clip(x, -87.0, 20.0));
                let t = n * (n + 2.0);
                x * (t / (t + 2.0))
            }),
            LeakyRelu => map(xs, c, |x| if x >= 0.0 { x } else { 0.01 * x }),
            Gelu => map(xs, c, |x| 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))),
            Softplus => map(xs, c, |x| clamp_lo(x, 0.0) + ln_1p_exp_neg_abs(x)),
            Hardsigmoid => map(xs, c, |x| clip(x / 6.0 + 0.5, 0.0, 1.0)),
            Hardtanh | Clamp => map(xs, c, |x| clip(x, -1.0, 1.0)),
            Tanhshrink => map(xs, c, |x| x - tanh(x)),
            Rrelu => map(xs, c, |x| if x >= 0.0 { x } else { RRELU_SLOPE * x }),
            Logsigmoid => map(xs, c, |x| clamp_hi(x, 0.0) - ln_1p_exp_neg_abs(x)),
            Softshrink => map(xs, c, |x| sign(x) * clamp_lo(x.abs() - 0.5, 0.0)),
            // NaN fails the compare and becomes 0, as in np.where.
            Hardshrink => map(xs, c, |x| if x.abs() > 0.5 { x } else { 0.0 }),
            Identity => map(xs, c, |x| x),
            Abs => map(xs, c, f32::abs),
            Sin => map(xs, c, sin),
            Cos => map(xs, c, cos),
            Sign => map(xs, c, sign),
            SignedLog1p => map(xs, c, |x| sign(x) * ln_1p(x.abs())),
            SmoothIdentity => map(xs, c, |x| ((x * x + 1.0).sqrt() - 1.0) / 2.0 + x),
            RandomSine(p) => random_sine(p, xs, c),
        }
    }
}

/// Σ_k a_k sin(f_k x + p_k), summed in slot order from 0 like the NumPy loop (the sum
/// with fused multiply-adds, so to a few ulp of NumPy's). Works on
/// 64-element chunks so the per-component loop is the inner, vectorised one.
#[inline(always)]
fn random_sine(p: &RandomSine, xs: &mut [f32], c: f32) {
    const CHUNK: usize = 64;
    for chunk in xs.chunks_mut(CHUNK) {
        let mut x = [0.0f32; CHUNK];
        x[..chunk.len()].copy_from_slice(chunk);
        let mut out = [0.0f32; CHUNK];
        for &(a, f, ph) in &p.terms[..p.count] {
            for (o, &xi) in out.iter_mut().zip(&x) {
                // The argument is rounded twice, as NumPy's float32 `f * x + p` is:
                // fused, it drifted by ~5e-5 from NumPy's at |f x| ~ 200.
                *o = fma(a, sin(f * xi + ph), *o);
            }
        }
        for (v, &o) in chunk.iter_mut().zip(&out) {
            *v = clip(o, -c, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_PARAMS: [f32; PARAMS_PER_LAYER] = [0.0; PARAMS_PER_LAYER];

    fn eval(id: u8, x: f32) -> f32 {
        let mut v = [x];
        Activation::from_id(id, &NO_PARAMS)
            .unwrap()
            .apply_clipped(&mut v, f32::INFINITY);
        v[0]
    }

    fn id(name: &str) -> u8 {
        NAMES.iter().position(|n| *n == name).unwrap() as u8
    }

    #[test]
    fn ids_cover_all_29_names_and_reject_the_rest() {
        assert_eq!(NAMES.len(), 29);
        assert!(matches!(
            Activation::from_id(28, &NO_PARAMS),
            Ok(Activation::RandomSine(_))
        ));
        assert_eq!(Activation::from_id(0, &NO_PARAMS), Ok(Activation::Relu));
        let err = Activation::from_id(29, &NO_PARAMS).unwrap_err();
        assert!(err.contains("activation id 29"), "{err}");
    }

    #[test]
    fn spot_values_follow_torch_definitions() {
        let close = |a: f32, b: f64| (a as f64 - b).abs() <= 2e-6 * b.abs().max(1.0);
        assert!(close(
            eval(id("selu"), -1.0),
            1.0507009873554805 * 1.6732632423543772 * (-1f64).exp_m1()
        ));
        assert!(close(eval(id("gelu"), 1.0), 0.8413447460685429));
        assert!(close(eval(id("mish"), 1.0), 0.8650983882673103));
        assert!(close(eval(id("mish"), -30.0), -30.0 * (-30f64).exp()));
        assert!(close(eval(id("softplus"), 2.0), 2.1269280110429727));
        assert!(close(eval(id("logsigmoid"), -2.0), -2.1269280110429727));
        assert!(close(eval(id("silu"), -3.0), -3.0 / (1.0 + 3f64.exp())));
        assert!(close(eval(id("hardswish"), 1.0), 4.0 / 6.0));
        assert!(close(eval(id("signed_log1p"), -3.0), -(4f64.ln())));
        assert!(close(
            eval(id("smooth_identity"), 2.0),
            (5f64.sqrt() - 1.0) / 2.0 + 2.0
        ));
        assert_eq!(eval(id("rrelu"), -24.0), -24.0 * RRELU_SLOPE);
        assert_eq!(eval(id("softshrink"), -0.75), -0.25);
        assert_eq!(eval(id("hardshrink"), 0.5), 0.0);
    }

    #[test]
    fn sign_matches_numpy_at_zero_and_nan() {
        assert_eq!(eval(id("sign"), -0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(eval(id("sign"), -2.0), -1.0);
        assert!(eval(id("sign"), f32::NAN).is_nan());
    }

    #[test]
    fn nan_propagates_except_where_numpy_drops_it() {
        for (k, name) in NAMES.iter().enumerate() {
            let y = eval(k as u8, f32::NAN);
            // hardshrink: np.where(|x| > 0.5, x, 0) maps NaN to 0; random_sine has no
            // components here (all amplitudes 0), so it is the empty sum 0.
            if *name == "hardshrink" || *name == "random_sine" {
                assert_eq!(y, 0.0, "{name}");
            } else {
                assert!(y.is_nan(), "{name}: {y}");
            }
        }
    }

    #[test]
    fn random_sine_sums_used_components_in_order() {
        let mut params = NO_PARAMS;
        params[0] = 0.5; // a0, slot 1 unused, a2
        params[2] = -2.0;
        params[SINE_SLOTS] = 3.0;
        params[SINE_SLOTS + 2] = 0.25;
        params[2 * SINE_SLOTS] = 1.0;
        params[2 * SINE_SLOTS + 2] = 0.1;
        let act = Activation::from_id(28, &params).unwrap();
        let mut xs: Vec<f32> = (0..100).map(|i| i as f32 * 0.37 - 20.0).collect();
        let want: Vec<f64> = xs
            .iter()
            .map(|&x| 0.5 * (3.0 * x as f64 + 1.0).sin() - 2.0 * (0.25 * x as f64 + 0.1).sin())
            .collect();
        act.apply_clipped(&mut xs, 1.0);
        for (got, want) in xs.iter().zip(want) {
            assert!(
                (*got as f64 - want.clamp(-1.0, 1.0)).abs() < 2e-6,
                "{got} {want}"
            );
        }
    }
}

#[cfg(test)]
mod bench {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run(act: &Activation, xs: &mut [f32; 256], reps: usize) {
        for _ in 0..reps {
            act.apply_clipped(xs, 1e6);
            for v in xs.iter_mut() {
                *v = *v * 0.5 + 0.1;
            }
        }
    }

    #[test]
    #[ignore]
    fn bench_activations() {
        let mut params = [0.0f32; PARAMS_PER_LAYER];
        for k in 0..5 {
            params[k] = 0.3;
            params[7 + k] = 1.0 + k as f32;
            params[14 + k] = 0.5;
        }
        for (id, name) in NAMES.iter().enumerate() {
            let act = Activation::from_id(id as u8, &params).unwrap();
            let mut xs = [0.0f32; 256];
            for (i, v) in xs.iter_mut().enumerate() {
                *v = (i as f32 - 128.0) * 0.05;
            }
            let reps = 4000;
            let ns = (0..9)
                .map(|_| {
                    let t = std::time::Instant::now();
                    unsafe { run(&act, &mut xs, reps) };
                    t.elapsed().as_nanos() as f64 / (reps * 256) as f64
                })
                .fold(f64::INFINITY, f64::min);
            println!("{name:16} {ns:.3} ns/elem {}", xs[3]);
        }
    }
}
