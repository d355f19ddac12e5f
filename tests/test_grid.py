"""`bench sweep run --grid FILE` (benchmark/cluster/grid.py, cost.py): a declared grid is checked before anything
runs, every job's GPU-hour estimate is printed from the budgets' steps and a per-step cost that says its basis
(a measured rate, or FLOPs counted on CPU at an assumed throughput), and a smoke grid runs end to end with the
local launcher into the sweep's results folder, with the grid recorded beside it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cluster.cost import DEFAULT_TFLOPS, estimate, flops_table
from benchmark.cluster.grid import grid_jobs, load_grid
from benchmark.errors import ConfigError
from benchmark.results.files import result_candidates
from cli.main import app


def _write(tmp_path: Path, doc: dict, name: str = "grid.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


PAPER = {"budget": "paper", "device": "cuda", "seeds": [0, 1],
         "methods": ["balle2018", "neural_dsc", "jpeg"],
         "protocols": {"kitti-stereo/ndic": {"dataset": "kitti", "root": "/data/kitti"}}}


def test_a_grid_file_is_checked_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_grid(_write(tmp_path, {**PAPER, "method": ["x"]}))
    with pytest.raises(ConfigError, match="does not serve protocol"):
        load_grid(_write(tmp_path, {**PAPER, "protocols": {"kitti-stereo/ndic": {"dataset": "cityscapes"}}}))
    with pytest.raises(ConfigError, match="seeds is a non-empty list"):
        load_grid(_write(tmp_path, {**PAPER, "seeds": "0"}))
    with pytest.raises(ConfigError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{")
        load_grid(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="points lambda=9 are not per-point jobs"):
        grid_jobs(load_grid(_write(tmp_path, {**PAPER, "points": ["lambda=9"]})))
    (tmp_path / "g.yaml").write_text("budget: paper\nmethods: [jpeg]\nprotocols:\n  kitti-stereo/ndic: {root: /d}\n")
    assert load_grid(tmp_path / "g.yaml").protocols == {"kitti-stereo/ndic": {"dataset": "kitti", "root": "/d"}}


def test_the_paper_grid_estimates_each_job_from_its_budget_steps_and_counted_flops(tmp_path):
    grid = load_grid(_write(tmp_path, PAPER))
    jobs = grid_jobs(grid)
    balle = [j for j in jobs if j.method == "balle2018"]
    assert len(balle) == 2 * 12 and all(j.point for j in balle)  # the NDIC authors' 12 λ, one job each, 2 seeds
    table = flops_table()
    e = estimate(balle[0], flops=table)
    per_sample = table["balle2018"]["kitti-stereo/ndic"]["model"]
    assert e.basis.startswith("FLOPs counted on CPU") and e.steps == {"model": 500_000} and e.models == 1
    assert e.gpu_hours == pytest.approx(500_000 * 1 * per_sample / (DEFAULT_TFLOPS * 1e12) / 3600)
    nd = estimate(next(j for j in jobs if j.method == "neural_dsc"), flops=table)
    # 99,000 VQ steps; the prior's 100 epochs of KITTI's 1576 declared training samples at batch 128; 4 codebooks
    assert nd.steps == {"vq": 99_000, "prior": math.ceil(100 * 1576 / 128)} and nd.models == 4
    assert nd.gpu_hours and nd.gpu_hours > 0
    assert estimate(next(j for j in jobs if j.method == "jpeg")).basis == "not trained"
    # a measured rate replaces the FLOP count, and says so
    measured = estimate(balle[0], rates={"balle2018": {"kitti-stereo/ndic": {"model": 50.0}}}, flops=table)
    assert measured.basis == "measured" and measured.gpu_hours == pytest.approx(500_000 / 50.0 / 3600)
    # no FLOP count and no rate: no number, and why
    none = estimate(balle[0], flops={})
    assert none.gpu_hours is None and none.basis.startswith("no estimate: no measured rate and no FLOP count")


def test_estimate_only_prints_every_job_and_submits_nothing(tmp_path):
    out = tmp_path / "S"
    res = CliRunner().invoke(app, ["sweep", "run", "--grid", str(_write(tmp_path, PAPER)), "--out", str(out),
                                   "--estimate-only"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if " GPU-h  " in ln]
    assert len(lines) == 2 * (12 + 1 + 1) and "total: " in res.output
    assert any("neural_dsc__kitti__kitti-stereo-ndic__seed1" in ln and "FLOPs counted on CPU" in ln for ln in lines)
    assert not (out / "jobs").exists()
    record = json.loads((out / "grid.json").read_text())
    assert len(record["estimates"]) == len(lines) and record["grid_sha256"]


SMOKE = {"budget": "smoke", "device": "cpu", "seeds": [0], "limit": 1, "methods": ["jpeg", "balle2018"],
         "protocols": {"middlebury-sample/stereo": {"dataset": "middlebury_sample"}},
         "method_options": {"balle2018": {"warm_start": False, "lambdas": [0.0035, 0.0483], "N": 8, "M": 8,
                                          "steps": 2, "batch_size": 2, "val_samples": 1}},
         "cost": {"rates": {"balle2018": {"middlebury-sample/stereo": {"model": 20.0}}}}}


@pytest.mark.slow
def test_a_smoke_grid_runs_end_to_end_with_the_local_launcher(tmp_path):
    out = tmp_path / "S"
    grid = _write(tmp_path, SMOKE)
    res = CliRunner().invoke(app, ["sweep", "run", "--grid", str(grid), "--out", str(out), "--jobs", "2"])
    assert res.exit_code == 0, res.output
    estimates = res.output.split("total: ")[0]
    assert "balle2018__middlebury_sample__middlebury-sample-stereo__seed0__lambda=0.0035" in estimates
    assert estimates.count("measured") == 2 and "not trained" in estimates
    assert "3 jobs in the grid, 3 started" in res.output
    assert res.output.index("GPU-h") < res.output.index("started ")  # printed before anything was submitted
    results = {p.stem: json.loads(p.read_text()) for p in result_candidates(out / "results")}
    assert set(results) == {"jpeg", "balle2018"}
    assert [p["rate_point"] for p in results["balle2018"]["points"]] == ["lambda=0.0035", "lambda=0.0483"]
    for r in results.values():  # provenance: the suite's code hash and the environment it ran in
        assert r["code"]["suite_sha256"] and r["environment"]
    record = json.loads((out / "grid.json").read_text())
    assert record["grid_text"] == grid.read_text() and len(record["estimates"]) == 3
    res = CliRunner().invoke(app, ["sweep", "run", "--grid", str(grid), "--out", str(out)])
    assert res.exit_code == 0 and "0 started" in res.output  # a rerun resumes: nothing left to do
