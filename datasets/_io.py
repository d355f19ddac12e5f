"""Shared image reading with clear errors (used by every dataset module)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from benchmark.errors import DatasetError, SkippedSample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def require_dir(root: Path | str | None, dataset: str, how_to_obtain: str = "") -> Path:
    if root is None:
        raise DatasetError(f"dataset {dataset!r} reads a local copy: pass --root DIR. {how_to_obtain}".strip())
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"{dataset}: root {str(path)!r} does not exist. {how_to_obtain}".strip())
    if not path.is_dir():
        raise DatasetError(f"{dataset}: root {str(path)!r} is not a directory")
    return path


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes for 16-bit grayscale PNG/TIFF


def _check_size(im: Image.Image, path: Path) -> None:
    """The header's size against the pixel limit (benchmark.limits), before any pixel is decoded."""
    from benchmark.limits import max_pixels

    w, h = im.size
    if w * h > max_pixels():
        raise DatasetError(f"refusing image {str(path)!r}: its header announces {w}x{h} = {w * h} pixels, above the "
                           f"limit of {max_pixels()} (--max-pixels); replace the file, raise the limit or rerun with "
                           "--skip-bad to skip it")


def _rgb(im: Image.Image) -> Image.Image:
    """RGB at 8 bits. 16-bit grayscale is scaled by 255/65535 (Pillow's convert("RGB") would clip it to white)."""
    if im.mode in _SIXTEEN_BIT:
        arr = np.asarray(im, dtype=np.float64)
        arr = np.clip(np.round(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(arr[:, :, None], 3, axis=2), "RGB")
    if im.mode == "F":
        raise ValueError("floating-point images have no defined value range; convert it to 8- or 16-bit PNG")
    return im.convert("RGB")


_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
                  Image.DecompressionBombWarning, MemoryError, EOFError, SyntaxError)


def header_problem(path: Path) -> Exception | None:
    """Cheap readability test (header only: format, size within the pixel limit); the error, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_size(im, path)
        return None
    except (DatasetError, *_DECODE_ERRORS) as exc:
        return exc


def open_rgb(path: Path) -> Image.Image:
    """Open an image as RGB; a corrupt, unreadable or oversized file raises DatasetError naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_size(im, path)
                im.load()
                return _rgb(im)
    except DatasetError:
        raise
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"cannot read image {str(path)!r}: {exc}. Replace the file or rerun with --skip-bad to skip it") from exc


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL RGB (or L) at 8 bits -> float CxHxW in [0,1]."""
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def load_rgb(path: Path) -> torch.Tensor:
    return to_tensor(open_rgb(path))


def warn_skip(path: Path, exc: Exception) -> None:
    warnings.warn(f"skipping unreadable image {str(path)!r}: {exc}", stacklevel=2)


def drop_unreadable(files: list[Path], folder: Path) -> tuple[list[Path], int]:
    """--skip-bad at construction: files whose header fails (empty, not an image, over the pixel limit) are
    dropped with a warning; (kept files, number dropped). None left: DatasetError naming the folder."""
    kept = []
    for p in files:
        err = header_problem(p)
        if err is None:
            kept.append(p)
        else:
            warn_skip(p, err)
    if not kept:
        raise DatasetError(f"every image in {str(folder)!r} is unreadable ({len(files)} skipped by --skip-bad); "
                           "nothing to evaluate")
    return kept, len(files) - len(kept)


def on_bad_file(ds: Any, path: Path, exc: Exception, n_files: int) -> None:
    """--skip-bad for a file that fails to decode after its header passed. Counts it in `ds.skipped` (once
    per file) and warns. Outside training raises SkippedSample: the runner leaves the sample out and never
    counts another image twice. In training the caller may read another item; when all `n_files` have
    failed this raises DatasetError instead."""
    bad = ds.__dict__.setdefault("_bad_files", set())
    if path not in bad:
        bad.add(path)
        ds.skipped = getattr(ds, "skipped", 0) + 1
        warn_skip(path, exc)
    if getattr(ds, "split", "test") != "train":
        raise SkippedSample(f"skipped unreadable image {str(path)!r}: {exc}") from exc
    if len(bad) >= n_files:
        raise DatasetError(f"every image file of the training split is unreadable ({len(bad)} skipped by --skip-bad)")
