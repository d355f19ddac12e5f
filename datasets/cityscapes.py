"""Cityscapes stereo under the NDIC protocol (``cityscapes/ndic``) and LDMIC's (``cityscapes/ldmic``).

Layout read (the two official zips unzipped into the same ROOT)::

    ROOT/leftImg8bit/{train,val,test}/<city>/<name>_leftImg8bit.png
    ROOT/rightImg8bit/{train,val,test}/<city>/<name>_rightImg8bit.png

Official splits (train 2975 / val 500 / test 1525 pairs). Left is x and right the side view (one
direction; option direction=right|both exists for experiments outside the protocol). The whole frame is
resized to 128x256 with PIL bilinear, no crop.

``cityscapes/ldmic`` (Zhang, Shao, Zhang, "LDMIC: Learning-based Distributed Multi-view Image Coding", ICLR 2023,
arXiv:2301.09799), as the authors' data code reads Cityscapes: the same folders and splits; every 2048x1024 view
loses 64 rows at the top, 256 at the bottom (the ego car and its reflections) and 128 columns on each side, leaving
1792x704 (their ``CropCityscapesArtefacts``, applied to training and test images alike); a test scene is the two
cropped views side by side, coded once (datasets/multiview.py), bpp = bits of both views / (2*704*1792).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from PIL import Image

from benchmark.contract.data import SplitReport
from benchmark.errors import ConfigError, DatasetError
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import register_dataset, register_protocol

from ._io import require_dir
from .multiview import ldmic_protocol, scenes_for
from ._real import PairedImages, PairItem, check_protocol, check_split, choice, rel, resolve_options

NAME = "cityscapes"
PROTOCOL = "cityscapes/ndic"
SIZE = (128, 256)  # H, W
EXPECTED = {"train": 2975, "val": 500, "test": 1525}
DIRECTIONS = ("left", "right", "both")
LEFT, RIGHT = "leftImg8bit", "rightImg8bit"

HOW_TO_OBTAIN = (
    "Register at https://www.cityscapes-dataset.com/ and download 'leftImg8bit_trainvaltest.zip' and "
    "'rightImg8bit_trainvaltest.zip' (Downloads page). Unzip both into the same ROOT so that "
    "ROOT/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png and "
    "ROOT/rightImg8bit/train/aachen/aachen_000000_000019_rightImg8bit.png exist. "
    "Then: bench datasets check cityscapes --root ROOT"
)

register_protocol(Protocol(
    name=PROTOCOL,
    dataset=NAME,
    description=(
        "Cityscapes stereo (NDIC): official train 2975 / val 500 / test 1525 pairs, left coded with right as side "
        "info; whole 2048x1024 frame -> 128x256 bilinear; bpp = bits of x / (128*256); MS-SSIM win 7"
    ),
    ms_ssim_win=7,
    anchor="balle2018",
    split_rule="official Cityscapes splits: leftImg8bit/{train,val,test} paired by name with rightImg8bit/ "
               "(2975 / 500 / 1525); one direction: x = left, side = right",
    preprocessing="RGB; whole frame resized to 128x256 with PIL bilinear (no crop); values /255 in [0,1]; "
                  "training only: random horizontal flip of x and side together",
    rate_accounting="only x is transmitted: bpp = bits of x's bytes / (128*256); the right view is available "
                    "uncompressed at the decoder and costs nothing",
    fixed_bpps=(0.05, 0.1, 0.2),
    options={"direction": "left"},
))


LDMIC = "cityscapes/ldmic"
FRAME = (2048, 1024)  # W, H of a Cityscapes frame
ARTEFACTS = {"top": 64, "left": 128, "right": 128, "bottom": 256}  # pixels cut away: 1792x704 remain
ldmic_protocol(
    LDMIC, NAME,
    "Cityscapes stereo as LDMIC evaluates it: every view cropped to 1792x704 (artefact borders removed), both views "
    "coded, bpp over both views, each test pair coded once (official test split, 1525 pairs)",
    "official Cityscapes splits as the authors' data code globs them: leftImg8bit/test pairs = test scenes (one "
    "sample each); leftImg8bit/train = training, each pair in both orders; leftImg8bit/val = validation (the "
    "authors validate on the test split: ours)", 2,
    preprocessing="RGB; every 2048x1024 view cropped to rows 64..767 and columns 128..1919 (1792x704: 64 px off the "
                  "top, 256 off the bottom, 128 off each side), training and test alike; test: the two views side by "
                  "side in one 704x3584 frame; values /255 in [0,1]; training: x = one view, side = the other, random "
                  "crops at the same place")


def crop_artefacts(im: Image.Image) -> Image.Image:
    """The authors' artefact crop of a 2048x1024 Cityscapes view (1792x704 remain); other sizes are refused."""
    if im.size != FRAME:
        raise DatasetError(f"cityscapes: protocol {LDMIC} crops 2048x1024 frames (the released leftImg8bit/"
                           f"rightImg8bit size); got {im.size[0]}x{im.size[1]} (WxH) - a resized or foreign image?")
    w, h = im.size
    return im.crop((ARTEFACTS["left"], ARTEFACTS["top"], w - ARTEFACTS["right"], h - ARTEFACTS["bottom"]))


