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
    assert two["data_parallel"] == {"wrapper": "DistributedDataParallel", "backend": "gloo", "find_unused_parameters": False,
                                    "broadcast_buffers": False}
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


# ---------------------------------------------------------------- real codecs: balle2018 and Neural DSC's EMA codebook
CODECS_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from compressai.entropy_models import EntropyModel
    from benchmark.training import distributed
    from benchmark.contract.data import Sample
    from benchmark.contract.budgets import TrainConfig
    from benchmark.errors import TrainingError
    from benchmark.training.trainer import train
    from baselines.balle import Balle2018
    from methods.neural_dsc.codec import vq_loss_fn
    from methods.neural_dsc.model import ConditionalVQVAE

    real_quantize = EntropyModel.quantize

    def rounding(self, inputs, mode, means=None):  # straight-through rounding for the training noise (docstring)
        if mode == "noise":
            return inputs + (torch.round(inputs) - inputs).detach()
        return real_quantize(self, inputs, mode, means)

    EntropyModel.quantize = rounding
    workdir, out = Path(sys.argv[1]), Path(sys.argv[2])
    group = distributed.init_from_env("cpu")
    g = torch.Generator().manual_seed(11)
    data = [Sample(x=torch.rand(3, 40, 72, generator=g), side=torch.rand(3, 40, 72, generator=g), name=f"t{i}")
            for i in range(7)]
    report = {"processes": group.world}

    def run(name, model, loss_fn, samples, crop, lr, val_ds=None, **cfg):
        losses, lrs = [], []
        config = TrainConfig(steps=20, batch_size=4, crop=crop, lr=lr, hflip=True, checkpoint_every=10,
                             checkpoint_seconds=0, val_every=2, val_samples=len(val_ds or ()), restore="last", **cfg)
        info = train(model, loss_fn, samples, val_ds, config=config, workdir=workdir / name, seed=5, tag=name, progress=False,
                     on_step=lambda step, logs: (losses.append(logs["loss"]), lrs.append(logs["lr"])))
        report[name] = {"losses": losses, "lrs": lrs, "validation": info["validation"],
                        "data_parallel": info.get("data_parallel"), "processes": info["processes"],
                        "buffers": {k: v.flatten().tolist() for k, v in model.state_dict().items()
                                    if k in dict(model.named_buffers())}}

    codec = Balle2018(lambdas=(0.0483,), N=8, M=12)
    torch.manual_seed(1)
    run("balle2018", codec.build_model(8, 12, 0.0483), codec.make_loss(0.0483), data, 64, 2e-3)
    torch.manual_seed(2)
    vq = ConditionalVQVAE("distributed", bits=4, down=4, ch=8, n_res=1, emb_dim=8, data_init=True, dead_threshold=1.0)
    vq = vq.double()  # float64: a last-bit difference cannot flip a near tie of the nearest-code search (docstring)
    data64 = [Sample(x=s.x.double(), side=s.side.double(), name=s.name) for s in data]
    # a plateau schedule with patience 1 and validation every 2 steps: the validation decides the learning rate
    run("neural_dsc", vq, vq_loss_fn("distributed", 4), data64, 32, 2e-2, data64[:3], schedule="plateau", plateau_patience=1,
        gamma=0.5)

    if group.main:  # the weights manifest records how many processes trained them
        from benchmark.training.weights import read_manifest, save_weights

        save_weights(workdir / "weights", method="neural_dsc", models={"bits=4.vqvae": vq}, training={"budget": "smoke"})
        report["manifest_processes"] = read_manifest(workdir / "weights")["training"]["processes"]

    class LocalStats(torch.nn.Module):  # a buffer each rank updates from its own shard: must be refused
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
            self.norm = torch.nn.BatchNorm2d(3)

        def forward(self, x):
            return self.norm(self.conv(x))

    def bn_loss(model, batch):
        return {"loss": torch.nn.functional.mse_loss(model(batch.x), batch.x)}

    try:
        train(LocalStats(), bn_loss, data, None, config=TrainConfig(steps=2, batch_size=4, crop=16, lr=1e-3,
              checkpoint_every=0, checkpoint_seconds=0, val_samples=0), workdir=workdir / "bn", seed=1, progress=False)
        report["bn_error"] = None
    except TrainingError as exc:
        report["bn_error"] = str(exc)
    out.with_name(f"{out.name}.rank{group.rank}").write_text(json.dumps(report))
    distributed.shutdown()
    """
)


def _run_codecs(tmp: Path, nproc: int) -> dict[int, dict]:
    script = tmp / "codecs_child.py"
    script.write_text(CODECS_CHILD)
    out = tmp / f"codecs{nproc}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "BENCH_PROGRESS": "0"}
    cmd = [sys.executable, str(script)] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(script)]
    proc = subprocess.run(cmd + [str(tmp / f"work{nproc}"), str(out)], env=env, capture_output=True, timeout=300,
                          start_new_session=True)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return {r: json.loads(out.with_name(f"{out.name}.rank{r}").read_text()) for r in range(nproc)}


@pytest.mark.slow
def test_two_processes_train_balle2018_and_neural_dsc_as_one_process(tmp_path):
    """The real codecs, 20 steps each, 1 process against 2 gloo processes with the same global batch of 4.

    balle2018 (CompressAI's ScaleHyperprior at N=8, M=12) trains with its own RD loss and aux loss. Its training
    forward adds uniform noise, which each rank draws from a seed of its own (a different realisation from the
    1-process run's, by design); for a step-by-step comparison both runs here replace that noise by straight-through
    rounding, a deterministic stand-in with the same code path (entropy models, likelihoods, aux optimizer).

    Neural DSC's conditional VQ-VAE keeps its codebook in buffers updated by EMA from the batch, initialises it from
    the batch (data_init) and re-seeds dead codes from it: with 2 processes the cluster counts and sums are summed
    over the ranks and the rows are drawn by rank 0 from the gathered global batch, so both ranks make the update the
    1-process run makes. It trains with a plateau schedule decided by validation (3 samples: 2 on rank 0, 1 on rank
    1, reduced over the ranks), so the learning rates must agree step by step too.

    Tolerances: the two runs differ only in the order of float additions (gradients and codebook statistics summed
    per rank, then over the ranks). Measured largest relative gap of the losses over the 20 steps: 2.7e-7 for
    balle2018 (float32), 3.3e-16 for Neural DSC; largest buffer gap 0 and 1.1e-14. The bounds are the issue's: losses
    rtol 1e-4, buffers 1e-5. Neural DSC runs in float64: in float32 a last-bit difference flipped the nearest code of
    one latent in a near tie (argmin), which moved two cluster counts by 0.01 x 0.99^k (measured 0.018) - a real
    float-order effect, not a difference in what the ranks compute; float64 takes the ties out of reach.
    The batch-norm model checks the guard: a buffer each rank updates from its own shard stops training."""
    pytest.importorskip("torch.distributed")
    one = _run_codecs(tmp_path, 1)[0]
    two = _run_codecs(tmp_path, 2)
    assert one["processes"] == 1 and two[0]["processes"] == two[1]["processes"] == 2
    assert one["manifest_processes"] == 1 and two[0]["manifest_processes"] == 2 and "manifest_processes" not in two[1]
    for name in ("balle2018", "neural_dsc"):
        a, b, b1 = one[name], two[0][name], two[1][name]
        assert b["data_parallel"]["broadcast_buffers"] is False and a["data_parallel"] is None
        assert len(a["losses"]) == len(b["losses"]) == 20
        assert b["losses"] == pytest.approx(a["losses"], rel=1e-4), name
        assert b["losses"] == b1["losses"]  # the logged means are the same on both ranks
        assert a["losses"][-1] < a["losses"][0], name  # it learns: not two flat lines
        assert b["lrs"] == b1["lrs"] == pytest.approx(a["lrs"], rel=1e-12), name
        assert a["buffers"].keys() == b["buffers"].keys()
        for key in a["buffers"]:
            assert b["buffers"][key] == pytest.approx(a["buffers"][key], rel=1e-5, abs=1e-5), (name, key)
            assert b["buffers"][key] == b1["buffers"][key], (name, key)  # bitwise equal on both ranks
    nd, nd2 = one["neural_dsc"], two[0]["neural_dsc"]
    # the codebook learned (EMA, data init): not its initial values, and cluster counts that moved
    assert len(nd["buffers"]["vq.embed"]) == 16 * 8
    assert max(abs(v - 1.0) for v in nd["buffers"]["vq.cluster_size"]) > 0.1
    # the plateau rule acted on the reduced validation, at the same steps in both runs
    assert [v["step"] for v in nd2["validation"]] == [v["step"] for v in nd["validation"]] == list(range(2, 21, 2))
    for u, v in zip(nd["validation"], nd2["validation"]):
        assert v["loss"] == pytest.approx(u["loss"], rel=1e-4)
    assert min(nd["lrs"]) < max(nd["lrs"])  # the schedule did lower the learning rate (measured: from step 13)
    # a buffer each rank updates from its own shard (batch norm) is refused with the names of what differs
    assert one["bn_error"] is None
    for r in (0, 1):
        assert "norm.running_mean" in two[r]["bn_error"] and "SyncBatchNorm" in two[r]["bn_error"]


# ---------------------------------------------------------------- launching (no processes started)
def test_launch_command_single_node_and_multi_node():
    from benchmark.errors import ConfigError
    from benchmark.training.distributed import launch_command

    one = launch_command(4, ["train", "-m", "balle2018"])
    assert one[1:] == ["-m", "torch.distributed.run", "--nproc-per-node=4", "--standalone", "-m", "cli.main", "train",
                       "-m", "balle2018"]
    many = launch_command(8, ["train"], nnodes="2", rdzv_endpoint="node01:29400")
    assert "--standalone" not in many
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=node01:29400", "--nproc-per-node=8"} <= set(many)
    with pytest.raises(ConfigError, match="--rdzv-endpoint"):
        launch_command(8, ["train"], nnodes="2")
    with pytest.raises(ConfigError, match="at least 1"):
        launch_command(0, ["train"])


def test_relaunch_drops_the_launch_options(monkeypatch):
    import subprocess as sp

    from cli import main

    seen = []
    monkeypatch.setattr(sp, "call", lambda cmd: seen.append(cmd) or 0)
    argv = ["train", "--devices", "2", "-m", "neural_dsc", "--nnodes=2", "--rdzv-endpoint", "h:1", "--device", "cuda"]
    assert main._relaunch(2, argv, "2", "h:1") == 0
    (cmd,) = seen
    assert cmd[cmd.index("cli.main") + 1:] == ["train", "-m", "neural_dsc", "--device", "cuda"]
    assert "--rdzv-endpoint=h:1" in cmd and "--nproc-per-node=2" in cmd


def test_rank_device_puts_each_process_of_a_node_on_its_own_gpu(monkeypatch):
    from benchmark.errors import ConfigError
    from benchmark.training.distributed import rank_device

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert rank_device("cuda") == "cuda" and rank_device("cuda:1") == "cuda:1"  # one process: as asked
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert rank_device("cpu") == "cpu"
    assert rank_device("cuda") == "cuda:1"
    with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES"):
        rank_device("cuda:0")  # two processes of this node on GPU 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # one process per node (multi-node): the GPU it names
    assert rank_device("cuda:0") == "cuda:0"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    with pytest.raises(ConfigError, match="only 1 GPU"):
        rank_device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ConfigError, match="LOCAL_RANK"):
        rank_device("cuda")


# ---------------------------------------------------------------- the training sandbox (benchmark/evaluation/sandbox.py)
RENDEZVOUS_CHILD = textwrap.dedent(
    """
    import os, sys
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo")
    t = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(t)
    if dist.get_rank() == 0:
        open(os.path.join(sys.argv[1], "sum.txt"), "w").write(f"{t.item():g} {os.environ['MASTER_ADDR']}")
    dist.destroy_process_group()
    """
)


def test_a_multi_node_train_role_keeps_the_network_and_no_other_role_does(tmp_path):
    from benchmark.evaluation import sandbox

    plain = sandbox.new_role(tmp_path, "train", {})
    wide = sandbox.new_role(tmp_path, "train", {}, processes=2, network=True)
    assert "--share-net" not in sandbox._bwrap_argv(plain) and "--unshare-all" in sandbox._bwrap_argv(plain)
    argv = sandbox._bwrap_argv(wide)
    assert "--unshare-all" in argv and "--share-net" in argv  # everything else stays unshared
    assert "/etc/hosts" in argv  # names of the rendezvous host resolve
    # a zygote's children get a fresh network namespace with loopback down: multi-process roles never use one
    zygote = object.__new__(sandbox.Zygote)
    zygote.binds = [(tmp_path.resolve(), True)]
    assert zygote.serves(plain)
    assert not zygote.serves(sandbox.new_role(tmp_path, "train", {}, processes=2))
    assert not zygote.serves(wide)


@pytest.mark.slow
def test_two_gloo_processes_rendezvous_over_loopback_inside_one_training_sandbox(tmp_path):
    """torchrun --standalone in a bubblewrap sandbox without the network (its own network namespace): the two
    processes meet on 127.0.0.1, which bubblewrap brings up in the new namespace."""
    from benchmark.evaluation import sandbox

    if sandbox.sandbox_problem():
        pytest.skip(f"no sandbox here: {sandbox.sandbox_problem()}")
    role = sandbox.new_role(tmp_path, "train", {}, processes=2)
    (role.folder / "child.py").write_text(RENDEZVOUS_CHILD)
    argv = sandbox._bwrap_argv(role)
    assert "--share-net" not in argv
    cmd = [argv[0], "--clearenv", *argv[1:], "--", sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc-per-node=2", str(role.folder / "child.py"), str(role.out)]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, env=sandbox._clean_env())
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    total, addr = (role.out / "sum.txt").read_text().split()
    assert total == "3"  # 1 + 2: both ranks took part
    assert addr in ("127.0.0.1", "localhost") or addr.startswith("127.")


def test_run_with_devices_refuses_in_process_training(tmp_path, cli_runner):
    """--devices trains in the train role's processes; at --isolation none there is no role to start them in."""
    from cli.main import app

    res = cli_runner.invoke(app, ["run", "-m", "balle2017", "--devices", "2", "--isolation", "none", "--budget", "smoke",
                                  "--limit", "1", "--out", str(tmp_path), "--no-leaderboard", "-q"])
    assert res.exit_code != 0
    assert "--devices 2 trains in the train role's processes" in res.output and "bench train --devices" in res.output


@pytest.mark.slow
def test_bench_run_trains_neural_dsc_with_two_processes_inside_the_train_sandbox(tmp_path, cli_runner):
    """`bench run --devices 2`: the train role runs torchrun inside its sandbox (loopback rendezvous), the EMA
    codebook's collectives run on both ranks, rank 0 saves the weights and answers; the result and the manifest
    record 2 processes (about 70 s on 2 shared cores)."""
    from benchmark.evaluation import sandbox
    from cli.main import app

    if sandbox.sandbox_problem():
        pytest.skip(f"no sandbox here: {sandbox.sandbox_problem()}")
    tiny = ["bits=2", "ch=8", "n_res=1", "emb_dim=8", "prior_dim=16", "prior_layers=1", "prior_heads=2", "steps=4",
            "batch_size=2", "crop=64", "prior_steps=2", "prior_batch_size=2", "val_samples=1"]
    res = cli_runner.invoke(app, ["run", "-m", "neural_dsc", "--budget", "smoke", "--devices", "2", "--limit", "1",
                                  "--isolation", "sandbox", "--out", str(tmp_path), "--no-leaderboard", "-q",
                                  *[a for o in tiny for a in ("--option", o)]])
    assert res.exit_code == 0, res.output[-3000:]
    (result,) = tmp_path.glob("*/*/neural_dsc.json")
    record = json.loads(result.read_text())
    assert record["isolation"] == "sandbox" and record["training"]["processes"] == 2
    manifest = json.loads((result.parent / "weights" / "neural_dsc" / "manifest.json").read_text())
    assert manifest["training"]["processes"] == 2
    assert record["points"][0]["bpp"] > 0


@pytest.mark.slow
def test_the_multi_node_launch_command_rendezvouses_two_nodes(tmp_path):
    """Two "nodes" on this machine, each started with the torchrun options `launch_command` gives for --nnodes 2
    and a c10d rendezvous endpoint: they meet and form one group of 2 (what `bench train --nnodes` relies on)."""
    import socket

    from benchmark.training.distributed import launch_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = launch_command(1, [], nnodes="2", rdzv_endpoint=f"127.0.0.1:{port}", rdzv_id=f"test-{port}")
    prefix = cmd[: cmd.index("cli.main") - 1]  # the torchrun part; the script below instead of `-m cli.main`
    script = tmp_path / "child.py"
    script.write_text(RENDEZVOUS_CHILD)
    outs = [tmp_path / f"node{i}" for i in range(2)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for out in outs:
        out.mkdir()
        procs.append(subprocess.Popen(prefix + [str(script), str(out)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True))
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()[-3000:]
    written = [(o / "sum.txt").read_text().split()[0] for o in outs if (o / "sum.txt").exists()]
    assert written == ["3"]  # one rank 0 over both nodes; 1 + 2: both took part
