"""Data-parallel training across processes (one per GPU, or gloo processes on CPU), started by torchrun.

``torchrun --nproc-per-node N -m cli.main train ...`` (or ``bench train --devices N``, which starts
torchrun) sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `init_from_env` joins the process
group (NCCL on CUDA, gloo on CPU). The trainer then splits every global batch across the ranks by slot
(rank r takes slots r, r+N, r+2N, ... of the batch the 1-process run would take: same crops, same order)
and trains through ``torch.nn.parallel.DistributedDataParallel``: the wrapped module is a `LossModule`, whose
forward runs the trainer's loss closure on the rank's shard, so every codec's own loss (a custom forward,
``model.aux_loss()``) runs inside DDP's forward and DDP's reducer averages the gradients. DDP's constructor
broadcasts rank 0's parameters and buffers. Only rank 0 writes checkpoints, metrics, weights and results.

The aux optimizer (CompressAI's ``*.quantiles``): DDP allows one backward pass per forward, so the trainer
backpropagates ``loss + aux_loss`` once and DDP averages the quantiles' gradients with the others. That gives each
optimizer exactly the gradients of the 1-process trainer's two separate passes when the main loss does not reach
the aux parameters and the aux loss reaches no main parameter (CompressAI's ``aux_loss`` detaches the density
model: ``_logits_cumulative(..., stop_gradient=True)``; its training forward adds noise without the medians).
`gradient_reach` checks both on the first step of each run and refuses a model that breaks them.

``find_unused_parameters`` stays False (DDP's fast path: no graph traversal per step) unless that first step finds
a trainable parameter that neither loss reaches; the trainer then rebuilds the wrapper with it True and redoes the
step's forward. Without it DDP would wait forever for those parameters' gradients.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from benchmark.errors import ConfigError, TrainingError


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def init_from_env(device: str = "cpu") -> "Group":
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and _dist() is None:
        import torch.distributed as dist

        cuda = str(device).startswith("cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return group()


def shutdown() -> None:
    d = _dist()
    if d is not None:
        d.barrier()
        d.destroy_process_group()


def is_main() -> bool:
    """True in a single process and on rank 0 (the only rank that writes files)."""
    return group().rank == 0


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise ConfigError(f"the global batch ({batch_size}) must split evenly across {self.world} processes; "
                              f"use a batch size that is a multiple of {self.world} (--option batch_size=...)")

    def local(self, batch: list) -> list:
        """This rank's slots of a global batch of (step, slot, index) keys."""
        return [key for key in batch if key[1] % self.world == self.rank] if self.world > 1 else batch

    def wrap(self, module: "LossModule", device: torch.device, find_unused: bool = False) -> torch.nn.Module:
        """`module` in DistributedDataParallel (its constructor broadcasts rank 0's parameters and buffers)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)

    def mean_scalars(self, logs: Mapping[str, float]) -> dict[str, float]:
        """The mean over the ranks of each logged scalar (the global-batch value for per-sample means)."""
        d = _dist()
        if d is None or not logs:
            return dict(logs)
        keys = sorted(logs)
        on = "cuda" if d.get_backend() == "nccl" else "cpu"
        t = torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64, device=on)
        d.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist())}

    def barrier(self) -> None:
        d = _dist()
        if d is not None:
            d.barrier()


class LossModule(torch.nn.Module):
    """A model and its loss closure as one module: ``forward(batch)`` is ``loss_fn(model, batch)``, so wrapped in
    DDP any codec's loss runs in DDP's forward. `aux_fn(model)` gives the aux loss when the closure returns none
    (the trainer passes CompressAI's ``model.aux_loss`` for models with ``*.quantiles``)."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[..., Mapping[str, Any]],
                 aux_fn: Callable[[torch.nn.Module], Any] | None = None):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.aux_fn = aux_fn

    def forward(self, batch: Any) -> dict[str, Any]:
        out = dict(self.loss_fn(self.model, batch))
        if out.get("aux_loss") is None and self.aux_fn is not None:
            out["aux_loss"] = self.aux_fn(self.model)
        return out


def gradient_reach(loss: torch.Tensor, aux: torch.Tensor | None, named_main: Sequence[tuple[str, torch.nn.Parameter]],
                   named_aux: Sequence[tuple[str, torch.nn.Parameter]]) -> list[str]:
    """The names of the trainable parameters that neither loss reaches (DDP then needs find_unused_parameters).

    TrainingError when the main loss reaches an aux parameter or the aux loss a main one: one backward pass of
    ``loss + aux_loss`` would then mix the two optimizers' gradients. Uses ``torch.autograd.grad`` (no gradient
    is accumulated, so DDP's reducer does not see it) and keeps the graph for the real backward pass."""
    params = [p for _, p in named_main] + [p for _, p in named_aux]
    names = [n for n, _ in named_main] + [n for n, _ in named_aux]
    n_main = len(named_main)

    def reached(out: torch.Tensor | None) -> list[bool]:
        if out is None or not params or not out.requires_grad:
            return [False] * len(params)
        grads = torch.autograd.grad(out, params, allow_unused=True, retain_graph=True)
        return [g is not None for g in grads]

    by_loss, by_aux = reached(loss), reached(aux)
    crossing = [names[i] for i in range(n_main, len(params)) if by_loss[i]] + \
        [names[i] for i in range(n_main) if by_aux[i]]
    if crossing:
        raise TrainingError(f"data-parallel training needs the main loss and the aux loss on separate parameters "
                            f"(one backward pass of loss + aux_loss feeds both optimizers); these are reached by the "
                            f"other loss: {', '.join(crossing[:8])}. Detach them in the loss closure or pass "
                            "aux_parameters= to train()")
    return [names[i] for i in range(len(params)) if not (by_loss[i] or by_aux[i])]


def group() -> Group:
    d = _dist()
    return Group(d.get_rank(), d.get_world_size()) if d is not None else Group()
