"""A result JSON against its per-image CSV (benchmark/results/consistency.py): the four kinds of hand-edit are refused by
`bench validate` and `bench submit --check` naming the field, hostile CSVs give problems (never a traceback), and
every committed result under measured/ agrees with its CSV."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.results import metrics
from cli.main import app
from benchmark.results.consistency import check_consistency
from benchmark.results.per_image_csv import CSV_FIELDS
from benchmark.results.schema import RESULT_KIND, validate_result, write_json
from benchmark.results.files import result_candidates, validate_file

cli = CliRunner(env={"COLUMNS": "400"})
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- a tiny consistent result, made by hand
def make_rows(*, rate_unit: str = "bpp", images: int = 3, points=("q=1", "q=2"), sources: int = 1,
              seed: int = 0) -> list[dict]:
    """Per-image rows as the runner writes them (bpp from bytes, PSNR from MSE), one image decoded exactly."""
    rng = random.Random(seed)
    image = rate_unit == "bpp"
    h, w = (16, 24) if image else (1, 100)
    rows = []
    for i in range(images):
        for s in range(sources):
            for k, p in enumerate(points):
                n = rng.randint(40, 90) * (k + 1)
                mse = 0.0 if (i, s, k) == (0, 0, len(points) - 1) else rng.randint(1, 400) / 255.0**2 / 3
                ms = rng.uniform(0.8, 0.99) if image else None
                rows.append({
                    "image": f"img{i}", "source": s, "rate_point": p, "bytes": n, "payload_bytes": n - 10,
                    "bpp": metrics.bpp(n, h * w), "bpp_payload": metrics.bpp(n - 10, h * w),
                    "bpp_estimated": 8.0 * (n - 12) / (h * w), "mse": mse,
                    "psnr": metrics.psnr_8bit_capped(mse) if image else metrics.psnr_from_mse(mse),
                    "ms_ssim": ms, "ms_ssim_db": metrics.ms_ssim_db(ms), "encode_s": rng.uniform(0, 0.1),
                    "decode_s": rng.uniform(0, 0.1), "height": h, "width": w,
                    "sha256": hashlib.sha256(f"{i}{s}{p}".encode()).hexdigest(),
                })
    return rows


def _mean(vals):
    vals = list(vals)
    return sum(vals) / len(vals)


def points_of(rows: list[dict], distributed: bool) -> list[dict]:
    """The JSON points of `rows`, by the definitions in README ("What a result file holds"), written out here."""
    out = []
    for p in dict.fromkeys(r["rate_point"] for r in rows):
        rs = [r for r in rows if r["rate_point"] == p]
        psnrs = [r["psnr"] for r in rs]
        ms = None if any(r["ms_ssim"] is None for r in rs) else _mean(r["ms_ssim"] for r in rs)
        point = {"rate_point": p, "n_images": len({r["image"] for r in rs}),
                 "n_lossless": sum(r["mse"] == 0 for r in rs),
                 "psnr": _mean(psnrs) if all(map(math.isfinite, psnrs)) else None, "ms_ssim": ms,
                 "ms_ssim_db": None if ms is None else -10 * math.log10(1 - ms)}
        for key in ("bpp", "bpp_payload", "bpp_estimated", "mse", "encode_s", "decode_s"):
            point[key] = _mean(r[key] for r in rs)
        if distributed:
            point["per_source"] = [{"source": s, "bpp": _mean(r["bpp"] for r in rs if r["source"] == s),
                                    "psnr": _mean(r["psnr"] for r in rs if r["source"] == s),
                                    "ms_ssim": _mean(r["ms_ssim"] for r in rs if r["source"] == s)}
                                   for s in sorted({r["source"] for r in rs})]
            point["psnr_min"] = min(s["psnr"] for s in point["per_source"])
            point["psnr_max"] = max(s["psnr"] for s in point["per_source"])
        out.append(point)
    return out


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_result(folder: Path, method: str = "jpeg", *, scenario: str = "separate", rate_unit: str = "bpp",
                 sources: int = 1, images: int = 3, extra: dict | None = None) -> Path:
    """`<folder>/<method>.json` and `<method>.csv` that agree in every number; returns the JSON's path."""
    from tests.test_leaderboard import ANCHOR, make_result

    rows = make_rows(rate_unit=rate_unit, sources=sources, images=images)
    r = make_result(method, ANCHOR, scenario=scenario)
    r.update(rate_unit=rate_unit, points=points_of(rows, scenario == "distributed"), per_image_csv=f"{method}.csv",
             coverage={"samples": images, "split_samples": images, "limit": None, "skipped": 0, "complete": True},
             **(extra or {}))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{method}.csv").write_text(csv_text(rows), newline="")
    r["per_image_csv_sha256"] = hashlib.sha256((folder / f"{method}.csv").read_bytes()).hexdigest()
    write_json(folder / f"{method}.json", validate_result(r))
    return folder / f"{method}.json"


