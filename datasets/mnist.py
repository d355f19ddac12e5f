"""MNIST under the DRASIC protocols (``mnist/drasic-random``, ``mnist/drasic-class``), M = ``sources`` encoders.

Layout read: the four official IDX files, raw or gzipped, directly in ROOT (torchvision's ROOT/MNIST/raw is
accepted too): train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte (the ``train-images.idx3-ubyte`` spelling of some mirrors works as well). Raw files are
memory-mapped; a gzipped image file is decompressed once into memory on first access (47 MB).

Images: 28x28 -> 32x32 with PIL bilinear, 1 channel, /255; no side information, no augmentation.

Splits (``seed`` option, default 0, fixes the random partition):
- drasic-random: the 60,000 training images are permuted with ``numpy.random.default_rng(seed)`` and cut into M
  equal, disjoint subsets of floor(60000/M) (the remainder, if any, is dropped); source m owns subset m.
  The last 10% of each subset is val, the rest train. Test = the whole test set (10,000).
- drasic-class: only digits 0..M-1; source m owns the training images of digit m (in file order), the last
  10% of them val. Test = the test images with label < M.
Train/val samples carry their source; test samples carry source 0 and every split exposes ``num_sources = M``:
every encoder is evaluated on all test data.
"""
from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from benchmark.contract.data import Sample, SplitReport
from benchmark.errors import ConfigError, DatasetError
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import register_dataset, register_protocol

from ._io import require_dir
from ._real import check_protocol, check_split, resolve_options

NAME = "mnist"
RANDOM, CLASS = "mnist/drasic-random", "mnist/drasic-class"
PROTOCOLS = (RANDOM, CLASS)
SIZE = 32
PUBLISHED_SOURCES = (2, 4, 8, 10)
VAL_FRACTION = 10  # last 1/10 of each source's training data is val
OWN_OPTIONS = {"sources": 4}
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
EXPECTED = {"train": 60000, "test": 10000}

HOW_TO_OBTAIN = (
    "Download the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from http://yann.lecun.com/exdb/mnist/ or a mirror "
    "(torchvision's download leaves them in ROOT/MNIST/raw, also accepted). Put them, gzipped or not, in ROOT. "
    "Then: bench datasets check mnist --root ROOT"
)

_COMMON = dict(
    ms_ssim_win=7,
    anchor="jpeg",
    preprocessing="28x28 grey digits resized to 32x32 with PIL bilinear, 1 channel, values /255 in [0,1]; no side "
                  "information, no augmentation (MS-SSIM is undefined at 32x32: reported as null)",
    rate_accounting="each source's x is transmitted alone: bpp = bits of x's bytes / (32*32); DRASIC's own rate is "
                    "a raw binary code, 0.125 bpp per iteration, 16 iterations = 2 bpp, no entropy coding",
    psnr="10*log10(1/MSE) per image (clamped to [0,1], rounded to 8 bits), mean over images, per encoder then mean "
         "over the M encoders with min/max as band (the authors averaged per-batch PSNR)",
    fixed_bpps=(0.25, 0.5, 1.0),
    options={"sources": 4},
)
register_protocol(Protocol(
    name=RANDOM,
    dataset=NAME,
    description=(
        "MNIST 32x32, DRASIC random subsets: 60k training images cut into M (sources=2|4|8|10, default 4) equal "
        "seeded disjoint parts (last 10% of each = val), test = all 10k for every encoder; bpp over 32*32"
    ),
    split_rule="training set permuted with default_rng(seed), M equal disjoint parts of floor(60000/M) (remainder "
               "dropped), source m trains on part m (its last 10% = val); test = the full 10,000-image test set, "
               "every encoder evaluated on all of it",
    **_COMMON,
))
register_protocol(Protocol(
    name=CLASS,
    dataset=NAME,
    description=(
        "MNIST 32x32, DRASIC class split: digits 0..M-1 only (sources=2|4|8|10, default 4), source m trains on "
        "digit m (last 10% = val), test = test images with label < M for every encoder; bpp over 32*32"
    ),
    split_rule="only digits 0..M-1; source m (0-based) trains on the training images of digit m in file order "
               "(the last 10% of them = val); test = test images with label < M, every encoder evaluated on all of it",
    **_COMMON,
))


