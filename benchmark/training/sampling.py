"""The training data order as a pure function of (seed, step): which samples fill each slot of each step's batch
(epoch permutations), where each is cropped and whether it is flipped, the global RNGs at the start of a step, and
this process's share of the batch under data-parallel training. A run interrupted anywhere and resumed sees the
same batches as one that was not."""

from __future__ import annotations

import hashlib
import random
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.training import distributed
from benchmark.contract.budgets import BUDGETS, MethodBudget, TrainConfig, resolve_budget  # noqa: F401  (re-exported)
from benchmark.training.checkpoint import (CHECKPOINT_FORMAT, optim_from_tensors, optim_to_tensors, publish, read_checkpoint,  # noqa: F401
                         rng_state, set_rng_state)
from benchmark.contract.data import Sample
from benchmark.progress import Reporter, progress_enabled  # noqa: F401  (progress_enabled: re-exported)


def _mix(*parts: Any) -> int:
    """A 63-bit seed derived from the parts (stable across processes and Python versions)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def _gen(*parts: Any) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(_mix(*parts))
    return g


def crop_pair(x: torch.Tensor, side: torch.Tensor | None, size: int | None, g: torch.Generator | None, flip: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
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


class TrainView(torch.utils.data.Dataset):
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
        x, side = crop_pair(s.x, s.side, self.crop, g, flip)
        return Sample(x=x, side=side, source=s.source, name=s.name, label=s.label)


class StepSampler(torch.utils.data.Sampler):
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


class RankSampler(torch.utils.data.Sampler):
    """This process's share (by slot) of each global batch; the whole batch in a single process."""

    def __init__(self, steps: StepSampler, group: distributed.Group):
        self.steps, self.group = steps, group

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for batch in self.steps:
            yield self.group.local(batch)

    def __len__(self) -> int:
        return len(self.steps)


def data_position(step: int, batch_size: int, n: int) -> dict[str, int]:
    epoch, offset = divmod(step * batch_size, max(1, n))
    return {"epoch": epoch, "offset": offset, "samples_seen": step * batch_size}


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """The global RNGs at the start of a step. Rank r > 0 of a data-parallel run gets a seed of its own, so that RNG
    drawn inside the loss (CompressAI's uniform quantisation noise) is independent across the ranks' shards."""
    s = _mix(seed, "step", step) if not rank else _mix(seed, "step", step, "rank", rank)
    torch.manual_seed(s)
    np.random.seed(s % (2**32))
    random.seed(s)
