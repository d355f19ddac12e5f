"""Samples: what a dataset yields and a codec consumes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch


@dataclass
class Sample:
    """One test or training item.

    x: the image to code, float CxHxW in [0,1]. side: the side view (same size), or None.
    source: index of the encoder / source in distributed protocols (0 otherwise). name: stable identifier.
    view: which view of its scene x is (e.g. "left", "right"), where the dataset knows it: a sandboxed evaluation
    never gives one role process two views of one scene (benchmark/evaluation/sandbox_eval.py groups samples by it, and by
    content where it is empty)."""

    x: torch.Tensor
    side: torch.Tensor | None = None
    source: int = 0
    name: str = ""
    label: int | None = None
    view: str = ""
    facts: dict[str, Any] | None = None  # what reading changed, e.g. {"exif_orientation": 6} (recorded in the result)


def count_facts(counter: dict[str, int], sample: Any) -> None:
    """Tally what reading changed across a split (`input_facts` of a result): images turned upright by EXIF."""
    facts = getattr(sample, "facts", None) or {}
    if facts.get("exif_orientation", 1) not in (1, None):
        counter["exif_rotated"] = counter.get("exif_rotated", 0) + 1


def flip_coin(seed: int, epoch: int, index: int) -> bool:
    """Deterministic fair coin for the horizontal flip of training item ``index`` in ``epoch`` (the image readers
    of datasets/ and the training sandbox's FileSplit flip with the same coin)."""
    import numpy as np

    return bool(np.random.default_rng([seed & 0xFFFFFFFF, epoch, index]).random() < 0.5)


def readable_samples(samples: Any, n: int, facts: dict[str, int] | None = None, only: set[int] | None = None):
    """(index, name, sample) of the first `n` samples (those in `only`), skipping what --skip-bad leaves out
    (counted by the dataset, never replaced) and tallying `facts`."""
    from benchmark.errors import SkippedSample

    for idx in range(n):
        if only is not None and idx not in only:
            continue
        try:
            s = samples[idx]
        except SkippedSample:
            continue
        if facts is not None:
            count_facts(facts, s)
        yield idx, s.name or f"{idx:06d}", s


@dataclass
class Batch:
    x: torch.Tensor
    side: torch.Tensor | None
    source: torch.Tensor
    names: list[str]

    def to(self, device: Any) -> "Batch":
        return Batch(self.x.to(device), None if self.side is None else self.side.to(device), self.source.to(device), self.names)


def collate_samples(items: Sequence[Sample]) -> Batch:
    """DataLoader collate_fn for Samples."""
    x = torch.stack([s.x for s in items])
    sides = [s.side for s in items]
    side = torch.stack(sides) if all(s is not None for s in sides) else None
    source = torch.tensor([s.source for s in items], dtype=torch.long)
    return Batch(x, side, source, [s.name for s in items])


@dataclass
class SplitReport:
    """What `bench datasets check` found for one split of a local dataset copy."""

    split: str
    found: int
    expected: int | None = None
    missing: list[str] | None = None  # first few missing paths (relative to the root)
    n_missing: int = 0
    note: str = ""
    protocol: str = ""  # the protocol this split is of, where a dataset's protocols split it differently

    @property
    def ok(self) -> bool:
        return self.n_missing == 0 and (self.expected is None or self.found >= self.expected)
