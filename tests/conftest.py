"""Shared fixtures: small configs so generator tests stay fast on 2 cores."""

from __future__ import annotations

import pytest

from plurel_ray.config import Choices, Config, DatabaseParams


@pytest.fixture(scope="session")
def small_config() -> Config:
    """Three tables of at most ~120 rows and 3-6 columns (a database in ~0.1 s)."""
    return Config(
        database_params=DatabaseParams(
            num_tables_choices=Choices("range", [3, 3]),
            num_rows_entity_table_choices=Choices("range", [40, 60]),
            num_rows_activity_table_choices=Choices("range", [80, 120]),
            num_cols_choices=Choices("range", [3, 6]),
        )
    )
