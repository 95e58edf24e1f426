"""Fixtures for tests on real Ray: small configs and helpers shared by the modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plurel_ray.config import Choices, Config, DatabaseParams

# Tests never wait on a token: local heads and clients run without auth
# (docs/operations.md#token-auth).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def tiny_config() -> Config:
    """Three tables of at most ~60 rows: a database in well under a second."""
    return Config(
        database_params=DatabaseParams(
            num_tables_choices=Choices("range", [3, 3]),
            num_rows_entity_table_choices=Choices("range", [20, 30]),
            num_rows_activity_table_choices=Choices("range", [40, 60]),
            num_cols_choices=Choices("range", [3, 4]),
        )
    )


@pytest.fixture(scope="session")
def tiny_config_file(tiny_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    tiny_config.save(path)
    return path
