"""The one training loop every learned codec uses (rate-distortion or not).

A method plugs in with a model and a loss closure::

    from benchmark.training.trainer import TrainConfig, rd_loss_fn, train

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
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.training import distributed
from benchmark.contract.budgets import BUDGETS, MethodBudget, TrainConfig, resolve_budget  # noqa: F401  (re-exported)
from benchmark.training.checkpoint import (CHECKPOINT_FORMAT, optim_from_tensors, optim_to_tensors, publish, read_checkpoint,  # noqa: F401
                         rng_state, set_rng_state)
from benchmark.contract.data import Batch, Sample, collate_samples
from benchmark.errors import ConfigError, TrainingError
from benchmark.safety.jsonsafe import jsonable
from benchmark.training.metrics_log import METRICS_FILE, METRICS_ROWS, MetricsLog
from benchmark.progress import Reporter, progress_enabled  # noqa: F401  (progress_enabled: re-exported)
from benchmark.training.weights import state_dict_of, state_dict_sha256

LossFn = Callable[[torch.nn.Module, Batch], Mapping[str, Any]]


def check_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device!r} requested but MPS is not available here; use --device cpu")
    return dev


# ---------------------------------------------------------------- losses
def bits_from_likelihoods(likelihoods: Any) -> torch.Tensor:
    """Total -log2 likelihood over a dict / list (possibly nested) of likelihood tensors."""
    if isinstance(likelihoods, torch.Tensor):
        return -torch.log2(likelihoods).sum()
    if isinstance(likelihoods, Mapping):
        likelihoods = list(likelihoods.values())
    total = None
    for item in likelihoods:
        b = bits_from_likelihoods(item)
        total = b if total is None else total + b
    if total is None:
        raise TrainingError("model returned no likelihoods")
    return total


def rd_loss(output: Mapping[str, Any], x: torch.Tensor, lmbda: float, metric: str = "mse", ms_ssim_win: int = 11) -> dict[str, torch.Tensor]:
    """The standard rate-distortion loss of CompressAI's models.

    mse:     loss = lambda * 255^2 * MSE(x, x_hat) + bpp
    ms-ssim: loss = lambda * (1 - MS-SSIM(x, x_hat)) + bpp
    bpp = total -log2 likelihood / (batch * H * W)."""
    n, _, h, w = x.shape
    bpp = bits_from_likelihoods(output["likelihoods"]) / float(n * h * w)
    x_hat = output["x_hat"]
    mse = F.mse_loss(x_hat, x)
    logs: dict[str, torch.Tensor] = {}
    if metric == "mse":
        loss = lmbda * 255.0**2 * mse + bpp
    elif metric in ("ms-ssim", "ms_ssim", "msssim"):
        from pytorch_msssim import ms_ssim

        m = ms_ssim(x_hat, x, data_range=1.0, win_size=ms_ssim_win)
        loss = lmbda * (1.0 - m) + bpp
        logs["ms_ssim"] = m.detach()
    else:
        raise ConfigError(f"unknown distortion metric {metric!r}; use 'mse' or 'ms-ssim'")
    psnr = -10.0 * torch.log10(mse.detach().clamp_min(1e-10))
    return {"loss": loss, "bpp": bpp.detach(), "mse": mse.detach(), "psnr": psnr, **logs}


def compressai_aux_loss(model: torch.nn.Module) -> torch.Tensor | None:
    """CompressAI's auxiliary loss (entropy-bottleneck quantiles), or None for a model without one."""
    fn = getattr(model, "aux_loss", None)
    if fn is None:
        return None
    val = fn()
    return val if isinstance(val, torch.Tensor) else None


