"""KITTI Stereo under the DSIN / NDIC / Neural DSC protocol (``kitti-stereo/ndic``).

Layout read (as KITTI distributes the two multi-view zips, each unzipped into a folder of its own name)::

    ROOT/data_stereo_flow_multiview/{training,testing}/{image_2,image_3}/NNNNNN_FF.png   (KITTI 2012)
    ROOT/data_scene_flow_multiview/{training,testing}/{image_2,image_3}/NNNNNN_FF.png    (KITTI 2015)

Either folder alone is accepted (with a warning: the published split needs both). A root that *is* one
unzipped release (ROOT/{training,testing}/...) is read as a single set. The two zips cannot be merged into
one folder: their file names collide (both start at 000000_10.png).

Split rule (the papers' lists follow it): train = frames _10 and _11 of every ``training/`` scene
(194 + 200 scenes -> 788 pairs), val = frame _11 of every ``testing/`` scene (195 + 200 -> 395 pairs),
test = frame _10 of the ``testing/`` scenes (395 pairs); each pair in both directions by default
(1576 / 790 / 790 samples). Preprocessing: RGB, centre crop 370x740, PIL bilinear resize to 128x256, [0,1].

``kitti/ldmic``: the split of LDMIC's authors (Zhang, Shao, Zhang, ICLR 2023, arXiv:2301.09799) on the same release
folders. Their data code lists every stereo pair of the KITTI 2012 and 2015 stereo releases' ``training/`` folders
for training and of their ``testing/`` folders for test: the pairs of frames _10 and _11 (the frames those releases
hold), 194 + 200 scenes -> 788 training pairs and 195 + 200 -> 790 test pairs. Read from those releases where
they are unzipped under ROOT (``data_stereo_flow/`` or ``stereo2012/``: colored_0 = left, colored_1 = right;
``data_scene_flow/`` or ``stereo2015/``: image_2, image_3), else from the frames _10 and _11 of the multi-view
releases above (the same images; image_2 = left, image_3 = right). Test pairs at full resolution,
each view centre-cropped to multiples of 64 (375x1242 -> 320x1216), both views coded once as one frame
(datasets/multiview.py); validation (ours: the authors validate on the test pairs): the pairs of every training
scene whose number ends in 9, left out of training.
"""
from __future__ import annotations

import os
import re
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

NAME = "kitti"
PROTOCOL = "kitti-stereo/ndic"
CROP = (370, 740)  # H, W
SIZE = (128, 256)  # H, W
DIRECTIONS = ("both", "left", "right")
# folder -> (tag, training scenes, testing scenes)
SETS: dict[str, tuple[str, int, int]] = {
    "data_stereo_flow_multiview": ("kitti2012", 194, 195),
    "data_scene_flow_multiview": ("kitti2015", 200, 200),
}
SPLIT_RULE = {"train": ("training", ("10", "11")), "val": ("testing", ("11",)), "test": ("testing", ("10",))}
EXPECTED = {"train": 1576, "val": 790, "test": 790}
_FILE = re.compile(r"^(\d{6})_(\d{2})\.png$")

HOW_TO_OBTAIN = (
    "Register at https://www.cvlibs.net/datasets/kitti/ and download two zips: 'data_stereo_flow_multiview.zip' "
    "(Stereo 2012 page, 'multi-view extension') and 'data_scene_flow_multiview.zip' (Scene Flow 2015 page, "
    "'multi-view extension'). Unzip each into a folder named like the zip under ROOT, so that "
    "ROOT/data_stereo_flow_multiview/training/image_2/000000_10.png and "
    "ROOT/data_scene_flow_multiview/testing/image_3/000000_10.png exist (only image_2 = left and image_3 = right "
    "are read). Protocol kitti/ldmic reads their frames _10 and _11, or, where unzipped the same way, the stereo "
    "zips 'data_stereo_flow.zip' (ROOT/data_stereo_flow/, colored_0 = left, colored_1 = right) and "
    "'data_scene_flow.zip' (ROOT/data_scene_flow/, image_2, image_3), as the LDMIC authors did. "
    "Then: bench datasets check kitti --root ROOT"
)

