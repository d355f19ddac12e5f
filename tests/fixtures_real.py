"""Tiny fixture trees in the real datasets' layouts, with their real file names (importable by any test:
``from fixtures_real import make_kitti_tree``).

Each image is flat colours that encode where it came from, so tests can check pairing after resizing:
see ``kitti_color``, ``cityscapes_color`` and ``celeba_colors``. A white block in the top-left corner makes
the stereo images asymmetric (to see a horizontal flip)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

KITTI_SETS = (("data_stereo_flow_multiview", 0), ("data_scene_flow_multiview", 1))


def _save(path: Path, rgb: tuple[int, int, int], size_hw: tuple[int, int], block: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size_hw
    im = Image.new("RGB", (w, h), rgb)
    if block:
        im.paste((255, 255, 255), (0, 0, w // 4, h // 2))
    im.save(path, compress_level=1)


def kitti_color(set_index: int, part: str, scene: int, frame: int, view: str) -> tuple[int, int, int]:
    """RGB of a fixture KITTI image: R = scene, G = frame + 100*set, B = 60|190 (left|right) + 1 if testing."""
    return (scene, frame + 100 * set_index, (60 if view == "left" else 190) + (part == "testing"))


def make_kitti_tree(root: Path, scenes_2012: int = 3, scenes_2015: int = 3, size: tuple[int, int] = (372, 744),
                    frames: tuple[str, ...] = ("10", "11"), single: bool = False) -> Path:
    """ROOT/data_{stereo,scene}_flow_multiview/{training,testing}/{image_2,image_3}/NNNNNN_FF.png.

    ``size`` is (H, W); the protocol's centre crop needs at least 370x740 (real frames: ~375x1242).
    ``single``: write only the 2015 release directly under ROOT (ROOT/{training,testing}/...)."""
    root = Path(root)
    sets = [("", 1, scenes_2015)] if single else [(d, i, n) for (d, i), n in zip(KITTI_SETS, (scenes_2012, scenes_2015))]
    for folder, set_index, n in sets:
        for part in ("training", "testing"):
            for scene in range(n):
                for frame in frames:
                    for view, sub in (("left", "image_2"), ("right", "image_3")):
                        path = root / folder / part / sub / f"{scene:06d}_{frame}.png"
                        _save(path, kitti_color(set_index, part, scene, int(frame), view), size)
    return root


def cityscapes_name(city: str, i: int) -> str:
    return f"{city}_{i:06d}_{19 + i:06d}"


def cityscapes_color(split: str, i: int, view: str) -> tuple[int, int, int]:
    return (i, ("train", "val", "test").index(split) * 50, 60 if view == "left" else 190)


def make_cityscapes_tree(root: Path, counts: dict[str, int] | None = None, cities: tuple[str, ...] = ("aachen", "bochum"),
                         size: tuple[int, int] = (40, 80)) -> Path:
    """ROOT/{left,right}Img8bit/{split}/<city>/<city>_NNNNNN_NNNNNN_{left,right}Img8bit.png, image i in
    city i % len(cities); ``size`` (H, W) - real frames are 1024x2048."""
    root = Path(root)
    counts = counts or {"train": 3, "val": 2, "test": 2}
    for split, n in counts.items():
        for i in range(n):
            city = cities[i % len(cities)]
            for view in ("left", "right"):
                path = root / f"{view}Img8bit" / split / city / f"{cityscapes_name(city, i)}_{view}Img8bit.png"
                _save(path, cityscapes_color(split, i, view), size)
    return root


def celeba_colors(i: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(top half, bottom half) colours of fixture face i."""
    return (i % 256, 40, 80), (200, i % 256, 120)


def make_celeba_tree(root: Path, n: int = 30, size: int = 256, ext: str = "png") -> Path:
    """ROOT/00000.png ... : square faces whose top and bottom halves have the colours ``celeba_colors(i)``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        top, bottom = celeba_colors(i)
        im = Image.new("RGB", (size, size), bottom)
        im.paste(top, (0, 0, size, size // 2))
        im.paste((255, 255, 255), (0, 0, size // 4, size // 4))  # asymmetric corner
        im.save(root / f"{i:05d}.{ext}", **({"compress_level": 1} if ext == "png" else {"quality": 95}))
    return root


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array in the IDX format (magic 0x0000080N, big-endian sizes)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes((0, 0, 0x08, array.ndim)) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + array.tobytes()


def make_mnist_tree(root: Path, n_train: int = 200, n_test: int = 50, gz: bool = False, seed: int = 0) -> dict:
    """The four MNIST IDX files (raw or .gz) with random 28x28 digits and labels i % 10; returns the arrays."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, arr in data.items():
        raw = idx_bytes(arr)
        if gz:
            (root / (name + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1))
        else:
            (root / name).write_bytes(raw)
    return data
