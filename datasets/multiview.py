"""Multi-view scenes coded once per scene, all views counted: the protocols of LDMIC (Zhang, Shao, Zhang,
"LDMIC: Learning-based Distributed Multi-view Image Coding", ICLR 2023, arXiv:2301.09799).

A test sample is one scene: its V views, each centre-cropped to multiples of 64 (the authors' ``MinimalCrop``),
side by side in one frame x (3 x H x V·W, side None). A distributed multi-view codec (methods/ldmic) cuts the
frame into its views and codes each alone, so the runner's bpp — bytes of the sample / (H·V·W) — is bits of all
views / (views·H·W), each scene coded once, as the paper reports it. A single-image codec run on the frame codes
the views separately (the JPEG anchor exactly: its 8x8 blocks never straddle two views).

Training and validation samples are x = one view, side = the other V−1 views stacked along channels (every view
in turn as x; the trainer crops them at the same place).

- ``stereo/kitti-ldmic`` (dataset ``stereo``: ROOT/{train,val,test}/{left,right}/NAME.png, e.g. KITTI 2015
  pairs): V = 2.
- ``instereo2k/ldmic`` (dataset ``instereo2k``): InStereo2K as the authors read it, ROOT/train/<group>/<scene>/
  {left,right}.png and ROOT/test/<scene>/{left,right}.png; validation: every 10th training scene, left out of
  training (ours: the authors have none).
- ``multiview/wildtrack-ldmic`` (dataset ``multiview``): the WildTrack layout as the authors' ``lib/utils.py``
  reads it, ROOT/images/C1..C7/NNNNNNNN.png with the same frame numbers in every camera; frames <= 2000 train,
  > 2000 test (the authors' rule); validation: every 10th frame <= 2000, left out of training (ours: the authors
  validate on the test frames). ``--dataset-option views=V`` uses cameras C1..CV (default 7)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from torch.utils.data import Dataset

from benchmark.contract.data import Sample, SplitReport
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import register_dataset, register_protocol
from benchmark.errors import ConfigError, DatasetError

from ._io import list_images, open_rgb, require_dir, to_tensor

KITTI_LDMIC = "stereo/kitti-ldmic"
WILDTRACK = "multiview/wildtrack-ldmic"
INSTEREO2K = "instereo2k/ldmic"
DIV = 64
CAMERAS = 7
WILDTRACK_SPLIT = 2000  # frames <= this train (and validate), > this test
_RATE = ("every view is coded and counted: bpp = bits of all views / (views*H*W); each scene coded once as one "
         "frame of its views side by side")
_PREP = (f"RGB; every view centre-cropped to multiples of {DIV} (offsets floor of half the excess), views side by "
         "side in one frame; values /255 in [0,1]; training: x = one view, side = the other views along channels, "
         "random crops at the same place")


def ldmic_protocol(name: str, dataset: str, description: str, split_rule: str, views: int,
                   preprocessing: str = _PREP, views_option: str = "") -> None:
    """An LDMIC protocol: scenes coded once, all views counted, metrics on the whole frame and the mean over views of
    per-view PSNRs as the authors' eval.py averages it (`views_option`: how a run changes the number of views)."""
    register_protocol(Protocol(
        name=name, dataset=dataset, description=description, ms_ssim_win=11, anchor="jpeg", split_rule=split_rule,
        preprocessing=preprocessing, rate_accounting=_RATE, options={"views": views},
        psnr="10*log10(1/MSE) on the decoded frame (all its views), clamped and rounded to 8 bits, then mean over scenes"
             f"; also recorded (points[].extra.psnr_view_mean): the mean over scenes of the mean over the {views} "
             f"views{views_option} of each view's PSNR, as the authors' eval.py averages",
        views_per_frame=views,  # a run's dataset option views sets it (Protocol.for_run)
    ))


ldmic_protocol(KITTI_LDMIC, "stereo",
               "stereo pairs of a folder (e.g. KITTI 2015) as LDMIC evaluates them: full resolution cropped to multiples "
               "of 64, both views coded, bpp over both views, each pair coded once",
               "the folder's test/ pairs are the test scenes (one sample each); train/ and val/ for training, each pair "
               "in both orders", 2)
ldmic_protocol(INSTEREO2K, "instereo2k",
               "InStereo2K stereo pairs as LDMIC evaluates them: the test/ scenes at full resolution cropped to multiples "
               "of 64, both views coded, bpp over both views, each pair coded once",
               "test/<scene>: test (one sample per pair); train/<group>/<scene>: training, every 10th scene (sorted, the "
               "10th, 20th...) validation; training pairs in both orders", 2)
ldmic_protocol(WILDTRACK, "multiview",
               "WildTrack-layout multi-camera scenes (C1..CV) as LDMIC evaluates them: frames > 2000 test, every view "
               "cropped to multiples of 64, all views coded, bpp over all views",
               f"frame number <= {WILDTRACK_SPLIT}: train (every 10th: validation), > {WILDTRACK_SPLIT}: test", CAMERAS,
               views_option=" (or the V of --dataset-option views=V)")