register_protocol(Protocol(
    name=PROTOCOL,
    dataset=NAME,
    description=(
        "KITTI 2012+2015 stereo (DSIN/NDIC/Neural DSC split): train 1576 / val 790 / test 790 samples (pairs in "
        "both directions); centre crop 370x740 -> 128x256 bilinear; bpp = bits of x / (128*256), side view free; "
        "MS-SSIM win 7"
    ),
    ms_ssim_win=7,
    anchor="balle2018",
    split_rule=(
        "train: frames _10 and _11 of every training/ scene of KITTI 2012 (194) and 2015 (200) = 788 pairs; "
        "val: frame _11 of every testing/ scene (195 + 200) = 395 pairs; test: frame _10 of the testing/ scenes = "
        "395 pairs; each pair in both directions (left codes with right as side information and the reverse)"
    ),
    preprocessing=(
        "RGB; centre crop 370x740 (offsets floor((H-370)/2), floor((W-740)/2)); resize to 128x256 with PIL "
        "bilinear; values /255 in [0,1]; training only: random horizontal flip of x and side together"
    ),
    rate_accounting="only x is transmitted: bpp = bits of x's bytes / (128*256); the side view is available "
                    "uncompressed at the decoder and costs nothing",
    fixed_bpps=(0.05, 0.1, 0.2),
    options={"direction": "both"},
))


LDMIC = "kitti/ldmic"
# the stereo-benchmark releases the LDMIC authors' data code reads: folder -> (tag, left, right); a release under
# the zip's folder name or the authors' (stereo2012/, stereo2015/)
STEREO_RELEASES: dict[str, tuple[str, str, str]] = {
    "data_stereo_flow": ("kitti2012", "colored_0", "colored_1"), "stereo2012": ("kitti2012", "colored_0", "colored_1"),
    "data_scene_flow": ("kitti2015", "image_2", "image_3"), "stereo2015": ("kitti2015", "image_2", "image_3"),
}
LDMIC_RULE = {"train": ("training", ("10", "11")), "val": ("training", ("10", "11")), "test": ("testing", ("10", "11"))}
ldmic_protocol(
    LDMIC, NAME,
    "KITTI 2012+2015 stereo with the LDMIC authors' split: every pair of frames _10/_11 of the testing/ scenes (790) "
    "at full resolution cropped to multiples of 64, both views coded, bpp over both views, each pair coded once",
    "test: frames _10 and _11 of every testing/ scene of KITTI 2012 (195) and 2015 (200) = 790 pairs, one sample "
    "each; train: frames _10 and _11 of the training/ scenes (194 + 200 = 788 pairs) except those of scenes whose "
    "number ends in 9 (ours: validation, 78 pairs; the authors validate on the test pairs); training pairs in both "
    "orders; read from the stereo releases (data_stereo_flow/ or stereo2012/: colored_0, colored_1; data_scene_flow/ "
    "or stereo2015/: image_2, image_3) where present, else from the multi-view releases", 2)


def _ldmic_keep(split: str, name: str) -> bool:
    """Whether the pair NNNNNN_FF(.png) belongs to `split` of ``kitti/ldmic`` (validation: scenes ending in 9)."""
    return split == "test" or (int(name[:6]) % 10 == 9) == (split == "val")


def _ldmic_scenes(root: Path, protocol: Any, split: str, options: dict[str, Any]):
    """``kitti/ldmic``: one scene per stereo pair of the split (LDMIC_RULE), validation = scenes ending in 9."""
    opts = resolve_options(NAME, protocol, options, {"views": 2})
    if int(opts["views"]) != 2 or opts["augment"] is not None:
        raise ConfigError(f"kitti: protocol {LDMIC} takes the options views (2), seed and skip_bad; got "
                          f"views={opts['views']}, augment={opts['augment']}")
    found = pairs(root, split, skip_bad=opts["skip_bad"], rule=LDMIC_RULE[split], sets=stereo_release_sets(root))
    if split != "test":
        found = [f for f in found if _ldmic_keep(split, f[1])]
    if not found:
        raise DatasetError(f"kitti: no {split} pairs of protocol {LDMIC} under {str(root)!r} (validation: the "
                           "training scenes whose number ends in 9)")
    return scenes_for([(f"{tag}/{stem}", [left, right]) for tag, stem, left, right in found], split)


