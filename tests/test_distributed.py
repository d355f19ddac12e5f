"""Data-parallel training with 2 gloo processes on CPU (torchrun), against a 1-process run of the same global batch.

The trainer wraps the model and its loss closure in torch's DistributedDataParallel (benchmark/training/distributed.py); the
child counts the wrapper's forward calls, and the training info names the wrapper, so the test fails if the ranks
trained any other way. The model has a CompressAI EntropyBottleneck: its density enters the main loss (the rate of
the continuous latent, deterministic: no quantisation noise, so the two runs can be compared step by step) and its
``quantiles`` are trained by the aux optimizer from ``model.aux_loss()`` in the same backward pass. DDP runs with
find_unused_parameters=False, so every parameter it wraps, the quantiles included, must have had its gradient
reduced by DDP at every step (else DDP stops with "Expected to have finished reduction"); the quantiles must also
move, and end as in the 1-process run.

Tolerance: with the same global batch, the 2-process gradient is the mean of two half-batch mean gradients,
which equals the 1-process full-batch mean gradient in exact arithmetic; float32 differs only in the order of
the additions (~1e-7 relative per element and step). Adam divides by sqrt(v), which keeps such differences
at the same relative size, and the 10 steps below do not amplify them (measured: largest relative gap of the
losses 2.2e-7; the quantiles came out equal: their loss does not see the data). So the loss curves must agree to
rtol 1e-5, forty times the measured gap, and far tighter than any real difference in the data order (a different
batch changes the loss by percents).

Resume: all ranks are SIGKILLed after step 5 (the checkpoint of step 4 is on disk); a rerun resumes from
step 4 and ends bitwise equal to the uninterrupted 2-process run (the sum of 2 ranks' gradients is exact in
either order, so DDP's bucketing cannot change it)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    from benchmark.training import distributed
    from compressai.entropy_models import EntropyBottleneck
    from torch.nn.parallel import DistributedDataParallel
    from benchmark.contract.data import Sample
    from benchmark.training.trainer import train
    from benchmark.contract.budgets import TrainConfig
    from benchmark.training.weights import state_dict_sha256

    ddp_forwards = []
    real_forward = DistributedDataParallel.forward

    def counting_forward(self, *args, **kwargs):  # the real DDP forward, counted
        ddp_forwards.append(type(self.module).__name__)
        return real_forward(self, *args, **kwargs)

    DistributedDataParallel.forward = counting_forward

    class AE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.entropy_bottleneck = EntropyBottleneck(8)
            self.dec = torch.nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)

        def forward(self, x):
            y = self.enc(x)
            lik = self.entropy_bottleneck._likelihood(y.permute(1, 0, 2, 3).reshape(8, 1, -1))[0]
            return torch.sigmoid(self.dec(torch.relu(y))), lik

        def aux_loss(self):
            return self.entropy_bottleneck.loss()

    def loss_fn(model, batch):
        x_hat, lik = model(batch.x)
        mse = F.mse_loss(x_hat, batch.x)
        bpp = -torch.log2(lik.clamp_min(1e-9)).sum() / batch.x[:, 0].numel()
        return {"loss": 100 * mse + 0.01 * bpp, "mse": mse.detach(), "bpp": bpp.detach(), "aux_loss": model.aux_loss()}

    workdir, stop_at, marker, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    group = distributed.init_from_env("cpu")
    marker.with_name(f"{marker.name}.pid{group.rank}").write_text(str(__import__("os").getpid()))
    g = torch.Generator().manual_seed(123)
    data = [Sample(x=torch.rand(3, 24, 24, generator=g), name=f"t{i}") for i in range(6)]
    torch.manual_seed(7)
    model = AE()
    cfg = TrainConfig(steps=10, batch_size=4, crop=16, lr=5e-3, hflip=True, checkpoint_every=4, checkpoint_seconds=0,
                      val_samples=0, restore="last")
    losses = []

    def on_step(step, logs):
        losses.append(logs["loss"])
        if step == stop_at and group.rank == 0:
            marker.write_text(str(step))
            time.sleep(600)

    info = train(model, loss_fn, data, None, config=cfg, workdir=workdir, seed=3, tag="ae", progress=False, on_step=on_step)
    if group.main:
        out.write_text(json.dumps({"losses": losses, "sha": state_dict_sha256(model), "resumed_at": info["resumed_at"],
                                   "processes": info.get("processes", 1), "data_parallel": info.get("data_parallel"),
                                   "ddp_forwards": ddp_forwards,
                                   "quantiles": model.entropy_bottleneck.quantiles.flatten().tolist()}))
    distributed.shutdown()
    """
)