def minimal_crop(im: Image.Image, div: int = DIV) -> Image.Image:
    """The centred crop to the largest multiples of `div` (the authors' MinimalCrop)."""
    w, h = im.size
    nw, nh = w - w % div, h - h % div
    if nw == 0 or nh == 0:
        raise DatasetError(f"an image of {w}x{h} (WxH) is smaller than {div} pixels on a side; nothing is left after "
                           f"the crop to multiples of {div}")
    left, top = (w - nw) // 2, (h - nh) // 2
    return im.crop((left, top, left + nw, top + nh))


Crop = Callable[[Image.Image], Image.Image]


def _views(paths: list[Path], crop: Crop | None) -> list[torch.Tensor]:
    ims = [open_rgb(p) for p in paths]
    if len({im.size for im in ims}) != 1:
        sizes = ", ".join(f"{p.name}: {im.size[0]}x{im.size[1]}" for p, im in zip(paths, ims))
        raise DatasetError(f"the views of one scene differ in size ({sizes}); every view must have the same size")
    return [to_tensor(crop(im) if crop else im) for im in ims]


class SceneFrames(Dataset):
    """Test scenes: x = the V cropped views side by side, side None."""

    def __init__(self, scenes: list[tuple[str, list[Path]]], crop: Crop = minimal_crop):
        if not scenes:
            raise DatasetError("no scenes to evaluate")
        self.scenes, self.split, self.skipped, self.crop = scenes, "test", 0, crop
        self.views = len(scenes[0][1])

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int) -> Sample:
        name, paths = self.scenes[i]
        return Sample(x=torch.cat(_views(paths, self.crop), dim=-1), side=None, source=0, name=name, view="scene")


class ViewStacks(Dataset):
    """Training/validation: every view of every scene in turn as x, the others (in camera order) as side."""

    def __init__(self, scenes: list[tuple[str, list[Path]]], split: str, crop: Crop | None = None):
        if not scenes:
            raise DatasetError(f"no scenes in the {split} split")
        self.scenes, self.split, self.skipped, self.crop = scenes, split, 0, crop
        self.views = len(scenes[0][1])

    def __len__(self) -> int:
        return len(self.scenes) * self.views

    def __getitem__(self, i: int) -> Sample:
        name, paths = self.scenes[i // self.views]
        r = i % self.views
        views = _views(paths, self.crop)
        side = torch.cat([v for k, v in enumerate(views) if k != r], dim=0)
        return Sample(x=views[r], side=side, source=0, name=f"{name}/view{r}", view=f"view{r}")


def scenes_for(scenes: list[tuple[str, list[Path]]], split: str, test_crop: Crop = minimal_crop,
               train_crop: Crop | None = None) -> Dataset:
    """Test: one frame per scene, its views cropped by `test_crop`; train/val: view stacks, cropped by `train_crop`
    (None: whole views; the trainer takes random crops of them)."""
    return SceneFrames(scenes, test_crop) if split == "test" else ViewStacks(scenes, split, train_crop)


# ------------------------------------------------------------------------------------------ stereo folders
def stereo_scenes(base: Path, split: str, views: int = 2, **options: Any) -> Dataset:
    """``stereo/kitti-ldmic`` on a stereo folder (datasets/folders.py routes here): ROOT/split/{left,right}/."""
    if options:
        raise ConfigError(f"protocol {KITTI_LDMIC} takes the dataset option views (2) only; got {sorted(options)}")
    if int(views) != 2:
        raise ConfigError(f"protocol {KITTI_LDMIC} has two views per scene; got views={views}")
    folder = base / split if (base / split).is_dir() else base if split == "test" else None
    if folder is None:
        raise DatasetError(f"stereo: no {split!r} split under {base}; create {base / split} with left/ and right/")
    left = {p.name: p for p in list_images(folder / "left")} if (folder / "left").is_dir() else {}
    right = {p.name: p for p in list_images(folder / "right")} if (folder / "right").is_dir() else {}
    if not left or set(left) != set(right):
        raise DatasetError(f"stereo folder {folder} needs left/ and right/ holding the same file names "
                           f"({len(left)} left, {len(right)} right, {len(set(left) ^ set(right))} unpaired)")
    return scenes_for([(Path(n).stem, [left[n], right[n]]) for n in sorted(left)], split)


# ------------------------------------------------------------------------------------------ WildTrack layout
HOW_TO_OBTAIN = ("WildTrack (EPFL CVLab, 7 synchronised cameras): unpack Image_subsets so that "
                 "ROOT/images/C1/00000000.png .. ROOT/images/C7/... exist (the same frame numbers in every camera). "
                 "Then: bench datasets check multiview --root ROOT")


def wildtrack_frames(root: Path, views: int) -> list[tuple[int, list[Path]]]:
    """(frame number, [C1..CV paths]) of every frame present in all of C1..CV, sorted."""
    cams = [root / "images" / f"C{c}" for c in range(1, views + 1)]
    missing = [str(c) for c in cams if not c.is_dir()]
    if missing:
        raise DatasetError(f"multiview: camera folder(s) {', '.join(missing)} not found. {HOW_TO_OBTAIN}")
    frames = []
    for p in sorted(list_images(cams[0])):
        if not p.stem.isdigit():
            continue
        others = [c / p.name for c in cams[1:]]
        lacking = [str(o) for o in others if not o.is_file()]
        if lacking:
            raise DatasetError(f"multiview: frame {p.name} of C1 has no partner {lacking[0]}; every camera needs "
                               "every frame")
        frames.append((int(p.stem), [p, *others]))
    return frames


def _split_frames(frames: list[tuple[int, list[Path]]], split: str) -> list[tuple[str, list[Path]]]:
    keep = {"train": lambda f: f <= WILDTRACK_SPLIT and f % 10 != 0, "val": lambda f: f <= WILDTRACK_SPLIT and f % 10 == 0,
            "test": lambda f: f > WILDTRACK_SPLIT}[split]
    return [(f"{f:08d}", paths) for f, paths in frames if keep(f)]


def check_multiview(root: Path | str | None, **options: Any) -> list[SplitReport]:
    base = require_dir(root, "multiview", HOW_TO_OBTAIN)
    views = int(options.get("views") or CAMERAS)
    frames = wildtrack_frames(base, views)
    return [SplitReport(split=s, found=len(_split_frames(frames, s)), note=f"frames of C1..C{views}")
            for s in ("train", "val", "test")]


@register_dataset("multiview", description="multi-camera scenes in the WildTrack layout (images/C1..C7/NNNNNNNN.png)",
                  protocols=(WILDTRACK,), how_to_obtain=HOW_TO_OBTAIN, check=check_multiview)
def multiview(root: Path | str | None, protocol: Any, split: str, views: int = CAMERAS, seed: int = 0,
              skip_bad: bool = False, **options: Any) -> Dataset:
    if options or skip_bad:
        raise ConfigError(f"dataset 'multiview' takes the options views and seed; got {sorted(options) or ['skip_bad']}")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"multiview: unknown split {split!r}; use train, val or test")
    views = int(views)
    if not 2 <= views <= CAMERAS:
        raise ConfigError(f"multiview: views must be 2..{CAMERAS} (cameras C1..CV), got {views}")
    base = require_dir(root, "multiview", HOW_TO_OBTAIN)
    scenes = _split_frames(wildtrack_frames(base, views), split)
    if not scenes:
        raise DatasetError(f"multiview: no frames of the {split} split under {base} "
                           f"(train/val: numbers <= {WILDTRACK_SPLIT}, test: > {WILDTRACK_SPLIT})")
    return scenes_for(scenes, split)


