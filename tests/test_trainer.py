"""The shared trainer: SIGKILL mid-run and resume gives the same weights; non-finite loss stops cleanly."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from benchmark.contract.data import Sample
from benchmark.errors import ConfigError, TrainingError
from benchmark.training.trainer import train
from benchmark.training.checkpoint import read_checkpoint
from benchmark.training.losses import rd_loss_fn
from benchmark.contract.budgets import TrainConfig, resolve_budget
from benchmark.training.weights import state_dict_sha256
from tests.tiny_rd import TinyRD

REPO = Path(__file__).resolve().parents[1]



# A tiny RD model (noise from the global RNG, an aux optimizer over `quantiles`), a cosine schedule,
# validation every 4 steps (best checkpoint, history) and a checkpoint every 5 steps.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from benchmark.contract.data import Sample
    from benchmark.training.trainer import train
    from benchmark.training.losses import rd_loss_fn
    from benchmark.contract.budgets import TrainConfig
    from benchmark.training.weights import state_dict_sha256
    from tests.tiny_rd import TinyRD

    workdir, stop_at, marker, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    g = torch.Generator().manual_seed(123)
    data = [Sample(x=torch.rand(3, 40, 40, generator=g), name=f"t{i}") for i in range(6)]
    val = [Sample(x=torch.rand(3, 32, 32, generator=g), name=f"v{i}") for i in range(2)]
    torch.manual_seed(7)
    model = TinyRD()
    cfg = TrainConfig(steps=14, batch_size=2, crop=32, lr=2e-3, aux_lr=1e-2, schedule="cosine", val_every=4,
                      val_samples=2, checkpoint_every=5, checkpoint_seconds=0, restore="last")

    def on_step(step, logs):
        if step == stop_at:  # tell the parent that a checkpoint is on disk, then wait to be killed
            marker.write_text(str(step))
            time.sleep(600)

    info = train(model, rd_loss_fn(0.01), data, val, config=cfg, workdir=workdir, seed=3, device="cpu",
                 tag="tiny", progress=False, on_step=on_step)
    out.write_text(json.dumps({"sha": state_dict_sha256(model), "resumed_at": info["resumed_at"],
                               "validation": info["validation"], "best_step": info["best_step"],
                               "cpu_s": info["cpu_s"], "wall_s": info["wall_s"]}))
    """
)


def _child(tmp: Path, workdir: Path, stop_at: int, name: str) -> tuple[subprocess.Popen, Path, Path]:
    script = tmp / "child.py"
    script.write_text(CHILD)
    marker, out = tmp / f"{name}.marker", tmp / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "BENCH_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, str(script), str(workdir), str(stop_at), str(marker), str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, marker, out


def _finish(proc: subprocess.Popen, out: Path) -> dict:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_identical_weights(tmp_path):
    # the reference: one uninterrupted run
    ref_proc, _, ref_out = _child(tmp_path, tmp_path / "ref", -1, "ref")
    # the victim: runs until step 7 (checkpoint at step 5 on disk, steps 6-7 done but not saved), then SIGKILL
    proc, marker, _ = _child(tmp_path, tmp_path / "victim", 7, "victim")
    ref = _finish(ref_proc, ref_out)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "child never reached step 7"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    run_dirs = list((tmp_path / "victim").glob("run-*"))
    assert len(run_dirs) == 1
    state, tensors = read_checkpoint(run_dirs[0], "last")
    assert state["step"] == 5 and not state["done"]
    assert "model.safetensors" in tensors
    assert {k.split(".")[0] for k in tensors["optim.safetensors"]} == {"main", "aux"}  # both Adam states saved

    # rerun with the same workdir: resumes from step 5 and ends bitwise equal to the uninterrupted run
    proc2, _, out2 = _child(tmp_path, tmp_path / "victim", -1, "resumed")
    res = _finish(proc2, out2)
    assert res["resumed_at"] == [5]
    assert ref["resumed_at"] == []
    assert res["sha"] == ref["sha"]
    assert res["validation"] == ref["validation"] and len(ref["validation"]) == 4  # steps 4, 8, 12, 14
    # training CPU time is kept over segments like wall time: the resumed run counts the killed run's 5 saved steps
    saved_cpu = state["cpu_s"]
    assert 0 < saved_cpu < res["cpu_s"] <= res["wall_s"] * (os.cpu_count() or 1) + 1  # threads: at most one core each
    assert res["best_step"] == ref["best_step"]


