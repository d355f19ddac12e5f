"""The command line's output keeps its content at any console width: `bench list methods`, an unknown method, an
unknown option (typer's error panel) and `bench validate` on hostile result files, each run as a real process with
no terminal (stdin from /dev/null, output to pipes) and COLUMNS set to 20, 80 and 200. Rich wraps lines at the
width and folds a word longer than it (a path), so messages are compared with whitespace normalised and paths
with whitespace removed."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import flat

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = [20, 80, 200]
BOX = "│╭╮╰╯─"  # the frame of typer's error panel


def _bench(columns: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "OMP_NUM_THREADS": "1"}
    env.pop("LINES", None)
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, check=False,
                          capture_output=True, text=True, timeout=120)


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory) -> Path:
    """A folder with one valid jpeg result, one whose method name climbs out of the folder, and one nested too
    deep for the JSON reader."""
    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec

    out = tmp_path_factory.mktemp("width")
    path, result = run(RunSpec(method="jpeg", dataset="middlebury_sample", out=out / "run", limit=1, progress=False,
                               method_options={"qualities": [10, 50]}))
    res = out / "res"
    res.mkdir()
    (res / "jpeg.json").write_text(json.dumps(result))
    (res / result["per_image_csv"]).write_bytes((path.parent / result["per_image_csv"]).read_bytes())
    evil = copy.deepcopy(result)
    evil["method"] = "x/../../../../escaped"
    (res / "evil.json").write_text(json.dumps(evil))
    (res / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    return res


@pytest.mark.slow
@pytest.mark.parametrize("columns", WIDTHS)
def test_list_methods_names_every_registered_method_at_any_width(columns):
    from benchmark.contract.registry import METHODS

    proc = _bench(columns, "list", "methods")
    assert proc.returncode == 0, proc.stderr[-2000:]
    words = set(proc.stdout.split())
    assert {"method", "scenario", "trainable", "scalable", "paper"} <= words
    missing = [name for name in METHODS.names() if name not in words]
    assert not missing, proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("columns", WIDTHS)
def test_unknown_method_error_reads_whole_at_any_width(columns, tmp_path):
    proc = _bench(columns, "run", "--method", "jpg", "--dataset", "middlebury_sample", "--out", str(tmp_path / "o"))
    text = flat(proc.stdout + proc.stderr)
    assert proc.returncode == 2, text
    assert "unknown method 'jpg'. Did you mean 'jpeg'" in text and "`bench list methods`" in text, text
    assert "Traceback" not in text


@pytest.mark.slow
@pytest.mark.parametrize("columns", WIDTHS)
def test_unknown_option_panel_reads_whole_at_any_width(columns):
    proc = _bench(columns, "run", "--method", "jpeg", "--dataset", "middlebury_sample", "--no-such-option")
    text = flat((proc.stdout + proc.stderr).translate({ord(c): " " for c in BOX}))
    assert proc.returncode == 2, text
    assert "No such option: --no-such-option" in text and "Usage:" in text, text


@pytest.mark.slow
@pytest.mark.parametrize("columns", WIDTHS)
def test_validate_names_each_hostile_file_and_its_reason_at_any_width(columns, hostile_results):
    res = hostile_results
    proc = _bench(columns, "validate", str(res))
    out = proc.stdout + proc.stderr
    text, squashed = flat(out), _squash(out)
    assert proc.returncode == 1, out
    assert text.count("FAIL") == 2, out
    assert f"FAIL{res / 'evil.json'}:fieldmethod:" in squashed and "not a safe name" in text, out
    assert f"FAIL{res / 'deep.json'}:" in squashed and "nested deeper than the parser allows" in text, out
    assert f"{res / 'jpeg.json'}(result)" in squashed, out