def _launch(tmp: Path, nproc: int, workdir: Path, stop_at: int, name: str) -> tuple[subprocess.Popen, Path, Path]:
    script = tmp / "ddp_child.py"
    script.write_text(CHILD)
    marker, out = tmp / f"{name}.marker", tmp / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "BENCH_PROGRESS": "0"}
    cmd = [sys.executable, str(script)] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(script)]
    proc = subprocess.Popen(cmd + [str(workdir), str(stop_at), str(marker), str(out)], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, marker, out


def _result(proc: subprocess.Popen, out: Path) -> dict:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    return json.loads(out.read_text())


def _initial_quantiles() -> list[float]:
    from compressai.entropy_models import EntropyBottleneck

    return EntropyBottleneck(8).quantiles.flatten().tolist()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_and_resume_after_all_ranks_are_killed(tmp_path):
    pytest.importorskip("torch.distributed")
    one = _result(*_launch(tmp_path, 1, tmp_path / "one", -1, "one")[::2])
    two = _result(*_launch(tmp_path, 2, tmp_path / "two", -1, "two")[::2])
    assert two["processes"] == 2 and one["processes"] == 1
    # the ranks trained through DistributedDataParallel (one forward per step, on the model + loss module, no
    # unused parameters: the aux loss reaches the quantiles); the 1-process run did not wrap the model
    assert two["data_parallel"] == {"wrapper": "DistributedDataParallel", "backend": "gloo", "find_unused_parameters": False}
    assert two["ddp_forwards"] == ["LossModule"] * 10 and one["ddp_forwards"] == [] and one["data_parallel"] is None
    assert len(one["losses"]) == len(two["losses"]) == 10
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
    assert two["quantiles"] == pytest.approx(one["quantiles"], rel=1e-5)  # the aux optimizer's gradients averaged too
    assert max(abs(a - b) for a, b in zip(one["quantiles"], _initial_quantiles())) > 1e-3  # ... and it did train them
    assert one["losses"][-1] < one["losses"][0]  # it learns: the comparison is not between two flat lines

    # kill every rank after step 5 (checkpoint of step 4 on disk), then resume
    proc, marker, _ = _launch(tmp_path, 2, tmp_path / "victim", 5, "victim")
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the 2-process run never reached step 5"
        time.sleep(0.1)
    # torchrun starts each rank in a session of its own: kill the ranks by pid, and the launcher's group
    for pid_file in tmp_path.glob("victim.marker.pid*"):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    resumed = _result(*_launch(tmp_path, 2, tmp_path / "victim", -1, "resumed")[::2])
    assert resumed["resumed_at"] == [4]
    assert resumed["sha"] == two["sha"]
    assert resumed["losses"] == two["losses"][4:]
    # only rank 0 wrote: one run folder, one metrics file with each step once
    (run_dir,) = (tmp_path / "victim").glob("run-*")
    rows = [line.split(",") for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    keys = [(int(r[0]), r[2]) for r in rows if r[1] == "train"]
    assert len(keys) == len(set(keys)) == 10 * 5  # steps 1..10 once each (rows of steps 5-6 dropped at resume)
    assert {k[1] for k in keys} == {"loss", "mse", "bpp", "aux_loss", "lr"}
