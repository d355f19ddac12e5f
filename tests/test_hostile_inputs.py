# ruff: noqa: F811 - tests take the imported fixture `good` as an argument
"""Hostile inputs (unsafe names in result files, unreadable or oversized images, bad result files, damaged
partial CSVs and manifests), each ending in a clear error that names the file or field, or in the correct number.
Decoder exhaustion and the fault cases (SIGKILL, full disk, read-only folder, concurrent runs, umask) are in
test_fuzz_decoders.py and test_fault_injection.py."""
from __future__ import annotations

import copy
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from cli.main import app
from benchmark.contract.container import Container
from benchmark.errors import (
    BitstreamError,
    ConfigError,
    DatasetError,
    OutputError,
    ResultSchemaError,
    SkippedSample,
    WeightsError,
)
from benchmark.results.schema import validate_result
from benchmark.results.files import validate_file
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec
from tests.helpers import flat, write_images

from tests.test_results_schema import good  # noqa: F401 - the valid result fixture, shared


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---------------------------------------------------------------- writes outside --out, links from names
@pytest.mark.parametrize("field, value", [("method", "x/../../../../escaped"), ("method", "javascript:alert(1)"),
                                          ("method", "<b>x</b>"), ("variant", "../up"), ("protocol", "a/../../b"),
                                          ("method", ".hidden")])
def test_unsafe_names_are_refused_at_validation(good, field, value):
    obj = copy.deepcopy(good[1])
    obj[field] = value
    with pytest.raises(ResultSchemaError, match=rf"^{field}: .*not a safe name"):
        validate_result(obj)


def test_escaping_method_name_writes_nothing_outside_out(good, tmp_path, cli_runner):
    res, lb = tmp_path / "deep" / "res", tmp_path / "deep" / "lb"
    res.mkdir(parents=True)
    bad = copy.deepcopy(good[1])
    bad["method"] = "x/../../../../escaped"
    (res / "evil.json").write_text(json.dumps(bad))
    (res / "jpeg.json").write_text(json.dumps(good[1]))
    (res / good[1]["per_image_csv"]).write_bytes((good[0].parent / good[1]["per_image_csv"]).read_bytes())  # its CSV
    out = cli_runner.invoke(app, ["validate", str(res)])
    text = flat(out.output)
    assert out.exit_code == 1 and "evil.json: field method" in text and "jpeg.json (result)" in text, out.output
    before = _tree(tmp_path)
    out = cli_runner.invoke(app, ["leaderboard", "--results", str(res), "--out", str(lb)])
    assert out.exit_code == 0, out.output
    created = _tree(tmp_path) - before
    assert created and all(c.startswith(str(Path("deep") / "lb")) for c in created), created
    assert not list(tmp_path.rglob("escaped*"))
    readme = (lb / "README.md").read_text()
    assert "evil.json" in readme and "not a safe name" in readme  # reported as skipped, with the reason
    assert "javascript:" not in (lb / "index.html").read_text()


def test_writers_refuse_unsafe_names(tmp_path):
    from benchmark.safety.safenames import safe_path
    from leaderboard.page import _inline

    with pytest.raises(OutputError, match="not a safe name"):
        safe_path(tmp_path, "../x.json")
    assert safe_path(tmp_path, "jpeg.q=5.json") == tmp_path / "jpeg.q=5.json"
    assert "<a " not in _inline("[x](javascript:alert(1))") and "<a " not in _inline("[x](DATA:text/html,x)")
    assert '<a href="leaderboard.csv">' in _inline("[x](leaderboard.csv)")


def test_variant_that_escapes_out_is_a_config_error(tmp_path):
    """The runner's result key (file names under --out) is checked whatever a codec or dataset calls its variant."""
    from benchmark.contract.registry import get_method
    from benchmark.evaluation.setup import result_key

    spec = RunSpec(method="jpeg", dataset="images", out=tmp_path, dataset_options={"variant": "../../up"})
    with pytest.raises(ConfigError, match="not a safe name"):
        result_key(get_method("jpeg")(), spec)
    assert result_key(get_method("jpeg")(), RunSpec(method="jpeg", dataset="images")) == ("jpeg", None)


