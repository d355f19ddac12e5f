"""Tests of the tests: each mutation below is a one-line bug in a core function (a filter, a comparison, a bound, a
field left out). Applied to a copy of the suite's packages in a temporary folder, each must make the named test
fail, and the unmutated copy must pass every named test."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (file, original text, mutated text, the test that must catch it)
MUTANTS = {
    "linear-rate interpolation in quality_at_rate": (
        "benchmark/results/bdrate.py",
        "b, m = _prepare(np.log10(np.asarray(rates, dtype=float)), quality)\n    t = np.log10(target)",
        "b, m = _prepare(np.asarray(rates, dtype=float), quality)\n    t = target",
        "tests/test_bdrate.py::test_quality_at_rate",
    ),
    "first of duplicate points instead of their mean": (
        "benchmark/results/bdrate.py",
        "um = np.bincount(inv, weights=m) / np.bincount(inv)",
        "um = m[np.unique(b, return_index=True)[1]]",
        "tests/test_bdrate.py::test_duplicate_rates_are_averaged",
    ),
    "8-bit method tag in the container": (
        "benchmark/contract/container.py",
        "(zlib.crc32(method.encode(\"utf-8\")) & 0xFFFF)",
        "(zlib.crc32(method.encode(\"utf-8\")) & 0xFF)",
        "tests/test_container.py::test_method_tag_is_16_bits_of_crc32_and_tells_every_registered_method_apart",
    ),
    "non-finite quality kept in BD metrics": (
        "benchmark/results/bdrate.py",
        "ok = np.isfinite(b) & np.isfinite(m)",
        "ok = np.isfinite(b)",
        "tests/test_core_edges.py::test_bd_metrics_leave_out_a_point_with_a_non_finite_quality_or_rate",
    ),
    "MS-SSIM measured on an image of exactly the minimum side": (
        "benchmark/results/metrics.py",
        "if min(height, width) <= need:",
        "if min(height, width) < need:",
        "tests/test_core_edges.py::test_ms_ssim_size_rule_is_the_libraries_own_boundary",
    ),
    "3-byte header check in the container": (
        "benchmark/contract/container.py",
        "if len(data) < 5:",
        "if len(data) < 3:",
        "tests/test_core_edges.py::test_a_bitstream_cut_inside_the_header_is_reported_as_truncated",
    ),
    "resume fingerprint without the training record": (
        "benchmark/evaluation/rows.py",
        '"options": codec_info, "training": training, "dataset"',
        '"options": codec_info, "dataset"',
        "tests/test_core_edges.py::test_a_partial_csv_coded_with_other_weights_is_not_resumed",
    ),
}


def _copy(tmp: Path) -> Path:
    repo = tmp / "repo"
    for pkg in ("benchmark", "baselines", "methods", "datasets"):  # the packages the registry imports: one tree
        shutil.copytree(REPO / pkg, repo / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    (repo / "tests").mkdir()
    for f in ("conftest.py", "test_bdrate.py", "test_container.py", "test_core_edges.py"):
        shutil.copy(REPO / "tests" / f, repo / "tests" / f)
    return repo


def _pytest(repo: Path, *tests: str) -> subprocess.CompletedProcess:
    # the copy comes first on the path (before the installed tree)
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    probe = ("import benchmark, baselines, methods, sys; "
             "sys.exit(0 if all(m.__file__.startswith(sys.argv[1]) for m in (benchmark, baselines, methods)) else 1)")
    assert subprocess.run([sys.executable, "-c", probe, str(repo)], cwd=repo, env=env).returncode == 0, \
        "the copied packages are not the ones imported"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", *tests],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_unmutated_copy_passes(tmp_path):
    repo = _copy(tmp_path)
    tests = sorted({m[3] for m in MUTANTS.values()})
    proc = _pytest(repo, *tests)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    # every named test ran and passed: nothing failed, skipped or deselected
    assert proc.returncode == 0 and re.fullmatch(r"\d+ passed(, \d+ warnings?)? in .*", summary), \
        proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
@pytest.mark.slow
def test_each_mutant_is_caught(mutant, tmp_path):
    path, old, new, test = MUTANTS[mutant]
    repo = _copy(tmp_path)
    src = (repo / path).read_text()
    assert src.count(old) == 1, f"mutation site of {mutant!r} not found in {path}: update MUTANTS"
    (repo / path).write_text(src.replace(old, new))
    proc = _pytest(repo, test)
    assert proc.returncode == 1 and "1 failed" in proc.stdout, \
        f"mutant {mutant!r} survived {test}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
