//! Node noise for the generator (`synth/noise.py`): 32 Beta draws per row and node,
//! and the quantile tables they index (`quantile_tables`, from sampled Beta CDFs).
//!
//! Each draw is an index into the node's 4096-entry quantile table, taken from the top
//! 12 bits of a 16-bit slice of a SplitMix64 output (four draws per output). Adding
//! the noise to the node's aggregate and clamping it happen in the same pass.

use crate::fastmath::clip;
use crate::init::SplitMix64;
#[cfg(target_arch = "x86_64")]
use crate::simd::{self, Level};

/// Entries of a quantile table: 12-bit indices.
pub const NOISE_TABLE_LEN: usize = 1 << 12;

/// `h[i] = clamp(h[i] + table[draw_i], ±clamp)` for every element of `h`, draws from a
/// stream seeded by `seed`. NaN in `h` stays NaN.
pub fn add_noise(table: &[f32], seed: u64, h: &mut [f32], clamp: f32) -> Result<(), String> {
    let table: &[f32; NOISE_TABLE_LEN] = table.try_into().map_err(|_| {
        format!(
            "table must have {NOISE_TABLE_LEN} entries, got {}",
            table.len()
        )
    })?;
    if clamp.is_nan() || clamp < 0.0 {
        return Err(format!("clamp must be a non-negative number, got {clamp}"));
    }
    let mut rng = SplitMix64::new(seed);
    let mut index = [0u32; BLOCK];
    for block in h.chunks_mut(BLOCK) {
        // Indices first, then the adds: apart, the add loop vectorises (with gathers
        // where the CPU has AVX2); fused, each element waited on its own shifts.
        for (quad, bits) in index
            .chunks_exact_mut(4)
            .zip(std::iter::repeat_with(|| rng.next_u64()))
        {
            for (k, i) in quad.iter_mut().enumerate() {
                *i = ((bits >> (16 * k + 4)) & 0xFFF) as u32;
            }
        }
        add_best(table, &index[..block.len()], block, clamp);
    }
    Ok(())
}

/// Draws per block: enough to amortise the loop switch, small enough for L1.
const BLOCK: usize = 256;

/// `h[i] = clip(h[i] + table[index[i]], ±clamp)`; the mask keeps every lookup inside
/// the table without a bounds check (indices are 12 bits already).
#[inline(always)]
fn add_clipped(table: &[f32; NOISE_TABLE_LEN], index: &[u32], h: &mut [f32], clamp: f32) {
    for (x, &i) in h.iter_mut().zip(index) {
        *x = clip(
            *x + table[i as usize & (NOISE_TABLE_LEN - 1)],
            -clamp,
            clamp,
        );
    }
}

