//! The one place that decides which SIMD build of a kernel runs.
//!
//! Every kernel with several builds (`mlp` matmuls and activations, `aggregate` folds,
//! `noise` adds) asks `active()` which to call. It is the widest level the CPU runs,
//! capped by the environment variable `PLUREL_RAY_SIMD` (read once, on first use), so
//! that one machine can run, and test, every level below its own. Every level gives
//! the same bits (`fastmath` explains why); the cap trades speed only.

use std::sync::OnceLock;

/// The environment variable that caps the level: `avx512`, `avx2` or `baseline`.
pub const ENV_VAR: &str = "PLUREL_RAY_SIMD";

/// A SIMD level, slowest first; the order is the cap's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The target's baseline (SSE2 on x86-64): `fma` calls libm's `fmaf`.
    Baseline,
    /// AVX2 with FMA, 8 lanes.
    Avx2,
    /// AVX-512 F/BW/DQ/VL with FMA, 16 lanes.
    Avx512,
}

impl Level {
    /// Every level, slowest first.
    pub const ALL: [Level; 3] = [Level::Baseline, Level::Avx2, Level::Avx512];

    /// The name `PLUREL_RAY_SIMD` and `_native.simd_level()` use.
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// The level called `name` (case and surrounding blanks ignored).
    pub fn parse(name: &str) -> Result<Level, String> {
        let wanted = name.trim().to_ascii_lowercase();
        Level::ALL
            .into_iter()
            .find(|level| level.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Level::ALL.iter().map(|l| l.name()).collect();
                format!(
                    "{ENV_VAR}={name:?} is not a SIMD level: use one of {} or unset it",
                    names.join(", ")
                )
            })
    }
}

/// Every level this CPU runs, slowest first (`Baseline` always).
pub fn supported() -> Vec<Level> {
    #[allow(unused_mut)] // only pushed to on x86_64
    let mut levels = vec![Level::Baseline];
    #[cfg(target_arch = "x86_64")]
    {
        // Both fast builds fuse multiply-adds: without FMA hardware only the baseline
        // runs (fma through libm, same bits).
        if !std::is_x86_feature_detected!("fma") || !std::is_x86_feature_detected!("avx2") {
            return levels;
        }
        levels.push(Level::Avx2);
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vl")
        {
            levels.push(Level::Avx512);
        }
    }
    levels
}

/// The widest supported level not above `cap` (`None`: no cap).
pub fn capped(cap: Option<Level>) -> Level {
    let best = *supported().last().unwrap_or(&Level::Baseline);
    cap.map_or(best, |cap| best.min(cap))
}

/// The level the kernels run at, or why `PLUREL_RAY_SIMD` is unusable. Read once per
/// process: a kernel never changes level halfway through a run.
pub fn configured() -> Result<Level, String> {
    static LEVEL: OnceLock<Result<Level, String>> = OnceLock::new();
    LEVEL
        .get_or_init(|| match std::env::var(ENV_VAR) {
            Ok(name) => Level::parse(&name).map(|cap| capped(Some(cap))),
            Err(std::env::VarError::NotPresent) => Ok(capped(None)),
            Err(std::env::VarError::NotUnicode(raw)) => Err(format!(
                "{ENV_VAR}={raw:?} is not a SIMD level: use avx512, avx2 or baseline"
            )),
        })
        .clone()
}

/// The level the kernels run at. Importing `plurel_ray._native` already raised a
/// ValueError for an unusable `PLUREL_RAY_SIMD`, so this panics only in Rust-only
/// callers (`cargo test`) that set a bad value.
pub fn active() -> Level {
    configured().unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for level in Level::ALL {
            assert_eq!(Level::parse(level.name()), Ok(level));
        }
        assert_eq!(Level::parse(" AVX2 "), Ok(Level::Avx2));
        let e = Level::parse("sse4").unwrap_err();
        assert!(
            e.contains("PLUREL_RAY_SIMD=\"sse4\"") && e.contains("avx2"),
            "{e}"
        );
    }

    #[test]
    fn a_cap_never_exceeds_the_cpu() {
        let levels = supported();
        assert_eq!(levels[0], Level::Baseline);
        assert_eq!(capped(Some(Level::Baseline)), Level::Baseline);
        assert_eq!(capped(Some(Level::Avx512)), *levels.last().unwrap());
        assert_eq!(capped(None), *levels.last().unwrap());
        assert!(levels.contains(&capped(Some(Level::Avx2))));
    }
}
