"""Data-parallel training across processes (one per GPU, or gloo processes on CPU), started by torchrun.

``torchrun --nproc-per-node N -m benchmark.cli train ...`` (or ``bench train --devices N``, which starts
torchrun) sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `init_from_env` joins the process
group (NCCL on CUDA, gloo on CPU). The trainer then splits every global batch across the ranks by slot
(rank r takes slots r, r+N, r+2N, ... of the batch the 1-process run would take: same crops, same order)
and averages the gradients with one all-reduce per step, as DistributedDataParallel does. The model itself
is not wrapped, so every loss closure keeps calling the model's own methods (``model.aux_loss()``,
a codec's custom forward); parameters are broadcast from rank 0 once at the start. Only rank 0 writes
checkpoints, metrics, weights and results.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

from .errors import ConfigError


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

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        d = _dist()
        if d is not None:
            for t in list(module.parameters()) + list(module.buffers()):
                d.broadcast(t.data, src=0)

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Mean of each gradient over the ranks, in one flat all-reduce (missing gradients count as zero)."""
        d = _dist()
        if d is None:
            return
        params = list(params)
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        d.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[offset: offset + n].view_as(p.grad))
            offset += n

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


def group() -> Group:
    d = _dist()
    return Group(d.get_rank(), d.get_world_size()) if d is not None else Group()


def relaunch(nproc: int, argv: list[str]) -> int:
    """Run `bench <argv>` (without --devices) under torchrun with `nproc` processes; return its exit code."""
    import subprocess
    import sys

    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--devices":
            skip = True
            continue
        if a.startswith("--devices="):
            continue
        args.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "benchmark.cli", *args]
    return subprocess.call(cmd)
