"""Hostile inputs, second set: crafted weights, hostile result files and CSVs for the leaderboard, symlinked
output folders, spreadsheet formulas in cells, unusual image formats, absurd options, duplicate JSON keys and
forged bitstream headers; each ends in a clear error that names the file or field, or in the correct number.
Probes that could crash or hang a native library run in a child process with a timeout
(tests/hostile_round2_worker.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _child(*args: str, timeout: float, lines: bool = False) -> Any:
    """Run a probe in a child process; a crash (signal) or a hang fails the test with what the child said.
    The child's last JSON line (`lines`: every JSON line)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.hostile_round2_worker", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"probe {args} hung: no answer in {timeout} s; it said {str(exc.stdout)[-500:]}")
    assert proc.returncode == 0, (f"probe {args} died with rc {proc.returncode} after {proc.stdout[-500:]!r}: "
                                  f"{proc.stderr[-2000:]}")
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{") or line.startswith("[")]
    return out if lines else out[-1]


# ---------------------------------------------------------------- crafted weights
WEIGHT_PROBES = {
    "int8": r"'entropy_bottleneck\._cdf_length' has dtype torch\.int8, the model's is torch\.int32",
    "nan": r"holds \d+ NaN or infinite value\(s\)",
    "cdf_length": r"_cdf_length' differs from the table the suite rebuilds",
    "quantiles": r"quantiles span 1e\+09 symbols, more than the 16384",
    "constant": r"lower_bound_scale\.bound' is a constant of the architecture",
}


@pytest.fixture(scope="module")
def weight_probes(tmp_path_factory) -> dict[str, dict]:
    """Every crafted-weights probe and the untampered control, in one child process (one line per probe)."""
    modes = ",".join([*WEIGHT_PROBES, "ok"])
    return {r["mode"]: r for r in _child("weights", modes, str(tmp_path_factory.mktemp("w")), timeout=300, lines=True)}


@pytest.mark.parametrize("mode", list(WEIGHT_PROBES))
@pytest.mark.slow
def test_crafted_balle2018_weights_are_refused_before_the_coder_sees_them(weight_probes, mode):
    import re

    out = weight_probes[mode]
    assert out["outcome"] == "WeightsError", out
    assert "balle2018 lambda=" in out["message"] and "retrain, or restore" in out["message"]
    assert re.search(WEIGHT_PROBES[mode], out["message"]), out["message"]


@pytest.mark.slow
def test_untampered_weights_still_code(weight_probes):
    assert weight_probes["ok"] == {"mode": "ok", "outcome": "coded"}


# ---------------------------------------------------------------- the leaderboard and its CSVs
import copy  # noqa: E402
import shutil  # noqa: E402

from cli.main import app  # noqa: E402
from tests.helpers import flat  # noqa: E402
from tests.test_results_schema import good  # noqa: E402,F401 - the valid result fixture (a jpeg run), shared

INJECTION = "=cmd|' /C calc'!A0"


def _place(good, folder: Path, name: str, *, csv_name: str | None = None, **changes) -> Path:
    """A copy of the good result under `folder/name` (its per-image CSV copied beside it as `csv_name`)."""
    path, result = good
    obj = copy.deepcopy(result)
    obj.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    if csv_name is not None:
        shutil.copyfile(path.parent / result["per_image_csv"], folder / csv_name)
        obj["per_image_csv"] = csv_name
    (folder / name).write_text(json.dumps(obj))
    return folder / name


def _published(folder: Path, label: str) -> Path:
    src = ROOT / "leaderboard" / "published" / "cityscapes__ndic__bpg__fig8__psnr.json"
    obj = json.loads(src.read_text())
    obj["label"] = label
    obj["source"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evil_curve.json").write_text(json.dumps(obj))
    return folder / "evil_curve.json"


def hostile_results(good, res: Path, outside: Path) -> dict[str, str]:
    """Every hostile result file of this module under `res`, and those of test_hostile_inputs.BAD_FILES (file -> a
    phrase its skip reason holds)."""
    from tests.test_hostile_inputs import BAD_FILES

    _, result = good
    expect = {}
    for name, make in BAD_FILES.items():
        (res / name).write_text(make(result))
        expect[name] = ""
    _place(good, res, "ls_csv.json", per_image_csv="/usr/bin/ls")
    expect["ls_csv.json"] = "plain names in its own folder"
    _place(good, res, "up_csv.json", per_image_csv="../outside.csv")
    expect["up_csv.json"] = "not a safe name"
    wide = _place(good, res, "wide_csv.json", csv_name="wide.csv")
    with open(wide.parent / "wide.csv", "a") as f:  # a 200k-character field in a row of the right length
        f.write("x" * 200_000 + "," * (len(result["points"]) and (wide.parent / "wide.csv").read_text().splitlines()[0].count(",")) + "\n")
    expect["wide_csv.json"] = "200000 characters"
    binary = _place(good, res, "binary_csv.json", csv_name="binary.csv")
    (binary.parent / "binary.csv").write_bytes(Path("/bin/sh").resolve().read_bytes()[:4096])
    expect["binary_csv.json"] = "binary file"
    latin = _place(good, res, "latin_csv.json", csv_name="latin.csv")
    (latin.parent / "latin.csv").write_bytes(b"image,rate_point\n\xe9t\xe9,q=1\n")
    expect["latin_csv.json"] = "not UTF-8"
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.csv").write_text("image,rate_point,bpp,psnr\nsecret,q=1,1,1\n")
    linked = _place(good, res, "link_csv.json", csv_name="placeholder.csv")
    (res / "placeholder.csv").unlink()
    os.symlink(outside / "secret.csv", res / "placeholder.csv")
    expect["link_csv.json"] = "symbolic link"
    assert linked.exists()
    _place(good, res, "long_names.json", method="m" * 128, variant="v" * 128)
    expect["long_names.json"] = "128 characters long"
    _place(good, outside, "elsewhere.json")
    os.symlink(outside / "elsewhere.json", res / "linked_result.json")
    expect["linked_result.json"] = "outside the results folder"
    (res / "dup_keys.json").write_text(json.dumps(result).replace('"method": ', '"method": "jpeg", "method": ', 1))
    expect["dup_keys.json"] = "appears twice"
    return expect


def test_leaderboard_goes_on_past_every_hostile_file_and_shows_the_good_one(good, tmp_path, cli_runner):
    """Every hostile file of the suite plus one good result: exit 0, the good one shown, each bad one named with
    its reason, nothing written outside --out, no formula in the CSVs."""
    res, outside, lb = tmp_path / "res", tmp_path / "outside", tmp_path / "lb"
    _place(good, res, "jpeg.json", csv_name="jpeg.csv")
    expect = hostile_results(good, res, outside)
    pub = _published(tmp_path / "pub", INJECTION)
    (res / "leaderboard").mkdir()  # a stale board; the build must go into --out, not here
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    out = cli_runner.invoke(app, ["leaderboard", "--results", str(res), "--out", str(lb), "--published", str(pub)])
    assert out.exit_code == 0, out.output
    changed = [p for p in tmp_path.rglob("*") if before.get(p) != p.stat().st_mtime_ns and lb not in p.parents and p != lb]
    assert not changed, changed
    readme = (lb / "README.md").read_text()
    assert "1 measured result file(s)" in readme and "jpeg" in readme
    skipped = readme[readme.index("## Skipped files"):]
    for name, phrase in expect.items():
        line = next((ln for ln in skipped.splitlines() if name in ln), None)
        assert line is not None, f"{name} not reported as skipped"
        assert phrase in line, (name, line[:300])
    assert "secret" not in (lb / "points.csv").read_text() + (lb / "leaderboard.csv").read_text()
    # the published label reaches both CSVs only as text
    for csv_name in ("points.csv", "leaderboard.csv"):
        text = (lb / csv_name).read_text()
        import csv as _csv

        cells = [c for row in _csv.reader(text.splitlines()) for c in row]
        assert "'" + INJECTION in cells, csv_name
        assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")], csv_name
        assert not [c for c in cells if c.startswith("-") and not _is_number(c)], csv_name


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_validate_refuses_names_the_leaderboard_could_not_write(good, tmp_path):
    from benchmark.errors import ResultSchemaError
    from benchmark.results.schema import validate_result
    from benchmark.safety.safenames import MAX_LEN, MAX_PROTOCOL_LEN, key_problem, name_problem, safe_path

    obj = copy.deepcopy(good[1])
    for field, value in (("method", "m" * 128), ("variant", "v" * (MAX_LEN + 1)), ("protocol", "p/" * 48 + "q")):
        bad = {**obj, field: value}
        with pytest.raises(ResultSchemaError, match=rf"^{field}: is \d+ characters long; at most"):
            validate_result(bad)
    # at the limits, the leaderboard's longest file name (export, duplicate suffix, temporary name) still fits
    longest = "p" * MAX_PROTOCOL_LEN + "__" + "m" * MAX_LEN + "." + "v" * MAX_LEN + "-99.json"
    assert len(("." + longest + ".abcdefgh.tmp").encode()) <= 255
    assert safe_path(tmp_path, longest) == tmp_path / longest
    assert name_problem("m" * MAX_LEN) is None and key_problem("m" * MAX_LEN + "." + "v" * MAX_LEN) is None


def test_leaderboard_never_writes_through_a_symlinked_out(good, tmp_path, cli_runner):
    """`rs/leaderboard -> victim/` and `bench leaderboard --results rs` (no --out): refused, victim/ untouched."""
    rs, victim = tmp_path / "rs", tmp_path / "victim"
    _place(good, rs, "jpeg.json", csv_name="jpeg.csv")
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    os.symlink(victim, rs / "leaderboard")
    out = cli_runner.invoke(app, ["leaderboard", "--results", str(rs)])
    text = flat(out.output)
    assert out.exit_code == 2, out.output
    assert "symbolic link" in text and "--out" in text
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    # a link one level down (the CompressAI export folder) is refused the same way
    os.unlink(rs / "leaderboard")
    (rs / "leaderboard").mkdir()
    os.symlink(victim, rs / "leaderboard" / "compressai")
    out = cli_runner.invoke(app, ["leaderboard", "--results", str(rs)])
    assert out.exit_code == 2 and "symbolic link" in flat(out.output), out.output
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]


def test_atomic_writes_refuse_a_symlinked_folder_and_explain_an_uncreatable_out(tmp_path):
    from benchmark.safety.atomicio import atomic_write_text, output_dir
    from benchmark.errors import OutputError

    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(victim, tmp_path / "link")
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write_text(tmp_path / "link" / "x.json", "{}")
    assert not list(victim.iterdir())
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="a file of that name is in the way"):
        output_dir(tmp_path / "file")
    with pytest.raises(OutputError, match=r"cannot create --out folder .*(denied|read-only|Not a directory)"):
        output_dir(tmp_path / "file" / "sub")
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="permission denied"):
            output_dir(ro / "out")


