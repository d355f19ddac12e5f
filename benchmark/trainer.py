"""The one training loop every learned codec uses (rate-distortion or not).

A method plugs in with a model and a loss closure::

    from benchmark.trainer import TrainConfig, rd_loss_fn, train

    cfg = resolve_budget("quick", MY_BUDGETS, steps=500)          # or TrainConfig(...)
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

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .data import Batch, Sample, collate_samples
from .errors import ConfigError, TrainingError
from .weights import read_safetensors, sha256_file, state_dict_of, state_dict_sha256, write_safetensors

CHECKPOINT_FORMAT = "dsc-bench-checkpoint"
BUDGET_NAMES = ("smoke", "quick", "paper")

LossFn = Callable[[torch.nn.Module, Batch], Mapping[str, Any]]


# ---------------------------------------------------------------- configuration
@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the seed and the model)."""

    steps: int
    batch_size: int = 8
    crop: int | None = 256  # random crop of x and side at the same location; None: whole images (same size)
    lr: float = 1e-4
    aux_lr: float = 1e-3
    schedule: str = "constant"  # constant | step | cosine | plateau
    milestones: tuple[float, ...] = (0.8,)  # step schedule: fractions of `steps` where lr *= gamma
    gamma: float = 0.1
    plateau_patience: int = 10  # plateau schedule: validations without improvement before lr *= gamma
    min_lr: float = 0.0
    warmup: int = 0  # linear warm-up steps
    amsgrad: bool = False
    clip_grad: float | None = 1.0
    hflip: bool = False  # random horizontal flip of x and side together
    val_every: int = 0  # validate every N steps (0: only at the end)
    val_samples: int = 16  # first N validation samples, centre-cropped to val_crop
    val_crop: int | None = None  # default: crop
    checkpoint_every: int = 100  # steps
    checkpoint_seconds: float = 120.0  # also checkpoint when this much time passed since the last one
    keep_best: bool = True
    restore: str = "best"  # weights left in the model at the end: best (by validation loss) | last
    num_workers: int = 0
    log_window: int = 50  # steps averaged into the reported final training losses

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1:
            raise ConfigError(f"steps must be >= 0 and batch_size >= 1 (got {self.steps}, {self.batch_size})")
        if self.schedule not in ("constant", "step", "cosine", "plateau"):
            raise ConfigError(f"unknown lr schedule {self.schedule!r}; use constant, step, cosine or plateau")
        if self.restore not in ("best", "last"):
            raise ConfigError(f"restore must be 'best' or 'last', got {self.restore!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr}")

    def replace(self, **changes: Any) -> "TrainConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(sorted(unknown))}")
        if "milestones" in changes and changes["milestones"] is not None:
            changes["milestones"] = tuple(changes["milestones"])
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


# Generic budgets (methods usually pass their own table to resolve_budget).
BUDGETS: dict[str, TrainConfig] = {
    "smoke": TrainConfig(steps=20, batch_size=4, crop=64, lr=1e-3, val_samples=2, checkpoint_every=10),
    "quick": TrainConfig(steps=500, batch_size=8, crop=64, lr=1e-3, schedule="cosine", val_every=250, val_samples=4),
    "paper": TrainConfig(steps=1_000_000, batch_size=16, crop=256, lr=1e-4, schedule="plateau", val_every=5000,
                         val_samples=64, checkpoint_every=1000, num_workers=4),
}


def resolve_budget(budget: str | TrainConfig, table: Mapping[str, TrainConfig] | None = None, **overrides: Any) -> TrainConfig:
    """The TrainConfig of a budget name (from `table`, else the generic BUDGETS), with overrides applied.

    Overrides whose value is None are ignored, so options can be passed through unconditionally."""
    if isinstance(budget, TrainConfig):
        cfg = budget
    else:
        table = BUDGETS if table is None else table
        if budget not in table:
            raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(table)}")
        cfg = table[budget]
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(**changes) if changes else cfg


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


def _seed_step(seed: int, step: int) -> None:
    s = _mix(seed, "step", step)
    torch.manual_seed(s)
    np.random.seed(s % (2**32))
    random.seed(s)


