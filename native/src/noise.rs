//! Node noise for the generator (`synth/noise.py`): 32 Beta draws per row and node.
//!
//! Each draw is an index into the node's 4096-entry quantile table, taken from the top
//! 12 bits of a 16-bit slice of a SplitMix64 output (four draws per output). Adding
//! the noise to the node's aggregate and clamping it happen in the same pass.

use crate::fastmath::clip;
use crate::init::SplitMix64;

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

fn add_best(table: &[f32; NOISE_TABLE_LEN], index: &[u32], h: &mut [f32], clamp: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU reported the feature the build enables.
        return unsafe { add_avx2(table, index, h, clamp) };
    }
    add_clipped(table, index, h, clamp);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_avx2(table: &[f32; NOISE_TABLE_LEN], index: &[u32], h: &mut [f32], clamp: f32) {
    add_clipped(table, index, h, clamp);
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
}
