"""Sweeps (benchmark/sweep.py): local jobs through submitit, a rerun starts nothing, an interrupted job reruns,
status names failures with their logs, the leaderboard reads the results folder, and a real one-node Slurm
cluster (tests/slurm_cluster.py) gives the same results as the local launcher.

The grid is two classical codecs (jpeg, webp) on the embedded Middlebury pair, one test image: learned
methods would train for minutes on a 2-core machine, and the launcher does not care what a job computes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app

GRID = ["--method", "jpeg", "--method", "webp", "--dataset", "middlebury_sample", "--budget", "smoke", "--limit", "1"]


def _sweep(out: Path, *extra: str):
    res = CliRunner().invoke(app, ["sweep", "run", *GRID, "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return res


def _status(out: Path):
    res = CliRunner().invoke(app, ["sweep", "status", str(out)])
    return res.exit_code, res.output


def _points(out: Path) -> dict[str, list]:
    found = {}
    for p in sorted((out / "results").rglob("*.json")):
        if "weights" in p.parts or "train" in p.parts or p.name.startswith("."):
            continue
        r = json.loads(p.read_text())
        found[r["method"]] = [{k: pt[k] for k in ("rate_point", "bpp", "psnr", "ms_ssim")} for pt in r["points"]]
    return found


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "S"
    res = _sweep(out, "--launcher", "local", "--jobs", "2")
    assert "2 jobs in the grid, 2 started" in res.output
    return out


def test_local_sweep_all_done_and_a_rerun_starts_no_job(local_sweep):
    code, text = _status(local_sweep)
    assert code == 0 and "2 done" in text, text
    stamps = {p: p.stat().st_mtime_ns for p in (local_sweep / "jobs").glob("*/state.json")}
    res = _sweep(local_sweep, "--launcher", "local")
    assert "0 started" in res.output and res.output.count("skip ") == 2
    assert stamps == {p: p.stat().st_mtime_ns for p in (local_sweep / "jobs").glob("*/state.json")}
    assert set(_points(local_sweep)) == {"jpeg", "webp"}


def test_the_leaderboard_reads_the_sweep_results_folder_as_is(local_sweep, tmp_path):
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(local_sweep / "results"), "--out", str(tmp_path / "lb")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "lb" / "README.md").read_text()
    assert "jpeg" in text and "webp" in text


def test_an_interrupted_job_is_rerun_and_a_failed_one_shows_its_log(local_sweep, tmp_path):
    import shutil

    out = tmp_path / "S"
    shutil.copytree(local_sweep, out)
    (job,) = [p for p in (out / "jobs").iterdir() if p.name.startswith("webp")]
    state = json.loads((job / "state.json").read_text())
    Path(state["result"].replace(str(local_sweep), str(out))).unlink()
    (job / "state.json").write_text(json.dumps({**state, "state": "running", "pid": 2**22 + 12345,
                                               "result": state["result"].replace(str(local_sweep), str(out))}))
    code, text = _status(out)
    assert "interrupted  webp" in text
    res = _sweep(out, "--launcher", "local")
    assert "1 started" in res.output
    code, text = _status(out)
    assert code == 0 and "2 done" in text

    # a job that fails (its dataset folder does not exist): state failed, and status names its log file
    bad = tmp_path / "bad"
    res = CliRunner().invoke(app, ["sweep", "run", "--method", "jpeg", "--dataset", "images", "--budget", "smoke",
                                   "--root", str(tmp_path / "no_such_folder"), "--out", str(bad)])
    assert res.exit_code == 1 and "1 job(s) failed" in res.output
    code, text = _status(bad)
    assert code == 1 and "failed" in text and "log: " in text, text
    log = Path(text.split("log: ")[1].split()[0])
    assert log.is_file()


def test_slurm_sweep_gives_the_results_of_the_local_launcher(local_sweep, tmp_path):
    from tests.slurm_cluster import Cluster, ClusterUnavailable

    cluster = Cluster(tmp_path / "cluster")
    try:
        try:
            env = cluster.start()
        except ClusterUnavailable as exc:
            pytest.skip(f"no one-node Slurm cluster on this machine: {exc}")
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = env["SLURM_CONF"]
        try:
            out = tmp_path / "S"
            _sweep(out, "--launcher", "slurm", "--time", "20", "--cpus", "1", "--mem", "1G")
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old
        code, text = _status(out)
        assert code == 0 and "2 done" in text, text + cluster.logs()
        states = [json.loads(p.read_text()) for p in (out / "jobs").glob("*/state.json")]
        assert {s["launcher"] for s in states} == {"slurm"} and all(s["job_id"].isdigit() for s in states)
        assert _points(out) == _points(local_sweep)
    finally:
        cluster.stop()
