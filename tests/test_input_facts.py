"""A result records what reading changed: test images turned upright by their EXIF orientation."""
from __future__ import annotations

import numpy as np
from PIL import Image

from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec


def test_exif_rotated_images_are_counted_in_the_result(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i, orientation in enumerate((1, 6, 3)):
        im = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(root / f"im{i}.png", exif=exif)
    _, result = run(RunSpec(method="jpeg", dataset="images", root=root, out=tmp_path / "out", progress=False,
                            method_options={"qualities": [50]}))
    assert result["input_facts"]["exif_rotated"] == 2
    rows = result["points"][0]
    assert rows["n_images"] == 3
