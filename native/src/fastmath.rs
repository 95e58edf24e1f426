//! Branch-free f32 math that auto-vectorises.
//!
//! `f32::exp`, `ln`, `sin`, … call scalar libm, which stops LLVM from vectorising the
//! loops in `activations`. These versions use only `+ - * /`, `sqrt`, fused
//! multiply-adds (`fma`), compares with selects and integer bit tricks, so a loop over
//! an array of them compiles to AVX2/AVX-512 code with identical results on every
//! build: `f32::mul_add` is correctly rounded by definition, so it is one `vfmadd`
//! where the `fma` target feature is enabled and a call to libm's (correctly rounded,
//! slow) `fmaf` elsewhere, with the same bits. Rust never contracts `a * b + c` on its
//! own, so every fused operation is an explicit `fma` call and the operation tree is
//! the same on every build. Polynomials are the Cephes single-precision ones (≈1 ulp).
//!
//! NaN propagates through every function here; `±inf` does where noted.
//!
//! Error bounds against the exact value, as the tests below check them in f64 (f the
//! result; docs/native.md lists them for users, tests/float_bounds.py builds on them):
//! `exp`, `expm1` ≤ 2e-7·max(1, |f|) (expm1 ≤ 3e-7 relative near 0); `ln`, `ln_1p`
//! ≤ 2e-7·max(1, |f|) (ln_1p ≤ 3e-7 relative); `tanh`, `sigmoid` ≤ 2e-7·max(1, |f|)
//! (4e-7, 3e-7 relative); `ln_1p_exp_neg_abs` ≤ 3e-7 relative; `erf` ≤ 7e-7 absolute;
//! `sin`, `cos` ≤ 2e-7 absolute for |x| ≤ 1e4, only bounded beyond. Every bound is at
//! most a few float32 ulp (ε = 2^-23 ≈ 1.19e-7 relative spacing).

// Cephes / Abramowitz–Stegun coefficients are kept verbatim, digits beyond f32 included.
#![allow(clippy::excessive_precision)]

/// Round-to-nearest magic: `(v + MAGIC) - MAGIC` rounds `v` to an integer and the low
/// bits of `v + MAGIC` hold it, for |v| < 2^22. SSE2 has no vector floor, so `f32::floor`
/// would call libm.
const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23

/// `a · b + c` with a single rounding (`f32::mul_add`): one `vfmadd` in builds with the
/// `fma` target feature, libm's correctly rounded `fmaf` otherwise; same bits either way.
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// `min(x, hi)` that keeps a NaN `x` (compiles to a single `minps hi, x`).
#[inline(always)]
pub fn clamp_hi(x: f32, hi: f32) -> f32 {
    if x > hi {
        hi
    } else {
        x
    }
}

/// `max(x, lo)` that keeps a NaN `x` (compiles to a single `maxps lo, x`).
#[inline(always)]
pub fn clamp_lo(x: f32, lo: f32) -> f32 {
    if x < lo {
        lo
    } else {
        x
    }
}

/// `np.clip(x, lo, hi)`: NaN stays NaN.
#[inline(always)]
pub fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    clamp_hi(clamp_lo(x, lo), hi)
}

/// `v` rounded to the nearest integer, as (float, integer), for |v| < 2^22.
#[inline(always)]
fn round_int(v: f32) -> (f32, i32) {
    let t = v + MAGIC;
    (t - MAGIC, t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32)
}