# ---------------------------------------------------------------- RNG state as JSON
def _rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py[0], list(py[1]), py[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ---------------------------------------------------------------- optimizer state <-> safetensors + JSON
def _optim_to_tensors(opts: Mapping[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, opt in opts.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"{name}.{pid}.{k}"] = v.detach().to("cpu").contiguous().clone()
                else:
                    scalars.setdefault(str(pid), {})[k] = v
        groups = []
        for g in sd["param_groups"]:
            groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
        meta[name] = {"param_groups": groups, "scalars": scalars, "tuple_keys": sorted({k for g in sd["param_groups"] for k, v in g.items() if isinstance(v, tuple)})}
    return tensors, meta


def _optim_from_tensors(opts: Mapping[str, torch.optim.Optimizer], tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    for name, opt in opts.items():
        m = meta[name]
        state: dict[int, dict[str, Any]] = {}
        prefix = f"{name}."
        for key, v in tensors.items():
            if not key.startswith(prefix):
                continue
            pid, k = key[len(prefix):].split(".", 1)
            state.setdefault(int(pid), {})[k] = v
        for pid, sc in m.get("scalars", {}).items():
            state.setdefault(int(pid), {}).update(sc)
        tuple_keys = set(m.get("tuple_keys", []))
        groups = [{k: (tuple(v) if k in tuple_keys else v) for k, v in g.items()} for g in m["param_groups"]]
        opt.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------- checkpoints
def _write_json_atomic(path: Path, obj: Any) -> None:
    from .results import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _publish(run_dir: Path, kind: str, step: int, files: Mapping[str, Mapping[str, torch.Tensor]], state: dict[str, Any]) -> Path:
    """Write a complete checkpoint folder, then atomically point `<kind>.json` at it; drop older folders."""
    final = run_dir / f"{kind}-{step:09d}"
    tmp = run_dir / f".{kind}-{step:09d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    hashes = {}
    for fname, tensors in files.items():
        hashes[fname] = write_safetensors(tmp / fname, tensors)
    state = {**state, "files": hashes}
    _write_json_atomic(tmp / "state.json", _finite(state))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_json_atomic(run_dir / f"{kind}.json", {"dir": final.name, "step": step})
    for old in run_dir.glob(f"{kind}-*"):
        if old.is_dir() and old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(run_dir: Path, kind: str = "last") -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]] | None:
    """(state, {file: tensors}) of the published `kind` checkpoint, or None if there is none."""
    pointer = run_dir / f"{kind}.json"
    if not pointer.is_file():
        return None
    try:
        ref = json.loads(pointer.read_text())
        folder = run_dir / ref["dir"]
        state = json.loads((folder / "state.json").read_text())
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise TrainingError(f"checkpoint pointer {pointer} is unreadable ({exc}); delete {run_dir} to start over") from exc
    if state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{folder} is not a dsc-bench checkpoint")
    tensors = {}
    for fname, digest in state.get("files", {}).items():
        path = folder / fname
        if not path.is_file() or sha256_file(path) != digest:
            raise TrainingError(f"checkpoint file {path} is missing or damaged (sha256 mismatch); delete {run_dir} to start over")
        tensors[fname] = read_safetensors(path)
    return state, tensors


# ---------------------------------------------------------------- progress
class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def update(self, *a, **kw):
        pass


class _RichBar:
    def __init__(self, desc: str, total: int, completed: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]} bpp {task.fields[bpp]} PSNR {task.fields[psnr]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
        )
        self.task = self.progress.add_task(desc, total=total, completed=completed, loss="-", bpp="-", psnr="-")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *a):
        return self.progress.__exit__(*a)

    def update(self, completed: int, logs: Mapping[str, float]):
        def f(k, fmt):
            v = logs.get(k)
            return "-" if v is None else format(v, fmt)

        self.progress.update(self.task, completed=completed, loss=f("loss", ".4g"), bpp=f("bpp", ".3f"), psnr=f("psnr", ".2f"))


def progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if os.environ.get("BENCH_PROGRESS", "").lower() in ("0", "false", "no") or "PYTEST_CURRENT_TEST" in os.environ:
        return False
    return sys.stderr.isatty()


# ---------------------------------------------------------------- the loop
def _scalar(v: Any) -> float | None:
    if isinstance(v, torch.Tensor):
        return float(v.detach()) if v.numel() == 1 else None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