/// `add_clipped` in the AVX2 build (gathers) where the active SIMD level
/// (`simd::active`) has it; same values.
fn add_best(table: &[f32; NOISE_TABLE_LEN], index: &[u32], h: &mut [f32], clamp: f32) {
    #[cfg(target_arch = "x86_64")]
    if simd::active() >= Level::Avx2 {
        // SAFETY: `simd` reports AVX2 only where the CPU has it.
        return unsafe { add_avx2(table, index, h, clamp) };
    }
    add_clipped(table, index, h, clamp);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_avx2(table: &[f32; NOISE_TABLE_LEN], index: &[u32], h: &mut [f32], clamp: f32) {
    add_clipped(table, index, h, clamp);
}

/// Quantile tables from CDFs sampled on a grid: row `r` of `out` holds, at each of the
/// `NOISE_TABLE_LEN` bin midpoints `u`, the grid value where the piecewise-linear CDF
/// `cdf[r]` reaches `u` (`np.interp(u, cdf[r], grid)`), times `scale`. Flat stretches
/// of a CDF keep their first grid point, so the inverse is well defined; `u` below the
/// first or above the last CDF value maps to the first or last grid value.
pub fn quantile_tables(
    cdf: &[f64],
    grid: &[f64],
    scale: f64,
    out: &mut [f32],
) -> Result<(), String> {
    let points = grid.len();
    if points < 2 || grid.windows(2).any(|w| !(w[0] < w[1])) {
        return Err(format!(
            "grid must hold at least 2 increasing values, got {points}"
        ));
    }
    if !cdf.len().is_multiple_of(points) || out.len() != cdf.len() / points * NOISE_TABLE_LEN {
        return Err(format!(
            "cdf must be (rows, {points}) and out (rows, {NOISE_TABLE_LEN}), got {} and {} values",
            cdf.len(),
            out.len()
        ));
    }
    let (mut xs, mut ys) = (Vec::with_capacity(points), Vec::with_capacity(points));
    for (row, table) in cdf
        .chunks_exact(points)
        .zip(out.chunks_exact_mut(NOISE_TABLE_LEN))
    {
        if row.iter().any(|c| c.is_nan()) {
            return Err("cdf holds NaN".into());
        }
        xs.clear();
        ys.clear();
        for (&c, &g) in row.iter().zip(grid) {
            if xs.last().is_none_or(|&last| c > last) {
                xs.push(c);
                ys.push(g);
            }
        }
        // Midpoints ascend, so one forward walk over the CDF segments serves them all.
        let mut seg = 0;
        for (i, q) in table.iter_mut().enumerate() {
            let u = (i as f64 + 0.5) / NOISE_TABLE_LEN as f64;
            while seg + 1 < xs.len() && xs[seg + 1] < u {
                seg += 1;
            }
            let value = if u <= xs[0] {
                ys[0]
            } else if seg + 1 == xs.len() {
                ys[seg]
            } else {
                let t = (u - xs[seg]) / (xs[seg + 1] - xs[seg]);
                ys[seg] + t * (ys[seg + 1] - ys[seg])
            };
            *q = (value * scale) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_table_entries_deterministically_and_clamps() {
        let table: Vec<f32> = (0..NOISE_TABLE_LEN).map(|i| i as f32).collect();
        let (mut a, mut b) = (vec![0.0_f32; 1000], vec![0.0_f32; 1000]);
        add_noise(&table, 3, &mut a, f32::INFINITY).unwrap();
        add_noise(&table, 3, &mut b, f32::INFINITY).unwrap();
        assert_eq!(a, b);
        assert!(a
            .iter()
            .all(|&x| x >= 0.0 && x < NOISE_TABLE_LEN as f32 && x.fract() == 0.0));
        let mut c = vec![0.0_f32; 1000];
        add_noise(&table, 3, &mut c, 10.0).unwrap();
        assert!(c.iter().all(|&x| x <= 10.0));
        let mut nan = vec![f32::NAN; 4];
        add_noise(&table, 3, &mut nan, 1.0).unwrap();
        assert!(nan.iter().all(|x| x.is_nan()));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut h = vec![0.0_f32; 4];
        assert!(add_noise(&[0.0; 10], 1, &mut h, 1.0).is_err());
        assert!(add_noise(&[0.0; NOISE_TABLE_LEN], 1, &mut h, f32::NAN).is_err());
    }

    #[test]
    fn quantile_tables_invert_the_cdf_like_np_interp() {
        // Uniform CDF on [0, 1] with a flat stretch at the start: the inverse of the
        // identity, the flat points dropped.
        let grid = [0.0, 0.25, 0.5, 0.75, 1.0];
        let cdf = [0.0, 0.0, 0.5, 0.75, 1.0];
        let mut out = vec![0.0_f32; NOISE_TABLE_LEN];
        quantile_tables(&cdf, &grid, 2.0, &mut out).unwrap();
        for (i, &q) in out.iter().enumerate() {
            let u = (i as f64 + 0.5) / NOISE_TABLE_LEN as f64;
            // Between (0, 0) and (0.5, 0.5) the kept points are (0.0, 0.0) → (0.5, 0.5).
            assert!((q as f64 - 2.0 * u).abs() < 1e-6, "{i}: {q}");
        }
        let mut two = vec![0.0_f32; 2 * NOISE_TABLE_LEN];
        let cdfs = [cdf, [0.0, 0.9, 0.95, 0.99, 1.0]].concat();
        quantile_tables(&cdfs, &grid, 1.0, &mut two).unwrap();
        assert!(two.windows(2).skip(NOISE_TABLE_LEN).all(|w| w[0] <= w[1]));
        assert!(two[NOISE_TABLE_LEN] < 0.001 && two[2 * NOISE_TABLE_LEN - 1] > 0.99);
    }

    #[test]
    fn quantile_tables_reject_bad_shapes() {
        let mut out = vec![0.0_f32; NOISE_TABLE_LEN];
        assert!(quantile_tables(&[0.0, 1.0], &[0.0], 1.0, &mut out).is_err());
        assert!(quantile_tables(&[0.0, 1.0, 1.0], &[0.0, 1.0], 1.0, &mut out).is_err());
        assert!(quantile_tables(&[0.0, f64::NAN], &[0.0, 1.0], 1.0, &mut out).is_err());
        assert!(quantile_tables(&[0.0, 1.0], &[1.0, 0.0], 1.0, &mut out).is_err());
    }
}
