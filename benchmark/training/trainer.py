"""The one training loop every learned codec uses (rate-distortion or not).

A method plugs in with a model and a loss closure::

    from benchmark.training.trainer import train
    from benchmark.training.losses import rd_loss_fn
    from benchmark.contract.budgets import resolve_budget

    cfg = resolve_budget("quick", MY_BUDGETS, steps=500)  # MY_BUDGETS: {budget: MethodBudget} (benchmark/contract/budgets.py)
    info = train(model, rd_loss_fn(lmbda=0.0067), train_ds, val_ds, config=cfg,
                 workdir=workdir / "lambda=0.0067", seed=seed, device="cpu", tag="lambda=0.0067")

``loss_fn(model, batch: Batch) -> dict`` returns ``loss`` (a scalar tensor to minimise) and optionally
``aux_loss`` (CompressAI's entropy-bottleneck quantile loss, stepped by a separate optimizer over the
``*.quantiles`` parameters, as CompressAI does) and any scalar logs (``bpp``, ``mse``, ``psnr``, ...).
A method without a rate term (a VQ-VAE) or with an iterative loss (L1 over iterations) simply returns
its own ``loss``.

Guarantees:
- Data order, crops, flips and the global RNGs at every step are pure functions of (seed, step), so a run
  interrupted at any point (even SIGKILL) and rerun with the same workdir resumes from its last checkpoint
  and ends with the same weights as an uninterrupted run (same device, same thread count).
- Checkpoints: model as safetensors, optimizer tensors as safetensors, everything else (step, LR schedule,
  RNG states, best validation, data position, config) as JSON. Nothing is pickled. A checkpoint is written
  into a fresh folder and published by atomically replacing a small pointer file.
- A non-finite loss or gradient stops training with TrainingError; the last good checkpoint is kept.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from benchmark.training.losses import LossFn
from benchmark.training.sampling import RankSampler, StepSampler, TrainView, crop_pair, data_position
from benchmark.training.step import Optimisation, nonfinite_message, scalar
from benchmark.training import distributed
from benchmark.contract.budgets import TrainConfig
from benchmark.training.checkpoint import (CHECKPOINT_FORMAT, optim_from_tensors, optim_to_tensors, publish, read_checkpoint,
                         rng_state, set_rng_state)
from benchmark.contract.data import Sample, collate_samples
from benchmark.errors import ConfigError, TrainingError
from benchmark.safety.jsonsafe import jsonable
from benchmark.training.metrics_log import METRICS_FILE, METRICS_ROWS, MetricsLog
from benchmark.progress import Reporter
from benchmark.training.weights import state_dict_of, state_dict_sha256


def check_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device!r} requested but MPS is not available here; use --device cpu")
    return dev


# ---------------------------------------------------------------- losses


# ---------------------------------------------------------------- deterministic data order


# ---------------------------------------------------------------- the loop


def extendable(config: TrainConfig) -> bool:
    """True when the run's trajectory up to any step S does not depend on the total `steps`: a constant LR (with
    any warm-up) and the last weights kept. Such a run is fingerprinted without `steps`, so asking for more steps
    later continues its checkpoint (training in segments), and its weights at step S are those of a run of S
    steps from scratch: that is what makes learning-curve points reproducible with ``--option steps=S``."""
    return config.schedule == "constant" and config.restore == "last"


def _fingerprint(model: torch.nn.Module, config: TrainConfig, seed: int, tag: str, n_train: int) -> str:
    shapes = [(k, list(v.shape)) for k, v in model.named_parameters()]
    cfg = config.as_dict()
    if extendable(config):
        cfg.pop("steps")
    blob = json.dumps({"config": cfg, "seed": seed, "tag": tag, "params": shapes, "n_train": n_train,
                       "model": type(model).__qualname__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@torch.no_grad()
def validate(model: torch.nn.Module, loss_fn: LossFn, val_ds: Any, config: TrainConfig, device: torch.device,
             group: distributed.Group | None = None) -> dict[str, float]:
    """Mean of the loss closure's scalars over the first `val_samples` validation samples (centre crops).
    Data-parallel: rank r validates samples r, r+N, ... and the sums are added over the ranks, so every rank
    gets the same means (with fewer samples than ranks every rank validates them all)."""
    n = min(len(val_ds), config.val_samples)
    if n == 0:
        return {}
    group = group or distributed.Group()
    mine = range(group.rank, n, group.world) if n >= group.world else range(n)
    crop = config.val_crop or config.crop
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    try:
        items = [val_ds[i] for i in mine]
        for start in range(0, len(items), config.batch_size):
            chunk = []
            for s in items[start : start + config.batch_size]:
                x, side = crop_pair(s.x, s.side, crop, None, False)
                chunk.append(Sample(x=x, side=side, source=s.source, name=s.name, label=s.label))
            if len({tuple(c.x.shape) for c in chunk}) > 1:
                batches = [collate_samples([c]) for c in chunk]
            else:
                batches = [collate_samples(chunk)]
            for b in batches:
                out = loss_fn(model, b.to(device))
                k = b.x.shape[0]
                for key, v in out.items():
                    val = scalar(v)
                    if val is not None:
                        sums[key] = sums.get(key, 0.0) + val * k
                count += k
    finally:
        model.train(was_training)
    sums, count = group.reduce_sums(sums, count)
    return {k: v / count for k, v in sums.items()}


class _Run:
    """One call of `train`: setup and resume, the step, validation with the plateau rule, checkpoints, finish."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, train_ds: Any, val_ds: Any, cfg: TrainConfig, *,
                 workdir: Path, seed: int, dev: torch.device, tag: str, aux_parameters: list[torch.nn.Parameter] | None):
        self.model, self.loss_fn, self.train_ds, self.val_ds, self.cfg = model, loss_fn, train_ds, val_ds, cfg
        self.seed, self.dev, self.tag = seed, dev, tag
        self.group = distributed.group()
        self.group.check_batch(cfg.batch_size)
        model.to(dev)
        self.run_dir = Path(workdir) / f"run-{_fingerprint(model, cfg, seed, tag, len(train_ds))}"
        if extendable(cfg) and (prior := read_checkpoint(self.run_dir, "last")) is not None and int(prior[0]["step"]) > cfg.steps:
            self.run_dir = self.run_dir.with_name(f"{self.run_dir.name}-steps{cfg.steps}")  # past `steps`: a shorter run
        if self.group.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.run_dir.glob(".*.tmp"):
                shutil.rmtree(stale, ignore_errors=True)
        self.opt = Optimisation(model, loss_fn, cfg, self.group, dev, seed, aux_parameters, self.nonfinite)
        self.state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT, "fingerprint": self.run_dir.name[4:], "tag": tag, "seed": seed,
            "config": cfg.as_dict(), "step": 0, "steps": cfg.steps, "plateau_scale": 1.0, "plateau_bad": 0,
            "best_val": None, "best_step": None, "history": [], "elapsed_s": 0.0, "done": False, "resumed_at": [],
            "cpu_s": 0.0,
        }
        self.window: list[dict[str, float]] = []
        self.metrics = MetricsLog(self.run_dir / METRICS_FILE, enabled=self.group.main)
        self.t_run = time.perf_counter()
        self.elapsed_before = 0.0
        self.cpu_run, self.cpu_before = time.process_time(), 0.0  # CPU seconds of this process: robust to a loaded machine
        self.last_ckpt_time = self.t_run

    # -- setup / resume
    def resume(self) -> None:
        """Load the last published checkpoint of this setup, if any (model, optimizers, RNG, schedule, logs)."""
        ck = read_checkpoint(self.run_dir, "last")
        if ck is not None:
            saved, tensors = ck
            self.model.load_state_dict(tensors["model.safetensors"])
            optim_from_tensors(self.opt.opts, tensors.get("optim.safetensors", {}), saved["optim"])
            set_rng_state(saved["rng"])
            self.state.update({k: saved[k] for k in self.state if k in saved})
            self.window = list(saved.get("window", []))
            if not saved.get("done") or int(saved["step"]) < self.cfg.steps:
                self.state["resumed_at"] = list(self.state["resumed_at"]) + [saved["step"]]
            if int(saved["step"]) < self.cfg.steps:  # an extendable run continued to more steps
                self.state.update(done=False, steps=self.cfg.steps, config=self.cfg.as_dict())
        self.metrics.truncate_after(int(self.state["step"]))
        self.elapsed_before = float(self.state["elapsed_s"])
        if ck is not None and "cpu_s" not in ck[0]:  # a checkpoint written before CPU time was kept: unknown
            self.state["cpu_s"] = None
        self.cpu_before = self.state["cpu_s"]
        self.t_run = self.last_ckpt_time = time.perf_counter()
        self.cpu_run = time.process_time()
        self.group.barrier()  # no rank starts before every rank has read the checkpoint

    # -- checkpoints
    def snapshot_state(self) -> dict[str, Any]:
        _, optim_meta = optim_to_tensors(self.opt.opts)
        return {**self.state, "elapsed_s": self.elapsed(), "cpu_s": self.cpu_elapsed(), "rng": rng_state(), "optim": optim_meta,
                "window": self.window[-self.cfg.log_window:],
                "data_position": data_position(int(self.state["step"]), self.cfg.batch_size, len(self.train_ds))}

    def elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self.t_run)

    def cpu_elapsed(self) -> float | None:
        """CPU seconds of training summed over resumed segments (None when an earlier segment did not record it)."""
        return None if self.cpu_before is None else self.cpu_before + (time.process_time() - self.cpu_run)

    def save_last(self) -> None:
        self.opt.check_in_sync(int(self.state["step"]))  # every rank holds the weights rank 0 writes
        if self.group.main:
            ot, _ = optim_to_tensors(self.opt.opts)
            publish(self.run_dir, "last", int(self.state["step"]),
                    {"model.safetensors": state_dict_of(self.model), "optim.safetensors": ot}, self.snapshot_state())
        self.last_ckpt_time = time.perf_counter()

    def maybe_checkpoint(self, done_step: int) -> None:
        cfg = self.cfg
        if done_step >= cfg.steps:
            return
        due = (cfg.checkpoint_every and done_step % cfg.checkpoint_every == 0) or \
            (cfg.checkpoint_seconds and time.perf_counter() - self.last_ckpt_time >= cfg.checkpoint_seconds)
        if cfg.checkpoint_seconds and self.group.world > 1:  # every rank must agree on a time-based checkpoint
            due = bool(self.group.mean_scalars({"due": float(bool(due))})["due"] > 0)
        if due:
            self.save_last()

    # -- validation and the plateau rule
    def run_validation(self, step: int) -> None:
        if self.val_ds is None or len(self.val_ds) == 0:
            return
        logs = validate(self.model, self.loss_fn, self.val_ds, self.cfg, self.dev, self.group)  # the same on every rank
        if not logs or "loss" not in logs:
            return
        if not math.isfinite(logs["loss"]):
            raise TrainingError(f"validation loss is not finite ({logs['loss']}) at step {step} of {self.tag or 'training'}; "
                                f"the last good checkpoint is kept in {self.run_dir}; lower the learning rate (lr={self.cfg.lr})")
        self.state["history"] = list(self.state["history"]) + [{"step": step, **{k: round(v, 6) for k, v in logs.items()}}]
        self.metrics.write(step, "val", logs)
        if self.state["best_val"] is None or logs["loss"] < self.state["best_val"]:
            self.state["best_val"], self.state["best_step"], self.state["plateau_bad"] = logs["loss"], step, 0
            if self.cfg.keep_best and self.group.main:
                publish(self.run_dir, "best", step, {"model.safetensors": state_dict_of(self.model)}, self.snapshot_state())
            return
        self.state["plateau_bad"] = int(self.state["plateau_bad"]) + 1
        if self.cfg.schedule == "plateau" and self.state["plateau_bad"] >= self.cfg.plateau_patience:
            self.state["plateau_scale"] = float(self.state["plateau_scale"]) * self.cfg.gamma
            self.state["plateau_bad"] = 0

    def nonfinite(self, what: str, value: Any, step: int) -> str:
        return nonfinite_message(what, value, step, self.tag, self.run_dir, self.state, self.cfg)

    def record(self, done_step: int, logs: dict[str, float]) -> None:
        self.window.append(logs)
        if len(self.window) > self.cfg.log_window:
            del self.window[0]
        self.state["step"] = done_step
        if done_step % max(1, self.cfg.steps // METRICS_ROWS) == 0 or done_step == self.cfg.steps:
            self.metrics.write(done_step, "train", logs)

    # -- the loop
    def loader(self, start: int) -> Any:
        cfg = self.cfg
        view = TrainView(self.train_ds, cfg.crop, cfg.hflip, self.seed)
        sampler = RankSampler(StepSampler(len(self.train_ds), cfg.batch_size, start, cfg.steps, self.seed), self.group)
        return torch.utils.data.DataLoader(view, batch_sampler=sampler, collate_fn=collate_samples,
                                           num_workers=cfg.num_workers, pin_memory=self.dev.type == "cuda")

    def loop(self, progress: bool | None, on_step: Callable[[int, Mapping[str, float]], None] | None) -> None:
        cfg, start = self.cfg, int(self.state["step"])
        if start < cfg.steps:
            self.model.train()
            rep = Reporter(f"train {self.tag}".strip(), cfg.steps, start, enabled=progress if self.group.main else False,
                           fields=("loss", "bpp", "psnr"))
            with rep:
                for step, batch in zip(range(start, cfg.steps), self.loader(start)):
                    logs = self.opt.step(step, batch, float(self.state["plateau_scale"]))
                    done_step = step + 1
                    self.record(done_step, logs)
                    if cfg.val_every and done_step % cfg.val_every == 0 and done_step < cfg.steps:
                        self.run_validation(done_step)
                    self.maybe_checkpoint(done_step)
                    rep.update(done_step, **logs)
                    if on_step is not None:
                        on_step(done_step, logs)
        if not self.state["done"]:
            self.run_validation(cfg.steps)
            self.state["done"] = True
            self.save_last()

    # -- finish
    def finish(self, t_start: float) -> dict[str, Any]:
        """Restore the best weights if asked; the JSON-able summary for the result file's `training` field."""
        cfg, state = self.cfg, self.state
        restored = "last"
        if cfg.restore == "best" and cfg.keep_best and state["best_step"] is not None and state["best_step"] != cfg.steps:
            self.group.barrier()  # rank 0 has published the best checkpoint
            best = read_checkpoint(self.run_dir, "best")
            if best is not None:
                self.model.load_state_dict(best[1]["model.safetensors"])
                restored = "best"
        final = {}
        for k in sorted({k for w in self.window for k in w}):
            vals = [w[k] for w in self.window if isinstance(w.get(k), (int, float))]
            if vals:
                final[k] = sum(vals) / len(vals)
        return jsonable({
            "tag": self.tag, "steps": cfg.steps, "seed": self.seed, "device": str(self.dev), "config": cfg.as_dict(),
            "resumed_at": state["resumed_at"], "wall_s": round(self.elapsed(), 3),
            "cpu_s": None if (c := self.cpu_elapsed()) is None else round(c, 3),
            "this_call_s": round(time.perf_counter() - t_start, 3),
            "final_train": {k: round(v, 6) for k, v in final.items()},
            "best_val": state["best_val"], "best_step": state["best_step"], "validation": state["history"],
            "restored": restored, "weights_sha256": state_dict_sha256(self.model), "run_dir": str(self.run_dir),
            "processes": self.group.world,
            **({"data_parallel": self.opt.data_parallel()} if self.opt.ddp is not None else {}),
        })


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    train_ds: Any,
    val_ds: Any = None,
    *,
    config: TrainConfig,
    workdir: Path,
    seed: int = 0,
    device: str = "cpu",
    tag: str = "",
    progress: bool | None = None,
    aux_parameters: list[torch.nn.Parameter] | None = None,
    on_step: Callable[[int, Mapping[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train `model` in place with `loss_fn`; resume from `workdir` if it holds a run of the same setup.

    Returns a JSON-able dict for the result file's `training` field. `on_step(step, logs)` is called after
    every completed optimisation step (step counts from 1); tests use it to interrupt a run. Inside a
    torchrun process group the global batch is split across the ranks and only rank 0 writes files."""
    t_start = time.perf_counter()
    dev = check_device(distributed.rank_device(device))  # under torchrun, cuda is this process's GPU
    if train_ds is None or len(train_ds) == 0:
        raise TrainingError(f"no training samples for {tag or type(model).__name__}")
    run = _Run(model, loss_fn, train_ds, val_ds, config, workdir=workdir, seed=seed, dev=dev, tag=tag,
               aux_parameters=aux_parameters)
    caller_rng = rng_state()
    try:
        run.resume()
        run.loop(progress, on_step)
    finally:
        set_rng_state(caller_rng)
        run.metrics.close()  # its TensorBoard writer
    return run.finish(t_start)


