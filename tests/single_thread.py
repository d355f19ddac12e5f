"""A fixture that runs a test with one torch thread (import it and mark the module with usefixtures).

Tiny convolutions gain nothing from threads, and on a shared, loaded machine two spinning OpenMP threads made
brief trainings tens of times slower (8 s instead of 290 s for one test here)."""
import pytest
import torch


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
