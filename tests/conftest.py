"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tests use tiny tensors: extra OpenMP threads only add spin-wait time, which made small fits
    up to 150x slower when both cores were busy. Studies and benchmarks keep torch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