/// `exp(x) = 2^n · (1 + q)` for x already in [-87, 88]: returns `(q, 2^n)` with
/// `q = expm1(r)`, |r| ≤ ln2/2. Callers clamp (only the side their argument can
/// reach): below -87 the result would leave the normal range, and denormals cost ~20x
/// (exp(-87) ≈ 1.6e-38 stands in for anything smaller). NaN gives a NaN `q`.
#[inline(always)]
fn exp_parts_in_range(x: f32) -> (f32, f32) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n · LN2_HI is exact for |n| ≤ 2^15.
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_40e-4;
    // MAGIC + 127: t = x·log2e + BIASED holds n + 127 in its low mantissa bits, so
    // `bits << 23` is the biased exponent of 2^n directly (n + 127 ∈ [1, 254]).
    const BIASED: f32 = MAGIC + 127.0;
    let t = fma(x, LOG2E, BIASED);
    let n = t - BIASED;
    let r = fma(-n, LN2_LO, fma(-n, LN2_HI, x));
    let r2 = r * r;
    // Degree-6 minimax for expm1 on |r| ≤ ln2/2 (relative error 3.3e-9, coefficients
    // fitted after rounding to f32), in Estrin's scheme: Horner's serial multiply-adds
    // made the latency chain, not the work, the bottleneck (elu ran at ~30 cycles per
    // 8 lanes).
    let r4 = r2 * r2;
    let p01 = fma(0.166_665_2, r, 0.499_999_94);
    let p23 = fma(0.008_368_906, r, 0.041_668_292);
    let p = fma(0.001_381_915_3, r4, fma(p23, r2, p01));
    let q = fma(p, r2, r);
    (q, f32::from_bits(t.to_bits() << 23))
}

/// e^x (≈1 ulp; arguments outside [-87, 88] are clamped, so e^-100 ≈ 1.6e-38).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_in_range(clip(x, -87.0, 88.0))
}

/// `exp` for x already in [-87, 88] (the caller clamps; NaN propagates).
#[inline(always)]
pub fn exp_in_range(x: f32) -> f32 {
    let (q, scale) = exp_parts_in_range(x);
    (q + 1.0) * scale
}

/// e^x - 1, accurate near 0 (relative ≈2 ulp), where `exp(x) - 1` would cancel.
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    expm1_in_range(clip(x, -87.0, 88.0))
}

/// `expm1` for x already in [-87, 88] (the caller clamps; NaN propagates).
#[inline(always)]
pub fn expm1_in_range(x: f32) -> f32 {
    let (q, scale) = exp_parts_in_range(x);
    fma(scale, q, scale - 1.0)
}

/// ln x for x > 0 (≈1 ulp for normal x); `+inf` and NaN come back unchanged.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    // x = 2^e · m with m in [0.5, 1).
    let mut e = ((bits >> 23) as i32 - 126) as f32;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Re-centre m into [√½, √2) so the polynomial argument f = m - 1 stays small.
    let small = m < SQRT_HALF;
    e = if small { e - 1.0 } else { e };
    let f = if small { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    // Estrin's scheme (see exp_parts_in_range): pairs joined by f², f⁴, f⁸.
    let (f2, f4) = (z, z * z);
    let p01 = fma(-2.499_999_399_3e-1, f, 3.333_333_117_4e-1);
    let p23 = fma(-1.666_805_766_5e-1, f, 2.000_071_476_5e-1);
    let p45 = fma(-1.242_014_084_6e-1, f, 1.424_932_278_7e-1);
    let p67 = fma(-1.151_461_031_0e-1, f, 1.167_699_874_0e-1);
    let p0123 = fma(p23, f2, p01);
    let p4567 = fma(p67, f2, p45);
    let p = fma(7.037_683_629_2e-2, f4 * f4, fma(p4567, f4, p0123));
    let mut y = p * f * z;
    y = fma(-2.121_944_40e-4, e, y);
    y = fma(-0.5, z, y);
    let r = fma(0.693_359_375, e, f + y);
    // +inf and NaN would otherwise come out finite.
    if x < f32::INFINITY {
        r
    } else {
        x
    }
}

/// ln(1 + y) for y > -1, accurate for tiny y (Goldberg's trick: the rounding error
/// of `u = 1 + y` is cancelled by scaling with `y / (u - 1)`).
#[inline(always)]
pub fn ln_1p(y: f32) -> f32 {
    let u = 1.0 + y;
    let d = u - 1.0;
    let l = ln(u) * (y / d);
    // d == 0: y is below half an ulp of 1, and ln(1 + y) = y to f32 precision.
    let r = if d == 0.0 { y } else { l };
    // y / d is NaN at y = +inf.
    if y < f32::INFINITY {
        r
    } else {
        y
    }
}

