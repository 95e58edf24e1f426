"""Helpers shared by the integration tests (imported by module name: tests are not a package)."""

from __future__ import annotations

from pathlib import Path

from plurel_ray.config import Config
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.synth.database import generate_database


def assert_same_as_single_process(folder: Path, seed: int, config: Config, tmp: Path) -> None:
    """Every file of `folder` equals what one process writes for `seed`."""
    reference = write_dataset(generate_database(seed, config), tmp / f"ref-{seed}", config,
                              name=folder.name)  # fmt: skip
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    for file in files:
        assert (folder / file).read_bytes() == (reference / file).read_bytes(), file
