import os

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


# Columns of every rich console in a test, whatever the terminal the suite runs in (or none): wide enough that no
# message is wrapped (tests/test_cli_width.py runs the command line at narrow widths).
CLI_WIDTH = 1000


def _pin_console_width(mp: pytest.MonkeyPatch) -> None:
    import sys

    if "rich" not in sys.modules:
        return
    import rich
    from rich.console import Console

    consoles = [rich.get_console()]  # progress bars made without a console use this one
    for name, module in list(sys.modules.items()):
        if name == "cli" or name.startswith("cli."):
            consoles += [obj for obj in vars(module).values() if isinstance(obj, Console)]
    for console in consoles:
        mp.setattr(console, "_width", CLI_WIDTH)  # what Console.width's setter sets; undone after the test


@pytest.fixture(autouse=True)
def _console_width():
    """Command-line output in a test does not depend on the terminal: the command line's module-level rich consoles
    (and rich's global one) are pinned to CLI_WIDTH columns, and consoles made during a test (typer's error panels,
    a command line module the test imports) read COLUMNS, set to the same; processes a test starts inherit it. Its
    own MonkeyPatch, so a test's `monkeypatch.undo()` leaves the width pinned."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", str(CLI_WIDTH))
        _pin_console_width(mp)
        yield mp


@pytest.fixture
def cli_runner(_console_width):
    """A typer CliRunner for the command line, its consoles loaded and pinned to CLI_WIDTH columns."""
    from typer.testing import CliRunner

    import cli.main  # noqa: F401 - every command module, and its consoles, loaded

    _pin_console_width(_console_width)
    return CliRunner()
