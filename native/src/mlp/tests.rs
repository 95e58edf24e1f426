//! Unit tests of `mlp`: tiles reproduce a row-by-row reference bit for bit, on
//! every instruction set, and bad arguments are rejected.

use super::*;
use crate::activations::NAMES;

/// Deterministic pseudo-random floats in [-scale, scale) (64-bit LCG).
fn noise(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

struct Spec {
    dims: Vec<usize>,
    weights: Vec<Vec<f32>>,
    ids: Vec<u8>,
    params: Vec<f32>,
    clamps: Vec<f64>,
}

impl Spec {
    fn new(dims: &[usize], ids: &[u8], seed: u64) -> Spec {
        let weights = dims
            .windows(2)
            .enumerate()
            .map(|(l, d)| noise(d[0] * d[1], seed + l as u64, 0.5))
            .collect();
        let mut params = noise(ids.len() * PARAMS_PER_LAYER, seed + 99, 2.0);
        params.iter_mut().for_each(|p| *p = p.abs()); // positive freqs/phases are fine
        Spec {
            dims: dims.to_vec(),
            weights,
            ids: ids.to_vec(),
            params,
            clamps: (0..ids.len()).map(|l| 3.0 + l as f64).collect(),
        }
    }

    fn mlp(&self) -> Result<Mlp<'_>, MlpError> {
        let layers = self
            .dims
            .windows(2)
            .zip(&self.weights)
            .map(|(d, w)| Layer {
                n_in: d[0],
                n_out: d[1],
                weights: w,
            })
            .collect();
        Mlp::new(layers, &self.ids, &self.params, &self.clamps)
    }

    /// One row at a time, the textbook way: the semantics the tiles must reproduce.
    fn reference_row(&self, input: &[f32]) -> Vec<f32> {
        let mlp = self.mlp().unwrap();
        let mut h = input.to_vec();
        for (l, layer) in mlp.layers.iter().enumerate() {
            if l > 0 {
                let (act, c) = mlp.hidden[l - 1];
                act.apply_clipped(&mut h, c);
            }
            h = (0..layer.n_out)
                .map(|j| {
                    let mut s = 0.0f32;
                    for (i, &hi) in h.iter().enumerate() {
                        s = hi.mul_add(layer.weights[i * layer.n_out + j], s);
                    }
                    s
                })
                .collect();
        }
        h
    }
}

const SHAPES: [&[usize]; 4] = [&[1, 5, 7, 3], &[1, 32, 32, 32], &[1, 40, 64, 20], &[1, 32]];

fn ids_for(dims: &[usize], offset: usize) -> Vec<u8> {
    (0..dims.len() - 2)
        .map(|l| ((offset + 7 * l) % NAMES.len()) as u8)
        .collect()
}

#[test]
fn accumulate_matches_row_by_row_reference_bit_for_bit() {
    for (k, dims) in SHAPES.iter().enumerate() {
        for offset in 0..NAMES.len() {
            let spec = Spec::new(dims, &ids_for(dims, offset), k as u64);
            let mlp = spec.mlp().unwrap();
            let n = 37; // not a multiple of TILE
            let x = noise(n, 7, 4.0);
            let width = mlp.n_out();
            let want: Vec<f32> = x
                .iter()
                .flat_map(|&xv| spec.reference_row(&[xv]))
                .map(|t| t.clamp(-2.5, 2.5))
                .collect();
            for isa in Isa::available() {
                let mut acc = vec![0.0f32; n * width];
                accumulate_with(isa, &x, &mlp, 2.5, Agg::Sum, &mut acc, None).unwrap();
                let same = acc
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{dims:?} acts {:?} {isa:?}", spec.ids);
            }
        }
    }
}

#[test]
fn forward_matches_row_by_row_reference_bit_for_bit() {
    let shapes = [
        &[32usize, 32, 1][..],
        &[32, 32, 32, 1],
        &[5, 1],
        &[3, 64, 2],
        &[16, 8, 8, 16],
        &[32, 40, 64, 1],
    ];
    for (k, dims) in shapes.iter().enumerate() {
        let spec = Spec::new(dims, &ids_for(dims, 3 * k), k as u64 + 11);
        let mlp = spec.mlp().unwrap();
        let n = 21;
        let input = noise(n * dims[0], 5, 3.0);
        let want: Vec<f32> = input
            .chunks(dims[0])
            .flat_map(|r| spec.reference_row(r))
            .collect();
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; n * mlp.n_out()];
            forward_with(isa, &input, &mlp, &mut out).unwrap();
            assert!(
                out.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{dims:?} {isa:?}"
            );
        }
    }
}