/// tanh x via expm1, relative-accurate near 0 (≈3 ulp).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    // tanh(9) rounds to 1; -87 only keeps exp in range.
    let em = expm1_in_range(clamp_lo(-2.0 * x.abs(), -87.0)); // in (-1, 0]
                                                              // em / (-2 - em) == -em / (2 + em) exactly, one negation fewer.
    (em / (-2.0 - em)).copysign(x)
}

/// 1 / (1 + e^-x), never denormal (≥ 1.6e-38 for x < -87).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp_in_range(clamp_lo(-x.abs(), -87.0));
    let r = 1.0 / (1.0 + e);
    // For x < 0, σ(x) = e^x / (1 + e^x) keeps relative accuracy where 1 - σ(-x) cancels.
    if x < 0.0 {
        e * r
    } else {
        r
    }
}

/// log(1 + e^-|x|), the shared tail of softplus and logsigmoid.
#[inline(always)]
pub fn ln_1p_exp_neg_abs(x: f32) -> f32 {
    let y = exp_in_range(clamp_lo(-x.abs(), -87.0)); // in (0, 1]
                                                     // ln(1 + y) = 2 atanh(s), s = y / (2 + y) ∈ (0, 1/3]: one division replaces ln's
                                                     // range reduction and degree-9 polynomial, and s is relative-accurate for tiny y.
                                                     // 2 atanh(s) = 2s + 2s·s²·P(s²), P a degree-3 minimax (relative error 4.6e-9).
    let s = y / (2.0 + y);
    let z = s * s;
    let p = fma(
        fma(0.140_230_58, z, 0.139_978_59),
        z * z,
        fma(0.200_109_18, z, 0.333_332_06),
    );
    let s2 = s + s;
    fma(s2 * z, p, s2)
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the same Horner scheme as
/// `plurel_ray.synth.activations._erf` with its multiply-adds fused (fewer roundings),
/// so the two agree to a few ulp.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        1.061_405_429,
        -1.453_152_027,
        1.421_413_741,
        -0.284_496_736,
        0.254_829_592,
    ];
    let ax = clamp_hi(x.abs(), 6.0); // erf(6) == 1 in f32; keeps exp out of denormals
    let t = 1.0 / fma(P, ax, 1.0);
    let mut y = fma(A[0], t, A[1]);
    y = fma(y, t, A[2]);
    y = fma(y, t, A[3]);
    y = fma(y, t, A[4]);
    y *= t;
    y *= exp_in_range(-ax * ax); // -ax² ≥ -36
    (1.0 - y).copysign(x)
}

/// Largest |x| reduced for sin/cos: beyond it the multiple of π leaves the exact range
/// of `round_int`; clamping keeps the result deterministic and bounded.
pub const TRIG_MAX_ARG: f32 = 1.0e6;

/// sin r for |r| ≲ π/2: degree-9 odd minimax, r + r³·P(r²) (absolute error 4.9e-9,
/// coefficients fitted after rounding to f32). Horner for P: measured faster than
/// Estrin here (random_sine has independent terms to overlap) and rounds less.
#[inline(always)]
fn sin_poly(r: f32) -> f32 {
    let z = r * r;
    let p = fma(
        fma(fma(2.598_837_5e-6, z, -1.980_603e-4), z, 0.008_333_009),
        z,
        -0.166_666_57,
    );
    fma(r * z, p, r)
}

/// `(-1)^n · v` for the integer `n` that `round_int` returned.
#[inline(always)]
fn flip_if_odd(v: f32, n: i32) -> f32 {
    f32::from_bits(v.to_bits() ^ ((n as u32) << 31))
}

/// `x - m·π` for a multiple `m` of 1/2 with |m| < 2^12, in three parts (Cephes' π/4
/// split times 4): m·PI1 and m·PI2 are exact, so the result is accurate to ~1e-7
/// absolute up to |x| ≈ 10^4.
#[inline(always)]
fn sub_multiple_of_pi(x: f32, m: f32) -> f32 {
    const PI1: f32 = 3.140_625;
    const PI2: f32 = 9.675_025_939_941_406_25e-4;
    const PI3: f32 = 1.509_957_990_978_376_4e-7;
    fma(-m, PI3, fma(-m, PI2, fma(-m, PI1, x)))
}

