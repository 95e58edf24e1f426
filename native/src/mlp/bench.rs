//! Benchmarks, run with
//! `cargo test --release bench_ -- --ignored --nocapture --test-threads=1`:
//! `bench_matmul`, ns per row and layer of the AVX2 and AVX-512 matmuls; `bench_kernel`, ns per row
//! of `accumulate` for a 1→32→32→32 MLP with each activation (min over rounds: the
//! dev host is noisy).

use super::kernel::{matmul_for_bench, Tile, TILE};
use super::*;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run<const H: usize>(h: &mut Tile<H>, w: &[[f32; H]], reps: usize) {
    let mut out = [[0.0f32; H]; TILE];
    for _ in 0..reps {
        matmul_for_bench::<H, 8, 16>(h, w, &mut out);
        matmul_for_bench::<H, 8, 16>(&out, w, h);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn run512<const H: usize>(h: &mut Tile<H>, w: &[[f32; H]], reps: usize) {
    let mut out = [[0.0f32; H]; TILE];
    for _ in 0..reps {
        matmul_for_bench::<H, 16, 32>(h, w, &mut out);
        matmul_for_bench::<H, 16, 32>(&out, w, h);
    }
}

fn time<const H: usize>(avx512: bool) -> f64 {
    let w: Vec<[f32; H]> = (0..H).map(|i| [0.01 * (i % 7) as f32 - 0.03; H]).collect();
    let mut h = [[0.5f32; H]; TILE];
    let reps = 5_000;
    let t = std::time::Instant::now();
    match avx512 {
        true => unsafe { run512::<H>(&mut h, &w, reps) },
        false => unsafe { run::<H>(&mut h, &w, reps) },
    }
    t.elapsed().as_nanos() as f64 / (2 * reps * TILE) as f64
}

fn kernel_ns(isa: Isa, ids: &[u8], x: &[f32], acc: &mut [f32]) -> f64 {
    let dims = [1usize, 32, 32, 32];
    let weights: Vec<Vec<f32>> = dims
        .windows(2)
        .map(|d| {
            (0..d[0] * d[1])
                .map(|k| ((k * 7919) % 101) as f32 / 250.0 - 0.2)
                .collect()
        })
        .collect();
    let layers = dims
        .windows(2)
        .zip(&weights)
        .map(|(d, w)| Layer {
            n_in: d[0],
            n_out: d[1],
            weights: w,
        })
        .collect();
    let mut params = vec![0.0f32; 2 * PARAMS_PER_LAYER];
    for l in 0..2 {
        for k in 0..5 {
            params[l * 21 + k] = 0.3;
            params[l * 21 + 7 + k] = 1.0 + k as f32;
            params[l * 21 + 14 + k] = 0.5;
        }
    }
    let mlp = Mlp::new(layers, ids, &params, &[1e6, 1e6]).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..5 {
        accumulate_with(isa, x, &mlp, 1e4, Agg::Sum, acc, None).unwrap();
    }
    t.elapsed().as_nanos() as f64 / (5 * x.len()) as f64
}

#[test]
#[ignore]
fn bench_kernel() {
    let n = 2000;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 37) % 200) as f32 / 33.0 - 3.0)
        .collect();
    let mut acc = vec![0.0f32; n * 32];
    let isas = Isa::available();
    let mut best = vec![[f64::INFINITY; 29]; isas.len()];
    for _ in 0..8 {
        for (&isa, best) in isas.iter().zip(&mut best) {
            for (id, b) in best.iter_mut().enumerate() {
                *b = b.min(kernel_ns(isa, &[id as u8, id as u8], &x, &mut acc));
            }
        }
    }
    println!("{:16} {isas:?} (ns/row)", "");
    for (k, name) in crate::activations::NAMES.iter().enumerate() {
        let row: Vec<String> = best.iter().map(|b| format!("{:6.1}", b[k])).collect();
        println!("{name:16} {}", row.join(" "));
    }
    let means: Vec<String> = best
        .iter()
        .map(|b| format!("{:6.1}", b.iter().sum::<f64>() / 29.0))
        .collect();
    println!("mean             {}", means.join(" "));
}

#[test]
#[ignore]
fn bench_matmul() {
    let avx512 = Isa::best() == Isa::Avx512;
    for (isa, wide) in [("avx2", false), ("avx512", true)] {
        if wide && !avx512 {
            continue;
        }
        let mut best = [f64::INFINITY; 3];
        for _ in 0..20 {
            best[0] = best[0].min(time::<16>(wide));
            best[1] = best[1].min(time::<32>(wide));
            best[2] = best[2].min(time::<64>(wide));
        }
        for (h, b) in [16, 32, 64].iter().zip(best) {
            println!("{isa} H={h}: {b:.1} ns per row and layer");
        }
    }
}