def load(path: Path) -> dict:
    return validate_file(path)[1]


def fields(path: Path) -> set[str]:
    return {p.field for p in check_consistency(load(path), path)}


def edit_csv(path: Path, line: int, column: str, value) -> None:
    """Change one cell of a CSV (line 2 is the first row)."""
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    rows[line - 1][rows[0].index(column)] = str(value)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_text(buf.getvalue(), newline="")


def forget_csv_hash(path: Path) -> None:
    """A result written before results recorded their CSV's hash (the hand-edits must be caught without it)."""
    r = json.loads(path.read_text())
    r.pop("per_image_csv_sha256")
    write_json(path, r)


# ---------------------------------------------------------------- consistent files pass
@pytest.mark.parametrize("scenario, rate_unit, sources", [("separate", "bpp", 1), ("distributed", "bpp", 2),
                                                          ("decoder_side_info", "bits/sample", 1)])
def test_consistent_result_passes(tmp_path, scenario, rate_unit, sources):
    path = write_result(tmp_path, scenario=scenario, rate_unit=rate_unit, sources=sources)
    assert check_consistency(load(path), path) == []
    if rate_unit != "bpp":  # a block decoded exactly: PSNR inf in the CSV, the point's PSNR null in the JSON
        assert "inf" in path.with_suffix(".csv").read_text() and load(path)["points"][-1]["psnr"] is None
    out = cli.invoke(app, ["validate", str(path)])
    assert out.exit_code == 0 and "(result)" in out.output, out.output


def test_every_committed_result_agrees_with_its_csv():
    files = [f for f in result_candidates(ROOT / "measured") if validate_file(f)[0] == RESULT_KIND]
    assert len(files) >= 60
    bad = {str(f.relative_to(ROOT)): [str(p) for p in check_consistency(load(f), f)] for f in files}
    assert not {k: v for k, v in bad.items() if v}


# ---------------------------------------------------------------- the four kinds of hand-edit
def _psnr_up(path):
    r = json.loads(path.read_text())
    r["points"][0]["psnr"] += 1
    write_json(path, r)


HAND_EDITS = {
    "psnr raised by 1 dB in the JSON": (_psnr_up, "points[0].psnr"),
    "a row's psnr no longer matches its mse": (lambda p: edit_csv(p.with_suffix(".csv"), 3, "psnr", 33.5),
                                              "per_image_csv[line 3].psnr"),
    "bytes changed, bpp left alone": (lambda p: edit_csv(p.with_suffix(".csv"), 2, "bytes", 20),
                                      "per_image_csv[line 2].bpp"),
    "result without its CSV": (lambda p: p.with_suffix(".csv").unlink(), "per_image_csv"),
}


@pytest.mark.parametrize("edit", HAND_EDITS)
@pytest.mark.parametrize("recorded_hash", [True, False], ids=["csv-hash", "no-csv-hash"])
def test_hand_edits_are_refused_naming_the_field(tmp_path, edit, recorded_hash):
    from tests.test_submit import submittable

    mutate, field = HAND_EDITS[edit]
    path = write_result(tmp_path / "results" / "stereo" / "pairs", extra=submittable())
    if not recorded_hash:
        forget_csv_hash(path)
    assert fields(path) == set()
    mutate(path)
    assert field in fields(path)
    out = cli.invoke(app, ["validate", str(path)])
    assert out.exit_code == 1 and f"field {field}:" in out.output, out.output
    out = cli.invoke(app, ["submit", "--check", "--into", str(tmp_path / "measured"), str(path)])
    assert out.exit_code == 1 and "refused" in out.output and f"field {field}:" in out.output, out.output


def test_changed_csv_is_caught_by_its_recorded_hash(tmp_path):
    path = write_result(tmp_path)
    edit_csv(path.with_suffix(".csv"), 2, "sha256", "0" * 64)  # no number changes: only the hash tells
    assert fields(path) == {"per_image_csv_sha256"}


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r["points"][1].__setitem__("n_images", 4), "points[1].n_images"),
    (lambda r: r["points"][1].__setitem__("n_lossless", 0), "points[1].n_lossless"),
    (lambda r: r["points"][0].__setitem__("bpp", r["points"][0]["bpp"] * 0.9), "points[0].bpp"),
    (lambda r: r["points"][0].__setitem__("bpp_estimated", None), "points[0].bpp_estimated"),
    (lambda r: r["points"][0].__setitem__("ms_ssim_db", 30.0), "points[0].ms_ssim_db"),
    (lambda r: r["points"][0].__setitem__("decode_s", 9.0), "points[0].decode_s"),
    (lambda r: r["points"][0].__setitem__("rate_point", "q=9"), "points[0]"),
    (lambda r: r["points"].pop(), "points"),
    (lambda r: r["coverage"].update(samples=4, split_samples=4), "coverage.samples"),
    (lambda r: r["points"][0]["per_source"][1].__setitem__("psnr", 50.0), "points[0].per_source[1].psnr"),
    (lambda r: r["points"][0].__setitem__("psnr_max", 50.0), "points[0].psnr_max"),
])
def test_json_numbers_must_follow_from_the_rows(tmp_path, mutate, field):
    path = write_result(tmp_path, scenario="distributed", sources=2)
    r = json.loads(path.read_text())
    mutate(r)
    write_json(path, r)
    assert field in fields(path)