def _fingerprint(model: torch.nn.Module, config: TrainConfig, seed: int, tag: str, n_train: int) -> str:
    shapes = [(k, list(v.shape)) for k, v in model.named_parameters()]
    blob = json.dumps({"config": config.as_dict(), "seed": seed, "tag": tag, "params": shapes, "n_train": n_train,
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
    every completed optimisation step (step counts from 1); tests use it to interrupt a run."""
    t_start = time.perf_counter()
    dev = check_device(device)
    if train_ds is None or len(train_ds) == 0:
        raise TrainingError(f"no training samples for {tag or type(model).__name__}")
    cfg = config
    model.to(dev)
    fp = _fingerprint(model, cfg, seed, tag, len(train_ds))
    run_dir = Path(workdir) / f"run-{fp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)

    main_params, aux_params = split_parameters(model)
    if aux_parameters is not None:
        ids = {id(p) for p in aux_parameters}
        main_params = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        aux_params = list(aux_parameters)
    opts: dict[str, torch.optim.Optimizer] = {"main": torch.optim.Adam(main_params, lr=cfg.lr, amsgrad=cfg.amsgrad)}
    if aux_params:
        opts["aux"] = torch.optim.Adam(aux_params, lr=cfg.aux_lr)

    caller_rng = _rng_state()
    state: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT, "fingerprint": fp, "tag": tag, "seed": seed, "config": cfg.as_dict(),
        "step": 0, "steps": cfg.steps, "plateau_scale": 1.0, "plateau_bad": 0, "best_val": None, "best_step": None,
        "history": [], "elapsed_s": 0.0, "done": False, "resumed_at": [],
    }
    window: list[dict[str, float]] = []
    ck = read_checkpoint(run_dir, "last")
    if ck is not None:
        saved, tensors = ck
        model.load_state_dict(tensors["model.safetensors"])
        _optim_from_tensors(opts, tensors.get("optim.safetensors", {}), saved["optim"])
        _set_rng_state(saved["rng"])
        state.update({k: saved[k] for k in state if k in saved})
        window = list(saved.get("window", []))
        if not saved.get("done"):
            state["resumed_at"] = list(state["resumed_at"]) + [saved["step"]]
    start = int(state["step"])
    elapsed_before = float(state["elapsed_s"])
    t_run = time.perf_counter()

    def snapshot_state() -> dict[str, Any]:
        _, optim_meta = _optim_to_tensors(opts)
        return {**state, "elapsed_s": elapsed_before + (time.perf_counter() - t_run), "rng": _rng_state(),
                "optim": optim_meta, "window": window[-cfg.log_window:],
                "data_position": data_position(int(state["step"]), cfg.batch_size, len(train_ds))}

    def save_last() -> None:
        ot, _ = _optim_to_tensors(opts)
        _publish(run_dir, "last", int(state["step"]), {"model.safetensors": state_dict_of(model), "optim.safetensors": ot}, snapshot_state())

    def run_validation(step: int) -> None:
        if val_ds is None or len(val_ds) == 0:
            return
        logs = validate(model, loss_fn, val_ds, cfg, dev)
        if not logs or "loss" not in logs:
            return
        if not math.isfinite(logs["loss"]):
            raise TrainingError(f"validation loss is not finite ({logs['loss']}) at step {step} of {tag or 'training'}; "
                                f"the last good checkpoint is kept in {run_dir}; lower the learning rate (lr={cfg.lr})")
        state["history"] = list(state["history"]) + [{"step": step, **{k: round(v, 6) for k, v in logs.items()}}]
        best = state["best_val"]
        if best is None or logs["loss"] < best:
            state["best_val"], state["best_step"] = logs["loss"], step
            state["plateau_bad"] = 0
            if cfg.keep_best:
                _publish(run_dir, "best", step, {"model.safetensors": state_dict_of(model)}, snapshot_state())
        else:
            state["plateau_bad"] = int(state["plateau_bad"]) + 1
            if cfg.schedule == "plateau" and state["plateau_bad"] >= cfg.plateau_patience:
                state["plateau_scale"] = float(state["plateau_scale"]) * cfg.gamma
                state["plateau_bad"] = 0

    last_ckpt_time = time.perf_counter()
    try:
        if start < cfg.steps:
            model.train()
            view = _TrainView(train_ds, cfg.crop, cfg.hflip, seed)
            sampler = _StepSampler(len(train_ds), cfg.batch_size, start, cfg.steps, seed)
            loader = torch.utils.data.DataLoader(view, batch_sampler=sampler, collate_fn=collate_samples,
                                                 num_workers=cfg.num_workers, pin_memory=dev.type == "cuda")
            bar = _RichBar(f"train {tag}".strip(), cfg.steps, start) if progress_enabled(progress) else _NoBar()
            with bar:
                for step, batch in zip(range(start, cfg.steps), loader):
                    _seed_step(seed, step)
                    lr = cfg.lr * _lr_factor(cfg, step, float(state["plateau_scale"]))
                    for g in opts["main"].param_groups:
                        g["lr"] = lr
                    batch = batch.to(dev)
                    out = loss_fn(model, batch)
                    loss = out["loss"]
                    if not isinstance(loss, torch.Tensor) or not torch.isfinite(loss).all():
                        raise TrainingError(_nonfinite_msg("loss", loss, step, tag, run_dir, state, cfg))
                    opts["main"].zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.clip_grad:
                        norm = torch.nn.utils.clip_grad_norm_(main_params, cfg.clip_grad)
                        if not torch.isfinite(norm):
                            raise TrainingError(_nonfinite_msg("gradient norm", norm, step, tag, run_dir, state, cfg))
                    opts["main"].step()
                    aux = out.get("aux_loss")
                    if aux is None and aux_params:
                        aux = compressai_aux_loss(model)
                    if aux is not None and "aux" in opts:
                        if not torch.isfinite(aux).all():
                            raise TrainingError(_nonfinite_msg("aux loss", aux, step, tag, run_dir, state, cfg))
                        opts["aux"].zero_grad(set_to_none=True)
                        aux.backward()
                        opts["aux"].step()
                    logs = {k: v for k, v in ((k, _scalar(v)) for k, v in out.items()) if v is not None}
                    logs["lr"] = lr
                    window.append(logs)
                    if len(window) > cfg.log_window:
                        del window[0]
                    state["step"] = step + 1
                    done_step = step + 1
                    if cfg.val_every and done_step % cfg.val_every == 0 and done_step < cfg.steps:
                        run_validation(done_step)
                    now = time.perf_counter()
                    if done_step < cfg.steps and (
                        (cfg.checkpoint_every and done_step % cfg.checkpoint_every == 0)
                        or (cfg.checkpoint_seconds and now - last_ckpt_time >= cfg.checkpoint_seconds)
                    ):
                        save_last()
                        last_ckpt_time = now
                    bar.update(done_step, logs)
                    if on_step is not None:
                        on_step(done_step, logs)
        if not state["done"]:
            run_validation(cfg.steps)
            state["done"] = True
            save_last()
    finally:
        _set_rng_state(caller_rng)

    restored = "last"
    if cfg.restore == "best" and cfg.keep_best and state["best_step"] is not None and state["best_step"] != cfg.steps:
        best = read_checkpoint(run_dir, "best")
        if best is not None:
            model.load_state_dict(best[1]["model.safetensors"])
            restored = "best"
    final = {}
    for k in sorted({k for w in window for k in w}):
        vals = [w[k] for w in window if isinstance(w.get(k), (int, float))]
        if vals:
            final[k] = sum(vals) / len(vals)
    return _finite({
        "tag": tag,
        "steps": cfg.steps,
        "seed": seed,
        "device": str(dev),
        "config": cfg.as_dict(),
        "resumed_at": state["resumed_at"],
        "wall_s": round(elapsed_before + (time.perf_counter() - t_run), 3),
        "this_call_s": round(time.perf_counter() - t_start, 3),
        "final_train": {k: round(v, 6) for k, v in final.items()},
        "best_val": state["best_val"],
        "best_step": state["best_step"],
        "validation": state["history"],
        "restored": restored,
        "weights_sha256": state_dict_sha256(model),
        "run_dir": str(run_dir),
    })


def _nonfinite_msg(what: str, value: Any, step: int, tag: str, run_dir: Path, state: Mapping[str, Any], cfg: TrainConfig) -> str:
    ref = run_dir / "last.json"
    kept = f"the last good checkpoint is kept in {run_dir}" if ref.exists() else "no checkpoint had been written yet"
    try:
        v = float(value.detach()) if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    except Exception:
        v = value
    return (f"training of {tag or 'the model'} stopped: non-finite {what} ({v}) at step {step + 1}/{cfg.steps}; {kept}. "
            f"Lower the learning rate (lr={cfg.lr}), enable gradient clipping, or check the data for NaN/Inf.")