def test_formula_cells_are_neutralised_numbers_untouched():
    from benchmark.safety.csvsafe import safe_cell, safe_row

    assert safe_cell(INJECTION) == "'" + INJECTION
    assert safe_cell('=HYPERLINK("http://x","y")') == "'=HYPERLINK(\"http://x\",\"y\")"
    for lead in ("+", "-", "@", "\t", "\r"):
        assert safe_cell(lead + "x").startswith("'")
    assert safe_cell("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert safe_cell("a\nb\x00") == "a\\nb\\x00"
    for same in (-3.5, 2, None, True, "-3.21", "1e-05", "-inf", "lambda=0.0035", "q=50", "kodim01", ""):
        assert safe_cell(same) == same
    assert safe_row({"image": "=1+1", "bpp": 0.5}) == {"image": "'=1+1", "bpp": 0.5}


# ---------------------------------------------------------------- images, options, JSON keys
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from benchmark.errors import ConfigError, DatasetError  # noqa: E402


def test_thirty_two_bit_integer_tiff_is_refused_not_clipped(tmp_path):
    from datasets._io import header_problem, load_rgb

    path = tmp_path / "i32.tif"
    Image.fromarray(np.full((6, 7), 70_000_000, dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    with pytest.raises(DatasetError, match=r"i32\.tif.*32-bit integer samples .*8- or 16-bit"):
        load_rgb(path)
    assert "32-bit" in str(header_problem(path))  # --skip-bad drops it at construction, from the header


@pytest.mark.parametrize("fmt, suffix", [("TIFF", ".tif"), ("PNG", ".png"), ("PPM", ".pgm")])
def test_sixteen_bit_formats_are_mapped_by_bit_depth(tmp_path, fmt, suffix):
    from datasets._io import load_rgb

    path = tmp_path / f"g16{suffix}"
    Image.fromarray(np.full((4, 5), round(0.6 * 65535), dtype=np.uint16)).save(path, format=fmt)
    x = load_rgb(path)
    assert x.shape == (3, 4, 5) and torch.allclose(x, torch.full_like(x, 153 / 255))


def _exif_image(path: Path, orientation: int) -> np.ndarray:
    arr = np.zeros((4, 6, 3), dtype=np.uint8)
    arr[0, 0] = 255  # a marker in the top-left corner as stored
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, format="PNG", exif=exif)
    return arr


@pytest.mark.parametrize("orientation, shape, marker", [(1, (4, 6), (0, 0)), (3, (4, 6), (3, 5)), (6, (6, 4), (0, 3)),
                                                        (8, (6, 4), (5, 0))])
def test_exif_orientation_is_applied_and_reported(tmp_path, orientation, shape, marker):
    from datasets._io import image_facts, load_rgb

    path = tmp_path / "turned.png"
    _exif_image(path, orientation)
    x = load_rgb(path)
    assert tuple(x.shape[1:]) == shape
    assert tuple(int(i) for i in (x[0] == 1).nonzero()[0]) == marker
    assert image_facts(path)["exif_orientation"] == orientation


def test_alpha_is_dropped_only_when_fully_opaque(tmp_path):
    from datasets._io import image_facts, load_rgb

    rgba = np.full((4, 5, 4), 200, dtype=np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    x = load_rgb(tmp_path / "opaque.png")
    assert torch.allclose(x, torch.full_like(x, 200 / 255)) and image_facts(tmp_path / "opaque.png")["alpha_dropped"]
    rgba[1, 2, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "holes.png")
    with pytest.raises(DatasetError, match=r"holes\.png.*1 of 20 pixels are not fully opaque.*flatten"):
        load_rgb(tmp_path / "holes.png")
    pal = Image.new("P", (3, 3), 0)
    pal.putpalette([0, 0, 0, 255, 255, 255])
    pal.putpixel((1, 1), 1)
    pal.save(tmp_path / "pal.png", transparency=1)  # a palette entry marked transparent
    with pytest.raises(DatasetError, match="not fully opaque"):
        load_rgb(tmp_path / "pal.png")


def test_libjpeg_size_limit_is_named():
    from benchmark.contract.registry import get_method

    with pytest.raises(ConfigError, match=r"70000x1 image: libjpeg .* at most 65500 pixels per side"):
        get_method("jpeg")(qualities=[50]).compress(torch.rand(3, 1, 70000), point="q=50")
    with pytest.raises(ConfigError, match=r"libwebp .* 16383"):
        get_method("webp")(qualities=[50]).compress(torch.rand(3, 1, 17000), point="q=50")


@pytest.mark.parametrize("method, options, message", [
    ("jpeg", {"qualities": [1e308]}, r"1e\+308 is out of range for an integer option"),
    ("jpeg", {"qualities": "[1e308]"}, r"1e\+308 is out of range for an integer option"),
    ("jpeg", {"qualities": [50, 50]}, r"duplicate values 50"),
    ("jpeg2000", {"qualities": "10,20,10"}, r"duplicate values 10"),
    ("balle2018", {"lambdas": [0.01, 0.01]}, r"duplicate values 0\.01"),
    ("scalar_sw", {"rates": [1.0, 1.0]}, r"duplicate values 1\.0"),
])
def test_rate_points_are_finite_and_distinct(method, options, message):
    from benchmark.contract.registry import get_method

    with pytest.raises(ConfigError, match=message):
        get_method(method)(**options)


def test_bench_run_with_absurd_qualities_is_a_clear_error(tmp_path, cli_runner):
    from tests.helpers import write_images

    write_images(tmp_path / "imgs", n=1, size=(16, 16))
    for q in ("qualities=[1e308]", "qualities=[50,50]"):
        out = cli_runner.invoke(app, ["run", "--method", "jpeg", "--dataset", "images", "--root", str(tmp_path / "imgs"),
                               "--out", str(tmp_path / "o"), "--option", q, "-q"])
        assert out.exit_code == 2 and "option qualities" in flat(out.output), out.output
        assert out.exception is None or isinstance(out.exception, SystemExit)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.json"))


def test_duplicate_json_keys_are_refused_naming_the_key(tmp_path):
    from benchmark.errors import WeightsError
    from benchmark.safety.untrusted import parse_json

    with pytest.raises(ValueError, match=r"'bpp' appears twice"):
        parse_json('{"points": [{"bpp": 1, "bpp": 2}]}', where="f.json", error=ValueError)
    assert parse_json('{"a": {"b": 1}, "b": [1, 1]}', where="f.json", error=ValueError) == {"a": {"b": 1}, "b": [1, 1]}
    from benchmark.training.weights import read_manifest, save_weights

    save_weights(tmp_path / "w", method="toy", models={"a": {"w": torch.zeros(2)}})
    text = (tmp_path / "w" / "manifest.json").read_text()
    (tmp_path / "w" / "manifest.json").write_text(text.replace('"method": "toy"', '"method": "toy", "method": "other"'))
    with pytest.raises(WeightsError, match="'method' appears twice"):
        read_manifest(tmp_path / "w")


# ---------------------------------------------------------------- what a forged header may cost
LIMIT_SIDE = 128  # the pixel limit of the measurement: 128 x 128 (as --max-pixels 16384 sets it)
COST_RATIO = 3.0  # a forged header at the limit costs at most 3x the honest decode of that shape ...
SLACK_S = 0.1  # ... plus this much timer noise (the honest decodes at this size take 1-60 ms)
RSS_SLACK = 512 << 20  # ... and at most the honest decode's peak RSS + 512 MB


@pytest.mark.slow
def test_forged_headers_at_the_limit_cost_at_most_an_honest_decode():
    """Every registered codec, at a limit of 128x128 pixels: square, 8-high and 1-high shapes at the limit, each
    decoded honestly and with forged headers (zeros, random bytes, 8 bytes per stream), in a child process; a shape
    the codec cannot encode or refuses to decode must be refused for forged headers too."""
    from benchmark.contract.registry import METHODS

    records = _child("header", str(LIMIT_SIDE), timeout=300)
    assert sorted({r["codec"] for r in records}) == sorted(METHODS.names())
    report, bad = [], []
    for r in records:
        honest = r["honest"]
        for f in r["forged"]:
            ok_outcome = f["outcome"] == "decoded" or f["outcome"].startswith("BitstreamError")
            if not ok_outcome:
                bad.append((r["codec"], r["shape"], f["payload"], f["outcome"]))
            elif honest is None or honest["outcome"] != "decoded":
                if f["outcome"] == "decoded":
                    bad.append((r["codec"], r["shape"], f["payload"], "decoded a shape the codec cannot make or refuses"))
            else:
                if f["s"] > COST_RATIO * honest["s"] + SLACK_S or f["rss"] > honest["rss"] + RSS_SLACK:
                    bad.append((r["codec"], r["shape"], f["payload"], f"{f['s']:.3f} s, {f['rss'] >> 20} MB against "
                                f"honest {honest['s']:.3f} s, {honest['rss'] >> 20} MB"))
                report.append((r["codec"], tuple(r["shape"]), round(f["s"] / max(honest["s"], 1e-3), 2),
                               (f["rss"] - honest["rss"]) >> 20))
    print("forged/honest time ratio and RSS difference (MB):", report)
    assert not bad, json.dumps(bad, indent=1)[:4000]


@pytest.mark.parametrize("name, shape, limit, cap_words", [
    ("neural_dsc_separate", (3, 1, 262144), None, "above the limit of 65536 per side"),  # 66 bytes that would decode for minutes
    ("neural_dsc_separate", (3, 1, 65536), None, "padded to the decoder's stride 8: 8x65536 = 524288"),
    ("balle2018", (3, 1, 60000), 1 << 20, "padded to the decoder's stride 64: 64x60032 = 3842048"),
    ("balle2018", (3, 1, 1 << 24), None, "per side"),
])
def test_thin_headers_are_refused_by_their_padded_size(name, shape, limit, cap_words):
    import time

    from benchmark.contract.container import Container
    from benchmark.contract.conformance import contract_codec
    from benchmark.errors import BitstreamError
    from benchmark.safety.limits import pixel_limit

    codec = contract_codec(name)
    n = 1 if name.startswith("neural") else 2
    data = Container(name, 0, shape, [bytes(24)] * n).to_bytes()
    t0 = time.perf_counter()
    with pixel_limit(limit), pytest.raises(BitstreamError, match="refusing to decode") as info:
        codec.decompress(data)
    assert cap_words in str(info.value) and time.perf_counter() - t0 < 1.0


def test_a_header_other_than_the_expected_shape_is_refused_before_decoding():
    """The runner decodes what it has just encoded: under `expected_shape`, a valid stream's header rewritten to claim
    5792x5792 (inside the default pixel limit; 40 s and 2.3 GB of decoding for balle2018) is refused at once, by
    every codec."""
    import time

    from benchmark.contract.container import Container
    from benchmark.contract.conformance import coded_sample, contract_inputs
    from benchmark.errors import BitstreamError
    from benchmark.safety.limits import expected_shape
    from benchmark.contract.registry import METHODS

    for name in METHODS.names():
        codec, valid, side = coded_sample(name)
        x = contract_inputs(type(codec))[0]
        c = Container.from_bytes(valid, name)
        forged_shape = (x.shape[0], 5792, 5792) if x.dim() == 3 else (x.shape[0] * 4,)
        forged = Container(name, 0, forged_shape, c.streams).to_bytes()
        t0 = time.perf_counter()
        with expected_shape(x.shape):
            with pytest.raises(BitstreamError, match="image decoded here has shape"):
                codec.decompress(forged, side=side)
            out = codec.decompress(valid, side=side)  # the honest stream still decodes
        assert tuple(out.shape) == tuple(x.shape) and time.perf_counter() - t0 < 30, name
