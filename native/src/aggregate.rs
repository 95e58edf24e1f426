//! Folding `(n, width)` terms into caller-owned accumulators, as `scm._aggregate` does,
//! and `table_accumulate`: the same fold for terms looked up in a precomputed table.
//!
//! Accumulators start at the aggregation's identity (the caller's job): 0 for sum,
//! -inf for max, 1 for product, and (m = -inf, s = 0) for logexp. Folding a term into
//! the identity returns it exactly, so the result equals `_aggregate` over the same
//! terms bit for bit for sum, max and product.

use crate::fastmath::{clip, exp, fma};
use crate::mlp::MlpError;
use crate::simd;

/// How terms are folded into an accumulator; the id is the index in
/// `plurel_ray.config.AGGREGATIONS` ("sum", "max", "product", "logexp").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    /// `acc += t`.
    Sum,
    /// `acc = np.maximum(acc, t)` (NaN propagates).
    Max,
    /// `acc *= t`.
    Product,
    /// Streaming log-sum-exp: `acc` holds the running max m, `acc2` the running sum s
    /// of `exp(t - m)`; the caller finishes with `m + log(s)`.
    LogExp,
}

impl Agg {
    /// The aggregation with id `id` (0 sum, 1 max, 2 product, 3 logexp).
    pub fn from_id(id: i64) -> Result<Self, MlpError> {
        match id {
            0 => Ok(Agg::Sum),
            1 => Ok(Agg::Max),
            2 => Ok(Agg::Product),
            3 => Ok(Agg::LogExp),
            _ => Err(MlpError(format!(
                "agg must be 0 (sum), 1 (max), 2 (product) or 3 (logexp), got {id}"
            ))),
        }
    }
}

/// Check `acc` (and `acc2`) hold `n` rows of `width` and that logexp has its `acc2`;
/// returns the `acc2` slice to pass on (empty when the aggregation does not use it).
pub fn check_accumulators<'b>(
    n: usize,
    width: usize,
    agg: Agg,
    acc: &[f32],
    acc2: Option<&'b mut [f32]>,
) -> Result<&'b mut [f32], MlpError> {
    let need = n
        .checked_mul(width)
        .ok_or_else(|| MlpError(format!("({n}, {width}) accumulator is too large")))?;
    if acc.len() != need {
        return Err(MlpError(format!(
            "acc holds {} values, need shape ({n}, {width})",
            acc.len()
        )));
    }
    match (agg, acc2) {
        (Agg::LogExp, None) => Err(MlpError(
            "agg 3 (logexp) needs acc2: the running sums, shaped like acc, starting at 0".into(),
        )),
        (Agg::LogExp, Some(acc2)) if acc2.len() != need => Err(MlpError(format!(
            "acc2 holds {} values, need shape ({n}, {width}) like acc",
            acc2.len()
        ))),
        (Agg::LogExp, Some(acc2)) => Ok(acc2),
        // acc2 is ignored for the other aggregations.
        (_, _) => Ok(&mut []),
    }
}

/// `np.maximum(a, t)`: NaN in either argument wins.
#[inline(always)]
fn max_nan(a: f32, t: f32) -> f32 {
    // Neither outcome is "a unchanged": LLVM made `*acc = if a > t { a } else { t }`
    // a masked store (vmaskmovps, microcoded on AMD), and max ran 4x slower than sum.
    if a.is_nan() | t.is_nan() {
        a + t
    } else {
        a.max(t)
    }
}

