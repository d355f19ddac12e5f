"""Synthetic quadratic-Gaussian Wyner–Ziv source (protocol `gaussian/wz`).

Y ~ N(0, 1), X = Y + N, N ~ N(0, sigma2) (sigma2 = 0.1 or 0.01 in Joukovsky, De Weerd,
Deligiannis, "Learned layered coding for successive refinement in the Wyner-Ziv problem"). Each Sample is one
block of `block` i.i.d. pairs: `x` and `side` are 1-D float32 tensors. Blocks are generated on access,
seeded by (split, index), so every split is reproducible and the splits never share draws.

Its limits per sample (MSE, rates in bits/sample; the closed forms are in benchmark.results.bounds):
  Wyner–Ziv (= conditional, no rate loss for Gaussians)  R_WZ(D) = max(0, ½·log2(σ²/D))
  no side information                                    R(D)    = max(0, ½·log2((1+σ²)/D))"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmark.contract.data import Sample
from benchmark.errors import ConfigError
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import register_dataset, register_protocol

DEFAULT_SIGMA2 = 0.1
DEFAULT_BLOCK = 10_000
# Blocks per split: train is effectively endless (generated on access), test = 10^6 samples by default.
DEFAULT_BLOCKS = {"train": 100_000, "val": 10, "test": 100}
_SPLIT_ID = {"train": 1, "val": 2, "test": 3}


# ---- data -----------------------------------------------------------------------------------------------
def draw_pairs(n: int, sigma2: float, seed: int | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """n i.i.d. pairs (x, y) as float64 arrays, from numpy's PCG64 seeded by `seed`."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    y = rng.standard_normal(n)
    x = y + math.sqrt(sigma2) * rng.standard_normal(n)
    return x, y


class GaussianBlocks(Dataset):
    """Blocks of (x, y) pairs; block `i` of split `s` is drawn from seed (split id, i)."""

    def __init__(self, split: str, sigma2: float = DEFAULT_SIGMA2, block: int = DEFAULT_BLOCK, n_blocks: int | None = None):
        if split not in _SPLIT_ID:
            raise ConfigError(f"gaussian: unknown split {split!r}; use one of {sorted(_SPLIT_ID)}")
        if not (sigma2 > 0):
            raise ConfigError(f"gaussian: sigma2 must be > 0, got {sigma2!r}")
        if block < 1:
            raise ConfigError(f"gaussian: block must be >= 1, got {block!r}")
        self.split = split
        self.sigma2 = float(sigma2)
        self.block = int(block)
        self.n_blocks = int(DEFAULT_BLOCKS[split] if n_blocks is None else n_blocks)

    def __len__(self) -> int:
        return self.n_blocks

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < self.n_blocks:
            raise IndexError(i)
        x, y = draw_pairs(self.block, self.sigma2, (_SPLIT_ID[self.split], int(i)))
        return Sample(
            x=torch.from_numpy(x.astype(np.float32)),
            side=torch.from_numpy(y.astype(np.float32)),
            source=0,
            name=f"{self.split}-{i:06d}",
        )


PROTOCOL = register_protocol(
    Protocol(
        name="gaussian/wz",
        dataset="gaussian",
        description="quadratic-Gaussian Wyner–Ziv: X = Y + N(0, sigma2), Y ~ N(0,1) at the decoder only; MSE vs bits/sample",
        rate_unit="bits/sample",
        anchor="scalar_sw",
        split_rule="synthetic: each split is drawn from its own seeds (train 1, val 2, test 3; block index)",
        preprocessing="none (1-D float blocks of `block` samples)",
        rate_accounting="bits of x only (container bytes / samples); Y at the decoder costs nothing; "
        "ideal entropy-coder / Slepian–Wolf cross-entropies reported as bpp_estimated",
        psnr="10*log10(1/MSE) over all samples of the split (no clamping or rounding)",
        fixed_bpps=(0.5, 1.0, 2.0),
        options={"sigma2": DEFAULT_SIGMA2},
    )
)


@register_dataset(
    "gaussian",
    description="synthetic Gaussian source with decoder side information (X = Y + N); options sigma2, block, n_blocks, test_blocks",
    protocols=("gaussian/wz",),
    embedded=True,
    generated=True,
)
def gaussian(root=None, protocol=None, split: str = "test", sigma2: float = DEFAULT_SIGMA2, block: int = DEFAULT_BLOCK,
             n_blocks: int | None = None, test_blocks: int | None = None, **options) -> GaussianBlocks:
    """Factory: the `split` reader. `root` is ignored (synthetic data). `test_blocks` sets the number of blocks
    of the test split only (the paper tests on 10^7 samples: test_blocks=1000 of 10^4; blocks are drawn one at a
    time, never all in memory), `n_blocks` that of every split."""
    if options:
        raise ConfigError(f"gaussian: unknown option(s) {sorted(options)}; known: sigma2, block, n_blocks, test_blocks")
    if split == "test" and test_blocks is not None:
        n_blocks = int(test_blocks)
    return GaussianBlocks(split, sigma2=float(sigma2), block=int(block), n_blocks=n_blocks)
