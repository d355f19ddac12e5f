"""CelebA-HQ faces under the corrected Neural DSC protocol (``celeba-hq/neural-dsc``).

Layout read: ROOT holds the face images directly (PNG/JPEG, square, 256x256; larger square images are resized
to 256x256 with PIL bicubic, which antialiases when reducing). Files are ordered by a natural sort of their
names (digit runs compare as numbers, so 00012.png and 12.jpg both rank 12th).

x = top half (3x128x256), side = bottom half of the same face; option variant="wrong_side" pairs every face
with the bottom half of another face of the same split (a seeded, fixed derangement).

Default split (30,000 images): the first 27,000 are the published training set, of which the last 1,000 are
held out as val (train 26,000 / val 1,000), and the last 3,000 are test. For another count n: test = last
n//10, val = the n//30 before them, train = the rest. Option split_file names a text file, one image per line
``<file name> <split>`` (split = train|val|test; the name with or without its extension; blank lines and
``#`` comments ignored); only the listed images are used.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmark.contract.data import Sample, SplitReport
from benchmark.errors import ConfigError, DatasetError
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import register_dataset, register_protocol

from ._io import list_images, require_dir, to_tensor
from ._real import FileSplit, check_protocol, check_split, choice, read_rgb, resolve_options

NAME = "celeba_hq"
PROTOCOL = "celeba-hq/neural-dsc"
SIZE = 256
VARIANTS = ("matched", "wrong_side")
PUBLISHED_TOTAL = 30000
OWN_OPTIONS = {"split_file": None, "variant": "matched"}

HOW_TO_OBTAIN = (
    "CelebA-HQ (Karras et al., ICLR 2018; 30,000 faces) is built from CelebA "
    "(https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, in-the-wild images + the CelebA-HQ deltas) with the "
    "dataset tool of the progressive-GAN repository (github.com/tkarras/progressive_growing_of_gans). Glow's "
    "256x256 release (github.com/openai/glow, 'celeba-tfr') is TFRecords: export its images to PNG and write a "
    "split file from its train/validation parts. Put the 30,000 images (256x256 or larger square) directly in "
    "ROOT, named by index (00000.png ... 29999.png). Then: bench datasets check celeba_hq --root ROOT"
)

register_protocol(Protocol(
    name=PROTOCOL,
    dataset=NAME,
    description=(
        "CelebA-HQ 256 (Neural DSC, corrected): x = top half 3x128x256, side = bottom half of the same face; "
        "train 26,000 + val 1,000 / test 3,000 by file order; bpp = bits / (128*256) coded pixels; MS-SSIM win 7"
    ),
    ms_ssim_win=7,
    anchor="balle2018",
    split_rule=(
        "images in natural file-name order; first 27,000 = published training set (last 1,000 of them held out "
        "as val), last 3,000 = test; or a user split file (<file name> train|val|test per line); variant "
        "wrong_side pairs a seeded other face's bottom half"
    ),
    preprocessing="RGB; 256x256 faces (larger square images resized with PIL bicubic); x = rows 0..127, side = "
                  "rows 128..255; values /255 in [0,1]; training only: random horizontal flip of x and side together",
    rate_accounting=(
        "only x (the top half) is transmitted: bpp = bits of x's bytes / (128*256), the coded pixels - not the "
        "256x256 face, which would halve the rate as in the authors' code; the bottom half is free at the decoder"
    ),
    psnr="10*log10(1/MSE) per image on the decoded top half only (clamped to [0,1], rounded to 8 bits), then "
         "mean over images; no batch-size term",
    fixed_bpps=(0.1, 0.25, 0.5),
    options={"variant": "matched"},
))

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t.lower() for t in _DIGITS.split(name))


def list_faces(root: Path) -> list[Path]:
    files = sorted(list_images(root), key=lambda p: natural_key(p.name))
    if not files:
        subs = [d for d in sorted(root.iterdir()) if d.is_dir() and any(list_images(d))]
        hint = f" Its subfolder {subs[0].name}/ holds images: pass --root {subs[0]}." if subs else ""
        raise DatasetError(f"celeba_hq: no images (png/jpg/...) directly in {str(root)!r}.{hint} {HOW_TO_OBTAIN}")
    return files


def default_split(n: int) -> dict[str, slice]:
    n_test, n_val = n // 10, n // 30
    n_train = n - n_test - n_val
    return {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val), "test": slice(n_train + n_val, n)}


def read_split_file(path: Path, files: list[Path], *, skip_bad: bool = False) -> dict[str, list[Path]]:
    """Parse ``<file name> <split>`` lines; names match a file's name or its stem."""
    by_name = {p.name: p for p in files} | {p.stem: p for p in files}
    out: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    seen: dict[str, str] = {}
    missing = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"celeba_hq: cannot read split file {str(path)!r}: {exc}") from exc
    for no, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in out:
            raise DatasetError(f"celeba_hq: {path}:{no}: expected '<file name> train|val|test', got {line!r}")
        name, split = parts
        if name in seen:
            raise DatasetError(f"celeba_hq: {path}:{no}: {name!r} is listed twice ({seen[name]} and {split})")
        seen[name] = split
        if name not in by_name:
            missing.append(name)
            continue
        out[split].append(by_name[name])
    if missing:
        msg = (f"celeba_hq: split file {str(path)!r} lists {len(missing)} image(s) not in the root, e.g. "
               f"{', '.join(missing[:3])}")
        if not skip_bad:
            raise DatasetError(msg + "; fix the file or pass skip_bad to ignore them")
        warnings.warn(msg + "; ignored", stacklevel=3)
    return out


