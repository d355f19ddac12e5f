"""Data-parallel training across processes (one per GPU, or gloo processes on CPU), started by torchrun.

``torchrun --nproc-per-node N -m cli.main train ...`` (or ``bench train --devices N``, which starts
torchrun) sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `init_from_env` joins the process
group (NCCL on CUDA, gloo on CPU). The trainer then splits every global batch across the ranks by slot
(rank r takes slots r, r+N, r+2N, ... of the batch the 1-process run would take: same crops, same order)
and trains through ``torch.nn.parallel.DistributedDataParallel``: the wrapped module is a `LossModule`, whose
forward runs the trainer's loss closure on the rank's shard, so every codec's own loss (a custom forward,
``model.aux_loss()``) runs inside DDP's forward and DDP's reducer averages the gradients. DDP's constructor
broadcasts rank 0's parameters (`Group.wrap` its buffers). Only rank 0 writes checkpoints, metrics, weights and results.

The aux optimizer (CompressAI's ``*.quantiles``): DDP allows one backward pass per forward, so the trainer
backpropagates ``loss + aux_loss`` once and DDP averages the quantiles' gradients with the others. That gives each
optimizer exactly the gradients of the 1-process trainer's two separate passes when the main loss does not reach
the aux parameters and the aux loss reaches no main parameter (CompressAI's ``aux_loss`` detaches the density
model: ``_logits_cumulative(..., stop_gradient=True)``; its training forward adds noise without the medians).
`gradient_reach` checks both on the first step of each run and refuses a model that breaks them.

``find_unused_parameters`` stays False (DDP's fast path: no graph traversal per step) unless that first step finds
a trainable parameter that neither loss reaches; the trainer then rebuilds the wrapper with it True and redoes the
step's forward. Without it DDP would wait forever for those parameters' gradients.

Buffers updated in training (Neural DSC's EMA codebook): DDP runs without its buffer sync at each forward
(``broadcast_buffers=False``; ``forward_sync_buffers=False`` from torch 2.14), after `Group.wrap` sent rank 0's
buffers to every rank once. The default would copy rank 0's buffers over every rank's at each forward, so a codebook would learn from rank 0's share of
the batch only. Instead a module that updates buffers from the batch reduces its statistics over the ranks
itself (`all_reduce_sum`; `gather_slots` and `broadcast` for draws from the whole batch), so every rank makes the
update the 1-process run makes, and the buffers stay equal on every rank. `Group.diverged` checks that after the
first step and at every checkpoint, and the trainer stops with TrainingError naming any parameter or buffer that
differs across the ranks (a BatchNorm's running statistics, a buffer updated from the local shard).

Validation: every rank validates its share of the validation samples (sample i on rank i % N) and
`Group.reduce_sums` adds the per-sample sums and counts over the ranks, so every rank gets the same numbers
(all-reduce hands every rank the same result) and takes the same plateau-schedule decision.

Devices: with ``--device cuda`` rank r uses ``cuda:LOCAL_RANK`` (`rank_device`); choose the GPUs with
CUDA_VISIBLE_DEVICES. Several nodes: torchrun's environment (``--nnodes``, ``--node-rank`` or a rendezvous
endpoint) is all `init_from_env` reads, so any torchrun launch works (see `launch_command`).

Quantisation noise (CompressAI's training forward) and dropout are drawn per rank from seeds of their own
(sampling.seed_step): their realisations differ from the 1-process run's, with the same distribution.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from benchmark.errors import ConfigError, TrainingError


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value != "" else default
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def rank_device(device: str) -> str:
    """The device of this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (one GPU per process on each
    node). ``cuda:K`` is refused when several processes share a node (they would all train on GPU K)."""
    dev = str(device)
    if _env_int("WORLD_SIZE", 1) <= 1 or not dev.startswith("cuda"):
        return dev
    local, per_node = _env_int("LOCAL_RANK", 0), _env_int("LOCAL_WORLD_SIZE", 1)
    if ":" in dev:
        if per_node > 1:
            raise ConfigError(f"--device {dev} puts all {per_node} processes of this node on one GPU; use --device cuda "
                              "(process r of a node takes cuda:LOCAL_RANK) and pick the GPUs with CUDA_VISIBLE_DEVICES")
        return dev
    if torch.cuda.is_available() and local >= torch.cuda.device_count():
        raise ConfigError(f"process {local} of this node needs cuda:{local}, but only {torch.cuda.device_count()} GPU(s) "
                          "are visible; start at most one process per GPU (--devices / --nproc-per-node)")
    return f"cuda:{local}"


def init_from_env(device: str = "cpu") -> "Group":
    """Join the process group torchrun describes in the environment (no-op for a single process): NCCL on CUDA (this
    process on `rank_device`), gloo otherwise. torchrun's variables are all it reads, so a multi-node launch
    (``--nnodes``/``--rdzv-endpoint``) works as a single-node one."""
    world = _env_int("WORLD_SIZE", 1)
    if world > 1 and _dist() is None:
        import torch.distributed as dist

        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
        if missing:
            raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start data-parallel training with "
                              "torchrun (or `bench train --devices N`)")
        dev = rank_device(device)
        cuda = dev.startswith("cuda")
        if cuda:
            torch.cuda.set_device(torch.device(dev))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return group()


def launch_command(nproc: int, argv: list[str], nnodes: str | None = None, rdzv_endpoint: str | None = None,
                   rdzv_id: str | None = None) -> list[str]:
    """The torchrun command that runs ``python -m cli.main <argv>`` with `nproc` processes on this node: one node
    (``--standalone``) or several (``--nnodes`` "N" or "MIN:MAX" and a c10d rendezvous at `rdzv_endpoint`
    host:port, the same command started on every node)."""
    import sys

    if nproc < 1:
        raise ConfigError(f"--devices must be at least 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes in (None, "1") and not rdzv_endpoint:
        cmd.append("--standalone")
    else:
        if not rdzv_endpoint:
            raise ConfigError(f"--nnodes {nnodes} needs --rdzv-endpoint host:port (a node every node can reach; the "
                              "same on every node)")
        cmd += [f"--nnodes={nnodes or 1}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}",
                f"--rdzv-id={rdzv_id or 'dsc-bench'}"]
    return cmd + ["-m", "cli.main", *argv]


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
        """`module` in DistributedDataParallel, with rank 0's parameters and buffers on every rank."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        # no buffer sync at each forward: buffers updated in training are reduced over the ranks by their module
        # (see above); rank 0's buffers are sent to every rank once here (without forward sync, DDP's constructor
        # does not; torch >= 2.14 names the option forward_sync_buffers and deprecates broadcast_buffers)
        for b in module.buffers():
            broadcast(b.data)
        import inspect

        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(
            DistributedDataParallel.__init__).parameters else {"broadcast_buffers": False}
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused, **no_sync)

    def reduce_sums(self, sums: Mapping[str, float], count: int) -> tuple[dict[str, float], int]:
        """(sums, count) added over the ranks; every rank gets the same values. The keys must be the same on every
        rank (each rank runs the same loss closure); a rank without samples passes the keys with zeros."""
        d = _dist()
        if d is None:
            return dict(sums), count
        keys = sorted(sums)
        on = "cuda" if d.get_backend() == "nccl" else "cpu"
        t = torch.tensor([float(count)] + [float(sums[k]) for k in keys], dtype=torch.float64, device=on)
        d.all_reduce(t)
        values = t.tolist()
        return dict(zip(keys, values[1:])), int(round(values[0]))

    def diverged(self, module: torch.nn.Module) -> list[str]:
        """The names of `module`'s parameters and buffers whose values differ between the ranks (empty: all equal).
        Each tensor is summarised by two float64 sums (plain and position-weighted); the ranks' summaries are
        compared by an all-reduce of their maximum and of their minimum."""
        d = _dist()
        if d is None:
            return []
        named = list(module.named_parameters()) + list(module.named_buffers())
        if not named:
            return []
        rows = []
        for _, t in named:
            v = t.detach().reshape(-1).double()
            w = torch.arange(1, v.numel() + 1, dtype=torch.float64, device=v.device) / max(1, v.numel())
            rows.append(torch.stack([v.sum(), (v * w).sum()]))
        hi = torch.stack(rows)
        lo = hi.clone()
        d.all_reduce(hi, op=d.ReduceOp.MAX)
        d.all_reduce(lo, op=d.ReduceOp.MIN)
        bad = ((hi - lo).abs() > 0) | ~torch.isfinite(hi - lo)
        return [name for (name, _), b in zip(named, bad.any(1).tolist()) if b]

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