# ---------------------------------------------------------------- silent wrong numbers
def test_skip_bad_never_counts_an_image_twice(tmp_path):
    bad_dir, ref_dir = tmp_path / "bad", tmp_path / "ref"
    write_images(ref_dir, n=2, size=(40, 56))
    bad_dir.mkdir()
    (bad_dir / "a.png").write_bytes(b"")  # zero bytes, sorted first
    for p in ref_dir.iterdir():
        (bad_dir / p.name).write_bytes(p.read_bytes())
    opts = {"qualities": [30, 80]}
    with pytest.warns(UserWarning, match="a.png"):
        _, res = run(RunSpec(method="jpeg", dataset="images", root=bad_dir, out=tmp_path / "o1", progress=False,
                             method_options=opts, dataset_options={"skip_bad": True}))
    _, ref = run(RunSpec(method="jpeg", dataset="images", root=ref_dir, out=tmp_path / "o2", progress=False,
                         method_options=opts))
    for p, q in zip(res["points"], ref["points"]):
        assert p["n_images"] == q["n_images"] == 2
        assert p["bpp"] == q["bpp"] and p["psnr"] == q["psnr"]


def test_skip_bad_with_every_file_bad_ends_cleanly(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for n in ("a.png", "b.png"):
        (root / n).write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="every image .* unreadable"):
        run(RunSpec(method="jpeg", dataset="images", root=root, out=tmp_path / "o", progress=False,
                    dataset_options={"skip_bad": True}))