# ---------------------------------------------------------------- in-process tests (tiny, fast)
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def _data(n=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [Sample(x=torch.rand(3, size, size, generator=g), name=f"s{i}") for i in range(n)]


def _mse_loss(poison_after: int | None = None, what: float = math.nan):
    calls = {"train": 0}

    def loss_fn(model, batch):
        out = model(batch.x)
        loss = torch.nn.functional.mse_loss(out, batch.x)
        if model.training:
            calls["train"] += 1
            if poison_after is not None and calls["train"] > poison_after:
                loss = loss * what
        return {"loss": loss, "mse": loss.detach()}

    return loss_fn


def _cfg(**kw):
    base = dict(steps=10, batch_size=2, crop=None, lr=1e-2, checkpoint_every=3, checkpoint_seconds=0, val_samples=2,
                restore="last")
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path, bad):
    torch.manual_seed(0)
    model = Tiny()
    with pytest.raises(TrainingError) as ei:
        train(model, _mse_loss(poison_after=7, what=bad), _data(), _data(2, seed=1), config=_cfg(), workdir=tmp_path,
              seed=0, tag="tiny", progress=False)
    msg = str(ei.value)
    assert "non-finite loss" in msg and "step 8/10" in msg and "last good checkpoint is kept" in msg
    run_dir = next(tmp_path.glob("run-*"))
    assert str(run_dir) in msg
    state, tensors = read_checkpoint(run_dir, "last")
    assert state["step"] == 6 and not state["done"]  # checkpoints at 3 and 6; step 8 failed
    assert all(torch.isfinite(t).all() for t in tensors["model.safetensors"].values())

    # the run resumes from that checkpoint once the cause is gone, and matches an uninterrupted run
    torch.manual_seed(0)
    resumed = Tiny()
    info = train(resumed, _mse_loss(), _data(), _data(2, seed=1), config=_cfg(), workdir=tmp_path, seed=0, tag="tiny",
                 progress=False)
    assert info["resumed_at"] == [6]
    torch.manual_seed(0)
    clean = Tiny()
    train(clean, _mse_loss(), _data(), _data(2, seed=1), config=_cfg(), workdir=tmp_path / "clean", seed=0, tag="tiny",
          progress=False)
    assert state_dict_sha256(resumed) == state_dict_sha256(clean)


