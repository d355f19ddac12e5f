"""perf/learning_curve.py --merge: the points of more λ (a run with other `lambdas`, filed under another folder)
folded into the committed learning-curve point of the same steps — one valid result with every λ, rows and
records consistent, each part's provenance kept; re-merging changes nothing; parts with other settings refused."""
import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from benchmark.results.consistency import check_consistency
from benchmark.results.schema import load_result

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "measured" / "stereo" / "kitti-ndic"
NAME = "balle2018.steps1000"  # a committed point with the two λ of the first curves (not merged)
RENAME = {"lambda=0.0035": "lambda=0.0006", "lambda=0.013": "lambda=0.0015"}


def _script():
    spec = importlib.util.spec_from_file_location("learning_curve_script", REPO / "perf" / "learning_curve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _extra(folder: Path, **option_changes: str) -> None:
    """A part as a run with lambdas=[0.0006,0.0015] files it (the committed point, its λ renamed)."""
    dest = folder / "stereo" / "kitti-ndic"
    dest.mkdir(parents=True)
    text = (SRC / f"{NAME}.json").read_text()
    csv_text = (SRC / f"{NAME}.csv").read_text()
    for a, b in RENAME.items():
        text, csv_text = text.replace(a, b), csv_text.replace(a, b)
    r = json.loads(text.replace("[0.0035, 0.013]", "[0.0006, 0.0015]").replace("[0.0035,0.013]", "[0.0006,0.0015]"))
    r["learning_curve"]["options"].update(option_changes)
    r["learning_curve"]["side_probe"] = {"lambda=0.0006": {"loss_other_pair_db": 2.5, "loss_grey_db": 3.0}}
    r["environment"]["git_commit"] = "0" * 40
    (dest / f"{NAME}.json").write_text(json.dumps(r))
    (dest / f"{NAME}.csv").write_text(csv_text)


def _committed_copy(tmp_path: Path) -> Path:
    measured = tmp_path / "measured"
    (measured / "stereo" / "kitti-ndic").mkdir(parents=True)
    for ext in ("json", "csv"):
        shutil.copy(SRC / f"{NAME}.{ext}", measured / "stereo" / "kitti-ndic" / f"{NAME}.{ext}")
    base = measured / "stereo" / "kitti-ndic" / f"{NAME}.json"  # as the sandboxed runner writes it: the CSV's hash
    r = json.loads(base.read_text())
    r["per_image_csv_sha256"] = hashlib.sha256(base.with_suffix(".csv").read_bytes()).hexdigest()
    base.write_text(json.dumps(r))
    return measured


def _merge(mod, measured: Path, extra: Path) -> None:
    sys_argv = sys.argv
    sys.argv = ["learning_curve.py", "--method", "balle2018", "--steps", "1000", "--measured", str(measured),
                "--merge", str(extra)]
    try:
        assert mod.main() == 0
    finally:
        sys.argv = sys_argv


def test_merge_folds_more_lambdas_into_one_valid_point(tmp_path):
    mod, measured = _script(), _committed_copy(tmp_path)
    _extra(tmp_path / "extra")
    _merge(mod, measured, tmp_path / "extra")
    path = measured / "stereo" / "kitti-ndic" / f"{NAME}.json"
    r = load_result(path)
    assert [p["rate_point"] for p in r["points"]] == ["lambda=0.0006", "lambda=0.0015", "lambda=0.0035", "lambda=0.013"]
    assert check_consistency(r, path) == []  # the merged CSV gives the recorded means of every point, and its hash
    rows = path.with_suffix(".csv").read_bytes().split(b"\n")[:-1]
    assert b"\r" not in path.with_suffix(".csv").read_bytes()  # LF, as the other committed points
    assert len(rows) == 1 + 4 * r["coverage"]["samples"]
    lc = r["learning_curve"]
    assert lc["options"]["lambdas"] == "[0.0006,0.0015,0.0035,0.013]" and "lambdas=[0.0006,0.0015,0.0035,0.013]" in lc["reproduce"]
    assert [p["git_commit"] for p in lc["parts"]][1] == "0" * 40 and len(lc["parts"]) == 2
    assert r["created"] == load_result(SRC / f"{NAME}.json")["created"] and "isolation" not in r  # the weakest part
    assert set(r["training"]["points"]) == {p["rate_point"] for p in r["points"]} and r["training"]["models"] == 4
    assert lc["side_probe"]["lambda=0.0006"]["loss_grey_db"] == 3.0  # each part's side-view probe is kept
    before = (path.read_bytes(), path.with_suffix(".csv").read_bytes())
    _merge(mod, measured, tmp_path / "extra")  # again: nothing to add, the same bytes
    assert (path.read_bytes(), path.with_suffix(".csv").read_bytes()) == before


def test_merge_refuses_a_part_with_other_settings(tmp_path):
    mod, measured = _script(), _committed_copy(tmp_path)
    _extra(tmp_path / "extra", crop="256")
    with pytest.raises(SystemExit, match="differ in"):
        _merge(mod, measured, tmp_path / "extra")