/// sin x: ≤ 2e-7 absolute error for |x| ≤ 1e4; bounded beyond (see `TRIG_MAX_ARG`).
/// x = n·π + r with |r| ≤ π/2, and sin x = (-1)^n sin r.
#[inline(always)]
pub fn sin(x: f32) -> f32 {
    const FRAC_1_PI: f32 = std::f32::consts::FRAC_1_PI;
    let x = clip(x, -TRIG_MAX_ARG, TRIG_MAX_ARG);
    let (n, ni) = round_int(x * FRAC_1_PI);
    flip_if_odd(sin_poly(sub_multiple_of_pi(x, n)), ni)
}

/// cos x = sin(x + π/2) = (-1)^n sin(x - (n - ½)π) with n = round(x/π + ½); the shift
/// goes into the (exact) multiple of π, not the argument.
#[inline(always)]
pub fn cos(x: f32) -> f32 {
    const FRAC_1_PI: f32 = std::f32::consts::FRAC_1_PI;
    let x = clip(x, -TRIG_MAX_ARG, TRIG_MAX_ARG);
    let (n, ni) = round_int(fma(x, FRAC_1_PI, 0.5));
    flip_if_odd(sin_poly(sub_multiple_of_pi(x, n - 0.5)), ni)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Max over `xs` of |f(x) - g(x)| / max(1, |g(x)|), with g evaluated in f64.
    fn max_err(xs: impl Iterator<Item = f32>, f: fn(f32) -> f32, g: fn(f64) -> f64) -> f64 {
        xs.map(|x| {
            let want = g(x as f64);
            (f(x) as f64 - want).abs() / want.abs().max(1.0)
        })
        .fold(0.0, f64::max)
    }

    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * (i as f32 / n as f32))
    }

    fn erf64(x: f64) -> f64 {
        // Maclaurin series; converges to f64 precision for |x| ≤ 4 (terms peak ~1e5).
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_and_expm1_match_f64() {
        assert!(max_err(grid(-87.0, 88.0, 400_000), exp, f64::exp) < 2.0e-7);
        // Relative error near 0, where exp(x) - 1 would lose everything.
        for x in grid(-1.0, 1.0, 200_000).chain(grid(-1e-5, 1e-5, 20_000)) {
            let want = (x as f64).exp_m1();
            let got = expm1(x) as f64;
            assert!(
                (got - want).abs() <= 3e-7 * want.abs().max(1e-30),
                "{x}: {got} {want}"
            );
        }
        assert!(max_err(grid(-87.0, 30.0, 200_000), expm1, f64::exp_m1) < 2.0e-7);
        assert!(exp(-200.0) > 0.0 && exp(-200.0).is_normal());
        assert!(exp(f32::NAN).is_nan() && expm1(f32::NAN).is_nan());
    }

    #[test]
    fn ln_and_ln_1p_are_relative_accurate() {
        let xs = grid(-30.0, 30.0, 300_000).map(|t| t.exp2());
        for x in xs {
            let want = (x as f64).ln();
            assert!(
                (ln(x) as f64 - want).abs() <= 2e-7 * want.abs().max(1.0),
                "{x}"
            );
        }
        for y in grid(0.0, 1.0, 100_000)
            .chain(grid(0.0, 1e-6, 10_000))
            .chain(grid(1.0, 1e8, 100_000))
        {
            let want = (y as f64).ln_1p();
            let got = ln_1p(y) as f64;
            assert!((got - want).abs() <= 3e-7 * want.abs(), "{y}: {got} {want}");
        }
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert_eq!(ln_1p(f32::INFINITY), f32::INFINITY);
        assert!(ln(f32::NAN).is_nan() && ln_1p(f32::NAN).is_nan());
    }

    #[test]
    fn ln_1p_exp_neg_abs_is_relative_accurate() {
        for x in grid(-90.0, 90.0, 400_000).chain(grid(-1e-3, 1e-3, 10_000)) {
            let want = (-(x.abs() as f64)).exp().max((-87f64).exp()).ln_1p();
            let got = ln_1p_exp_neg_abs(x) as f64;
            assert!((got - want).abs() <= 3e-7 * want, "{x}: {got} {want}");
        }
    }

    #[test]
    fn tanh_and_sigmoid_match_f64() {
        assert!(max_err(grid(-50.0, 50.0, 400_000), tanh, f64::tanh) < 2.0e-7);
        for x in grid(-1e-3, 1e-3, 10_000) {
            let want = (x as f64).tanh();
            assert!((tanh(x) as f64 - want).abs() <= 4e-7 * want.abs(), "{x}");
        }
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        for x in grid(-100.0, 50.0, 300_000) {
            let want = sig(x as f64).max((-87f64).exp()); // exp's floor
            assert!((sigmoid(x) as f64 - want).abs() <= 3e-7 * want, "{x}");
        }
    }

    #[test]
    fn erf_is_within_abramowitz_stegun_error() {
        let e = max_err(grid(-4.0, 4.0, 400_000), erf, erf64);
        // A&S's 1.5e-7 plus f32 rounding of 1 - y near 0 (~4e-7); the NumPy reference
        // it mirrors rounds the same way.
        assert!(e < 7.0e-7, "{e}");
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn sin_cos_are_accurate_to_1e4_and_bounded_beyond() {
        let xs = || grid(-1.0e4, 1.0e4, 2_000_000).chain(grid(-4.0, 4.0, 100_000));
        assert!(max_err(xs(), sin, f64::sin) < 2.0e-7);
        assert!(max_err(xs(), cos, f64::cos) < 2.0e-7);
        for x in [
            1e5f32,
            -3e7,
            1e30,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            assert!(sin(x).abs() <= 1.01 && cos(x).abs() <= 1.01, "{x}");
        }
        assert!(sin(f32::NAN).is_nan() && cos(f32::NAN).is_nan());
    }

    /// `f` over `xs` in an AVX2 + FMA build (fma is one vfmadd there).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn map_fma(f: impl Fn(f32) -> f32, xs: &[f32]) -> Vec<u32> {
        xs.iter().map(|&x| f(x).to_bits()).collect()
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn fma_and_fallback_builds_give_identical_bits() {
        if !crate::simd::supported().contains(&crate::simd::Level::Avx2) {
            return;
        }
        let xs: Vec<f32> = grid(-100.0, 100.0, 200_000)
            .chain(grid(-1e-3, 1e-3, 20_000))
            .chain(grid(-30.0, 30.0, 20_000).map(|t| t.exp2()))
            .chain([0.0, -0.0, 1e6, -1e6, 3e38, f32::INFINITY, f32::NEG_INFINITY])
            .collect();
        // A macro, not a loop over `fn` pointers: each function must be inlined into
        // (and so compiled for) the FMA build.
        macro_rules! check {
            ($($name:literal: $f:expr),+) => {$({
                // Fallback: this test build has no `fma` target feature, so `fma` is a
                // call to `fmaf`; the FMA build inlines it to vfmadd.
                let want: Vec<u32> = xs.iter().map(|&x| $f(x).to_bits()).collect();
                // SAFETY: `simd` found AVX2 and FMA on the CPU above.
                let got = unsafe { map_fma($f, &xs) };
                for ((&x, &a), &b) in xs.iter().zip(&want).zip(&got) {
                    let (fa, fb) = (f32::from_bits(a), f32::from_bits(b));
                    assert!(a == b || (fa.is_nan() && fb.is_nan()), "{}({x:e})", $name);
                }
            })+};
        }
        check!(
            "exp": exp,
            "expm1": expm1,
            "ln": ln,
            "ln_1p": ln_1p,
            "tanh": tanh,
            "sigmoid": sigmoid,
            "ln_1p_exp_neg_abs": ln_1p_exp_neg_abs,
            "erf": erf,
            "sin": sin,
            "cos": cos,
            "sin(100x)": |x: f32| sin(x * 100.0),
            "fma": |x: f32| fma(x, 1.0 + f32::EPSILON, -x)
        );
    }

    #[test]
    fn clip_keeps_nan() {
        assert!(clip(f32::NAN, -1.0, 1.0).is_nan());
        assert_eq!(clip(5.0, -1.0, 1.0), 1.0);
        assert_eq!(clip(-5.0, -1.0, 1.0), -1.0);
    }
}