def test_non_finite_loss_before_any_checkpoint_says_so(tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint had been written yet"):
        train(Tiny(), _mse_loss(poison_after=0), _data(), None, config=_cfg(), workdir=tmp_path, progress=False)


def test_damaged_checkpoint_is_refused_not_silently_used(tmp_path):
    train(Tiny(), _mse_loss(), _data(), None, config=_cfg(steps=4), workdir=tmp_path, progress=False)
    run_dir = next(tmp_path.glob("run-*"))
    ptr = json.loads((run_dir / "last.json").read_text())
    f = run_dir / ptr["dir"] / "model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(TrainingError, match="damaged"):
        train(Tiny(), _mse_loss(), _data(), None, config=_cfg(steps=4), workdir=tmp_path, progress=False)


def test_finished_run_is_reused_and_seed_makes_runs_repeatable(tmp_path):
    a, b, c = Tiny(), Tiny(), Tiny()
    b.load_state_dict(a.state_dict())
    c.load_state_dict(a.state_dict())
    train(a, _mse_loss(), _data(), None, config=_cfg(crop=8, hflip=True), workdir=tmp_path / "a", seed=5, progress=False)
    train(b, _mse_loss(), _data(), None, config=_cfg(crop=8, hflip=True), workdir=tmp_path / "b", seed=5, progress=False)
    assert state_dict_sha256(a) == state_dict_sha256(b)
    train(c, _mse_loss(), _data(), None, config=_cfg(crop=8, hflip=True), workdir=tmp_path / "c", seed=6, progress=False)
    assert state_dict_sha256(a) != state_dict_sha256(c)  # the seed changes crops, flips and data order
    # a finished run in the same workdir is loaded, not retrained
    d = Tiny()
    t0 = time.perf_counter()
    info = train(d, _mse_loss(), _data(), None, config=_cfg(crop=8, hflip=True), workdir=tmp_path / "a", seed=5,
                 progress=False)
    assert state_dict_sha256(d) == state_dict_sha256(a)
    assert info["resumed_at"] == [] and time.perf_counter() - t0 < 5


def test_rd_loss_is_lambda_mse_plus_bpp():
    torch.manual_seed(0)
    model = TinyRD().eval()
    x = torch.rand(2, 3, 32, 32)
    from benchmark.contract.data import Batch

    out = rd_loss_fn(0.01)(model, Batch(x, None, torch.zeros(2, dtype=torch.long), ["a", "b"]))
    with torch.no_grad():
        fwd = model(x)
    bits = -torch.log2(fwd["likelihoods"]["y"]).sum()
    bpp = bits / (2 * 32 * 32)
    mse = torch.nn.functional.mse_loss(fwd["x_hat"], x)
    assert torch.allclose(out["bpp"], bpp)
    assert torch.allclose(out["loss"], 0.01 * 255**2 * mse + bpp)
    assert out["aux_loss"] is not None and out["aux_loss"].item() > 0


def test_budgets_and_options_are_checked():
    assert resolve_budget("smoke").steps < resolve_budget("quick").steps < resolve_budget("paper").steps
    assert resolve_budget("quick", steps=7, lr=None).steps == 7
    with pytest.raises(ConfigError, match="unknown budget"):
        resolve_budget("huge")
    with pytest.raises(ConfigError, match="unknown training option"):
        resolve_budget("smoke", stepz=3)
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(steps=3, schedule="linear")
    with pytest.raises(ConfigError, match="learning rate"):
        TrainConfig(steps=3, lr=float("nan"))


def test_validation_shards_cover_every_sample_once_and_weight_by_count():
    """Data-parallel validation: rank r takes samples r, r+N, ...; the count-weighted mean of the ranks' shards
    (what Group.reduce_sums adds over the ranks) is the 1-process mean. Fewer samples than ranks: every rank
    validates them all."""
    from benchmark.training import distributed
    from benchmark.training.trainer import validate

    g = torch.Generator().manual_seed(4)
    val = [Sample(x=torch.rand(3, 16, 16, generator=g), name=f"v{i}") for i in range(5)]

    def loss_fn(model, batch):
        return {"loss": model(batch.x).mean()}

    cfg = TrainConfig(steps=1, batch_size=2, crop=16, val_samples=5)
    whole = validate(torch.nn.Identity(), loss_fn, val, cfg, torch.device("cpu"))
    shards = [validate(torch.nn.Identity(), loss_fn, val, cfg, torch.device("cpu"), distributed.Group(r, 2)) for r in (0, 1)]
    counts = [3, 2]  # samples 0, 2, 4 and 1, 3
    merged = sum(s["loss"] * c for s, c in zip(shards, counts)) / 5
    assert merged == pytest.approx(whole["loss"], rel=1e-6)
    assert shards[0] != shards[1]  # the ranks did validate different samples
    few = validate(torch.nn.Identity(), loss_fn, val[:1], cfg.replace(val_samples=1), torch.device("cpu"),
                   distributed.Group(1, 2))
    assert few == validate(torch.nn.Identity(), loss_fn, val[:1], cfg.replace(val_samples=1), torch.device("cpu"))
