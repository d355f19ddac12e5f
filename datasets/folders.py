"""Generic local folders: `images` (each image a test sample, e.g. Kodak) and `stereo` (left/ + right/ pairs).

Either the root itself holds the test data, or it has `train/`, `val/`, `test/` subfolders of the same shape."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from benchmark.data import Sample, SplitReport
from benchmark.errors import ConfigError, DatasetError
from benchmark.protocol import Protocol
from benchmark.registry import register_dataset, register_protocol

from ._io import list_images, load_rgb, require_dir, warn_skip

register_protocol(Protocol(
    name="images/full",
    dataset="images",
    description="a folder of RGB images coded whole (e.g. Kodak's 24): bpp = 8*bytes/(H*W), PSNR per image then mean, MS-SSIM window 11",
    ms_ssim_win=11,
    anchor="jpeg",
    split_rule="every image in --root (or --root/test) is a test sample; --root/train and --root/val for training",
    preprocessing="none: RGB, [0,1]; learned codecs pad to their stride and crop back",
))
register_protocol(Protocol(
    name="stereo/pairs",
    dataset="stereo",
    description="a folder with left/ and right/ holding same-named stereo pairs; x = one view, side info = the other (direction left|right|both)",
    ms_ssim_win=7,
    anchor="jpeg",
    split_rule="every pair in --root (or --root/test) is a test sample; --root/train and --root/val for training",
    preprocessing="none: RGB, [0,1]; both views must have the same size",
    options={"direction": "both"},
))


def _split_dir(root: Path, split: str, dataset: str) -> Path:
    sub = root / split
    if sub.is_dir():
        return sub
    if split == "test":
        return root
    raise DatasetError(f"{dataset}: no {split!r} split under {root}; create {sub} with the same layout as the test data")


class ImageFolder(Dataset):
    def __init__(self, folder: Path, skip_bad: bool = False):
        self.files = list_images(folder)
        if not self.files:
            raise DatasetError(f"no images (png/jpg/bmp/ppm/tif/webp) found in {folder}")
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Sample:
        path = self.files[i]
        try:
            x = load_rgb(path)
        except DatasetError as exc:
            if not self.skip_bad:
                raise
            warn_skip(path, exc)
            return self[(i + 1) % len(self)]
        return Sample(x=x, side=None, source=0, name=path.stem)


@register_dataset("images", description="a local folder of images (e.g. Kodak)", protocols=("images/full",),
                  how_to_obtain="Point --root at a folder of PNG/JPEG images, e.g. the 24 Kodak PNGs (kodim01.png..kodim24.png).")
def images(root: Path | None, protocol: Protocol, split: str, skip_bad: bool = False, **options: Any) -> ImageFolder:
    _no_options("images", options)
    base = require_dir(root, "images")
    return ImageFolder(_split_dir(base, split, "images"), skip_bad=skip_bad)


class StereoFolder(Dataset):
    """Pairs `left/NAME` with `right/NAME`; direction picks which view is x."""

    def __init__(self, folder: Path, direction: str = "both", skip_bad: bool = False, flip: bool = False, seed: int = 0):
        if direction not in ("left", "right", "both"):
            raise ConfigError(f"direction must be 'left', 'right' or 'both', got {direction!r}")
        left, right = folder / "left", folder / "right"
        for d in (left, right):
            if not d.is_dir():
                raise DatasetError(f"stereo folder {folder} must hold left/ and right/ subfolders; {d} is missing")
        lnames = {p.name: p for p in list_images(left)}
        rnames = {p.name: p for p in list_images(right)}
        if not lnames and not rnames:
            raise DatasetError(f"no images found in {left} or {right}")
        only_l = sorted(set(lnames) - set(rnames))
        only_r = sorted(set(rnames) - set(lnames))
        if only_l or only_r:
            raise DatasetError(
                "unpaired stereo files: "
                + (f"{len(only_l)} in left/ without a partner in right/ (e.g. {only_l[:3]}) " if only_l else "")
                + (f"{len(only_r)} in right/ without a partner in left/ (e.g. {only_r[:3]})" if only_r else "")
                + "; every left/NAME needs right/NAME"
            )
        self.pairs = [(lnames[n], rnames[n]) for n in sorted(lnames)]
        dirs = ["left", "right"] if direction == "both" else [direction]
        self.items = [(i, d) for i in range(len(self.pairs)) for d in dirs]
        self.skip_bad, self.flip, self.seed = skip_bad, flip, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        pi, d = self.items[i]
        lp, rp = self.pairs[pi]
        try:
            left, right = load_rgb(lp), load_rgb(rp)
        except DatasetError as exc:
            if not self.skip_bad:
                raise
            warn_skip(lp, exc)
            return self[(i + 1) % len(self)]
        if left.shape != right.shape:
            raise DatasetError(f"stereo pair {lp.name}: left is {tuple(left.shape[1:])} but right is {tuple(right.shape[1:])}; both views must have the same size")
        x, side = (left, right) if d == "left" else (right, left)
        if self.flip and torch.rand((), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + i)) < 0.5:
            x, side = x.flip(-1), side.flip(-1)
        return Sample(x=x, side=side, source=0, name=f"{lp.stem}_{d}")


@register_dataset("stereo", description="a local folder of stereo pairs: left/ and right/ with same-named images", protocols=("stereo/pairs",),
                  how_to_obtain="Put the left views in ROOT/left and the right views in ROOT/right with identical file names.")
def stereo(root: Path | None, protocol: Protocol, split: str, direction: str = "both", skip_bad: bool = False, seed: int = 0, **options: Any) -> StereoFolder:
    _no_options("stereo", options)
    base = require_dir(root, "stereo")
    return StereoFolder(_split_dir(base, split, "stereo"), direction=direction, skip_bad=skip_bad, flip=(split == "train"), seed=seed)


def _no_options(dataset: str, options: dict[str, Any]) -> None:
    if options:
        raise ConfigError(f"dataset {dataset!r} does not take option(s) {sorted(options)}")