def find_sets(root: Path) -> list[tuple[Path, str, int | None, int | None]]:
    """The KITTI releases under ``root``: (folder, tag, training scenes, testing scenes)."""
    found = [(root / d, tag, ntr, nte) for d, (tag, ntr, nte) in SETS.items() if (root / d).is_dir()]
    if found:
        return found
    if (root / "training").is_dir() or (root / "testing").is_dir():
        return [(root, "kitti", None, None)]
    raise DatasetError(
        f"kitti: {str(root)!r} holds neither data_stereo_flow_multiview/ nor data_scene_flow_multiview/ (nor a "
        f"training/ or testing/ folder of one release). {HOW_TO_OBTAIN}"
    )


def _names(folder: Path, frames: tuple[str, ...]) -> set[str]:
    if not folder.is_dir():
        return set()
    with os.scandir(folder) as it:
        return {e.name for e in it if (m := _FILE.match(e.name)) and m.group(2) in frames}


def _crop_resize(im: Image.Image, path: Path) -> Image.Image:
    w, h = im.size
    ch, cw = CROP
    if h < ch or w < cw:
        raise DatasetError(
            f"kitti: image {str(path)!r} is {w}x{h} (WxH), smaller than the protocol's centre crop {cw}x{ch}; "
            f"KITTI multi-view frames are about 1242x375 - is this the original, unscaled file?"
        )
    top, left = (h - ch) // 2, (w - cw) // 2
    return im.crop((left, top, left + cw, top + ch)).resize((SIZE[1], SIZE[0]), Image.BILINEAR)


def stereo_release_sets(root: Path) -> list[tuple[Path, str, str, str]]:
    """``kitti/ldmic``'s releases: (folder, tag, left folder, right folder) of the stereo-benchmark releases the
    authors read (STEREO_RELEASES) where present, else of the multi-view releases (image_2, image_3)."""
    found = [(root / d, tag, lv, rv) for d, (tag, lv, rv) in STEREO_RELEASES.items() if (root / d).is_dir()]
    tags = [t for _, t, _, _ in found]
    if len(set(tags)) != len(tags):
        names = ", ".join(f"{f.name}/" for f, _, _, _ in found)
        raise DatasetError(f"kitti: {names} under {str(root)!r} hold the same release twice; keep one folder per "
                           "release (data_stereo_flow/ or stereo2012/, data_scene_flow/ or stereo2015/)")
    return found or [(folder, tag, "image_2", "image_3") for folder, tag, _, _ in find_sets(root)]


def pairs(root: Path, split: str, *, skip_bad: bool = False, rule: tuple[str, tuple[str, ...]] | None = None,
          sets: list[tuple[Path, str, str, str]] | None = None) -> list[tuple[str, str, Path, Path]]:
    """(tag, stem, left path, right path) of every stereo pair of ``split`` (or of `rule`: folder, frames), sorted;
    `sets`: (folder, tag, left folder, right folder) of the releases (default: the multi-view releases)."""
    part, frames = rule or SPLIT_RULE[split]
    sets = sets if sets is not None else [(f, tag, "image_2", "image_3") for f, tag, _, _ in find_sets(root)]
    if len(sets) == 1 and sets[0][1] != "kitti":
        warnings.warn(
            f"kitti: only {sets[0][0].name}/ found under {str(root)!r}; the published split uses both KITTI 2012 "
            f"and 2015, so results are not comparable with the papers", stacklevel=3,
        )
    out = []
    for folder, tag, lv, rv in sets:
        d2, d3 = folder / part / lv, folder / part / rv
        if not d2.is_dir() and not d3.is_dir():
            raise DatasetError(
                f"kitti: split {split!r} needs {rel(d2, root)}/ and {rel(d3, root)}/ but neither exists; unzip the "
                f"whole zip (it holds training/ and testing/)"
            )
        left, right = _names(d2, frames), _names(d3, frames)
        for name in sorted(left ^ right):
            have, lack = (d2, d3) if name in left else (d3, d2)
            msg = (f"kitti: {rel(have / name, root)} has no partner {rel(lack / name, root)}; every frame needs both "
                   f"views ({lv} = left, {rv} = right) - re-extract the zip, or pass skip_bad to skip the pair")
            if not skip_bad:
                raise DatasetError(msg)
            warnings.warn(msg, stacklevel=3)
        for name in sorted(left & right):
            out.append((f"{tag}/{part}", name[:-4], d2 / name, d3 / name))
    if not out:
        raise DatasetError(
            f"kitti: no frames {' or '.join('_' + f for f in frames)} found in {part}/{sets[0][2]} under {str(root)!r}. "
            f"{HOW_TO_OBTAIN}"
        )
    return out


