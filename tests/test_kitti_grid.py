"""perf/kitti_grid.py: which (method, λ, seed) points are filed, trained or left; filing folds parts into the
committed point (the first part of a point copied, later ones merged); a point filed without training CPU seconds
is retrained and rebuilt from its parts once all its λ are, the old rows compared with the new ones."""
import importlib.util
import json
import shutil
import sys
from argparse import Namespace
from pathlib import Path

from benchmark.results.consistency import check_consistency
from benchmark.results.schema import load_result

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_learning_curve_merge import NAME, SRC, _extra  # noqa: E402  (a 2-λ part made from a committed point)


def _grid():
    spec = importlib.util.spec_from_file_location("kitti_grid_script", REPO / "perf" / "kitti_grid.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(tmp_path: Path, **kw) -> Namespace:
    return Namespace(**{"methods": ["balle2018"], "lambdas": [0.0006, 0.0035], "seeds": [0], "steps": [1000], "jobs": 1,
                        "work": tmp_path / "grid", "measured": tmp_path / "measured", "root": "KITTI_PAIRS",
                        "accept_no_cpu": False, "option": [], "tag": "", **kw})


def _with_cpu(path: Path) -> None:
    r = json.loads(path.read_text())
    for v in r["training"]["points"].values():
        v["cpu_s"] = 100.0
    path.write_text(json.dumps(r))


def _part(args: Namespace, job: str, committed: bool) -> None:
    folder = args.work / "parts" / job
    dest = folder / "stereo" / "kitti-ndic"
    if committed:  # the committed point itself (λ 0.0035, 0.013) as a retrained part
        dest.mkdir(parents=True)
        for ext in ("json", "csv"):
            shutil.copy(SRC / f"{NAME}.{ext}", dest / f"{NAME}.{ext}")
    else:  # λ 0.0006, 0.0015
        _extra(folder)
    _with_cpu(dest / f"{NAME}.json")


def _states(mod, args):
    return {e["job"]: (e["filed"], e["to_file"], e["todo"]) for e in mod.plan(args)}


def test_new_point_copied_then_merged(tmp_path):
    mod, args = _grid(), _args(tmp_path)
    assert _states(mod, args) == {"balle2018.lam0.0006.seed0": ([], [], [1000]), "balle2018.lam0.0035.seed0": ([], [], [1000])}
    e = {x["job"]: x for x in mod.plan(args)}
    assert mod.command(args, e["balle2018.lam0.0006.seed0"])[-2:] == ["--option", "lambdas=[0.0006]"]
    assert mod.cpu_seconds(e["balle2018.lam0.0006.seed0"], args.work) == 1000 * mod.STEP_S["balle2018"] + mod.EVAL_S
    variant = _args(tmp_path, option=["side=grey"], tag="greyside")
    assert mod.command(variant, e["balle2018.lam0.0006.seed0"])[-2:] == ["--option", "side=grey"]
    assert [x["job"] for x in mod.plan(variant)][0] == "balle2018.greyside.lam0.0006.seed0"
    assert mod.steps_of(_args(tmp_path, steps=None), "balle2018")[-1] > mod.steps_of(_args(tmp_path, steps=None), "dsi_disparity")[-1]
    _part(args, "balle2018.lam0.0006.seed0", committed=False)
    assert _states(mod, args)["balle2018.lam0.0006.seed0"] == ([], [1000], [])
    assert mod.file_point(args, "balle2018", 1000, 0) == [f"{NAME}: filed ['lambda=0.0006', 'lambda=0.0015']"]
    _part(args, "balle2018.lam0.0035.seed0", committed=True)
    assert mod.file_point(args, "balle2018", 1000, 0) == [f"{NAME}: filed ['lambda=0.0035', 'lambda=0.013']"]
    path = args.measured / "stereo" / "kitti-ndic" / f"{NAME}.json"
    r = load_result(path)
    assert [p["rate_point"] for p in r["points"]] == ["lambda=0.0006", "lambda=0.0015", "lambda=0.0035", "lambda=0.013"]
    assert check_consistency(r, path) == [] and len(r["learning_curve"]["parts"]) == 2
    assert all(s == ([1000], [], []) for s in _states(mod, args).values())
    assert mod.file_point(args, "balle2018", 1000, 0) == []  # nothing new: nothing written


def test_point_without_cpu_time_is_retrained_and_rebuilt(tmp_path):
    mod, args = _grid(), _args(tmp_path)
    dest = args.measured / "stereo" / "kitti-ndic"
    dest.mkdir(parents=True)
    for ext in ("json", "csv"):  # committed before CPU seconds were recorded
        shutil.copy(SRC / f"{NAME}.{ext}", dest / f"{NAME}.{ext}")
    assert _states(mod, args)["balle2018.lam0.0035.seed0"] == ([], [], [1000])
    assert _states(mod, _args(tmp_path, accept_no_cpu=True))["balle2018.lam0.0035.seed0"] == ([1000], [], [])
    before = (dest / f"{NAME}.json").read_bytes()
    _part(args, "balle2018.lam0.0006.seed0", committed=False)
    msg = mod.file_point(args, "balle2018", 1000, 0)
    assert "waiting for ['lambda=0.0035', 'lambda=0.013']" in msg[0] and (dest / f"{NAME}.json").read_bytes() == before
    _part(args, "balle2018.lam0.0035.seed0", committed=True)
    msg = mod.file_point(args, "balle2018", 1000, 0)
    n = load_result(SRC / f"{NAME}.json")["coverage"]["samples"]
    assert msg[0] == f"{NAME}: rebuilt from ['lambda=0.0006', 'lambda=0.0015', 'lambda=0.0035', 'lambda=0.013']"
    assert f"{NAME} lambda=0.0035: {n} rows again, 0 differ in bytes or image hash" in msg
    r = load_result(dest / f"{NAME}.json")
    assert [p["rate_point"] for p in r["points"]] == ["lambda=0.0006", "lambda=0.0015", "lambda=0.0035", "lambda=0.013"]
    assert all(v["cpu_s"] == 100.0 for v in r["training"]["points"].values())
    assert check_consistency(r, dest / f"{NAME}.json") == []
    assert all(s == ([1000], [], []) for s in _states(mod, args).values())
