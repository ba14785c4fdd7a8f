"""Test-session settings: one intra-op thread (tiny tensors gain nothing from two, and two threads on
a machine whose other core is busy can be tens of times slower), and a private cache folder so tests
never touch ~/.cache/arwave."""
import os
import tempfile

import torch

torch.set_num_threads(1)
os.environ.setdefault("ARWAVE_CACHE", tempfile.mkdtemp(prefix="arwave-test-cache-"))
