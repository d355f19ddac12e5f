"""Issue 25 ("Hostile input, round two"), items 2-7: each probe of the issue replayed, ending in a clear error that
names the file or field, or in the correct number. Probes that could crash or hang a native library run in a
child process with a timeout (tests/hostile_round2_worker.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _child(*args: str, timeout: float) -> dict:
    """Run a probe in a child process; a crash (signal) or a hang fails the test with what the child said."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.hostile_round2_worker", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"probe {args} hung: no answer in {timeout} s")
    assert proc.returncode == 0, f"probe {args} died with rc {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- item 2: crafted weights
@pytest.mark.parametrize("mode, message", [
    ("int8", r"'entropy_bottleneck\._cdf_length' has dtype torch\.int8, the model's is torch\.int32"),
    ("nan", r"holds \d+ NaN or infinite value\(s\)"),
    ("cdf_length", r"_cdf_length' differs from the table the suite rebuilds"),
    ("quantiles", r"quantiles span 1e\+09 symbols, more than the 16384"),
    ("constant", r"lower_bound_scale\.bound' is a constant of the architecture"),
])
def test_crafted_balle2018_weights_are_refused_before_the_coder_sees_them(tmp_path, mode, message):
    out = _child("weights", mode, str(tmp_path / "w"), timeout=120)
    assert out["outcome"] == "WeightsError", out
    assert "balle2018 lambda=" in out["message"] and "retrain, or restore" in out["message"]
    import re

    assert re.search(message, out["message"]), out["message"]


def test_untampered_weights_still_code(tmp_path):
    assert _child("weights", "ok", str(tmp_path / "w"), timeout=120) == {"outcome": "coded"}
