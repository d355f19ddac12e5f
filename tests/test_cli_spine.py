"""The command line end to end: a JPEG run on an image folder whose rates are the bytes Pillow writes, `bench
list`, and clear errors for an unknown method or a missing --root."""
import csv
import io
import json
import math

import numpy as np
import pytest
from PIL import Image
from cli.main import app
from tests.helpers import flat, write_images


def test_jpeg_on_image_folder_bpp_is_pillow_bytes(tmp_path, cli_runner):
    paths = write_images(tmp_path / "kodak", n=2, size=(64, 96))
    out = tmp_path / "out"
    res = cli_runner.invoke(app, ["run", "--method", "jpeg", "--dataset", "images", "--root", str(tmp_path / "kodak"), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    path = out / "images" / "full" / "jpeg.json"
    assert str(path) in "".join(res.output.split())
    result = json.loads(path.read_text())
    assert len(result["points"]) == 19
    v = cli_runner.invoke(app, ["validate", str(path)])
    assert v.exit_code == 0, v.output

    rows = list(csv.DictReader(open(path.parent / result["per_image_csv"])))
    assert len(rows) == 2 * 19
    for q, point in [(5, result["points"][0]), (50, result["points"][9]), (95, result["points"][18])]:
        assert point["rate_point"] == f"q={q}"
        pillow_bpp, psnrs = [], []
        for p in paths:
            arr = np.asarray(Image.open(p).convert("RGB"))
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=q)
            pillow_bpp.append(8 * buf.tell() / (arr.shape[0] * arr.shape[1]))
            dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.float64)
            mse = np.mean((dec - arr.astype(np.float64)) ** 2)
            psnrs.append(10 * math.log10(255.0**2 / mse))
        # payload = exactly the bytes Pillow writes; the container adds its small header on top
        assert point["bpp_payload"] == pytest.approx(np.mean(pillow_bpp), rel=1e-12)
        assert point["bpp"] > point["bpp_payload"]
        assert point["bpp"] - point["bpp_payload"] < 8 * 20 / (64 * 96)
        # PSNR over 8-bit RGB per image, then the mean
        assert point["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-9)


def test_list_commands_name_the_registered_methods_datasets_and_protocols(cli_runner):
    out = {}
    for what in ("methods", "datasets", "protocols"):
        res = cli_runner.invoke(app, ["list", what])
        assert res.exit_code == 0, res.output
        out[what] = res.output
    assert "jpeg2000" in out["methods"] and "balle2018" in out["methods"]
    assert "middlebury_sample" in out["datasets"]
    assert "middlebury-sample/stereo" in out["protocols"]


def test_unknown_method_is_a_clear_error(tmp_path, cli_runner):
    res = cli_runner.invoke(app, ["run", "--method", "jpg", "--dataset", "middlebury_sample", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "Did you mean 'jpeg'" in flat(res.output), res.output


def test_missing_root_is_a_clear_error(tmp_path, cli_runner):
    res = cli_runner.invoke(app, ["run", "--method", "jpeg", "--dataset", "images", "--root", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "does not exist" in flat(res.output), res.output