def test_skip_bad_test_split_skips_late_failures_without_substitute(tmp_path):
    from datasets.folders import ImageFolder

    write_images(tmp_path, n=2, size=(16, 16))
    ds = ImageFolder(tmp_path, skip_bad=True)
    ds.files[0].write_bytes(ds.files[0].read_bytes()[:60])  # header intact, pixel data cut: fails only on decode
    with pytest.warns(UserWarning), pytest.raises(SkippedSample, match="kodim01"):
        ds[0]
    assert ds.skipped == 1 and ds[1].name == "kodim02"


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    from datasets._io import load_rgb

    path = tmp_path / "g16.png"
    Image.fromarray(np.full((4, 5), round(0.252 * 65535), dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    x = load_rgb(path)
    assert x.shape == (3, 4, 5) and torch.allclose(x, torch.full_like(x, 64 / 255))


def test_lossless_image_gives_a_finite_psnr_and_a_count():
    from benchmark.contract.codec import Scenario
    from benchmark.results.metrics import PSNR_MAX_8BIT
    from benchmark.contract.registry import get_protocol
    from benchmark.evaluation.rows import aggregate, measure

    proto = get_protocol("images/full")
    x = torch.rand(3, 16, 16)
    lossless = measure(x, x.clone(), proto)
    lossy = measure(x, (x + 0.05).clamp(0, 1), proto)
    assert lossless["psnr"] == PSNR_MAX_8BIT == 60.0 and lossless["mse"] == 0.0
    rows = [{**lossless, "image": "a", "source": 0, "rate_point": "p", "bpp": 8.0, "bpp_payload": 8.0,
             "bpp_estimated": None, "encode_s": 0.0, "decode_s": 0.0},
            {**lossy, "image": "b", "source": 0, "rate_point": "p", "bpp": 2.0, "bpp_payload": 2.0,
             "bpp_estimated": None, "encode_s": 0.0, "decode_s": 0.0}]
    (point,) = aggregate(rows, ["p"], Scenario.SEPARATE)
    assert point["psnr"] == pytest.approx((60.0 + lossy["psnr"]) / 2) and point["n_lossless"] == 1


@pytest.mark.parametrize("claimed, payload_mode", [((3, 16, 16), "L"), ((1, 16, 16), "RGB")])
def test_jpeg_payload_whose_channels_differ_from_the_header(claimed, payload_mode):
    import io

    from benchmark.contract.registry import get_method

    buf = io.BytesIO()
    Image.new(payload_mode, (16, 16), 128).save(buf, format="JPEG")
    data = Container("jpeg", 0, claimed, [buf.getvalue()]).to_bytes()
    with pytest.raises(BitstreamError, match="header announces"):
        get_method("jpeg")().decompress(data)


# ---------------------------------------------------------------- decompression bombs (input images)
def _png_claiming(path: Path, w: int, h: int) -> None:
    """A valid 1x1 PNG whose IHDR is rewritten to claim w x h (CRC fixed), as a decompression bomb would."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]
    ihdr[4:12] = struct.pack(">II", w, h)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_png_bomb_is_a_clear_error_naming_the_file_and_skippable(tmp_path):
    from datasets._io import load_rgb
    from datasets.folders import ImageFolder

    write_images(tmp_path, n=1, size=(16, 16))
    bomb = tmp_path / "bomb.png"
    _png_claiming(bomb, 100_000, 100_000)
    with pytest.raises(DatasetError, match=r"bomb\.png.*(100000x100000|exceeds limit)"):
        load_rgb(bomb)
    big = tmp_path / "big.png"  # below Pillow's own bomb limit, above the suite's default pixel limit
    _png_claiming(big, 6000, 6000)
    with pytest.raises(DatasetError, match=r"big\.png.*6000x6000 = 36000000 pixels.*--max-pixels"):
        load_rgb(big)
    big.unlink()
    with pytest.warns(UserWarning, match="bomb.png"):
        ds = ImageFolder(tmp_path, skip_bad=True)
    assert [p.name for p in ds.files] == ["kodim01.png"] and ds.skipped == 1


def test_max_pixels_option_refuses_larger_images(tmp_path, cli_runner):
    write_images(tmp_path / "imgs", n=1, size=(32, 32))
    out = cli_runner.invoke(app, ["run", "--method", "jpeg", "--dataset", "images", "--root", str(tmp_path / "imgs"),
                           "--out", str(tmp_path / "o"), "--max-pixels", "1000", "-q"])
    text = flat(out.output)
    assert out.exit_code == 2 and "kodim01.png" in text and "--max-pixels" in text, out.output


def test_short_input_is_truncated_not_bad_magic():
    with pytest.raises(BitstreamError, match="truncated: 2 bytes"):
        Container.from_bytes(b"\xdb\x5c", "jpeg")


# ---------------------------------------------------------------- a run that cannot continue
def test_half_written_partial_csv_tail_is_dropped_and_recoded(tmp_path):
    from benchmark.contract.data import Sample
    from benchmark.contract.registry import get_method, get_protocol
    from benchmark.evaluation.inprocess import evaluate

    proto = get_protocol("images/full")
    codec = get_method("jpeg")(protocol=proto, qualities=[30, 80])
    g = torch.Generator().manual_seed(0)
    samples = [Sample(x=torch.rand(3, 16, 24, generator=g), name=f"s{i}") for i in range(3)]
    partial = tmp_path / ".jpeg.partial.csv"
    full = evaluate(codec, samples, proto, progress=False, partial_csv=partial, fingerprint="fp")
    text = partial.read_text()
    lines = text.splitlines(keepends=True)
    partial.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])  # 3 rows + half of the 4th
    again = evaluate(codec, samples, proto, progress=False, partial_csv=partial, fingerprint="fp")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("encode_s", "decode_s")} for r in rows]
    assert strip(again) == strip(full)
    rows = partial.read_text().splitlines()
    assert len(rows) == 1 + len(full) and all(r.count(",") == rows[0].count(",") for r in rows)


# ---------------------------------------------------------------- one bad file does not abort everything
BAD_FILES = {
    "digits400.json": lambda good: json.dumps(good).replace('"bpp": ', '"bpp": ' + "1" * 400 + ".5 + 0*", 1),
    "int5000.json": lambda good: json.dumps({**good, "points": [{**good["points"][0], "n_images": "@"}]}).replace('"@"', "1" * 5000),
    "deep.json": lambda good: "[" * 200_000 + "]" * 200_000,
    "per_source.json": lambda good: json.dumps({**good, "points": [{**good["points"][0], "per_source": [1]}]}),
}


def test_bad_files_are_reported_and_skipped_by_validate_and_leaderboard(good, tmp_path, cli_runner):
    res = tmp_path / "res"
    res.mkdir()
    (res / "jpeg.json").write_text(json.dumps(good[1]))
    (res / good[1]["per_image_csv"]).write_bytes((good[0].parent / good[1]["per_image_csv"]).read_bytes())  # its CSV
    for name, make in BAD_FILES.items():
        (res / name).write_text(make(good[1]))
        with pytest.raises(ResultSchemaError):
            validate_file(res / name)
    out = cli_runner.invoke(app, ["validate", str(res)])
    text = flat(out.output)
    assert out.exit_code == 1, out.output
    assert text.count("FAIL") == len(BAD_FILES) and "jpeg.json (result)" in text
    assert "points[0].per_source[0]" in text and "nested deeper" in text and "digits" in text
    out = cli_runner.invoke(app, ["leaderboard", "--results", str(res), "--out", str(tmp_path / "lb")])
    assert out.exit_code == 0, out.output
    readme = (tmp_path / "lb" / "README.md").read_text()
    assert all(name in readme for name in BAD_FILES)


@pytest.mark.parametrize("version", ["abc", None, 1.5, True, -3])
def test_manifest_format_version_must_be_an_integer(tmp_path, version):
    from benchmark.training.weights import load_weights, save_weights

    save_weights(tmp_path, method="toy", models={"a": {"w": torch.zeros(2)}})
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["format_version"] = version
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(WeightsError, match="format_version"):
        load_weights(tmp_path, method="toy")


# ---------------------------------------------------------------- smaller
def test_identical_weights_hash_identically(tmp_path):
    from benchmark.training.weights import write_safetensors

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.int64)}
    meta = {f"k{i}": str(i) for i in range(12)}  # many entries: a hash map would order them differently
    digests = {write_safetensors(tmp_path / f"{i}.safetensors", tensors, dict(reversed(meta.items()) if i % 2 else meta))
               for i in range(4)}
    assert len(digests) == 1


def test_crop_not_a_multiple_of_the_stride_is_a_config_error_at_start():
    from benchmark.contract.registry import get_method

    with pytest.raises(ConfigError, match="crop=96 must be a positive multiple of the model's stride 64"):
        get_method("balle2018")(crop=96)
    get_method("balle2018")(crop=128)


def test_real_dataset_readers_skip_late_failures_on_the_test_split(tmp_path):
    """KITTI/Cityscapes/CelebA readers: a file whose header passed but whose pixels fail is left out of the test
    split (SkippedSample, counted) and replaced by the next pair only in training."""
    from datasets._real import PairedImages, PairItem

    paths = write_images(tmp_path, n=3, size=(16, 16))
    items = [PairItem(p, None, p.stem) for p in paths]
    paths[0].write_bytes(paths[0].read_bytes()[:60])  # header intact, pixel data cut
    test = PairedImages(items, lambda im, p: im, split="test", skip_bad=True, dataset="toy")
    with pytest.raises(SkippedSample, match="kodim01"):
        test[0]
    assert test.skipped == 1 and test[1].name == "kodim02"
    train = PairedImages(items, lambda im, p: im, split="train", skip_bad=True, dataset="toy")
    with pytest.warns(UserWarning, match="next pair"):
        assert train[0].name == "kodim02"