# ---------------------------------------------------------------------------------------------- IDX files
def find_file(root: Path, key: str) -> Path | None:
    base = FILES[key]
    dotted = base.replace("-idx", ".idx")
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (base, base + ".gz", dotted, dotted + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx_header(path: Path, ndim: int) -> tuple[int, ...]:
    """Validate the IDX magic number (unsigned bytes, ``ndim`` dimensions) and return the shape."""
    try:
        with _open(path) as f:
            head = f.read(4 + 4 * ndim)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"mnist: cannot read {str(path)!r}: {exc}. Download the file again") from exc
    want = bytes((0, 0, 0x08, ndim))
    if len(head) < 4 + 4 * ndim or head[:4] != want:
        raise DatasetError(
            f"mnist: {str(path)!r} is not an IDX file of unsigned bytes with {ndim} dimension(s) (magic "
            f"{head[:4].hex() or 'empty'}, expected {want.hex()}); is it the right file, and was a .gz saved without "
            f"the .gz suffix (or the reverse)?"
        )
    return tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))


@functools.lru_cache(maxsize=8)
def _load_idx(path_str: str, ndim: int, _stamp: tuple[int, int]) -> np.ndarray:
    path = Path(path_str)
    shape = read_idx_header(path, ndim)
    offset, count = 4 + 4 * ndim, int(np.prod(shape))
    if path.suffix != ".gz":
        if path.stat().st_size != offset + count:
            raise DatasetError(f"mnist: {path_str!r} has {path.stat().st_size} bytes, its header promises "
                               f"{offset + count}; the file is truncated - download it again")
        return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=shape)
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"mnist: cannot decompress {path_str!r}: {exc}. Download it again") from exc
    if len(data) != offset + count:
        raise DatasetError(f"mnist: {path_str!r} holds {len(data)} bytes, its header promises {offset + count}; the "
                           f"file is truncated - download it again")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_idx(path: Path, ndim: int) -> np.ndarray:
    st = path.stat()
    return _load_idx(str(path), ndim, (st.st_mtime_ns, st.st_size))


def idx_pair(root: Path, part: str) -> tuple[Path, np.ndarray]:
    """(images path, labels) of ``part`` ('train' or 'test'), with headers cross-checked."""
    ip, lp = find_file(root, f"{part}_images"), find_file(root, f"{part}_labels")
    for p, key in ((ip, f"{part}_images"), (lp, f"{part}_labels")):
        if p is None:
            raise DatasetError(f"mnist: {FILES[key]}[.gz] not found in {str(root)!r}. {HOW_TO_OBTAIN}")
    shape = read_idx_header(ip, 3)
    labels = np.asarray(load_idx(lp, 1))
    if shape[0] != len(labels):
        raise DatasetError(f"mnist: {ip.name} holds {shape[0]} images but {lp.name} {len(labels)} labels; the two "
                           f"files must belong together")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"mnist: {lp.name} has a label {int(labels.max())} > 9; is it an MNIST label file?")
    return ip, labels


# ---------------------------------------------------------------------------------------------- DRASIC splits
def parse_sources(value: Any, dataset: str) -> int:
    try:
        m = int(value)
    except (TypeError, ValueError):
        m = -1
    if not 2 <= m <= 10 or str(value).strip() != str(m):
        raise ConfigError(f"{dataset}: option sources must be an integer from 2 to 10 (published: "
                          f"{', '.join(map(str, PUBLISHED_SOURCES))}), got {value!r}")
    return m


