"""Test-session settings: one intra-op thread (tiny tensors gain nothing from two, and two threads on
a machine whose other core is busy can be tens of times slower), and a private cache folder so tests
never touch ~/.cache/arwave."""
import os
import tempfile

import pytest
import torch

os.environ.setdefault("ARWAVE_CACHE", tempfile.mkdtemp(prefix="arwave-test-cache-"))


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts single-threaded, whatever an earlier test (or a bench it ran) set."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