def _split_file_path(value: Any, root: Path) -> Path:
    p = Path(str(value)).expanduser()
    if not p.is_absolute() and not p.exists() and (root / p).exists():
        p = root / p
    if not p.is_file():
        raise ConfigError(f"celeba_hq: split_file {str(value)!r} not found (looked at {str(p)!r})")
    return p


def select(root: Path, split: str, split_file: Any = None, *, skip_bad: bool = False) -> list[Path]:
    files = list_faces(root)
    if split_file is not None:
        return read_split_file(_split_file_path(split_file, root), files, skip_bad=skip_bad)[split]
    if len(files) != PUBLISHED_TOTAL:
        warnings.warn(f"celeba_hq: found {len(files)} images, the published set has {PUBLISHED_TOTAL}; split "
                      f"sizes follow the same proportions (test n//10, val n//30)", stacklevel=3)
    return files[default_split(len(files))[split]]


def load_face(path: Path) -> torch.Tensor:
    im = read_rgb(path)
    w, h = im.size
    if w != h or w < SIZE:
        raise DatasetError(f"celeba_hq: image {str(path)!r} is {w}x{h}; the protocol needs square faces of at least "
                           f"{SIZE}x{SIZE} (CelebA-HQ at 256 or larger)")
    if w != SIZE:
        im = im.resize((SIZE, SIZE), Image.BICUBIC)
    return to_tensor(im)


def partners(n: int, variant: str, seed: int) -> np.ndarray:
    """partner[i]: the face whose bottom half is the side view of face i; i itself unless variant wrong_side, which
    pairs every face with another of the split (a fixed derangement drawn from `seed`)."""
    if variant != "wrong_side":
        return np.arange(n)
    offsets = np.random.default_rng([seed & 0xFFFFFFFF, 1]).integers(1, n, size=n)
    return (np.arange(n) + offsets) % n


class HalfFaces(FileSplit):
    """x = top half of face i, side = bottom half of face partner[i] (i itself unless variant wrong_side).
    Unreadable files follow the --skip-bad rule of `FileSplit`."""

    def __init__(self, files: list[Path], *, split: str, seed: int, augment: bool | None, skip_bad: bool,
                 variant: str):
        super().__init__(split, seed, augment, skip_bad=skip_bad, dataset=NAME, noun="face")
        files = self._keep_readable(files, lambda p: (p,))
        if not files:
            raise DatasetError(f"celeba_hq: split {split!r} is empty (no readable images assigned to it)")
        self.files = files
        self.variant = variant
        if variant == "wrong_side" and len(files) < 2:
            raise DatasetError("celeba_hq: variant wrong_side needs at least 2 images in the split")
        self.partner = partners(len(files), variant, seed)

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        j = int(self.partner[i])
        top = load_face(self.files[i])
        bottom = top if j == i else load_face(self.files[j])
        return i, top, bottom

    def __getitem__(self, index: int) -> Sample:
        index, (i, top, bottom) = self._read_item(index, self._read)
        j = int(self.partner[i])
        x, side = top[:, : SIZE // 2], bottom[:, SIZE // 2:]
        if self._flip(index):
            x, side = x.flip(-1), side.flip(-1)
        name = self.files[i].stem if j == i else f"{self.files[i].stem}+{self.files[j].stem}"
        return Sample(x=x.contiguous(), side=side.contiguous(), source=0, name=name)


def check_celeba(root: Path | str | None, **options: Any) -> list[SplitReport]:
    """Per split: images found against the published 26,000 / 1,000 / 3,000 (or the split file's lists)."""
    root = require_dir(root, NAME, HOW_TO_OBTAIN)
    files = list_faces(root)
    split_file = options.get("split_file")
    reports = []
    if split_file is not None:
        path = _split_file_path(split_file, root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chosen = read_split_file(path, files, skip_bad=True)
        listed = {}
        for line in path.read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) == 2:
                listed.setdefault(parts[1], []).append(parts[0])
        names = {p.name for p in files} | {p.stem for p in files}
        for split in ("train", "val", "test"):
            miss = [n for n in listed.get(split, []) if n not in names]
            reports.append(SplitReport(split, found=len(chosen[split]), expected=len(listed.get(split, [])),
                                       missing=miss[:5], n_missing=len(miss), note=f"split file {path.name}"))
        return reports
    ref = default_split(PUBLISHED_TOTAL)
    got = default_split(len(files))
    for split in ("train", "val", "test"):
        exp = ref[split].stop - ref[split].start
        found = got[split].stop - got[split].start
        reports.append(SplitReport(split, found=found, expected=exp, missing=[], n_missing=0,
                                   note=f"{len(files)} images in the root, {PUBLISHED_TOTAL} published"))
    return reports


@register_dataset(
    NAME,
    description="CelebA-HQ faces at 256x256 (top half coded, bottom half as side information), local copy",
    protocols=(PROTOCOL,),
    how_to_obtain=HOW_TO_OBTAIN,
    check=check_celeba,
)
def celeba_hq(root: Path | str | None, protocol: Any, split: str, **options: Any) -> HalfFaces:
    """Half faces of ``split``; options: variant (matched|wrong_side), split_file, augment, seed, skip_bad."""
    check_protocol(protocol, (PROTOCOL,), NAME)
    check_split(split, NAME)
    opts = resolve_options(NAME, protocol, options, OWN_OPTIONS)
    variant = choice(opts["variant"], "variant", VARIANTS, NAME)
    root = require_dir(root, NAME, HOW_TO_OBTAIN)
    files = select(root, split, opts["split_file"], skip_bad=opts["skip_bad"])
    return HalfFaces(files, split=split, seed=opts["seed"], augment=opts["augment"], skip_bad=opts["skip_bad"],
                     variant=variant)
