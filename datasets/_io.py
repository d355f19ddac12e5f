"""Shared image reading with clear errors (used by every dataset module)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from benchmark.errors import DatasetError

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


def open_rgb(path: Path) -> Image.Image:
    """Open an image as RGB; a corrupt or unreadable file raises DatasetError naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"cannot read image {str(path)!r}: {exc}. Replace the file or rerun with --skip-bad to skip it") from exc


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL RGB -> float CxHxW in [0,1]."""
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def load_rgb(path: Path) -> torch.Tensor:
    return to_tensor(open_rgb(path))


def warn_skip(path: Path, exc: Exception) -> None:
    warnings.warn(f"skipping unreadable image {str(path)!r}: {exc}", stacklevel=2)