def rd_loss_fn(lmbda: float, metric: str = "mse", forward: Callable[[torch.nn.Module, Batch], Mapping[str, Any]] | None = None,
               ms_ssim_win: int = 11) -> LossFn:
    """A loss closure for CompressAI-style models: ``forward(model, batch)`` (default ``model(batch.x)``)
    must return ``x_hat`` and ``likelihoods``; the closure adds the RD loss and the aux loss."""

    def loss_fn(model: torch.nn.Module, batch: Batch) -> dict[str, Any]:
        out = forward(model, batch) if forward is not None else model(batch.x)
        res = rd_loss(out, batch.x, lmbda, metric, ms_ssim_win)
        res["aux_loss"] = compressai_aux_loss(model)
        return res

    return loss_fn


def split_parameters(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(main, aux) parameters as CompressAI separates them: aux = every '*.quantiles' parameter."""
    main, aux = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (aux if name.endswith("quantiles") else main).append(p)
    return main, aux


# ---------------------------------------------------------------- deterministic data order
def _mix(*parts: Any) -> int:
    """A 63-bit seed derived from the parts (stable across processes and Python versions)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def _gen(*parts: Any) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(_mix(*parts))
    return g


def _crop_pair(x: torch.Tensor, side: torch.Tensor | None, size: int | None, g: torch.Generator | None, flip: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crop x and side at the same place (random with `g`, centred without); pad first if too small."""
    if size is not None:
        h, w = x.shape[-2:]
        if h < size or w < size:
            ph, pw = max(0, size - h), max(0, size - w)
            x = F.pad(x[None], (0, pw, 0, ph), mode="replicate")[0]
            side = None if side is None else F.pad(side[None], (0, pw, 0, ph), mode="replicate")[0]
            h, w = x.shape[-2:]
        if g is None:
            top, left = (h - size) // 2, (w - size) // 2
        else:
            top = int(torch.randint(0, h - size + 1, (1,), generator=g))
            left = int(torch.randint(0, w - size + 1, (1,), generator=g))
        x = x[..., top : top + size, left : left + size]
        side = None if side is None else side[..., top : top + size, left : left + size]
    if flip:
        x = torch.flip(x, dims=(-1,))
        side = None if side is None else torch.flip(side, dims=(-1,))
    return x.contiguous(), None if side is None else side.contiguous()


class _TrainView(torch.utils.data.Dataset):
    """Indexed by (step, slot, index): the cropped sample for that slot of that step."""

    def __init__(self, ds: Any, crop: int | None, hflip: bool, seed: int):
        self.ds, self.crop, self.hflip, self.seed = ds, crop, hflip, seed

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int, int]) -> Sample:
        step, slot, idx = key
        s = self.ds[idx]
        g = _gen(self.seed, "crop", step, slot)
        flip = bool(self.hflip and torch.rand((), generator=g) < 0.5)
        x, side = _crop_pair(s.x, s.side, self.crop, g, flip)
        return Sample(x=x, side=side, source=s.source, name=s.name, label=s.label)


class _StepSampler(torch.utils.data.Sampler):
    """Yields, for steps start..end-1, the batch of (step, slot, index): epoch permutations of (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, start: int, end: int, seed: int):
        self.n, self.bs, self.start, self.end, self.seed = n, batch_size, start, end, seed
        self._perm_epoch = -1
        self._perm: list[int] = []

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch != self._perm_epoch:
            self._perm = torch.randperm(self.n, generator=_gen(self.seed, "perm", epoch)).tolist()
            self._perm_epoch = epoch
        return self._perm[offset]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for step in range(self.start, self.end):
            yield [(step, k, self._index(step * self.bs + k)) for k in range(self.bs)]

    def __len__(self) -> int:
        return max(0, self.end - self.start)


def data_position(step: int, batch_size: int, n: int) -> dict[str, int]:
    epoch, offset = divmod(step * batch_size, max(1, n))
    return {"epoch": epoch, "offset": offset, "samples_seen": step * batch_size}


def _seed_step(seed: int, step: int, rank: int = 0) -> None:
    """The global RNGs at the start of a step. Rank r > 0 of a data-parallel run gets a seed of its own, so that RNG
    drawn inside the loss (CompressAI's uniform quantisation noise) is independent across the ranks' shards."""
    s = _mix(seed, "step", step) if not rank else _mix(seed, "step", step, "rank", rank)
    torch.manual_seed(s)
    np.random.seed(s % (2**32))
    random.seed(s)


# ---------------------------------------------------------------- the loop
def _scalar(v: Any) -> float | None:
    if isinstance(v, torch.Tensor):
        return float(v.detach()) if v.numel() == 1 else None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


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


def _lr_factor(cfg: TrainConfig, step: int, plateau_scale: float) -> float:
    if cfg.schedule == "constant":
        f = 1.0
    elif cfg.schedule == "step":
        f = cfg.gamma ** sum(1 for m in cfg.milestones if step >= int(m * cfg.steps))
    elif cfg.schedule == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, cfg.steps))))
    else:  # plateau
        f = plateau_scale
    if cfg.warmup and step < cfg.warmup:
        f *= (step + 1) / cfg.warmup
    return max(f, cfg.min_lr / cfg.lr)


