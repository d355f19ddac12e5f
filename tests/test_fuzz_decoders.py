"""Every registered codec's `decompress` on hostile bytes, in a subprocess with a memory limit (RLIMIT_AS)
and a per-input timeout (tests/fuzz_decode_worker.py): only BitstreamError, never another exception, a hang
or an allocation for a size the header merely claims."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.contract.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 50  # hypothesis examples per codec (arbitrary bytes, arbitrary headers, mutated valid streams)
PIXEL_LIMIT = 128 * 128  # as `--max-pixels` would set it for small test images
MEMORY = 1 << 30  # address space allowed above what the imports mapped
TIMEOUT_S = 20.0  # per input


def _worker(*args: str, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz_decode_worker", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_fuzz_every_codec_decompress_raises_only_bitstream_error():
    summary = _worker(str(EXAMPLES), str(PIXEL_LIMIT), str(MEMORY), str(TIMEOUT_S), timeout=600)
    assert sorted(summary) == sorted(METHODS.names())
    print("fuzz decompress, inputs per codec:", {name: s["tried"] for name, s in summary.items()})
    failures = {name: s["failures"] for name, s in summary.items() if s["failures"]}
    assert not failures, json.dumps(failures, indent=1)[:4000]
    for name, s in summary.items():
        assert s["tried"] >= EXAMPLES // 2, (name, s["tried"])
        assert s["decoded"] + s["bitstream_error"] == s["tried"]
        assert s["decoded"] >= 1, f"{name}: not even the unmodified stream decoded"


@pytest.mark.slow
def test_fuzz_size_check_fires_before_any_allocation():
    """A guard, not a timing test: headers above the limit are refused by the size check itself (its message),
    under an address-space limit 512 MB above the imports that an 8192x8192 decode could not stay within."""
    report = _worker("guard", timeout=300)
    print("fuzz guard, cases per codec:", {name: len(cases) for name, cases in report.items()})
    bad = {name: [c for c in cases if c["verdict"] != "ok"] for name, cases in report.items()}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, json.dumps(bad, indent=1)
    assert sorted(report) == sorted(METHODS.names())