def test_row_problems(tmp_path):
    path = write_result(tmp_path)
    csv_path = path.with_suffix(".csv")
    text = csv_path.read_text()
    lines = text.splitlines(keepends=True)
    csv_path.write_text(text + lines[1], newline="")  # a row twice (e.g. qualities [50, 50])
    assert "per_image_csv[line 8]" in fields(path)
    csv_path.write_text(text, newline="")
    for line, column, value in ((2, "payload_bytes", 10_000), (3, "ms_ssim_db", 1.0), (4, "sha256", "xyz"),
                                (5, "height", 0), (6, "mse", "nan")):
        edit_csv(csv_path, line, column, value)
    want = {"per_image_csv[line 2].payload_bytes", "per_image_csv[line 3].ms_ssim_db", "per_image_csv[line 4].sha256",
            "per_image_csv[line 5].height", "per_image_csv[line 6].mse"}
    assert want <= fields(path)


# ---------------------------------------------------------------- hostile CSVs: a problem each, never a traceback
def _symlink_to_secret(d: Path, r: dict) -> None:
    (d.parent / "secret.csv").write_text("image\nshadow\n")
    os.symlink(d.parent / "secret.csv", d / "link.csv")
    r["per_image_csv"] = "link.csv"


def _fifo(d: Path, r: dict) -> None:
    os.mkfifo(d / "fifo.csv")
    r["per_image_csv"] = "fifo.csv"


def _binary(d: Path, r: dict) -> None:
    (d / "bin.csv").write_bytes(bytes(range(256)) * 8)
    r["per_image_csv"] = "bin.csv"


def _long_field(d: Path, r: dict) -> None:
    (d / "long.csv").write_text(",".join(CSV_FIELDS) + "\n" + "x" * 200_000 + ",0\n")
    r["per_image_csv"] = "long.csv"


def _short_row(d: Path, r: dict) -> None:
    (d / "short.csv").write_text(",".join(CSV_FIELDS) + "\nimg0,0,q=1\n")
    r["per_image_csv"] = "short.csv"


def _other_columns(d: Path, r: dict) -> None:
    (d / "cols.csv").write_text("image,source,rate_point,bpp,psnr\nimg0,0,q=1,0.1,28\n")
    r["per_image_csv"] = "cols.csv"


HOSTILE = {
    "parent folder": lambda d, r: r.__setitem__("per_image_csv", "../jpeg.csv"),
    "absolute path": lambda d, r: r.__setitem__("per_image_csv", "/etc/passwd"),
    "another result's JSON": lambda d, r: r.__setitem__("per_image_csv", "webp.json"),
    "the JSON itself": lambda d, r: r.__setitem__("per_image_csv", "jpeg.json"),
    "null": lambda d, r: r.__setitem__("per_image_csv", None),
    "long name": lambda d, r: r.__setitem__("per_image_csv", "x" * 5000 + ".csv"),
    "NUL byte": lambda d, r: r.__setitem__("per_image_csv", "a\0.csv"),
    "symbolic link": _symlink_to_secret,
    "FIFO": _fifo,
    "binary file": _binary,
    "200k-character field": _long_field,
    "short row": _short_row,
    "other columns": _other_columns,
}


@pytest.mark.parametrize("attack", HOSTILE)
def test_hostile_csv_is_a_problem_not_a_crash(tmp_path, attack):
    d = tmp_path / "res"
    path = write_result(d)
    (d / "webp.json").write_text(path.read_text())
    r = json.loads(path.read_text())
    r.pop("per_image_csv_sha256")
    HOSTILE[attack](d, r)
    write_json(path, r)
    problems = check_consistency(load(path), path)
    assert problems and all(p.field.startswith(("per_image_csv", "points")) for p in problems), problems
    out = cli.invoke(app, ["validate", str(path)])
    assert out.exit_code == 1 and "field per_image_csv" in out.output, out.output


def test_published_curves_and_compressai_exports_need_no_csv(tmp_path):
    from benchmark.results.files import to_compressai_json
    from tests.test_leaderboard import ANCHOR, make_result, published

    export = tmp_path / "export.json"
    write_json(export, to_compressai_json(make_result("jpeg", ANCHOR)))
    out = cli.invoke(app, ["validate", str(export), str(published(tmp_path))])
    assert out.exit_code == 0 and "compressai_result" in out.output and "published_curve" in out.output, out.output
