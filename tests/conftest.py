import numpy as np
import pytest
import torch


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster (and leaves the other core to other jobs)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
