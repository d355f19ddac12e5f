"""Small fixture builders and text helpers shared by the tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(6 * xx + c + seed) * np.cos(4 * yy - c) for c in range(3)], -1)
    img = 127.5 + 90 * img + rng.normal(0, 6, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_images(folder: Path, n: int = 2, size: tuple[int, int] = (64, 96)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"kodim{i + 1:02d}.png"
        Image.fromarray(smooth_image(*size, seed=i)).save(p)
        paths.append(p)
    return paths


def write_stereo(folder: Path, n: int = 2, size: tuple[int, int] = (64, 96)) -> None:
    (folder / "left").mkdir(parents=True, exist_ok=True)
    (folder / "right").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = smooth_image(size[0], size[1] + 8, seed=i)
        Image.fromarray(img[:, 8:]).save(folder / "left" / f"{i:06d}.png")
        Image.fromarray(img[:, :-8]).save(folder / "right" / f"{i:06d}.png")


def flat(text: str) -> str:
    """Text with every run of whitespace made one space: command-line output compared without the line breaks
    that rich inserts at the console width."""
    return " ".join(text.split())
