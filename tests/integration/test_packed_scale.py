"""`benchmarks/bench_scale.py` at a test's size: a packed Ray run whose driver is killed
midway (Ray's processes with it), resumed by a second driver, then verified."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_scale import run

pytestmark = pytest.mark.slow


def test_a_killed_packed_run_resumes_with_every_seed_once_and_verifies(tmp_path):
    result = run(num_dbs=300, actors=2, kill_fraction=0.4, work=tmp_path, dbs_per_shard=10)
    assert result["killed"], "the first driver finished before it could be killed"
    assert 120 <= result["indexed_at_kill"] < 300
    assert result["resume_ok"], result.get("resume_stderr")
    # what the resumed driver says: the killed run's databases were not made again
    (summary,) = result["resume_summary"]
    assert f"{result['indexed_at_kill']} already complete" in summary
    assert result["every_seed_once"] and result["all_complete"]
    assert result["verify_ok"], result["verify_problems"]
    assert result["no_temporaries"] and result["no_orphans"]
    assert result["files"] == 2 * result["shards"] + 2  # shards, manifests, index, record
    assert result["passed"]