# ---------------------------------------------------------------- for modules that update buffers from the batch
def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Replace each tensor, in place, by its sum over the ranks (nothing in a single process): a module that
    updates state from batch statistics (counts, sums) reduces them so every rank sees the global batch's."""
    d = _dist()
    if d is None:
        return
    for t in tensors:
        d.all_reduce(t)


def broadcast(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """`t` replaced, in place, by rank `src`'s (nothing in a single process): a random draw made on one rank."""
    d = _dist()
    if d is not None:
        d.broadcast(t, src)
    return t


def gather_slots(t: torch.Tensor) -> list[torch.Tensor]:
    """The global batch, sample by sample in the order of the 1-process run, from each rank's shard `t` (samples
    along dim 0; rank r holds slots r, r+N, r+2N, ... as `Group.local` gives them). Shards may differ in their
    other dimensions (whole images of several sizes). A single process gets its own samples."""
    d = _dist()
    if d is None:
        return list(t.unbind(0))
    world = d.get_world_size()
    shape = torch.zeros(8, dtype=torch.long, device=t.device)
    if t.dim() > 8:
        raise ConfigError(f"gather_slots takes tensors of at most 8 dimensions, got {t.dim()}")
    shape[: t.dim()] = torch.tensor(t.shape, dtype=torch.long)
    shapes = [torch.zeros_like(shape) for _ in range(world)]
    d.all_gather(shapes, shape)
    dims = [tuple(int(v) for v in s[: t.dim()].tolist()) for s in shapes]
    size = max(math.prod(s) for s in dims)
    flat = torch.zeros(size, dtype=t.dtype, device=t.device)
    flat[: t.numel()] = t.reshape(-1)
    parts = [torch.zeros_like(flat) for _ in range(world)]
    d.all_gather(parts, flat)
    shards = [p[: math.prod(s)].reshape(s) for p, s in zip(parts, dims)]
    n = sum(s[0] for s in dims)
    return [shards[k % world][k // world] for k in range(n)]