/// Fold rows of `terms`, each clipped to ±`clamp` and cut to `width` lanes, into
/// consecutive `width`-rows of `acc` (and of `acc2` for logexp; empty otherwise).
/// Stops at the shorter of `terms` and `acc`.
#[inline(always)]
pub fn fold<T: AsRef<[f32]>>(
    agg: Agg,
    clamp: f32,
    terms: &[T],
    width: usize,
    acc: &mut [f32],
    acc2: &mut [f32],
) {
    let rows = acc.chunks_exact_mut(width).zip(terms);
    match agg {
        Agg::Sum => rows.for_each(|(a, t)| {
            a.iter_mut()
                .zip(t.as_ref())
                .for_each(|(a, &t)| *a += clip(t, -clamp, clamp));
        }),
        Agg::Max => rows.for_each(|(a, t)| {
            a.iter_mut()
                .zip(t.as_ref())
                .for_each(|(a, &t)| *a = max_nan(*a, clip(t, -clamp, clamp)));
        }),
        Agg::Product => rows.for_each(|(a, t)| {
            a.iter_mut()
                .zip(t.as_ref())
                .for_each(|(a, &t)| *a *= clip(t, -clamp, clamp));
        }),
        Agg::LogExp => {
            for ((m, t), s) in rows.zip(acc2.chunks_exact_mut(width)) {
                for ((m, s), &t) in m.iter_mut().zip(s.iter_mut()).zip(t.as_ref()) {
                    let t = clip(t, -clamp, clamp);
                    // One exp per term: of m and t the larger becomes the maximum and
                    // contributes exp(0) = 1, the smaller exp(-|m - t|). A new maximum
                    // rescales the sum by that factor. At the start m = -inf: exp gives
                    // ~1.6e-38 (its floor), times s = 0, so s becomes exactly 1. NaN
                    // in m or t reaches both m and s, as in np.logaddexp.
                    let smaller = exp(-(*m - t).abs());
                    *s = if t > *m {
                        fma(*s, smaller, 1.0)
                    } else {
                        *s + smaller
                    };
                    *m = max_nan(*m, t);
                }
            }
        }
    }
}

/// Fold `table[idx[i]]` into row `i` of the accumulators (no clamp: tables come
/// pre-clipped). `table` is row-major `(k, width)`; every index must lie in `[0, k)`,
/// checked before anything is written.
pub fn table_accumulate(
    table: &[f32],
    width: usize,
    idx: &[i64],
    agg: Agg,
    acc: &mut [f32],
    acc2: Option<&mut [f32]>,
) -> Result<(), MlpError> {
    if width == 0 {
        return Err(MlpError(
            "table has 0 columns: need (k, width) with width >= 1".into(),
        ));
    }
    if !table.len().is_multiple_of(width) {
        return Err(MlpError(format!(
            "table holds {} values, not a whole number of rows of {width}",
            table.len()
        )));
    }
    let k = table.len() / width;
    let acc2 = check_accumulators(idx.len(), width, agg, acc, acc2)?;
    if let Some((i, &bad)) = idx
        .iter()
        .enumerate()
        .find(|(_, &j)| j < 0 || j as u64 >= k as u64)
    {
        return Err(MlpError(format!(
            "idx[{i}] = {bad} is out of range for a table of {k} rows"
        )));
    }
    // Indices are checked above, so `get` always hits; `unwrap_or` only keeps this
    // panic-free by construction.
    let rows: Vec<&[f32]> = idx
        .iter()
        .map(|&j| {
            table
                .get(j as usize * width..(j as usize + 1) * width)
                .unwrap_or(&[])
        })
        .collect();
    fold_best(agg, &rows, width, acc, acc2);
    Ok(())
}

/// Fold a dense `(n, width)` term (row-major) into `acc` (and `acc2` for logexp):
/// the same aggregation as `table_accumulate`, with row `i` of `term` as the term.
pub fn dense_accumulate(
    term: &[f32],
    width: usize,
    agg: Agg,
    acc: &mut [f32],
    acc2: Option<&mut [f32]>,
) -> Result<(), MlpError> {
    if width == 0 || !term.len().is_multiple_of(width) {
        return Err(MlpError(format!(
            "term holds {} values, not whole rows of width {width}",
            term.len()
        )));
    }
    let acc2 = check_accumulators(term.len() / width, width, agg, acc, acc2)?;
    let rows: Vec<&[f32]> = term.chunks_exact(width).collect();
    fold_best(agg, &rows, width, acc, acc2);
    Ok(())
}