def _ldmic_scenes(root: Path, protocol: Any, split: str, options: dict[str, Any]):
    """``cityscapes/ldmic``: one scene per official pair, both views artefact-cropped."""
    opts = resolve_options(NAME, protocol, options, {"views": 2})
    if int(opts["views"]) != 2:
        raise ConfigError(f"cityscapes: protocol {LDMIC} has two views per scene; got views={opts['views']}")
    if opts["augment"] is not None:
        raise ConfigError(f"cityscapes: protocol {LDMIC} takes no augment option (the trainer crops and flips)")
    scenes = [(f"{split}/{key}", [lp, rp]) for key, lp, rp in pairs(root, split, skip_bad=opts["skip_bad"])]
    return scenes_for(scenes, split, test_crop=crop_artefacts, train_crop=crop_artefacts)


def _resize(im: Image.Image, path: Path) -> Image.Image:
    return im.resize((SIZE[1], SIZE[0]), Image.BILINEAR)


def _scan(folder: Path, suffix: str) -> dict[str, Path]:
    """'<city>/<name>' -> path of every ``*_<suffix>.png`` below ``folder``."""
    if not folder.is_dir():
        return {}
    end = f"_{suffix}.png"
    return {f"{p.parent.name}/{p.name[: -len(end)]}": p for p in folder.glob(f"*/*{end}")}


def pairs(root: Path, split: str, *, skip_bad: bool = False) -> list[tuple[str, Path, Path]]:
    """(city/name, left path, right path) of every pair of ``split``, sorted."""
    ldir, rdir = root / LEFT / split, root / RIGHT / split
    for d, zipname in ((ldir, "leftImg8bit_trainvaltest.zip"), (rdir, "rightImg8bit_trainvaltest.zip")):
        if not d.is_dir():
            raise DatasetError(f"cityscapes: folder {rel(d, root)}/ is missing under {str(root)!r}; unzip "
                               f"{zipname} into the root. {HOW_TO_OBTAIN}")
    left, right = _scan(ldir, LEFT), _scan(rdir, RIGHT)
    for key in sorted(set(left) ^ set(right)):
        have = left.get(key) or right[key]
        lack = (rdir / f"{key}_{RIGHT}.png") if key in left else (ldir / f"{key}_{LEFT}.png")
        msg = (f"cityscapes: {rel(have, root)} has no partner {rel(lack, root)}; every frame needs both views - "
               f"re-extract the zips, or pass skip_bad to skip the frame")
        if not skip_bad:
            raise DatasetError(msg)
        warnings.warn(msg, stacklevel=3)
    keys = sorted(set(left) & set(right))
    if not keys:
        raise DatasetError(f"cityscapes: no <city>/<name>_leftImg8bit.png pairs in {rel(ldir, root)}/. {HOW_TO_OBTAIN}")
    return [(k, left[k], right[k]) for k in keys]


def check_cityscapes(root: Path | str | None, **options: Any) -> list[SplitReport]:
    """Per split: left/right pairs found against the official counts; files without partner are missing."""
    root = require_dir(root, NAME, HOW_TO_OBTAIN)
    reports = []
    for split, expected in EXPECTED.items():
        ldir, rdir = root / LEFT / split, root / RIGHT / split
        left, right = _scan(ldir, LEFT), _scan(rdir, RIGHT)
        missing = [rel(rdir / f"{k}_{RIGHT}.png", root) for k in sorted(set(left) - set(right))]
        missing += [rel(ldir / f"{k}_{LEFT}.png", root) for k in sorted(set(right) - set(left))]
        absent = [rel(d, root) + "/" for d in (ldir, rdir) if not d.is_dir()]
        reports.append(SplitReport(
            split=split, found=len(set(left) & set(right)), expected=expected,
            missing=(absent + missing)[:5], n_missing=len(missing) + len(absent),
            note=f"folders missing: {', '.join(absent)}" if absent else "",
        ))
    return reports


@register_dataset(
    NAME,
    description="Cityscapes left/right 8-bit frames (leftImg8bit + rightImg8bit), local copy",
    protocols=(PROTOCOL, LDMIC),
    how_to_obtain=HOW_TO_OBTAIN,
    check=check_cityscapes,
)
def cityscapes(root: Path | str | None, protocol: Any, split: str, **options: Any) -> Any:
    """Stereo pairs of ``split``; options: direction (left|right|both; the protocol is left), augment, seed, skip_bad.
    Under ``cityscapes/ldmic``: scenes of both views (views (2), seed, skip_bad)."""
    name = check_protocol(protocol, (PROTOCOL, LDMIC), NAME)
    check_split(split, NAME)
    if name == LDMIC:
        return _ldmic_scenes(require_dir(root, NAME, HOW_TO_OBTAIN), protocol, split, options)
    opts = resolve_options(NAME, protocol, options, {"direction": "left"})
    direction = choice(opts["direction"], "direction", DIRECTIONS, NAME)
    root = require_dir(root, NAME, HOW_TO_OBTAIN)
    items: list[PairItem] = []
    for key, lp, rp in pairs(root, split, skip_bad=opts["skip_bad"]):
        if direction in ("left", "both"):
            items.append(PairItem(lp, rp, f"{split}/{key}/left"))
        if direction in ("right", "both"):
            items.append(PairItem(rp, lp, f"{split}/{key}/right"))
    return PairedImages(items, _resize, split=split, seed=opts["seed"], augment=opts["augment"],
                        skip_bad=opts["skip_bad"], dataset=NAME)
