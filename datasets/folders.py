"""Generic local folders: `images` (each image a test sample, e.g. Kodak) and `stereo` (left/ + right/ pairs).

Either the root itself holds the test data, or it has `train/`, `val/`, `test/` subfolders of the same shape."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from benchmark.contract.data import Sample
from benchmark.errors import ConfigError, DatasetError
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import register_dataset, register_protocol

from ._io import drop_unreadable, list_images, load_rgb, on_bad_file, open_rgb, require_dir, to_tensor
from .kitti import CROP as KITTI_CROP, SIZE as KITTI_SIZE, _crop_resize as kitti_crop_resize
from .multiview import KITTI_LDMIC, stereo_scenes

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
KITTI_NDIC = "stereo/kitti-ndic"
register_protocol(Protocol(
    name=KITTI_NDIC,
    dataset="stereo",
    description=(
        "KITTI stereo pairs in a stereo folder (left/ = image_2, right/ = image_3, train/val/test subfolders) with "
        "the kitti-stereo/ndic preprocessing: centre crop 370x740 -> 128x256, both directions; side view free; "
        "MS-SSIM win 7"
    ),
    ms_ssim_win=7,
    anchor="jpeg",
    split_rule="the folder's own test/ (or the root) pairs are the test samples, train/ and val/ for training; "
               "each pair in both directions (left codes with right as side information and the reverse)",
    preprocessing=(f"RGB; centre crop {KITTI_CROP[0]}x{KITTI_CROP[1]} (HxW, offsets floor((H-370)/2), floor((W-740)/2)); "
                   f"resize to {KITTI_SIZE[0]}x{KITTI_SIZE[1]} with PIL bilinear; values /255 in [0,1]; training only: "
                   "a seeded horizontal flip of x and side together per sample"),
    rate_accounting="only x is transmitted: bpp = bits of x's bytes / (128*256); the side view is available "
                    "uncompressed at the decoder and costs nothing",
    fixed_bpps=(0.1, 0.25, 0.5),
    options={"direction": "both"},
    preprocessing_of="kitti-stereo/ndic",  # a folder's own pairs: never taken for its test split
    preprocessing_of_test_split=False,
))


def _split_dir(root: Path, split: str, dataset: str) -> Path:
    sub = root / split
    if sub.is_dir():
        return sub
    if split == "test":
        return root
    raise DatasetError(f"{dataset}: no {split!r} split under {root}; create {sub} with the same layout as the test data")


class ImageFolder(Dataset):
    def __init__(self, folder: Path, skip_bad: bool = False, split: str = "test"):
        self.files = list_images(folder)
        if not self.files:
            raise DatasetError(f"no images (png/jpg/bmp/ppm/tif/webp) found in {folder}")
        self.skip_bad, self.split, self.skipped = skip_bad, split, 0
        if skip_bad:
            self.files, self.skipped = drop_unreadable(self.files, folder)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Sample:
        n = len(self.files)
        for attempt in range(n):  # training reads the next file in place of a bad one; test never does
            path = self.files[(i + attempt) % n]
            try:
                x = load_rgb(path)
            except DatasetError as exc:
                if not self.skip_bad:
                    raise
                on_bad_file(self, path, exc, n)
                continue
            return Sample(x=x, side=None, source=0, name=path.stem, facts=_facts(path))
        raise DatasetError(f"no readable image among the {n} of this split")


def _facts(path: Path) -> dict[str, Any] | None:
    """EXIF orientation applied on reading (the result counts such images); None when the header has none."""
    from ._io import image_facts

    try:
        o = image_facts(path).get("exif_orientation", 1)
    except Exception:  # noqa: BLE001 - the image was read already; its facts are a note, not a check
        return None
    return {"exif_orientation": o} if o not in (1, None) else None


@register_dataset("images", description="a local folder of images (e.g. Kodak)", protocols=("images/full",),
                  how_to_obtain="Point --root at a folder of PNG/JPEG images, e.g. the 24 Kodak PNGs (kodim01.png..kodim24.png).")
def images(root: Path | None, protocol: Protocol, split: str, skip_bad: bool = False, **options: Any) -> ImageFolder:
    _no_options("images", options)
    base = require_dir(root, "images")
    return ImageFolder(_split_dir(base, split, "images"), skip_bad=skip_bad, split=split)


class StereoFolder(Dataset):
    """Pairs `left/NAME` with `right/NAME`; direction picks which view is x."""

    def __init__(self, folder: Path, direction: str = "both", skip_bad: bool = False, flip: bool = False, seed: int = 0,
                 prepare=None):
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
        self.skipped, self.split = 0, ("train" if flip else "test")
        if skip_bad:  # pairs with a file whose header fails are dropped here (counted in `skipped`)
            good = set(drop_unreadable([p for pair in self.pairs for p in pair], folder)[0])
            kept = [(a, b) for a, b in self.pairs if a in good and b in good]
            if not kept:
                raise DatasetError(f"every stereo pair in {str(folder)!r} has an unreadable file; nothing to evaluate")
            self.skipped = len(self.pairs) - len(kept)
            self.pairs = kept
        self.items = [(i, d) for i in range(len(self.pairs)) for d in dirs]
        self.skip_bad, self.flip, self.seed = skip_bad, flip, seed
        # prepare(PIL image, path) -> PIL image: a protocol's crop/resize; its (small) results are kept in memory
        self.prepare = prepare
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        pi, d = self.items[i]
        lp, rp = self.pairs[pi]
        try:
            left, right = self._load(pi, lp, rp)
        except DatasetError as exc:
            if not self.skip_bad:
                raise
            on_bad_file(self, lp, exc, len(self.pairs))  # outside training: SkippedSample (never a substitute)
            return self[(i + 1) % len(self)]
        if left.shape != right.shape:
            raise DatasetError(f"stereo pair {lp.name}: left is {tuple(left.shape[1:])} but right is {tuple(right.shape[1:])}; both views must have the same size")
        x, side = (left, right) if d == "left" else (right, left)
        if self.flip and torch.rand((), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + i)) < 0.5:
            x, side = x.flip(-1), side.flip(-1)
        return Sample(x=x, side=side, source=0, name=f"{lp.stem}_{d}", view=d, facts=_facts(lp if d == "left" else rp))

    def _load(self, pi: int, lp: Path, rp: Path) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prepare is None:
            return load_rgb(lp), load_rgb(rp)
        if pi not in self._cache:
            a, b = open_rgb(lp), open_rgb(rp)
            if a.size != b.size:
                raise DatasetError(f"stereo pair {lp.name}: left is {a.size[0]}x{a.size[1]} but right is {b.size[0]}x{b.size[1]} "
                                   "(WxH); both views must have the same size")
            self._cache[pi] = (to_tensor(self.prepare(a, lp)), to_tensor(self.prepare(b, rp)))
        return self._cache[pi]


@register_dataset("stereo", description="a local folder of stereo pairs: left/ and right/ with same-named images", protocols=("stereo/pairs", KITTI_NDIC, KITTI_LDMIC),
                  how_to_obtain="Put the left views in ROOT/left and the right views in ROOT/right with identical file names.")
def stereo(root: Path | None, protocol: Protocol, split: str, direction: str = "both", skip_bad: bool = False, seed: int = 0, **options: Any) -> StereoFolder:
    base = require_dir(root, "stereo")
    if getattr(protocol, "name", protocol) == KITTI_LDMIC:  # each pair once, both views coded (datasets/multiview.py)
        return stereo_scenes(base, split, **options)
    _no_options("stereo", options)
    prepare = kitti_crop_resize if getattr(protocol, "name", protocol) == KITTI_NDIC else None
    return StereoFolder(_split_dir(base, split, "stereo"), direction=direction, skip_bad=skip_bad, flip=(split == "train"),
                        seed=seed, prepare=prepare)


def _no_options(dataset: str, options: dict[str, Any]) -> None:
    if options:
        raise ConfigError(f"dataset {dataset!r} does not take option(s) {sorted(options)}")