def drasic_split(protocol: str, split: str, pool_labels: np.ndarray, test_labels: np.ndarray, sources: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices into the pool (train/val) or the test set, source of each) for one split."""
    m_all = range(sources)
    if split == "test":
        idx = np.arange(len(test_labels)) if protocol == RANDOM else np.flatnonzero(test_labels < sources)
        return idx, np.zeros(len(idx), dtype=np.int64)
    if protocol == RANDOM:
        perm = np.random.default_rng(seed & 0xFFFFFFFF).permutation(len(pool_labels))
        per = len(perm) // sources
        parts = [perm[m * per:(m + 1) * per] for m in m_all]
    else:
        parts = [np.flatnonzero(pool_labels == m) for m in m_all]
    chosen = []
    for part in parts:
        n_val = len(part) // VAL_FRACTION
        chosen.append(part[len(part) - n_val:] if split == "val" else part[: len(part) - n_val])
    idx = np.concatenate(chosen).astype(np.int64)
    src = np.concatenate([np.full(len(c), m, dtype=np.int64) for m, c in zip(m_all, chosen)])
    return idx, src


class SourceImages(Dataset):
    """Grey 1x32x32 images of one DRASIC split; each Sample carries its source (0 for test) and label."""

    def __init__(self, image: Callable[[int], torch.Tensor], indices: np.ndarray, sources: np.ndarray,
                 labels: np.ndarray, *, num_sources: int, split: str, prefix: str):
        self._image = image
        self.indices, self.sources, self.labels = indices, sources, labels
        self.num_sources = num_sources
        self.split = split
        self.prefix = prefix
        if len(indices) == 0:
            raise DatasetError(f"{prefix}: split {split!r} is empty")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        i = int(self.indices[index])
        return Sample(x=self._image(i), side=None, source=int(self.sources[index]), name=f"{self.prefix}/{i:05d}",
                      label=int(self.labels[i]))


def resize_grey(arr: np.ndarray) -> torch.Tensor:
    """28x28 (any size) uint8 -> float 1x32x32 in [0,1], PIL bilinear."""
    im = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L").resize((SIZE, SIZE), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None]


class IdxImages:
    """Picklable image getter: image i of an IDX file, resized to 1x32x32 (the file is opened on first use)."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, i: int) -> torch.Tensor:
        return resize_grey(load_idx(self.path, 3)[i])


def drasic_options(dataset: str, protocol: Any, options: dict[str, Any]) -> tuple[str, int, int]:
    name = check_protocol(protocol, PROTOCOLS, dataset)
    opts = resolve_options(dataset, protocol, options, OWN_OPTIONS)
    if opts["augment"]:
        raise ConfigError(f"{dataset}: the DRASIC protocols use no augmentation; drop augment=true")
    return name, parse_sources(opts["sources"], dataset), opts["seed"]


# ---------------------------------------------------------------------------------------------- registration
def check_mnist(root: Path | str | None, **options: Any) -> list[SplitReport]:
    """The IDX files present and valid, with their image counts against 60,000 / 10,000."""
    root = require_dir(root, NAME, HOW_TO_OBTAIN)
    reports = []
    for part, expected in EXPECTED.items():
        missing = [FILES[k] + "[.gz]" for k in (f"{part}_images", f"{part}_labels") if find_file(root, k) is None]
        found, note = 0, "val = last 10% of each source's training part" if part == "train" else ""
        if not missing:
            try:
                found = len(idx_pair(root, part)[1])
            except DatasetError as exc:
                note = str(exc)
        reports.append(SplitReport(part, found=found, expected=expected, missing=missing, n_missing=len(missing),
                                   note=note))
    return reports


@register_dataset(
    NAME,
    description="MNIST handwritten digits (official IDX files), local copy",
    protocols=PROTOCOLS,
    how_to_obtain=HOW_TO_OBTAIN,
    check=check_mnist,
)
def mnist(root: Path | str | None, protocol: Any, split: str, **options: Any) -> SourceImages:
    """One DRASIC split; options: sources (M, default 4), seed (random partition), augment (must stay off)."""
    check_split(split, NAME)
    name, sources, seed = drasic_options(NAME, protocol, options)
    root = require_dir(root, NAME, HOW_TO_OBTAIN)
    train_path, train_labels = idx_pair(root, "train")
    test_path, test_labels = idx_pair(root, "test")
    idx, src = drasic_split(name, split, train_labels, test_labels, sources, seed)
    path, labels = (test_path, test_labels) if split == "test" else (train_path, train_labels)
    return SourceImages(IdxImages(path), idx, src, labels, num_sources=sources, split=split,
                        prefix=f"{'t10k' if split == 'test' else 'train'}")