/// `fold` of pre-clipped rows in the build of the active SIMD level (`simd::active`):
/// AVX-512, AVX2 + FMA, or the baseline, where `exp` and the logexp update call libm's
/// `fma` (same bits, slower).
fn fold_best(agg: Agg, rows: &[&[f32]], width: usize, acc: &mut [f32], acc2: &mut [f32]) {
    match simd::active() {
        // SAFETY: `simd` reports a level only where the CPU has every feature its
        // build enables.
        #[cfg(target_arch = "x86_64")]
        simd::Level::Avx512 => unsafe { fold_avx512(agg, rows, width, acc, acc2) },
        #[cfg(target_arch = "x86_64")]
        simd::Level::Avx2 => unsafe { fold_fma(agg, rows, width, acc, acc2) },
        _ => fold(agg, f32::INFINITY, rows, width, acc, acc2),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fold_fma(agg: Agg, rows: &[&[f32]], width: usize, acc: &mut [f32], acc2: &mut [f32]) {
    fold(agg, f32::INFINITY, rows, width, acc, acc2);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")]
fn fold_avx512(agg: Agg, rows: &[&[f32]], width: usize, acc: &mut [f32], acc2: &mut [f32]) {
    fold(agg, f32::INFINITY, rows, width, acc, acc2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agg_ids_follow_config_order() {
        assert_eq!(Agg::from_id(0), Ok(Agg::Sum));
        assert_eq!(Agg::from_id(3), Ok(Agg::LogExp));
        assert!(Agg::from_id(4).unwrap_err().0.contains("got 4"));
        assert!(Agg::from_id(-1).is_err());
    }

    #[test]
    fn logexp_streams_to_log_sum_exp() {
        let terms = [[1.0f32, -500.0], [3.0, -501.0], [-2.0, -499.0]];
        let (mut m, mut s) = ([f32::NEG_INFINITY; 2], [0.0f32; 2]);
        for t in &terms {
            fold(Agg::LogExp, 1e4, &[t], 2, &mut m, &mut s);
        }
        for j in 0..2 {
            let top = terms.iter().map(|t| t[j] as f64).fold(f64::MIN, f64::max);
            let want = top
                + terms
                    .iter()
                    .map(|t| (t[j] as f64 - top).exp())
                    .sum::<f64>()
                    .ln();
            let got = m[j] as f64 + (s[j] as f64).ln();
            assert!((got - want).abs() < 1e-5, "{j}: {got} vs {want}");
        }
    }

    #[test]
    fn max_propagates_nan_and_product_multiplies() {
        let mut acc = [f32::NEG_INFINITY, 0.0, f32::NAN];
        fold(
            Agg::Max,
            f32::INFINITY,
            &[[f32::NAN, -1.0, 5.0]],
            3,
            &mut acc,
            &mut [],
        );
        assert!(acc[0].is_nan() && acc[1] == 0.0 && acc[2].is_nan());
        let mut acc = [2.0f32; 3];
        fold(
            Agg::Product,
            1.0,
            &[[3.0f32, -0.5, 7.0]],
            3,
            &mut acc,
            &mut [],
        );
        assert_eq!(acc, [2.0, -1.0, 2.0]); // terms clipped to ±1 first
    }

    #[test]
    fn table_accumulate_checks_indices_before_writing() {
        let table = [1.0f32, 2.0, 3.0, 4.0];
        let mut acc = [0.0f32; 4];
        table_accumulate(&table, 2, &[1, 0], Agg::Sum, &mut acc, None).unwrap();
        assert_eq!(acc, [3.0, 4.0, 1.0, 2.0]);
        let e = table_accumulate(&table, 2, &[0, 2], Agg::Sum, &mut acc, None).unwrap_err();
        assert!(e.0.contains("idx[1] = 2"), "{e}");
        assert!(table_accumulate(&table, 2, &[-1, 0], Agg::Sum, &mut acc, None).is_err());
        assert_eq!(acc, [3.0, 4.0, 1.0, 2.0]);
        let e = table_accumulate(&table, 2, &[0, 1], Agg::LogExp, &mut acc, None).unwrap_err();
        assert!(e.0.contains("needs acc2"), "{e}");
        let e = table_accumulate(&table, 2, &[0], Agg::Sum, &mut acc, None).unwrap_err();
        assert!(e.0.contains("need shape (1, 2)"), "{e}");
    }
}
