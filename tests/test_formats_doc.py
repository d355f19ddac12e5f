"""docs/formats.md: its examples under docs/examples/ pass `bench validate` (the result together with its per-image
CSV), each is the kind the document says, and every field the schemas check is documented."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
DOC = ROOT / "docs" / "formats.md"
KINDS = {"jpeg.json": "result", "published_curve.json": "published_curve", "compressai.json": "compressai_result"}


def test_bench_validate_accepts_every_example():
    from typer.testing import CliRunner

    from cli.main import app

    out = CliRunner().invoke(app, ["validate", str(EXAMPLES)])
    assert out.exit_code == 0, out.output
    for name, kind in KINDS.items():
        assert re.search(rf"ok\s+\S*{re.escape(name)} \({kind}\)", out.output), out.output
    assert (EXAMPLES / json.loads((EXAMPLES / "jpeg.json").read_text())["per_image_csv"]).is_file()


def test_a_changed_example_fails_validation(tmp_path):
    """The check is real: the example CSV with one PSNR changed no longer matches its result."""
    from benchmark.results.consistency import check_consistency
    from benchmark.results.files import validate_file

    for name in ("jpeg.json", "jpeg.csv"):
        (tmp_path / name).write_bytes((EXAMPLES / name).read_bytes())
    lines = (tmp_path / "jpeg.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[9] = str(float(cells[9]) + 1.0)  # psnr
    (tmp_path / "jpeg.csv").write_text("\n".join([lines[0], ",".join(cells)] + lines[2:]) + "\n")
    _, obj = validate_file(tmp_path / "jpeg.json")
    assert check_consistency(obj, tmp_path / "jpeg.json")


@pytest.mark.parametrize("fields", ["result", "csv", "published", "compressai"])
def test_every_checked_field_is_documented(fields):
    from benchmark.results.per_image_csv import CSV_FIELDS
    from benchmark.results.published import COMPRESSAI_LABELS

    doc = DOC.read_text(encoding="utf-8")
    names = {
        "result": json.loads((EXAMPLES / "jpeg.json").read_text()).keys(),
        "csv": CSV_FIELDS,
        "published": json.loads((EXAMPLES / "published_curve.json").read_text()).keys(),
        "compressai": list(COMPRESSAI_LABELS) + ["name", "description", "results"],
    }[fields]
    missing = [n for n in names if f"`{n}`" not in doc]
    assert not missing, f"docs/formats.md does not name {missing}"
