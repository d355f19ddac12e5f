import contextlib
import os
import sys

# The suite runs as `pytest -n 2` on 2 cores: one thread per worker (tiny convolutions gain nothing from
# threads, and oversubscribed OpenMP threads spin; subprocesses started by tests inherit this too).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# method code runs in the test process unless a test asks for a sandbox (tests/test_sandbox.py runs every cheat
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


# Columns of every rich console while a test runs, whatever the terminal the suite runs in (or none): wide enough
# that no message is wrapped (tests/test_cli_width.py runs the command line at narrow widths).
CLI_WIDTH = 1000


@contextlib.contextmanager
def pinned_console_width():
    """COLUMNS set to CLI_WIDTH (read by consoles made meanwhile: typer's error panels, a command line module imported
    now, a process started now) and the rich consoles that exist pinned to it: the command line's module-level ones
    and rich's global one (progress bars made without a console)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", str(CLI_WIDTH))
        if "rich" in sys.modules:
            import rich
            from rich.console import Console

            consoles = [rich.get_console()]
            for name, module in list(sys.modules.items()):
                if name == "cli" or name.startswith("cli."):
                    consoles += [obj for obj in vars(module).values() if isinstance(obj, Console)]
            for console in consoles:
                mp.setattr(console, "_width", CLI_WIDTH)  # what Console.width's setter sets
        yield


# Pinned around each test's setup and call, and given back before pytest reports (its own line width reads COLUMNS).
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with pinned_console_width():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with pinned_console_width():
        return (yield)


@pytest.fixture
def cli_runner():
    """A typer CliRunner for the command line, every command module loaded, so that its consoles are pinned to
    CLI_WIDTH columns while the test runs."""
    from typer.testing import CliRunner

    import cli.main  # noqa: F401 - every command module, and its consoles, loaded

    return CliRunner()
