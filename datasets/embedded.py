"""Offline stand-ins that ship with the suite's dependencies (no --root): ``digits`` and ``lfw_sample``.

- ``digits`` (scikit-learn's load_digits: 1,797 8x8 digits, values 0..16) for the two DRASIC protocols:
  values /16, resized to 1x32x32 (bilinear, align_corners=False). A fixed permutation (seed 0, independent of
  the run's seed) keeps the last 360 (20%) as test and the first 1,437 as the training pool, which is then
  split into sources exactly as MNIST's 60,000 are (see datasets/mnist.py: M equal seeded parts or one digit
  per source, last 10% of each = val).
- ``lfw_sample`` (scikit-image's lfw_subset: its first 100 images are 25x25 grey faces, the other 100 are
  background patches and are not used) for ``celeba-hq/neural-dsc``: upscaled to 64x64 with PIL bicubic (a
  face whose halves keep CelebA's 1:2 aspect), grey replicated to 3 channels; x = top half 3x32x64,
  side = bottom half. Fixed split (seed 0): train 70 / val 10 / test 20. Variant wrong_side and the training
  flip behave as for CelebA-HQ.
These are small smoke-test sets: their numbers are not comparable with the published MNIST / CelebA-HQ ones.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmark.contract.data import Sample
from benchmark.errors import DatasetError
from benchmark.contract.registry import register_dataset

from . import celeba, mnist
from ._real import AugmentedSplit, check_protocol, check_split, choice, resolve_options

SPLIT_SEED = 0  # fixed: the test set must not move with the run's seed
DIGITS_TEST = 360  # 20% of 1,797, rounded up
LFW_FACES = 100
LFW_SIZE = 64
LFW_SPLIT = {"train": (0, 70), "val": (70, 80), "test": (80, 100)}


# ---------------------------------------------------------------------------------------------- digits
@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """(pool indices, test indices) into load_digits' 1,797 images."""
    n = len(_digits()[1])
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_pool = n - DIGITS_TEST
    return perm[:n_pool], perm[n_pool:]


class DigitImage:
    """Picklable getter: load_digits image i as float 1x32x32 in [0,1]."""

    def __call__(self, i: int) -> torch.Tensor:
        img = torch.from_numpy(_digits()[0][i])[None, None]
        return F.interpolate(img, size=(mnist.SIZE, mnist.SIZE), mode="bilinear", align_corners=False)[0].clamp_(0, 1)


def package_files(package: str, *relative: str) -> list[Path]:
    """Data files shipped inside an installed package, found without importing it (for the sandbox's mask)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    base = Path(list(spec.submodule_search_locations)[0])
    return [base / r for r in relative]


@register_dataset(
    "digits",
    description="scikit-learn's 1,797 8x8 digits at 32x32, an offline stand-in for MNIST (DRASIC protocols)",
    protocols=(mnist.CLASS, mnist.RANDOM),
    embedded=True,
    how_to_obtain="embedded: ships with scikit-learn (sklearn.datasets.load_digits); no download, --root ignored",
    data_files=lambda: package_files("sklearn", "datasets/data/digits.csv.gz"),
)
def digits(root: Path | str | None, protocol: Any, split: str, **options: Any) -> mnist.SourceImages:
    """One DRASIC split of the digits; options: sources (M), seed (random partition)."""
    check_split(split, "digits")
    name, sources, seed = mnist.drasic_options("digits", protocol, options)
    labels = _digits()[1]
    pool, test = digits_split()
    idx, src = mnist.drasic_split(name, split, labels[pool], labels[test], sources, seed)
    idx = (test if split == "test" else pool)[idx]  # positions -> load_digits indices
    return mnist.SourceImages(DigitImage(), idx, src, labels, num_sources=sources, split=split, prefix="digits")


# ---------------------------------------------------------------------------------------------- lfw_sample
@functools.lru_cache(maxsize=1)
def _faces() -> torch.Tensor:
    from skimage.data import lfw_subset

    raw = lfw_subset()[:LFW_FACES]
    out = []
    for a in raw:
        im = Image.fromarray(np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8), mode="L")
        im = im.resize((LFW_SIZE, LFW_SIZE), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0))
    return torch.stack(out)  # N x 64 x 64


class LfwHalves(AugmentedSplit):
    """x = top half of face i (3x32x64), side = bottom half of face partner[i]."""

    def __init__(self, ids: np.ndarray, *, split: str, seed: int, augment: bool | None, variant: str):
        super().__init__(split, seed, augment)
        self.ids = ids
        self.partner = celeba.partners(len(ids), variant, seed)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self.ids) <= index < len(self.ids):
            raise IndexError(index)
        index %= len(self.ids)
        faces = _faces()
        i, j = int(self.ids[index]), int(self.ids[self.partner[index]])
        half = LFW_SIZE // 2
        x = faces[i, :half].expand(3, -1, -1).clone()
        side = faces[j, half:].expand(3, -1, -1).clone()
        if self._flip(index):
            x, side = x.flip(-1), side.flip(-1)
        name = f"lfw{i:03d}" if i == j else f"lfw{i:03d}+lfw{j:03d}"
        return Sample(x=x, side=side, source=0, name=name)


@register_dataset(
    "lfw_sample",
    description="scikit-image's 100 LFW faces (25x25 grey -> 64x64, 3 channels), an offline stand-in for CelebA-HQ",
    protocols=(celeba.PROTOCOL,),
    embedded=True,
    how_to_obtain="embedded: ships with scikit-image (skimage.data.lfw_subset); no download, --root ignored",
    data_files=lambda: package_files("skimage", "data/lfw_subset.npy"),
)
def lfw_sample(root: Path | str | None, protocol: Any, split: str, **options: Any) -> LfwHalves:
    """Half faces of ``split``; options: variant (matched|wrong_side), augment, seed."""
    check_protocol(protocol, (celeba.PROTOCOL,), "lfw_sample")
    check_split(split, "lfw_sample")
    opts = resolve_options("lfw_sample", protocol, options, {"variant": "matched"})
    variant = choice(opts["variant"], "variant", celeba.VARIANTS, "lfw_sample")
    lo, hi = LFW_SPLIT[split]
    ids = np.random.default_rng(SPLIT_SEED).permutation(LFW_FACES)[lo:hi]
    if len(ids) < 2 and variant == "wrong_side":
        raise DatasetError("lfw_sample: variant wrong_side needs at least 2 faces")
    return LfwHalves(ids, split=split, seed=opts["seed"], augment=opts["augment"], variant=variant)
