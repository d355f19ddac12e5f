import os

# The suite runs as `pytest -n 2` on 2 cores: one thread per worker (tiny convolutions gain nothing from
# threads, and oversubscribed OpenMP threads spin; subprocesses started by tests inherit this too).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# runs in the test suite code in-process unless a test asks for a sandbox (tests/test_sandbox.py runs every cheat
# fixture and the main path in the real sandbox): a role process per run would multiply the suite's time
os.environ.setdefault("BENCH_ISOLATION", "none")
import random

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
