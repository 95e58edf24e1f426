"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def single_torch_thread():
    """Run torch on one thread. The model tests use tiny tensors, where OpenMP's barriers
    cost more than they save, badly so when other work shares the cores: 100 tiny training
    steps took 1.7 s on one thread and 24 s on two on a loaded 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
