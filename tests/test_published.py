"""Published-curve files: the schema check names the offending field; every shipped curve file is valid."""
from __future__ import annotations

import copy
import json
from collections import Counter

import pytest

from benchmark.errors import ResultSchemaError
from benchmark.results.files import validate_any, validate_file
from leaderboard.published import DEFAULT_DIR, curve_files, load_published, load_published_file, validate_published

GOOD = {
    "kind": "published_curve",
    "schema_version": 1,
    "method": "toy",
    "label": "Toy codec",
    "protocol": "kitti-stereo/ndic",
    "scenario": "decoder_side_info",
    "metric": "psnr",
    "rate": "bpp",
    "points": [{"bpp": 0.1, "value": 25.0}, {"bpp": 0.2, "value": 27.5, "rate_point": "q=2"}],
    "source": "A. Author, Some Paper, Fig. 1",
    "provenance": "exact",
    "accuracy": "exact",
    "notes": "made up for a test",
}


def _field(obj) -> str:
    with pytest.raises(ResultSchemaError) as exc:
        validate_published(obj)
    return exc.value.field


def test_good_file_passes():
    assert validate_published(copy.deepcopy(GOOD))["method"] == "toy"
    kind, obj = validate_any(copy.deepcopy(GOOD))  # what `bench validate` calls
    assert kind == "published_curve" and obj["label"] == "Toy codec"


@pytest.mark.parametrize("key", ["kind", "schema_version", "method", "label", "protocol", "scenario", "metric",
                                 "rate", "points", "source", "provenance"])
def test_missing_field_is_named(key):
    bad = copy.deepcopy(GOOD)
    del bad[key]
    assert _field(bad) == key


def test_missing_point_value_is_named():
    bad = copy.deepcopy(GOOD)
    del bad["points"][1]["value"]
    assert _field(bad) == "points[1].value"


@pytest.mark.parametrize("key,value,field", [
    ("method", 3, "method"),
    ("label", None, "label"),
    ("points", "0.1,25", "points"),
    ("points", [], "points"),
    ("points", [[0.1, 25.0]], "points[0]"),
    ("points", [{"bpp": "0.1", "value": 25.0}], "points[0].bpp"),
    ("points", [{"bpp": 0.1, "value": True}], "points[0].value"),
    ("points", [{"bpp": -0.1, "value": 25.0}], "points[0].bpp"),
    ("schema_version", "1", "schema_version"),
    ("metric", "ssim", "metric"),
    ("rate", "kbps", "rate"),
    ("provenance", "guessed", "provenance"),
    ("scenario", "telepathy", "scenario"),
    ("notes", 5, "notes"),
    ("sources", 0, "sources"),
])
def test_wrong_type_or_value_is_named(key, value, field):
    bad = copy.deepcopy(GOOD)
    bad[key] = value
    assert _field(bad) == field


@pytest.mark.parametrize("bad_number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_is_named(bad_number):
    bad = copy.deepcopy(GOOD)
    bad["points"][0]["value"] = bad_number
    assert _field(bad) == "points[0].value"


def test_non_finite_literal_in_file_is_rejected(tmp_path):
    text = json.dumps(GOOD).replace('"value": 25.0', '"value": NaN')
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ResultSchemaError) as exc:
        load_published_file(path)
    assert exc.value.field == "points[0].value"
    with pytest.raises(ResultSchemaError):
        validate_file(path)


@pytest.mark.parametrize("version", [0, 2, 99])
def test_unknown_schema_version_is_named(version):
    bad = copy.deepcopy(GOOD)
    bad["schema_version"] = version
    with pytest.raises(ResultSchemaError) as exc:
        validate_published(bad)
    assert exc.value.field == "schema_version" and "unknown" in str(exc.value)


def test_linear_ms_ssim_must_lie_in_unit_interval():
    bad = copy.deepcopy(GOOD)
    bad["metric"] = "ms_ssim"
    assert _field(bad) == "points[0].value"


def test_load_published_names_the_bad_file(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(GOOD))
    bad = copy.deepcopy(GOOD)
    del bad["source"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ResultSchemaError) as exc:
        load_published([tmp_path])
    assert exc.value.field == "source" and "bad.json" in str(exc.value)
    (tmp_path / "sub" / "bad.json").unlink()
    assert [c["method"] for c in load_published([tmp_path])] == ["toy"]


# ---------------------------------------------------------------- the shipped curves
@pytest.fixture(scope="module")
def shipped():
    return load_published()  # raises if any shipped file is invalid


def test_every_shipped_file_validates(shipped):
    files = curve_files([DEFAULT_DIR])
    assert len(files) == len(shipped) >= 50
    for f in files:
        kind, _ = validate_file(f)
        assert kind == "published_curve", f


def test_shipped_curves_cover_the_protocols(shipped):
    per = Counter(c["protocol"] for c in shipped)
    assert per["kitti-stereo/ndic"] == 21
    assert per["cityscapes/ndic"] == 12
    assert per["mnist/drasic-random"] == 12 and per["mnist/drasic-class"] == 12
    ids = [(c["protocol"], c["method"], c["label"], c["metric"], c["rate"]) for c in shipped]
    assert len(ids) == len(set(ids)), "two files describe the same curve"
    for c in shipped:
        assert c["source"] and c["accuracy"] and c["notes"]


def test_shipped_curves_keep_the_facts(shipped):
    def one(**kw):
        found = [c for c in shipped if all(c.get(k) == v for k, v in kw.items())]
        assert len(found) == 1, (kw, len(found))
        return found[0]

    ndsc = one(protocol="kitti-stereo/ndic", method="neural_dsc", metric="psnr", rate="bpp_prior")
    assert len(ndsc["points"]) == 8 and ndsc["points"][0] == {"bpp": 0.01102, "value": 20.5947, "rate_point": "big_dist_1bit"}
    assert "2x_dist_4bit" in ndsc["notes"]
    assert one(protocol="kitti-stereo/ndic", method="neural_dsc", metric="ms_ssim", rate="bpp_uniform")["points"][-1]["bpp"] == 0.75
    cam = one(protocol="kitti-stereo/ndic", method="ndic_cam", metric="ms_ssim")
    assert cam["provenance"] == "exact" and len(cam["points"]) == 7
    assert one(protocol="kitti-stereo/ndic", method="ndic_cam", metric="ms_ssim_db")["points"][0]["value"] == 11.35012
    # digitized Fig. 8: marks clipped at the plot's axis are not data points
    b18 = one(protocol="kitti-stereo/ndic", method="balle2018", metric="psnr")
    assert b18["provenance"] == "digitized" and 0.3668 not in [p["bpp"] for p in b18["points"]]
    assert len(one(protocol="cityscapes/ndic", method="dsin", metric="psnr")["points"]) == 5
    drasic = one(protocol="mnist/drasic-class", method="drasic.distributed.m4")
    assert drasic["sources"] == 4 and "M=4" in drasic["label"] and drasic["scenario"] == "distributed"
    assert "0.125 bpp per iteration" in drasic["notes"] and "per test batch" in drasic["notes"]
    assert len(one(protocol="mnist/drasic-class", method="drasic.joint.m2")["points"]) == 15  # one unreadable value