def items_for(found: list[tuple[str, str, Path, Path]], direction: str) -> list[PairItem]:
    items = []
    for tag, stem, left, right in found:
        if direction in ("both", "left"):
            items.append(PairItem(left, right, f"{tag}/{stem}/left"))
        if direction in ("both", "right"):
            items.append(PairItem(right, left, f"{tag}/{stem}/right"))
    return items


def _tally(root: Path, releases: list[tuple[Path, str, str, int | None]], part: str, frames: tuple[str, ...],
           keep: Any = None) -> tuple[int, int, list[str]]:
    """(pairs found, pairs wanted, missing files) of `part`'s frames over `releases` (folder, left folder, right
    folder, scenes of `part` or None: whatever is there), only the pairs `keep(name)` accepts."""
    found = wanted_n = 0
    missing: list[str] = []
    for folder, lv, rv, n in releases:
        d2, d3 = folder / part / lv, folder / part / rv
        left, right = ({x for x in _names(d, frames) if keep is None or keep(x)} for d in (d2, d3))
        found += len(left & right)
        wanted = set(left | right) if n is None else {
            f"{i:06d}_{f}.png" for i in range(n) for f in frames if keep is None or keep(f"{i:06d}_{f}.png")}
        wanted_n += len(wanted)
        for name in sorted(wanted):
            missing += [rel(d / name, root) for d, have in ((d2, left), (d3, right)) if name not in have]
    return found, wanted_n, missing


def check_kitti(root: Path | str | None, **options: Any) -> list[SplitReport]:
    """Per split of each protocol (``kitti-stereo/ndic``, then ``kitti/ldmic``): samples found against the published
    counts, and missing files."""
    root = require_dir(root, NAME, HOW_TO_OBTAIN)
    return _check_ndic(root, options) + _check_ldmic(root)


def _check_ndic(root: Path, options: dict[str, Any]) -> list[SplitReport]:
    direction = options.get("direction") or "both"
    per_pair = 2 if direction == "both" else 1
    try:
        sets = find_sets(root)
    except DatasetError:
        if not any((root / d).is_dir() for d in STEREO_RELEASES):
            raise  # no KITTI release at all
        sets = []  # only kitti/ldmic's stereo releases: every file of this protocol's releases is missing
    single = bool(sets) and sets[0][1] == "kitti"
    if not single:  # report missing releases too
        sets = [(root / d, tag, ntr, nte) for d, (tag, ntr, nte) in SETS.items()]
    reports = []
    for split, (part, frames) in SPLIT_RULE.items():
        releases = [(folder, "image_2", "image_3", ntr if part == "training" else nte) for folder, _, ntr, nte in sets]
        found, wanted, missing = _tally(root, releases, part, frames)
        reports.append(SplitReport(
            split=split, found=found * per_pair, expected=None if single else wanted * per_pair,
            missing=missing[:5], n_missing=len(missing), protocol=PROTOCOL,
            note=("one release unpacked directly under the root; the published split needs both "
                  "data_stereo_flow_multiview/ and data_scene_flow_multiview/") if single else
                 f"{part}/ frames {'+'.join('_' + f for f in frames)}, {direction} direction(s)",
        ))
    return reports


