import copy
import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from benchmark.errors import ResultSchemaError
from benchmark.results.schema import SCHEMA_VERSION, atomic_write_text, validate_result
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec

runner = CliRunner()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    out = tmp_path_factory.mktemp("res")
    path, result = run(RunSpec(method="jpeg", dataset="middlebury_sample", out=out, limit=1, progress=False,
                               method_options={"qualities": [10, 50, 90]}))
    return path, result


def _write(tmp_path, obj, name="r.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def test_valid_file_passes(good):
    path, result = good
    validate_result(result)
    assert result["schema_version"] == SCHEMA_VERSION
    assert result["environment"]["versions"]["torch"]
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("method"), "method"),
        (lambda r: r["points"][0].pop("bpp"), "points[0].bpp"),
        (lambda r: r["points"][1].__setitem__("psnr", "high"), "points[1].psnr"),
        (lambda r: r.__setitem__("scenario", "telepathy"), "scenario"),
        (lambda r: r["rate_accounting"].pop("divided_by"), "rate_accounting.divided_by"),
        (lambda r: r.__setitem__("schema_version", 999), "schema_version"),
        (lambda r: r["environment"].__setitem__("device", 3), "environment.device"),
    ],
)
def test_validate_names_the_field(tmp_path, good, mutate, field):
    bad = copy.deepcopy(good[1])
    mutate(bad)
    with pytest.raises(ResultSchemaError) as exc:
        validate_result(bad)
    assert exc.value.field == field
    res = runner.invoke(app, ["validate", str(_write(tmp_path, bad))])
    assert res.exit_code != 0
    assert field in res.output


def test_non_finite_number_rejected(tmp_path, good):
    text = json.dumps(good[1]).replace('"bpp": ', '"bpp": NaN, "_x": ', 1)
    p = tmp_path / "nan.json"
    p.write_text(text)
    res = runner.invoke(app, ["validate", str(p)])
    assert res.exit_code != 0
    assert "finite" in res.output


def test_old_schema_versions_keep_loading(monkeypatch, good):
    """A migration chain upgrades older files; here a hypothetical v0 that called `method` `model`."""
    import benchmark.results.schema as R

    def v0_to_v1(obj):
        obj["method"] = obj.pop("model")
        obj["schema_version"] = 1
        return obj

    monkeypatch.setitem(R._MIGRATIONS, 0, v0_to_v1)
    old = copy.deepcopy(good[1])
    old["model"] = old.pop("method")
    old["schema_version"] = 0
    assert validate_result(old)["method"] == "jpeg"


def test_atomic_write_leaves_old_file_on_crash(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    atomic_write_text(p, "old")
    import os

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_a_real_run_agrees_with_its_csv_and_a_hand_edit_is_refused(tmp_path, good):
    """The runner's own output passes the JSON <-> CSV check; the same file with PSNR raised by 1 dB does not."""
    import shutil

    from benchmark.results.consistency import check_consistency

    path, result = good
    assert check_consistency(result, path) == []
    shutil.copy(path.parent / result["per_image_csv"], tmp_path / result["per_image_csv"])
    edited = copy.deepcopy(result)
    edited["points"][2]["psnr"] += 1.0
    res = runner.invoke(app, ["validate", str(_write(tmp_path, edited, path.name))])
    assert res.exit_code == 1 and "field points[2].psnr" in res.output, res.output
