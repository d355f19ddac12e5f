"""One optimisation step of the shared training loop: the learning-rate schedule, the main optimizer (and
CompressAI's auxiliary one over the entropy bottleneck's quantiles), gradient clipping, the checks that stop
training on a non-finite loss or gradient, and the data-parallel backward pass (one pass of loss + aux loss whose
gradients DistributedDataParallel averages over the ranks)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from benchmark.training.losses import LossFn, compressai_aux_loss, split_parameters
from benchmark.training.sampling import seed_step
from benchmark.training import distributed
from benchmark.contract.budgets import BUDGETS, MethodBudget, TrainConfig, resolve_budget  # noqa: F401  (re-exported)
from benchmark.training.checkpoint import (CHECKPOINT_FORMAT, optim_from_tensors, optim_to_tensors, publish, read_checkpoint,  # noqa: F401
                         rng_state, set_rng_state)
from benchmark.contract.data import Batch
from benchmark.errors import TrainingError
from benchmark.progress import Reporter, progress_enabled  # noqa: F401  (progress_enabled: re-exported)


def scalar(v: Any) -> float | None:
    if isinstance(v, torch.Tensor):
        return float(v.detach()) if v.numel() == 1 else None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


def lr_factor(cfg: TrainConfig, step: int, plateau_scale: float) -> float:
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


def parameter_groups(model: torch.nn.Module, aux_parameters: list[torch.nn.Parameter] | None) -> tuple[list, list]:
    main_params, aux_params = split_parameters(model)
    if aux_parameters is not None:
        ids = {id(p) for p in aux_parameters}
        main_params = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        aux_params = list(aux_parameters)
    return main_params, aux_params


def nonfinite_message(what: str, value: Any, step: int, tag: str, run_dir: Path, state: Mapping[str, Any], cfg: TrainConfig) -> str:
    ref = run_dir / "last.json"
    kept = f"the last good checkpoint is kept in {run_dir}" if ref.exists() else "no checkpoint had been written yet"
    try:
        v = float(value.detach()) if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    except Exception:
        v = value
    return (f"training of {tag or 'the model'} stopped: non-finite {what} ({v}) at step {step + 1}/{cfg.steps}; {kept}. "
            f"Lower the learning rate (lr={cfg.lr}), enable gradient clipping, or check the data for NaN/Inf.")


class Optimisation:
    """The optimizers of one training run and its step. `nonfinite(what, value, step)` words the error that stops
    training on a non-finite loss or gradient (it knows where the last good checkpoint is)."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, cfg: TrainConfig, group: distributed.Group,
                 dev: torch.device, seed: int, aux_parameters: list[torch.nn.Parameter] | None,
                 nonfinite: Callable[[str, Any, int], str]):
        self.model, self.loss_fn, self.cfg, self.group, self.dev, self.seed = model, loss_fn, cfg, group, dev, seed
        self.nonfinite = nonfinite
        self.main_params, self.aux_params = parameter_groups(model, aux_parameters)
        self.opts: dict[str, torch.optim.Optimizer] = {"main": torch.optim.Adam(self.main_params, lr=cfg.lr, amsgrad=cfg.amsgrad)}
        if self.aux_params:
            self.opts["aux"] = torch.optim.Adam(self.aux_params, lr=cfg.aux_lr)
        # several processes (torchrun): DistributedDataParallel over the model and its loss (benchmark/training/distributed.py)
        self.ddp = group.wrap(distributed.LossModule(model, loss_fn, compressai_aux_loss if self.aux_params else None),
                              dev) if group.world > 1 else None
        self.ddp_checked = False
        self.in_sync_checked = False

    def step(self, step: int, batch: Batch, plateau_scale: float) -> dict[str, float]:
        """One optimisation step (main optimizer, then the aux optimizer); returns the logged scalars."""
        cfg, opts = self.cfg, self.opts
        seed_step(self.seed, step, self.group.rank)
        lr = cfg.lr * lr_factor(cfg, step, plateau_scale)
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
        else:
            if out.get("aux_loss") is not None and "aux" in opts:
                opts["aux"].step()  # its gradients came from the same backward pass, averaged by DDP
            if not self.in_sync_checked:
                self.check_in_sync(step + 1)
        logs = self.group.mean_scalars({k: v for k, v in ((k, scalar(v)) for k, v in out.items()) if v is not None})
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
        first = not self.ddp_checked
        saved = {n: b.detach().clone() for n, b in self.model.named_buffers()} if first else {}
        out = self.ddp(batch)
        if first:  # first step of this run: which parameters each loss reaches
            self.ddp_checked = True
            names = {id(p): n for n, p in self.model.named_parameters()}
            aux = out.get("aux_loss") if "aux" in self.opts else None
            unused = distributed.gradient_reach(self.checked_loss(out, step), aux,
                                                [(names.get(id(p), "?"), p) for p in self.main_params],
                                                [(names.get(id(p), "?"), p) for p in self.aux_params])
            if unused:  # DDP would wait for gradients that never come: rebuild it to look for unused ones, redo
                module, self.ddp = self.ddp.module, None
                self.ddp = self.group.wrap(module, self.dev, find_unused=True)
                with torch.no_grad():  # the redone forward starts from the buffers the first one found (EMA codebooks)
                    for n, b in self.model.named_buffers():
                        b.copy_(saved[n])
                seed_step(self.seed, step, self.group.rank)
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

    def check_in_sync(self, done_step: int) -> None:
        """TrainingError when a parameter or buffer differs between the ranks (checked after the first step and
        before each checkpoint; nothing in a single process)."""
        self.in_sync_checked = True
        if self.ddp is None:
            return
        names = self.group.diverged(self.model)
        if names:
            raise TrainingError(f"data-parallel training of this model is not equivalent to one process: after step "
                                f"{done_step} these differ between the {self.group.world} ranks: {', '.join(names[:8])}. "
                                "A buffer updated from the batch must be updated from the statistics of the whole "
                                "batch on every rank (benchmark.training.distributed.all_reduce_sum, as Neural DSC's "
                                "EMA codebook does; torch.nn.SyncBatchNorm for batch norm), or train with one process")

    def data_parallel(self) -> dict[str, Any]:
        """How the ranks trained together (recorded in the training info)."""
        import torch.distributed as dist

        return {"wrapper": type(self.ddp).__qualname__, "backend": dist.get_backend(),
                "find_unused_parameters": bool(self.ddp.find_unused_parameters),
                "broadcast_buffers": bool(getattr(self.ddp, "forward_sync_buffers", getattr(self.ddp, "broadcast_buffers", True)))}