def _ldmic_releases(root: Path) -> tuple[list[tuple[Path, str, str, str]], bool]:
    """The releases ``kitti/ldmic`` reads under `root` (as the dataset does), with the one of KITTI 2012 or 2015 it
    lacks added under the folder name it would read (its files then all missing); True for a single unnamed release."""
    sets = stereo_release_sets(root)
    if sets[0][1] == "kitti":
        return sets, True
    stereo = sets[0][0].name in STEREO_RELEASES
    present = {tag for _, tag, _, _ in sets}
    for tag in (t for t, _, _ in SETS.values() if t not in present):
        if stereo:
            d, (_, lv, rv) = next((d, v) for d, v in STEREO_RELEASES.items() if v[0] == tag)
        else:
            d, lv, rv = next(d for d, v in SETS.items() if v[0] == tag), "image_2", "image_3"
        sets.append((root / d, tag, lv, rv))
    return sets, False


def _check_ldmic(root: Path) -> list[SplitReport]:
    """``kitti/ldmic``: test = pairs of frames _10/_11 of every testing/ scene (one sample each); train and val =
    those of the training/ scenes, val the scenes ending in 9 (each pair in both orders)."""
    scenes = {tag: {"training": ntr, "testing": nte} for tag, ntr, nte in SETS.values()}
    try:
        sets, single = _ldmic_releases(root)
    except DatasetError as exc:  # the same release twice: the dataset refuses to read it
        return [SplitReport(split=s, found=0, protocol=LDMIC, note=f"not readable: {exc}",
                            expected=sum(1 for t in scenes for i in range(scenes[t][part]) for f in frames
                                         if _ldmic_keep(s, f"{i:06d}_{f}")) * (1 if s == "test" else 2))
                for s, (part, frames) in LDMIC_RULE.items()]
    read = ", ".join(f"{rel(folder, root)}/ ({lv}, {rv})" if folder != root else f"the root ({lv}, {rv})"
                     for folder, _, lv, rv in sets)
    reports = []
    for split, (part, frames) in LDMIC_RULE.items():
        releases = [(folder, lv, rv, None if single else scenes[tag][part]) for folder, tag, lv, rv in sets]
        found, wanted, missing = _tally(root, releases, part, frames, lambda name, s=split: _ldmic_keep(s, name))
        per_pair = 1 if split == "test" else 2
        rule = {"test": "one sample per pair", "val": "scenes ending in 9, each pair in both orders",
                "train": "scenes not ending in 9, each pair in both orders"}[split]
        reports.append(SplitReport(
            split=split, found=found * per_pair, expected=None if single else wanted * per_pair,
            missing=missing[:5], n_missing=len(missing), protocol=LDMIC,
            note=f"{part}/ frames _10+_11 of {read}; {rule}" + (
                "; one release unpacked directly under the root: the authors' split needs KITTI 2012 and 2015"
                if single else ""),
        ))
    return reports


@register_dataset(
    NAME,
    description="KITTI Stereo 2012+2015 multi-view (left/right camera pairs), local copy",
    protocols=(PROTOCOL, LDMIC),
    how_to_obtain=HOW_TO_OBTAIN,
    check=check_kitti,
)
def kitti(root: Path | str | None, protocol: Any, split: str, **options: Any) -> Any:
    """Stereo pairs of ``split``; options: direction (both|left|right), augment, seed, skip_bad. Under
    ``kitti/ldmic``: scenes of both views (views (2), seed, skip_bad)."""
    name = check_protocol(protocol, (PROTOCOL, LDMIC), NAME)
    check_split(split, NAME)
    if name == LDMIC:
        return _ldmic_scenes(require_dir(root, NAME, HOW_TO_OBTAIN), protocol, split, options)
    opts = resolve_options(NAME, protocol, options, {"direction": "both"})
    direction = choice(opts["direction"], "direction", DIRECTIONS, NAME)
    root = require_dir(root, NAME, HOW_TO_OBTAIN)
    items = items_for(pairs(root, split, skip_bad=opts["skip_bad"]), direction)
    return PairedImages(items, _crop_resize, split=split, seed=opts["seed"], augment=opts["augment"],
                        skip_bad=opts["skip_bad"], dataset=NAME)
