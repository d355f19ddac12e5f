"""Sweeps (benchmark/cluster/sweep.py): local jobs through submitit, a rerun starts nothing, an interrupted job reruns,
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

from cli.main import app

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


@pytest.mark.slow
def test_local_sweep_all_done_and_a_rerun_starts_no_job(local_sweep):
    code, text = _status(local_sweep)
    assert code == 0 and "2 done" in text, text
    stamps = {p: p.stat().st_mtime_ns for p in (local_sweep / "jobs").glob("*/state.json")}
    res = _sweep(local_sweep, "--launcher", "local")
    assert "0 started" in res.output and res.output.count("skip ") == 2
    assert stamps == {p: p.stat().st_mtime_ns for p in (local_sweep / "jobs").glob("*/state.json")}
    assert set(_points(local_sweep)) == {"jpeg", "webp"}


@pytest.mark.slow
def test_the_leaderboard_reads_the_sweep_results_folder_as_is(local_sweep, tmp_path):
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(local_sweep / "results"), "--out", str(tmp_path / "lb")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "lb" / "README.md").read_text()
    assert "jpeg" in text and "webp" in text


@pytest.mark.slow
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


def _cluster_env(cluster) -> dict:
    """The started one-node cluster's environment; without Slurm a skip, except under CI=true (.ci/run installs
    slurm-wlm and munge), where a missing or broken cluster fails the test."""
    from tests.slurm_cluster import ClusterUnavailable

    try:
        return cluster.start()
    except ClusterUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no one-node Slurm cluster under CI=true (.ci/run installs slurm-wlm and munge): {exc}")
        pytest.skip(f"no one-node Slurm cluster on this machine: {exc}")


@pytest.fixture
def slurm_conf(tmp_path, monkeypatch):
    """SLURM_CONF of a one-node cluster started for the test (stopped after it)."""
    from tests.slurm_cluster import Cluster

    cluster = Cluster(tmp_path / "cluster")
    try:
        env = _cluster_env(cluster)
        monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
def test_slurm_sweep_gives_the_results_of_the_local_launcher(local_sweep, tmp_path, slurm_conf):
    out = tmp_path / "S"
    _sweep(out, "--launcher", "slurm", "--time", "20", "--cpus", "1", "--mem", "1G")
    code, text = _status(out)
    assert code == 0 and "2 done" in text, text + slurm_conf.logs()
    states = [json.loads(p.read_text()) for p in (out / "jobs").glob("*/state.json")]
    assert {s["launcher"] for s in states} == {"slurm"} and all(s["job_id"].isdigit() for s in states)
    assert _points(out) == _points(local_sweep)
    # Slurm knows each job by what it runs (method, dataset, protocol, seed), not as "submitit"
    logs = "".join(p.read_text() for p in (out / "logs").glob("*_submission.sh"))
    assert "#SBATCH --job-name=jpeg__middlebury_sample__middlebury-sample-stereo__seed0" in logs, logs[:2000]


# ---------------------------------------------------------------- the Slurm fault path: signal, checkpoint, requeue
# One learned model (balle2018, one λ, tiny widths) trained long enough to be interrupted; the interrupted and the
# uninterrupted job run on the same one-node cluster (same environment and threads), so their weights must agree.
REQUEUE_GRID = ["--method", "balle2018", "--dataset", "middlebury_sample", "--budget", "smoke", "--limit", "1",
                "--option", "lambdas=0.0483", "--option", "N=8", "--option", "M=8", "--option", "steps=400",
                "--option", "batch_size=2", "--option", "val_samples=1", "--option", "checkpoint_every=10",
                "--option", "warm_start=false"]


def _wait(predicate, timeout_s: float, what: str, logs=lambda: ""):
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s:.0f} s; {logs()}")


@pytest.mark.slow
def test_a_signalled_slurm_job_checkpoints_is_requeued_and_ends_with_the_weights_of_an_uninterrupted_one(
        tmp_path, slurm_conf):
    """USR2 is what Slurm sends `signal_delay_s` before a job's time limit (sbatch --signal=USR2@120; submitit
    books it) and on preemption: the job's handler records the requeue, submitit requeues it, and the rerun
    resumes from the trainer's last checkpoint."""
    import subprocess

    from benchmark.cluster.state import read_state
    from benchmark.cluster.sweep import load_jobs, wait_for

    runs = {}
    for name in ("interrupted", "uninterrupted"):
        runs[name] = tmp_path / name
        res = CliRunner().invoke(app, ["sweep", "run", *REQUEUE_GRID, "--out", str(runs[name]), "--launcher", "slurm",
                                       "--time", "20", "--cpus", "1", "--mem", "1G", "--no-wait"])
        assert res.exit_code == 0, res.output
    (job,) = load_jobs(runs["interrupted"])
    job_id = read_state(runs["interrupted"], job.name)["job_id"]
    train = runs["interrupted"] / "results"
    # the first periodic checkpoint is published: the job is mid-training
    _wait(lambda: any(train.rglob("last.json")), 240, "no trainer checkpoint", slurm_conf.logs)
    sig = subprocess.run(["scancel", "--signal=USR2", job_id], capture_output=True, text=True)
    assert sig.returncode == 0, sig.stderr
    _wait(lambda: read_state(runs["interrupted"], job.name).get("requeued"), 120, "the job did not checkpoint",
          slurm_conf.logs)
    for name, out in runs.items():
        wait_for(out, [job.name], poll_s=1.0, timeout_s=600, say=lambda *_: None)
        code, text = _status(out)
        assert code == 0 and "1 done" in text, f"{name}: {text} {slurm_conf.logs()}"
    state = read_state(runs["interrupted"], job.name)
    log = "".join(Path(state[k]).read_text(errors="replace") for k in ("stdout", "stderr") if Path(state[k]).is_file())
    assert "Caught signal SIGUSR2" in log, log[-3000:]  # submitit's handler, in the job's own log

    def weights(out: Path) -> dict:
        (result,) = (out / "results").rglob("balle2018.json")
        return {p: t["weights_sha256"] for p, t in json.loads(result.read_text())["training"]["points"].items()}

    assert weights(runs["interrupted"]) == weights(runs["uninterrupted"]) and len(weights(runs["uninterrupted"])) == 1


