"""Fault injection: SIGKILL during evaluation and during the final write, a full disk, a read-only output
folder, two runs writing the same result at once. After each, the result equals the one an uninterrupted run
writes (timings and timestamps aside) and no reader ever sees a half-written file."""
from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.safety.atomicio import atomic_write_text
from benchmark.errors import OutputError
from benchmark.results.schema import load_result
from benchmark.results.files import result_candidates
from tests.helpers import write_images

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 4
VOLATILE = {"encode_s", "decode_s"}  # measured times differ between any two runs


def _worker(root: Path, out: Path, *fault: str, wait: bool = True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "tests.fault_run_worker", str(root), str(out), *(fault or ("none",))]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def _numbers(out: Path) -> tuple[list[dict], list[dict]]:
    """The result's points and per-image rows without the volatile timing fields."""
    pdir = out / "images" / "full"
    result = load_result(pdir / "jpeg.json")
    points = [{k: v for k, v in p.items() if k not in VOLATILE} for p in result["points"]]
    with open(pdir / "jpeg.csv", newline="") as f:
        rows = [{k: v for k, v in r.items() if k not in VOLATILE} for r in csv.DictReader(f)]
    return points, rows


def _visible_files(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "images" / "full").iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    write_images(root, n=N_IMAGES, size=(48, 64))
    return root


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory):
    """The uninterrupted run (in this process: the same code and options as the worker's)."""
    from benchmark.evaluation.runner import run
    from tests.fault_run_worker import spec

    out = tmp_path_factory.mktemp("ref")
    run(spec(str(images), str(out)))
    return _numbers(out)


@pytest.mark.slow
def test_fault_sigkill_during_evaluation_resumes_to_the_same_result(images, reference, tmp_path):
    out = tmp_path / "out"
    killed = _worker(images, out, "kill_eval", "3")  # killed as the third image starts
    assert killed.returncode == -signal.SIGKILL
    partial = out / "images" / "full" / ".jpeg.partial.csv"
    assert partial.is_file() and not (out / "images" / "full" / "jpeg.json").exists()
    with open(partial, newline="") as f:
        assert len(list(csv.DictReader(f))) == 2 * 4  # two images x four qualities were coded before the kill
    resumed = _worker(images, out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _numbers(out) == reference
    assert not partial.exists()


@pytest.mark.slow
def test_fault_sigkill_during_the_final_write_leaves_no_half_file(images, reference, tmp_path):
    out = tmp_path / "out"
    killed = _worker(images, out, "kill_write")
    assert killed.returncode == -signal.SIGKILL
    pdir = out / "images" / "full"
    assert not (pdir / "jpeg.json").exists()  # the half-written bytes stayed in a hidden temporary file
    assert result_candidates(out) == []  # which no reader takes for a result
    again = _worker(images, out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _numbers(out) == reference


def test_fault_disk_full_is_a_clear_error_naming_the_folder(images, tmp_path, monkeypatch):
    from benchmark.safety import atomicio
    from benchmark.evaluation.runner import run
    from tests.fault_run_worker import spec

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomicio.os, "fsync", full)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as info:
        run(spec(str(images), str(out)))
    msg = str(info.value)
    assert "No space left on device" in msg and str(out / "images" / "full") in msg and "disk is full" in msg
    assert _visible_files(out) == []  # nothing half-written; the partial CSV (hidden) keeps the coded rows
    assert (out / "images" / "full" / ".jpeg.partial.csv").is_file()


def test_fault_atomic_write_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    atomic_write_text(path, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match=rf"in folder '{tmp_path}'.*disk is full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_fault_read_only_output_folder(images, tmp_path, monkeypatch):
    """Read-only --out: a clear OutputError naming the folder (root ignores permission bits, so there the
    file system's refusal is simulated at the one place that creates files)."""
    from benchmark.safety import atomicio
    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec

    out = tmp_path / "ro"
    (out / "images" / "full").mkdir(parents=True)
    if os.geteuid() == 0:
        def refuse(*a, **k):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(out / "images" / "full"))

        monkeypatch.setattr(atomicio.tempfile, "mkstemp", refuse)
        monkeypatch.setattr("benchmark.evaluation.runner.open", refuse, raising=False)
    else:
        for d in (out, out / "images", out / "images" / "full"):
            d.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"images/full"):
            run(RunSpec(method="jpeg", dataset="images", root=images, out=out, progress=False,
                        method_options={"qualities": [50]}))
    finally:
        for d in (out, out / "images", out / "images" / "full"):
            d.chmod(0o755)


@pytest.mark.slow
def test_fault_two_runs_writing_the_same_result_at_once(images, reference, tmp_path):
    """Two runs of one method into one folder at once: one writes the result, the other (if they overlap) is refused
    by the run lock with a message that says why (tests/test_run_lock.py), never a corrupt or half-written file."""
    out = tmp_path / "out"
    procs = [_worker(images, out, wait=False) for _ in range(2)]
    done = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        if p.returncode == 0:
            assert stdout.strip().endswith("ok"), stderr[-2000:]
            done.append(p)
        else:
            assert p.returncode == 2 and "error: another `bench run` of 'jpeg' is writing into" in stdout, stderr[-2000:]
    assert done, "neither run wrote the result"
    assert _numbers(out) == reference
    assert _visible_files(out) == ["jpeg.csv", "jpeg.json"]
    assert not [p for p in (out / "images" / "full").iterdir() if p.name.endswith(".tmp")]


def test_fault_files_respect_the_umask(images, tmp_path):
    """Results, CSVs and the leaderboard get 0666 minus the umask (0644 under 022), not mkstemp's 0600."""
    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec
    from leaderboard.build import build

    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        run(RunSpec(method="jpeg", dataset="images", root=images, out=out, progress=False, limit=1,
                    method_options={"qualities": [50]}))
        written = build([out], out / "leaderboard")
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 4 and {Path(w) for w in written} <= set(files)
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}, {p.name: oct(p.stat().st_mode & 0o777) for p in files}
    json.loads((out / "images" / "full" / "jpeg.json").read_text())
