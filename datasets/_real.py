"""Helpers shared by the real-image dataset modules (KITTI, Cityscapes, CelebA-HQ, MNIST, embedded stand-ins).

Options, split names and protocol names are checked here so that every dataset answers a typo the same way;
the paired-image reader streams files from disk in ``__getitem__`` and applies the training-time flip.

Augmentation (random horizontal flip of x and side together, split "train" only): the coin for item ``i`` is
drawn from ``numpy.random.default_rng([seed, epoch, i])``, so it does not depend on worker processes or on
the order in which items are read. A training loop that wants a fresh draw per epoch calls
``dataset.set_epoch(epoch)`` (as with torch's DistributedSampler); without it every epoch sees the same flips.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import torch
from PIL import Image
from torch.utils.data import Dataset

from benchmark.contract.data import flip_coin, Sample
from benchmark.errors import ConfigError, DatasetError, SkippedSample

from ._io import keep_readable, open_rgb, to_tensor

T = TypeVar("T")
R = TypeVar("R")

SPLITS = ("train", "val", "test")
# Options every real dataset understands (the runner may pass them to any dataset).
COMMON_OPTIONS: dict[str, Any] = {"seed": 0, "augment": None, "skip_bad": False}


def protocol_name(protocol: Any) -> str:
    return protocol if isinstance(protocol, str) else getattr(protocol, "name", str(protocol))


def check_protocol(protocol: Any, allowed: Iterable[str], dataset: str) -> str:
    name = protocol_name(protocol)
    allowed = tuple(allowed)
    if name not in allowed:
        raise ConfigError(f"dataset {dataset!r} does not follow protocol {name!r}; it supports {', '.join(allowed)}")
    return name


def check_split(split: str, dataset: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"{dataset}: unknown split {split!r}; valid splits are {', '.join(SPLITS)}")
    return split


def resolve_options(dataset: str, protocol: Any, options: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """Defaults (common + dataset's own) <- the protocol's options <- the caller's options (None = not given).

    An option the dataset does not know raises ConfigError naming the valid ones."""
    defaults = {**COMMON_OPTIONS, **own}
    given = {k: v for k, v in {**dict(getattr(protocol, "options", {}) or {}), **options}.items() if v is not None}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(
            f"{dataset}: unknown option(s) {', '.join(repr(u) for u in unknown)}; valid options are "
            f"{', '.join(sorted(defaults))}"
        )
    out = {**defaults, **given}
    try:
        out["seed"] = int(out["seed"])
    except (TypeError, ValueError):
        raise ConfigError(f"{dataset}: option seed must be an integer, got {out['seed']!r}") from None
    out["skip_bad"] = _as_bool(out["skip_bad"], "skip_bad", dataset)
    if out["augment"] is not None:
        out["augment"] = _as_bool(out["augment"], "augment", dataset)
    return out


def _as_bool(value: Any, name: str, dataset: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{dataset}: option {name} must be true or false, got {value!r}")


def choice(value: Any, name: str, valid: Iterable[str], dataset: str) -> str:
    valid = tuple(valid)
    if value not in valid:
        raise ConfigError(f"{dataset}: option {name}={value!r} is not valid; choose one of {', '.join(valid)}")
    return value


class UnreadableImage(DatasetError):
    """An image file that cannot be decoded (the only failure ``skip_bad`` skips)."""


def read_rgb(path: Path) -> Image.Image:
    try:
        return open_rgb(path)
    except DatasetError as exc:
        raise UnreadableImage(str(exc)) from exc.__cause__


@dataclass(frozen=True)
class PairItem:
    x: Path
    side: Path | None
    name: str


class AugmentedSplit(Dataset):
    """Base of the image readers: split, seed, epoch and the flip switch."""

    def __init__(self, split: str, seed: int, augment: bool | None):
        self.split = split
        self.seed = seed
        self.augment = (split == "train") if augment is None else (bool(augment) and split == "train")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _flip(self, index: int) -> bool:
        return self.augment and flip_coin(self.seed, self.epoch, index)


class FileSplit(AugmentedSplit):
    """A split read from image files, with the --skip-bad rule.

    With ``skip_bad``: at construction an item with a file whose header fails (empty, not an image, over the pixel
    limit) is left out with a warning (``_keep_readable``); at reading, a file that fails to decode after its header
    passed is left out of a test or val split (counted in ``skipped``, SkippedSample: the runner never substitutes
    another sample), and replaced by the next readable item in training, with a warning (``_read_item``). Without
    it, an unreadable file raises."""

    def __init__(self, split: str, seed: int, augment: bool | None, *, skip_bad: bool, dataset: str, noun: str):
        super().__init__(split, seed, augment)
        self.skip_bad = skip_bad
        self.dataset = dataset
        self.noun = noun  # what one item is, in messages: "pair", "face"
        self.skipped = 0  # unreadable items left out with --skip-bad (the result's coverage reports it)

    def _keep_readable(self, items: list[T], files: Callable[[T], Iterable[Path | None]]) -> list[T]:
        """The items all of whose `files` pass the header check (all items without skip_bad)."""
        if not self.skip_bad:
            return items
        kept = keep_readable(items, files)
        self.skipped = len(items) - len(kept)
        return kept

    def _read_item(self, index: int, read: Callable[[int], R]) -> tuple[int, R]:
        """(index, `read(index)`) with a negative index counted from the end; with skip_bad in training, `read` of
        the next item that decodes in place of one that does not."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        for attempt in range(n):
            try:
                return index, read((index + attempt) % n)
            except UnreadableImage as exc:
                if not self.skip_bad:
                    raise
                if self.split != "train":  # a test image is left out and counted, never replaced by another
                    self.skipped += 1
                    raise SkippedSample(f"{self.dataset}: {exc}") from exc
                warnings.warn(f"{self.dataset}: {exc}; using the next {self.noun} instead", stacklevel=3)
        raise DatasetError(f"{self.dataset}: no readable {self.noun} in split {self.split!r}")


class PairedImages(FileSplit):
    """Map-style dataset of (x, side) file pairs, read and preprocessed on access.

    ``prepare(img, path)`` maps a PIL RGB image to the protocol's PIL image (crop/resize) or raises
    DatasetError. Unreadable files follow the --skip-bad rule of `FileSplit`."""

    def __init__(self, items: list[PairItem], prepare: Callable[[Image.Image, Path], Image.Image], *,
                 split: str, seed: int = 0, augment: bool | None = None, skip_bad: bool = False, dataset: str = ""):
        super().__init__(split, seed, augment, skip_bad=skip_bad, dataset=dataset, noun="pair")
        self.prepare = prepare
        items = self._keep_readable(items, lambda it: (it.x, it.side))
        if not items:
            raise DatasetError(f"{dataset}: no readable pairs left in split {split!r}")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, i: int) -> tuple[PairItem, torch.Tensor, torch.Tensor | None]:
        it = self.items[i]
        a = read_rgb(it.x)
        if it.side is None:
            return it, to_tensor(self.prepare(a, it.x)), None
        b = read_rgb(it.side)
        if a.size != b.size:
            raise DatasetError(
                f"{self.dataset}: the two views of {it.name!r} differ in size: {str(it.x)!r} is "
                f"{a.size[0]}x{a.size[1]}, {str(it.side)!r} is {b.size[0]}x{b.size[1]}; both views of a pair must "
                f"have the same size (re-extract them from the same release)"
            )
        return it, to_tensor(self.prepare(a, it.x)), to_tensor(self.prepare(b, it.side))

    def __getitem__(self, index: int) -> Sample:
        index, (it, x, side) = self._read_item(index, self._read)
        if self._flip(index):
            x = x.flip(-1)
            side = None if side is None else side.flip(-1)
        return Sample(x=x, side=side, source=0, name=it.name)


def rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