@torch.no_grad()
def validate(model: torch.nn.Module, loss_fn: LossFn, val_ds: Any, config: TrainConfig, device: torch.device) -> dict[str, float]:
    """Mean of the loss closure's scalars over the first `val_samples` validation samples (centre crops)."""
    n = min(len(val_ds), config.val_samples)
    if n == 0:
        return {}
    crop = config.val_crop or config.crop
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    try:
        items = [val_ds[i] for i in range(n)]
        for start in range(0, n, config.batch_size):
            chunk = []
            for s in items[start : start + config.batch_size]:
                x, side = _crop_pair(s.x, s.side, crop, None, False)
                chunk.append(Sample(x=x, side=side, source=s.source, name=s.name, label=s.label))
            if len({tuple(c.x.shape) for c in chunk}) > 1:
                batches = [collate_samples([c]) for c in chunk]
            else:
                batches = [collate_samples(chunk)]
            for b in batches:
                out = loss_fn(model, b.to(device))
                k = b.x.shape[0]
                for key, v in out.items():
                    val = _scalar(v)
                    if val is not None:
                        sums[key] = sums.get(key, 0.0) + val * k
                count += k
    finally:
        model.train(was_training)
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
        self.main_params, self.aux_params = _parameters(model, aux_parameters)
        self.opts: dict[str, torch.optim.Optimizer] = {"main": torch.optim.Adam(self.main_params, lr=cfg.lr, amsgrad=cfg.amsgrad)}
        if self.aux_params:
            self.opts["aux"] = torch.optim.Adam(self.aux_params, lr=cfg.aux_lr)
        # several processes (torchrun): DistributedDataParallel over the model and its loss (benchmark/training/distributed.py)
        self.ddp = self.group.wrap(distributed.LossModule(model, loss_fn, compressai_aux_loss if self.aux_params else None),
                                   dev) if self.group.world > 1 else None
        self.ddp_checked = False
        self.state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT, "fingerprint": self.run_dir.name[4:], "tag": tag, "seed": seed,
            "config": cfg.as_dict(), "step": 0, "steps": cfg.steps, "plateau_scale": 1.0, "plateau_bad": 0,
            "best_val": None, "best_step": None, "history": [], "elapsed_s": 0.0, "done": False, "resumed_at": [],
        }
        self.window: list[dict[str, float]] = []
        self.metrics = MetricsLog(self.run_dir / METRICS_FILE, enabled=self.group.main)
        self.t_run = time.perf_counter()
        self.elapsed_before = 0.0
        self.last_ckpt_time = self.t_run

    # -- setup / resume
    def resume(self) -> None:
        """Load the last published checkpoint of this setup, if any (model, optimizers, RNG, schedule, logs)."""
        ck = read_checkpoint(self.run_dir, "last")
        if ck is not None:
            saved, tensors = ck
            self.model.load_state_dict(tensors["model.safetensors"])
            optim_from_tensors(self.opts, tensors.get("optim.safetensors", {}), saved["optim"])
            set_rng_state(saved["rng"])
            self.state.update({k: saved[k] for k in self.state if k in saved})
            self.window = list(saved.get("window", []))
            if not saved.get("done") or int(saved["step"]) < self.cfg.steps:
                self.state["resumed_at"] = list(self.state["resumed_at"]) + [saved["step"]]
            if int(saved["step"]) < self.cfg.steps:  # an extendable run continued to more steps
                self.state.update(done=False, steps=self.cfg.steps, config=self.cfg.as_dict())
        self.metrics.truncate_after(int(self.state["step"]))
        self.elapsed_before = float(self.state["elapsed_s"])
        self.t_run = self.last_ckpt_time = time.perf_counter()
        self.group.barrier()  # no rank starts before every rank has read the checkpoint

    # -- checkpoints
    def snapshot_state(self) -> dict[str, Any]:
        _, optim_meta = optim_to_tensors(self.opts)
        return {**self.state, "elapsed_s": self.elapsed(), "rng": rng_state(), "optim": optim_meta,
                "window": self.window[-self.cfg.log_window:],
                "data_position": data_position(int(self.state["step"]), self.cfg.batch_size, len(self.train_ds))}

    def elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self.t_run)

    def save_last(self) -> None:
        if self.group.main:
            ot, _ = optim_to_tensors(self.opts)
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
        logs = validate(self.model, self.loss_fn, self.val_ds, self.cfg, self.dev)
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

    # -- the step
    def step(self, step: int, batch: Batch) -> dict[str, float]:
        """One optimisation step (main optimizer, then the aux optimizer); returns the logged scalars."""
        cfg, opts = self.cfg, self.opts
        _seed_step(self.seed, step, self.group.rank)
        lr = cfg.lr * _lr_factor(cfg, step, float(self.state["plateau_scale"]))
        for g in opts["main"].param_groups:
            g["lr"] = lr
        if self.ddp is None:
            out = self.loss_fn(self.model, batch.to(self.dev))
            self.checked_loss(out, step)
            opts["main"].zero_grad(set_to_none=True)
            out["loss"].backward()
        else:
            out = self.ddp_backward(step, batch.to(self.dev))
        if cfg.clip_grad:
            norm = torch.nn.utils.clip_grad_norm_(self.main_params, cfg.clip_grad)
            if not torch.isfinite(norm):
                raise TrainingError(self.nonfinite("gradient norm", norm, step))
        opts["main"].step()
        if self.ddp is None:
            self.aux_step(out.get("aux_loss"), step)
        elif out.get("aux_loss") is not None and "aux" in opts:
            opts["aux"].step()  # its gradients came from the same backward pass, averaged by DDP
        logs = self.group.mean_scalars({k: v for k, v in ((k, _scalar(v)) for k, v in out.items()) if v is not None})
        logs["lr"] = lr
        return logs

    def checked_loss(self, out: Mapping[str, Any], step: int) -> torch.Tensor:
        loss = out["loss"]
        if not isinstance(loss, torch.Tensor) or not torch.isfinite(loss).all():
            raise TrainingError(self.nonfinite("loss", loss, step))
        return loss

    def ddp_backward(self, step: int, batch: Batch) -> Mapping[str, Any]:
        """DDP's forward runs the loss closure on this rank's shard; one backward pass of loss + aux_loss, during
        which DDP's reducer averages every gradient (main and aux) over the ranks (benchmark/training/distributed.py)."""
        out = self.ddp(batch)
        if not self.ddp_checked:  # first step of this run: which parameters each loss reaches
            self.ddp_checked = True
            names = {id(p): n for n, p in self.model.named_parameters()}
            aux = out.get("aux_loss") if "aux" in self.opts else None
            unused = distributed.gradient_reach(self.checked_loss(out, step), aux,
                                                [(names.get(id(p), "?"), p) for p in self.main_params],
                                                [(names.get(id(p), "?"), p) for p in self.aux_params])
            if unused:  # DDP would wait for gradients that never come: rebuild it to look for unused ones, redo
                module, self.ddp = self.ddp.module, None
                self.ddp = self.group.wrap(module, self.dev, find_unused=True)
                _seed_step(self.seed, step, self.group.rank)
                out = self.ddp(batch)
        loss = self.checked_loss(out, step)
        aux = out.get("aux_loss") if "aux" in self.opts else None
        if aux is not None and not torch.isfinite(aux).all():
            raise TrainingError(self.nonfinite("aux loss", aux, step))
        for opt in self.opts.values():
            opt.zero_grad(set_to_none=True)
        (loss if aux is None else loss + aux).backward()
        return out

    def aux_step(self, aux: Any, step: int) -> None:
        if aux is None and self.aux_params:
            aux = compressai_aux_loss(self.model)
        if aux is None or "aux" not in self.opts:
            return
        if not torch.isfinite(aux).all():
            raise TrainingError(self.nonfinite("aux loss", aux, step))
        self.opts["aux"].zero_grad(set_to_none=True)
        aux.backward()
        self.opts["aux"].step()

    def nonfinite(self, what: str, value: Any, step: int) -> str:
        return _nonfinite_msg(what, value, step, self.tag, self.run_dir, self.state, self.cfg)

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
        view = _TrainView(self.train_ds, cfg.crop, cfg.hflip, self.seed)
        sampler = _RankSampler(_StepSampler(len(self.train_ds), cfg.batch_size, start, cfg.steps, self.seed), self.group)
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
                    logs = self.step(step, batch)
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
            "this_call_s": round(time.perf_counter() - t_start, 3),
            "final_train": {k: round(v, 6) for k, v in final.items()},
            "best_val": state["best_val"], "best_step": state["best_step"], "validation": state["history"],
            "restored": restored, "weights_sha256": state_dict_sha256(self.model), "run_dir": str(self.run_dir),
            **({"processes": self.group.world, "data_parallel": self.data_parallel()} if self.ddp is not None else {}),
        })

    def data_parallel(self) -> dict[str, Any]:
        """How the ranks trained together (recorded in the training info)."""
        import torch.distributed as dist

        return {"wrapper": type(self.ddp).__qualname__, "backend": dist.get_backend(),
                "find_unused_parameters": bool(self.ddp.find_unused_parameters)}


