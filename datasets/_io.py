"""Shared image reading with clear errors (used by every dataset module)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from benchmark.errors import DatasetError, SkippedSample

T = TypeVar("T")

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


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")  # Pillow's modes for 16-bit grayscale PNG/TIFF/PPM
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_EIGHT_BIT = ("1", "L", "P", "RGB", "CMYK", "YCbCr", *_ALPHA_MODES)
_ORIENTATION = 0x0112  # EXIF Orientation: 1 = as stored, 2-8 = mirrored and/or rotated


def _check_size(im: Image.Image, path: Path) -> None:
    """The header's size against the pixel limit (benchmark.safety.limits), before any pixel is decoded."""
    from benchmark.safety.limits import max_pixels

    w, h = im.size
    if w * h > max_pixels():
        raise DatasetError(f"refusing image {str(path)!r}: its header announces {w}x{h} = {w * h} pixels, above the "
                           f"limit of {max_pixels()} (--max-pixels); replace the file, raise the limit or rerun with "
                           "--skip-bad to skip it")


def integer_bits(im: Image.Image) -> int | None:
    """Bits per sample of a one-channel integer image (mode I or I;16*), from the file where it says (TIFF
    BitsPerSample, PNG and PPM at most 16); None for the 8-bit modes. ValueError for what cannot be mapped to 8 bits
    without guessing: 32-bit or signed integer samples."""
    if im.mode in _SIXTEEN_BIT:
        bits = 16
    elif im.mode == "I":
        bits = 16 if im.format in ("PNG", "PPM") else None  # their largest integer depth
    else:
        return None
    tags = getattr(im, "tag_v2", None)
    if tags is not None:
        b = tags.get(258)  # BitsPerSample
        b = b[0] if isinstance(b, tuple) and b else b
        bits = int(b) if isinstance(b, int) else bits
        fmt = tags.get(339)  # SampleFormat: 1 unsigned, 2 signed, 3 float
        signed = (fmt[0] if isinstance(fmt, tuple) and fmt else fmt) == 2
    else:
        signed = False
    if bits is None or bits > 16:
        raise ValueError(f"{bits or 32}-bit integer samples (mode {im.mode}) cannot be mapped to 8 bits without guessing "
                         "their range (clipping would turn most pixels white); convert the image to 8- or 16-bit PNG")
    if signed:
        raise ValueError(f"{bits}-bit signed integer samples have no defined value range here; convert the image to "
                         "unsigned 8- or 16-bit (e.g. a 16-bit PNG)")
    return bits


def exif_orientation(im: Image.Image) -> int:
    """The EXIF Orientation of an opened image (1 when absent or invalid)."""
    try:
        value = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: the image as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# EXIF orientation -> the transposition that shows the image upright (as viewers and Pillow's exif_transpose do)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def oriented(im: Image.Image, orientation: int) -> Image.Image:
    """`im` turned upright for its EXIF orientation: the pixels a viewer shows, which a person compares with the
    decoded image (a phone photo stored on its side is coded as it is seen)."""
    op = _UPRIGHT.get(orientation)
    return im if op is None else im.transpose(op)


def image_facts(path: Path) -> dict[str, Any]:
    """What reading `path` changes, from its header (for the runner to record with the image): EXIF orientation
    applied (1: none), the source mode and bit depth that were mapped to 8-bit RGB, whether an alpha channel was
    dropped (only ever a fully opaque one)."""
    with Image.open(path) as im:
        try:
            bits = integer_bits(im) or 8
        except ValueError:
            bits = None
        return {"exif_orientation": exif_orientation(im), "mode": im.mode, "bits": bits,
                "alpha_dropped": im.mode in _ALPHA_MODES or "transparency" in im.info}


def _drop_alpha(im: Image.Image) -> Image.Image:
    """RGB from an image with an alpha channel (or a transparent palette entry / colour key), only when every pixel
    is fully opaque; otherwise ValueError: what a transparent pixel should look like is not the suite's to guess."""
    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    transparent = int((alpha < 255).sum())
    if transparent:
        raise ValueError(f"{transparent} of {alpha.size} pixels are not fully opaque (alpha < 255); the benchmark "
                         "codes RGB and will not guess a background: flatten the image onto one first (e.g. "
                         "`magick in.png -background white -flatten out.png`) or leave it out (--skip-bad)")
    return rgba.convert("RGB")


def _rgb(im: Image.Image) -> Image.Image:
    """RGB at 8 bits. Integer images are mapped by their bit depth (16-bit: x 255/65535; Pillow's convert("RGB")
    would clip them to white), 32-bit integer and floating-point images refused; alpha dropped only when every
    pixel is opaque. (EXIF orientation is applied by the caller, `open_rgb`.)"""
    bits = integer_bits(im)
    if bits is not None:
        arr = np.asarray(im, dtype=np.float64)
        arr = np.clip(np.round(arr * (255.0 / float((1 << bits) - 1))), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(arr[:, :, None], 3, axis=2), "RGB")
    if im.mode == "F":
        raise ValueError("floating-point images have no defined value range; convert it to 8- or 16-bit PNG")
    if im.mode not in _EIGHT_BIT:
        raise ValueError(f"image mode {im.mode} is not an 8- or 16-bit grayscale, palette, RGB or CMYK image; "
                         "convert it to 8-bit RGB PNG")
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        return _drop_alpha(im)
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
                integer_bits(im)  # 32-bit or signed integer samples: refused from the header
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
                return oriented(_rgb(im), exif_orientation(im))
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


def keep_readable(items: list[T], files: Callable[[T], Iterable[Path | None]]) -> list[T]:
    """--skip-bad at construction: the items none of whose `files` has a failing header (empty, not an image, over
    the pixel limit); an item left out is warned about, naming its first such file."""
    kept = []
    for it in items:
        bad = next(((p, e) for p in files(it) if p is not None and (e := header_problem(p)) is not None), None)
        if bad is None:
            kept.append(it)
        else:
            warn_skip(*bad)
    return kept


def drop_unreadable(files: list[Path], folder: Path) -> tuple[list[Path], int]:
    """`keep_readable` for single files; (kept files, number dropped). None left: DatasetError naming the folder."""
    kept = keep_readable(files, lambda p: (p,))
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