# ---------------------------------------------------------------- per-rate-point jobs
# balle2018 at the smoke budget with warm_start off trains its λ independently: one job per λ. Tiny widths, two
# steps, one test image: the launcher, the point option and the merge are under test, not the training.
POINT_GRID = ["--method", "balle2018", "--dataset", "middlebury_sample", "--budget", "smoke", "--limit", "1",
              "--option", "warm_start=false", "--option", "lambdas=0.0035,0.0483", "--option", "N=8", "--option", "M=8",
              "--option", "steps=2", "--option", "batch_size=2", "--option", "val_samples=1"]
POINTS = ["lambda=0.0035", "lambda=0.0483"]


def _point_sweep(out: Path):
    res = CliRunner().invoke(app, ["sweep", "run", *POINT_GRID, "--launcher", "local", "--jobs", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return res


def _rows(csv_path: Path) -> list[tuple]:
    import csv

    with open(csv_path, newline="") as fh:
        return [(r["image"], r["source"], r["rate_point"], r["bytes"], r["sha256"], r["psnr"]) for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def point_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("points") / "S"
    res = _point_sweep(out)
    assert "2 jobs in the grid, 2 started" in res.output
    return out


@pytest.mark.slow
def test_independent_rate_points_are_one_job_each_merged_into_the_result_of_one_run(point_sweep, tmp_path):
    import torch

    out = point_sweep
    assert sorted(p.name.rsplit("__", 1)[1] for p in (out / "jobs").iterdir()) == POINTS
    code, text = _status(out)
    assert code == 0 and "2 done" in text and "merged       balle2018__middlebury_sample" in text, text
    (merged,) = (out / "results").rglob("balle2018.json")  # S/results holds the merged result only
    result = json.loads(merged.read_text())
    assert [p["rate_point"] for p in result["points"]] == POINTS and result["merged_from"]["points"] == POINTS
    assert "point" not in result["codec_info"]["options"]

    # the same settings in one local run (the sweep's jobs train on cpu_count // 2 threads: so does this one)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        res = CliRunner().invoke(app, ["run", *POINT_GRID, "--out", str(tmp_path / "one"), "-q"])
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    (single,) = (tmp_path / "one").rglob("balle2018.json")
    one = json.loads(single.read_text())
    keys = ("rate_point", "bpp", "bpp_estimated", "psnr", "ms_ssim")
    assert [{k: p[k] for k in keys} for p in result["points"]] == [{k: p[k] for k in keys} for p in one["points"]]
    assert _rows(merged.with_suffix(".csv")) == _rows(single.with_suffix(".csv"))  # same bytes (sha256) per image
    sha = lambda r: {p: t["weights_sha256"] for p, t in r["training"]["points"].items()}  # noqa: E731
    assert sha(result) == sha(one) and len(sha(one)) == 2


@pytest.mark.slow
def test_a_rerun_of_point_jobs_starts_nothing_and_the_leaderboard_reads_the_merged_result(point_sweep, tmp_path):
    out = point_sweep
    (merged,) = (out / "results").rglob("balle2018.json")
    stamps = {p: p.stat().st_mtime_ns for p in [merged, *(out / "jobs").glob("*/state.json")]}
    res = _point_sweep(out)
    assert "0 started" in res.output and res.output.count("skip ") == 2
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    # a merged file lost after both points were done is merged again by the next rerun, without a job
    merged.unlink()
    res = _point_sweep(out)
    assert "0 started" in res.output and "merged " in res.output and merged.is_file()
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(out / "results"), "--out", str(tmp_path / "lb")])
    assert res.exit_code == 0, res.output
    assert "balle2018" in (tmp_path / "lb" / "README.md").read_text()


@pytest.mark.slow
def test_the_merge_waits_for_the_lock_and_only_warm_start_chains_stay_one_job(point_sweep):
    import threading
    import time

    from benchmark.cluster.sweep import expand, load_jobs
    from benchmark.cluster.state import read_state
    from benchmark.cluster.sweep_merge import lock_path, locked

    job = next(j for j in load_jobs(point_sweep) if j.point)
    result = Path(read_state(point_sweep, job.name)["result"])
    (merged,) = (point_sweep / "results").rglob("balle2018.json")
    released = []

    def hold():
        with locked(lock_path(merged)):
            held.set()
            time.sleep(0.5)
            released.append(time.monotonic())

    held = threading.Event()
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    assert job.merge(point_sweep, result) == merged
    assert released and time.monotonic() >= released[0]  # merged only once the other holder let go
    holder.join()

    def points(budget, **options):
        return [j.point for j in expand(["balle2018"], ["middlebury_sample"], None, [0], budget=budget,
                                        method_options=options)]

    assert points("quick") == [None]  # a warm-start chain: one job
    assert points("quick", warm_start=False) == ["lambda=0.0035", "lambda=0.013", "lambda=0.0483"]
    assert len(points("paper")) == 8  # CompressAI's eight λ, each trained from scratch
    assert points("paper", point="lambda=0.0018") == [None]  # one point asked for: one job
    assert [j.point for j in expand(["jpeg"], ["middlebury_sample"], None, [0], budget="paper")] == [None]


# ---------------------------------------------------------------- jobs on several devices
def test_devices_book_one_gpu_per_training_process():
    from benchmark.cluster.launch import option_args, resolve_devices
    from benchmark.errors import ConfigError

    assert resolve_devices(None, None, "cuda") == (1, 1)
    assert resolve_devices(4, None, "cuda") == (4, 4)  # --devices alone books as many GPUs
    assert resolve_devices(None, 4, "cuda") == (4, 4)  # --gpus alone starts as many processes
    assert resolve_devices(2, None, "cpu") == (2, None)  # gloo processes on CPU, nothing booked
    with pytest.raises(ConfigError, match="one training process per booked GPU"):
        resolve_devices(2, 4, "cuda")
    assert option_args({"lambdas": [0.0035, 0.0483], "warm_start": False, "N": 8}) == [
        "--option", "lambdas=0.0035,0.0483", "--option", "warm_start=false", "--option", "N=8"]


@pytest.mark.slow
def test_a_job_on_two_devices_trains_under_torchrun_then_evaluates_what_it_trained(tmp_path):
    """--devices 2 on CPU: the job trains with two gloo processes (bench train under torchrun), writes the weights
    into its results folder, then codes the test image with them; a rerun starts nothing."""
    out = tmp_path / "S"
    grid = ["--method", "balle2018", "--dataset", "middlebury_sample", "--budget", "smoke", "--limit", "1",
            "--option", "warm_start=false", "--option", "lambdas=0.0483", "--option", "N=8", "--option", "M=8",
            "--option", "steps=4", "--option", "batch_size=2", "--option", "val_samples=1"]
    res = CliRunner().invoke(app, ["sweep", "run", *grid, "--devices", "2", "--launcher", "local", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (job,) = [json.loads(p.read_text()) for p in (out / "jobs").glob("*/job.json")]
    assert job["devices"] == 2
    (result,) = (out / "results").rglob("balle2018.json")
    training = json.loads(result.read_text())["training"]
    assert training["loaded_from"].endswith("weights/balle2018")  # trained by the torchrun processes, then loaded
    manifest = next((out / "results").rglob("weights/balle2018/*.json"))
    assert manifest.is_file()
