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


CLI_WIDTH = 200  # columns of every rich console while a CliRunner test runs, whatever the terminal (or none)


@pytest.fixture
def cli_runner(monkeypatch):
    """A typer CliRunner whose output does not depend on the terminal: the command line's module-level rich
    consoles and rich's global one (progress bars) are pinned to CLI_WIDTH columns, and consoles made during a
    command (typer's error panels) read COLUMNS. Longer lines still wrap at word boundaries: compare output through
    tests.helpers.flat."""
    import sys

    import rich
    from rich.console import Console
    from typer.testing import CliRunner

    import cli.main  # noqa: F401 - every command module, and its consoles, loaded

    consoles = [rich.get_console()]
    for name, module in list(sys.modules.items()):
        if name == "cli" or name.startswith("cli."):
            consoles += [obj for obj in vars(module).values() if isinstance(obj, Console)]
    for console in consoles:
        monkeypatch.setattr(console, "_width", CLI_WIDTH)  # what Console.width's setter sets; undone after the test
    monkeypatch.setenv("COLUMNS", str(CLI_WIDTH))
    return CliRunner()
