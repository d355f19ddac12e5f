"""`middlebury_sample`: the embedded stereo set, built from the Middlebury 2014 "Motorcycle" pair that
scikit-image ships (skimage.data.stereo_motorcycle, 500x741, rectified). Nothing is downloaded.

Deterministic, disjoint regions of the one pair:
- train: 128x128 tiles, stride 64, rows [0, 256), cols [0, 576)  -> 24 positions x 2 directions = 48 samples
- val:   128x128 tiles at rows {0, 128}, cols [608, 736)           ->  2 positions x 2 directions =  4 samples
- test:  192x368 crops at rows [308, 500), cols [0, 368) and [368, 736) -> 2 x 2 directions = 4 samples
Train/val rows end at 256, test rows start at 308: no pixel is shared between training and test."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmark.contract.data import Sample
from benchmark.errors import ConfigError
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import register_dataset, register_protocol

TRAIN_ROWS, TRAIN_COLS, TILE, STRIDE = (0, 256), (0, 576), 128, 64
VAL_TILES = [(0, 608), (128, 608)]
TEST_CROPS = [(308, 0), (308, 368)]
TEST_SIZE = (192, 368)

register_protocol(Protocol(
    name="middlebury-sample/stereo",
    dataset="middlebury_sample",
    description="embedded Middlebury 'Motorcycle' pair (skimage): 48 train tiles 128x128, 4 test crops 192x368, both directions; x-only bpp, MS-SSIM window 7",
    ms_ssim_win=7,
    anchor="balle2018",
    split_rule="disjoint regions of one rectified pair: train rows 0-255, test rows 308-499; both directions",
    preprocessing="none (8-bit RGB crops, [0,1])",
    options={"direction": "both"},
))


@lru_cache(maxsize=1)
def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div(255.0)
    return to_t(left), to_t(right)


def _positions(split: str) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    if split == "train":
        pos = [(r, c) for r in range(TRAIN_ROWS[0], TRAIN_ROWS[1] - TILE + 1, STRIDE)
               for c in range(TRAIN_COLS[0], TRAIN_COLS[1] - TILE + 1, STRIDE)]
        return pos, (TILE, TILE)
    if split == "val":
        return list(VAL_TILES), (TILE, TILE)
    if split == "test":
        return list(TEST_CROPS), TEST_SIZE
    raise ConfigError(f"unknown split {split!r}; use train, val or test")


class MiddleburySample(Dataset):
    def __init__(self, split: str, direction: str = "both", seed: int = 0):
        if direction not in ("left", "right", "both"):
            raise ConfigError(f"direction must be 'left', 'right' or 'both', got {direction!r}")
        self.split = split
        self.positions, self.size = _positions(split)
        dirs = ["left", "right"] if direction == "both" else [direction]
        self.items = [(p, d) for p in self.positions for d in dirs]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        (r, c), d = self.items[i]
        h, w = self.size
        left, right = _pair()
        lv, rv = left[:, r : r + h, c : c + w], right[:, r : r + h, c : c + w]
        x, side = (lv, rv) if d == "left" else (rv, lv)
        if self.split == "train" and torch.rand((), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + i)) < 0.5:
            x, side = x.flip(-1), side.flip(-1)
        return Sample(x=x.clone(), side=side.clone(), source=0, name=f"r{r}c{c}_{d}", view=d)


def _skimage_files() -> list[Path]:
    from .embedded import package_files

    return package_files("skimage", "data/motorcycle_left.png", "data/motorcycle_right.png", "data/motorcycle_disp.npz")


@register_dataset("middlebury_sample", description="embedded Middlebury Motorcycle stereo pair (ships with scikit-image)",
                  protocols=("middlebury-sample/stereo",), embedded=True,
                  how_to_obtain="Nothing to obtain: the pair ships with scikit-image (skimage.data.stereo_motorcycle).",
                  data_files=lambda: _skimage_files())
def middlebury_sample(root: Path | None, protocol: Protocol, split: str, direction: str = "both", seed: int = 0, **options: Any) -> MiddleburySample:
    if options:
        raise ConfigError(f"middlebury_sample does not take option(s) {sorted(options)}; it takes direction and seed")
    return MiddleburySample(split, direction=direction, seed=seed)