def _parameters(model: torch.nn.Module, aux_parameters: list[torch.nn.Parameter] | None) -> tuple[list, list]:
    main_params, aux_params = split_parameters(model)
    if aux_parameters is not None:
        ids = {id(p) for p in aux_parameters}
        main_params = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        aux_params = list(aux_parameters)
    return main_params, aux_params


class _RankSampler(torch.utils.data.Sampler):
    """This process's share (by slot) of each global batch; the whole batch in a single process."""

    def __init__(self, steps: _StepSampler, group: distributed.Group):
        self.steps, self.group = steps, group

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for batch in self.steps:
            yield self.group.local(batch)

    def __len__(self) -> int:
        return len(self.steps)


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
    dev = check_device(device)
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
    return run.finish(t_start)


def _nonfinite_msg(what: str, value: Any, step: int, tag: str, run_dir: Path, state: Mapping[str, Any], cfg: TrainConfig) -> str:
    ref = run_dir / "last.json"
    kept = f"the last good checkpoint is kept in {run_dir}" if ref.exists() else "no checkpoint had been written yet"
    try:
        v = float(value.detach()) if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    except Exception:
        v = value
    return (f"training of {tag or 'the model'} stopped: non-finite {what} ({v}) at step {step + 1}/{cfg.steps}; {kept}. "
            f"Lower the learning rate (lr={cfg.lr}), enable gradient clipping, or check the data for NaN/Inf.")