#[test]
fn simd_and_baseline_builds_give_identical_bits_on_extreme_inputs() {
    let mut x = noise(203, 3, 1e3);
    x.extend([0.0, -0.0, 1e6, -1e6, 3e38, -3e38, 1e-30, f32::NAN]);
    let isas = Isa::available();
    // The SSE2 baseline is the fallback for CPUs without FMA (its fma is libm's
    // `fmaf`); every other build, fused to vfmadd, must match it bit for bit.
    assert_eq!(isas[0], Isa::Baseline);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
        // The dev host has AVX-512 and FMA: fail loudly if `simd` missed a build.
        assert_eq!(isas, [Isa::Baseline, Isa::Avx2, Isa::Avx512]);
    }
    let cases =
        (0..NAMES.len()).flat_map(|k| [(k, &[1usize, 32, 32, 32][..]), (k, &[1, 16, 64, 48])]);
    for (offset, dims) in cases {
        let spec = Spec::new(dims, &ids_for(dims, offset), 5);
        let width = dims[dims.len() - 1];
        let mlp = spec.mlp().unwrap();
        let run = |isa| {
            let (mut m, mut s) = (
                vec![f32::NEG_INFINITY; x.len() * width],
                vec![0.0; x.len() * width],
            );
            accumulate_with(isa, &x, &mlp, 1e4, Agg::LogExp, &mut m, Some(&mut s)).unwrap();
            m.into_iter().chain(s).map(f32::to_bits).collect::<Vec<_>>()
        };
        // Which NaN an operation returns is up to the instruction's operand order,
        // so NaNs compare equal whatever their payload.
        let same =
            |x: u32, y: u32| x == y || (f32::from_bits(x).is_nan() && f32::from_bits(y).is_nan());
        let a = run(Isa::Baseline);
        for &isa in &isas[1..] {
            let b = run(isa);
            if let Some(i) = (0..a.len()).find(|&i| !same(a[i], b[i])) {
                let (fa, fb) = (f32::from_bits(a[i]), f32::from_bits(b[i]));
                panic!(
                    "{dims:?} acts {:?} {isa:?}: element {i} of {}: {fa:e} vs {fb:e}",
                    spec.ids,
                    a.len()
                );
            }
        }
    }
}

#[test]
fn invalid_mlps_are_rejected_with_the_field_named() {
    let msg = |dims: &[usize], ids: &[u8], f: &dyn Fn(&mut Spec)| {
        let mut spec = Spec::new(dims, ids, 1);
        f(&mut spec);
        spec.mlp().unwrap_err().0
    };
    assert!(msg(&[1, 65, 3], &[0], &|_| {}).contains("weights[0] has shape (1, 65)"));
    assert!(msg(&[1, 4, 3], &[0], &|s| s.dims[1] = 5).contains("holds 4 values"));
    let (w0, w1) = ([0.0f32; 4], [0.0f32; 6]);
    let unchained = vec![
        Layer {
            n_in: 1,
            n_out: 4,
            weights: &w0,
        },
        Layer {
            n_in: 3,
            n_out: 2,
            weights: &w1,
        },
    ];
    let chain = Mlp::new(unchained, &[0], &[0.0; PARAMS_PER_LAYER], &[1.0]).unwrap_err();
    assert!(
        chain
            .0
            .contains("weights[1] has 3 input rows but weights[0] has 4"),
        "{chain}"
    );
    assert!(msg(&[1, 4, 3], &[0], &|s| s.ids.push(0)).contains("act_ids has 2 entries"));
    assert!(msg(&[1, 4, 3], &[29], &|_| {}).contains("act_ids[0]: activation id 29"));
    assert!(msg(&[1, 4, 3], &[0], &|s| s.clamps[0] = -1.0).contains("clamps[0]"));
    assert!(msg(&[1, 4, 3], &[0], &|s| s.clamps[0] = f64::NAN).contains("clamps[0]"));
    assert!(msg(&[1, 4, 3], &[0], &|s| s
        .params
        .pop()
        .map(drop)
        .unwrap_or(()))
    .contains("act_params"));
    let empty = Mlp::new(vec![], &[], &[], &[]).unwrap_err();
    assert!(empty.0.contains("at least one layer"));
}

#[test]
fn invalid_calls_are_rejected_before_writing() {
    let spec = Spec::new(&[1, 8, 4], &[3], 2);
    let mlp = spec.mlp().unwrap();
    let mut acc = vec![1.0f32; 12];
    let e = accumulate(&[1.0, 2.0], &mlp, 1e4, Agg::Sum, &mut acc, None).unwrap_err();
    assert!(e.0.contains("need shape (2, 4)"), "{e}");
    let e = accumulate(&[1.0; 3], &mlp, 1e4, Agg::LogExp, &mut acc, None).unwrap_err();
    assert!(e.0.contains("needs acc2"), "{e}");
    let e = accumulate(&[1.0; 3], &mlp, f64::NAN, Agg::Sum, &mut acc, None).unwrap_err();
    assert!(e.0.contains("term_clamp"), "{e}");
    assert!(acc.iter().all(|&a| a == 1.0));
    let wide = Spec::new(&[2, 8, 4], &[3], 2);
    let e = accumulate(
        &[1.0; 3],
        &wide.mlp().unwrap(),
        1e4,
        Agg::Sum,
        &mut acc,
        None,
    );
    assert!(e.unwrap_err().0.contains("1 input row"));
    let e = forward(&[1.0; 3], &wide.mlp().unwrap(), &mut acc).unwrap_err();
    assert!(e.0.contains("whole rows"), "{e}");
}
