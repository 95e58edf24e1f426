"""Every SIMD level this machine has, checked on this machine. `PLUREL_RAY_SIMD` caps the
native kernels, `NPY_DISABLE_CPU_FEATURES` and `OPENBLAS_CORETYPE` cap NumPy and its
BLAS the same way; under each cap the native-vs-NumPy comparisons hold, and every
native level gives the generator the same bytes. The variables are read at import,
hence subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from numpy._core._multiarray_umath import __cpu_dispatch__

from plurel_ray import _native

ROOT = Path(__file__).resolve().parents[2]
LEVELS = _native.simd_levels()
# NumPy dispatch targets (NumPy 2.x names, and the older per-feature ones) above AVX2
# and above the baseline; the names this NumPy does not dispatch to are left out.
_ABOVE_AVX2 = {"X86_V4", "AVX512F", "AVX512CD", "AVX512_KNL", "AVX512_KNM", "AVX512_SKX"}
_AVX2 = {"X86_V3", "AVX", "F16C", "FMA3", "AVX2"}
# OpenBLAS kernels of the same width (its core types are read from the environment).
_OPENBLAS_CORE = {"avx512": "SkylakeX", "avx2": "Haswell", "baseline": "Nehalem"}


def numpy_disabled(level: str) -> list[str]:
    """NumPy's dispatch targets wider than the native `level`."""
    above = {t for t in __cpu_dispatch__ if t in _ABOVE_AVX2 or t.startswith("AVX512")}
    if level == "baseline":
        above |= {t for t in __cpu_dispatch__ if t in _AVX2}
    return sorted(above) if level != "avx512" else []


def capped_env(level: str) -> dict[str, str]:
    """The environment that runs both the native kernels and NumPy at `level`."""
    env = dict(os.environ, PLUREL_RAY_SIMD=level, OPENBLAS_CORETYPE=_OPENBLAS_CORE[level])
    env["NPY_DISABLE_CPU_FEATURES"] = " ".join(numpy_disabled(level))
    return env


def run_python(level: str, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=capped_env(level), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_levels_are_listed_slowest_first_and_the_default_is_the_widest():
    assert LEVELS[0] == "baseline"
    assert [lvl for lvl in ("baseline", "avx2", "avx512") if lvl in LEVELS] == LEVELS
    if "PLUREL_RAY_SIMD" not in os.environ:
        assert _native.simd_level() == LEVELS[-1]


@pytest.mark.parametrize("level", LEVELS)
def test_the_cap_applies_to_the_native_kernels_and_numpy(level):
    out = run_python(
        level,
        "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
        "from plurel_ray import _native\n"
        "print(_native.simd_level(), sorted(k for k, v in f.items() if v))",
    )
    native, numpy_on = out.split(" ", 1)
    assert native == level
    assert not any(f"'{name}'" in numpy_on for name in numpy_disabled(level)), numpy_on


def test_an_unknown_level_fails_the_import_with_the_choices():
    env = dict(os.environ, PLUREL_RAY_SIMD="sse9")
    done = subprocess.run(
        [sys.executable, "-c", "import plurel_ray._native"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "ValueError" in done.stderr and "PLUREL_RAY_SIMD" in done.stderr, done.stderr
    assert "baseline, avx2, avx512" in done.stderr, done.stderr


# The comparisons whose bounds must hold at every level (tests/float_bounds.py).
COMPARISONS = [
    "tests/unit/test_native_mlp.py",
    "tests/unit/test_activations_mlp.py::test_activation_matches_its_definition_on_float32_inputs",
    "tests/unit/test_activations_mlp.py::test_activation_matches_its_definition_on_2d_batches",
    "tests/unit/test_activations_mlp.py::test_activation_large_magnitude_limits",
]


@pytest.mark.slow  # a pytest run per level; the default level runs in the suite itself
@pytest.mark.parametrize("level", LEVELS)
def test_native_matches_numpy_at_every_simd_level(level):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *COMPARISONS],
        env=capped_env(level), cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


GENERATE = """
import hashlib, sys
from pathlib import Path
from plurel_ray.config import Choices, Config, DatabaseParams
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.synth.database import generate_database
config = Config(database_params=DatabaseParams(
    num_tables_choices=Choices("range", [3, 3]),
    num_rows_entity_table_choices=Choices("range", [40, 60]),
    num_rows_activity_table_choices=Choices("range", [80, 120]),
    num_cols_choices=Choices("range", [3, 6]),
))
out = Path(sys.argv[1])
folder = write_dataset(generate_database(5, config), out / "plurel-5", config)
for path in sorted((folder / "db").glob("*.parquet")):
    print(path.name, hashlib.sha256(path.read_bytes()).hexdigest())
"""


@pytest.mark.slow  # a generator process per level
def test_the_generator_writes_identical_bytes_at_every_native_simd_level(tmp_path):
    # Only the native kernels are capped: NumPy's own dispatch is left as is, since the
    # generator's NumPy ufuncs (exp, log, …) round differently per NumPy SIMD level.
    digests = {}
    for level in LEVELS:
        done = subprocess.run(
            [sys.executable, "-c", GENERATE, str(tmp_path / level)],
            env=dict(os.environ, PLUREL_RAY_SIMD=level), cwd=ROOT, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        digests[level] = done.stdout
    assert digests[LEVELS[0]].count(".parquet") >= 3
    assert all(d == digests[LEVELS[0]] for d in digests.values()), digests