# ------------------------------------------------------------------------------------------ InStereo2K layout
INSTEREO2K_HOW = ("InStereo2K (Bao et al., 2020): unpack train.zip and test.zip so that ROOT/train/<group>/<scene>/"
                  "left.png (and right.png) and ROOT/test/<scene>/left.png exist. Then: bench datasets check instereo2k "
                  "--root ROOT")


def instereo2k_scenes(root: Path, split: str) -> list[tuple[str, list[Path]]]:
    """(scene name, [left, right]) of `split`, sorted; a scene folder without both views is refused."""
    part = root / ("test" if split == "test" else "train")
    if not part.is_dir():
        raise DatasetError(f"instereo2k: {part} not found. {INSTEREO2K_HOW}")
    folders = sorted(f for f in (part.iterdir() if split == "test" else part.glob("*/*")) if f.is_dir())
    scenes = []
    for f in folders:
        left, right = f / "left.png", f / "right.png"
        if not (left.is_file() and right.is_file()):
            raise DatasetError(f"instereo2k: {f} lacks {'left.png' if not left.is_file() else 'right.png'}; every "
                               "scene folder needs both views")
        scenes.append((str(f.relative_to(part)), [left, right]))
    if split != "test":
        scenes = [s for i, s in enumerate(scenes) if (i % 10 == 9) == (split == "val")]
    return scenes


def check_instereo2k(root: Path | str | None, **options: Any) -> list[SplitReport]:
    base = require_dir(root, "instereo2k", INSTEREO2K_HOW)
    return [SplitReport(split=s, found=len(instereo2k_scenes(base, s)), note="scene folders with left.png + right.png")
            for s in ("train", "val", "test")]


@register_dataset("instereo2k", description="InStereo2K stereo pairs (train/<group>/<scene>, test/<scene>), local copy",
                  protocols=(INSTEREO2K,), how_to_obtain=INSTEREO2K_HOW, check=check_instereo2k)
def instereo2k(root: Path | str | None, protocol: Any, split: str, views: int = 2, seed: int = 0,
               skip_bad: bool = False, **options: Any) -> Dataset:
    if options or skip_bad or int(views) != 2:
        raise ConfigError(f"dataset 'instereo2k' takes the options views (2) and seed; got "
                          f"{sorted(options) or ['skip_bad' if skip_bad else f'views={views}']}")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"instereo2k: unknown split {split!r}; use train, val or test")
    scenes = instereo2k_scenes(require_dir(root, "instereo2k", INSTEREO2K_HOW), split)
    if not scenes:
        raise DatasetError(f"instereo2k: no scenes in the {split} split under {root}")
    return scenes_for(scenes, split)
