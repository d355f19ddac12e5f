"""perf/kitti_grid.py: which (method, λ, seed) points are filed, trained or left; filing a part folds it into the
committed point (the first part of a point is copied, later ones merged, a repeated λ compared row by row)."""
import importlib.util
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


def _args(tmp_path: Path) -> Namespace:
    return Namespace(methods=["balle2018"], lambdas=[0.0006, 0.0035], seeds=[0], steps=[1000], jobs=1,
                     work=tmp_path / "grid", measured=tmp_path / "measured", root="KITTI_PAIRS")


def _part(args: Namespace, job: str, committed: bool) -> None:
    folder = args.work / "parts" / job
    if committed:  # the committed point itself (λ 0.0035, 0.013) as a part
        dest = folder / "stereo" / "kitti-ndic"
        dest.mkdir(parents=True)
        for ext in ("json", "csv"):
            shutil.copy(SRC / f"{NAME}.{ext}", dest / f"{NAME}.{ext}")
    else:  # λ 0.0006, 0.0015
        _extra(folder)


def test_plan_and_file(tmp_path):
    mod, args = _grid(), _args(tmp_path)
    plan = {e["job"]: e for e in mod.plan(args)}
    assert {j: (e["filed"], e["to_file"], e["todo"]) for j, e in plan.items()} == {
        "balle2018.lam0.0006.seed0": ([], [], [1000]), "balle2018.lam0.0035.seed0": ([], [], [1000])}
    assert mod.command(args, plan["balle2018.lam0.0006.seed0"])[-2:] == ["--option", "lambdas=[0.0006]"]
    assert mod.cpu_seconds(plan["balle2018.lam0.0006.seed0"], args.work) == 1000 * mod.STEP_S["balle2018"] + mod.EVAL_S

    _part(args, "balle2018.lam0.0006.seed0", committed=False)
    e = {x["job"]: x for x in mod.plan(args)}["balle2018.lam0.0006.seed0"]
    assert (e["filed"], e["to_file"], e["todo"]) == ([], [1000], [])
    assert mod.file_part(args, e, 1000).endswith("filed (first part of this point)")
    _part(args, "balle2018.lam0.0035.seed0", committed=True)
    e = {x["job"]: x for x in mod.plan(args)}["balle2018.lam0.0035.seed0"]
    assert mod.file_part(args, e, 1000).endswith("merged")
    path = args.measured / "stereo" / "kitti-ndic" / f"{NAME}.json"
    r = load_result(path)
    assert [p["rate_point"] for p in r["points"]] == ["lambda=0.0006", "lambda=0.0015", "lambda=0.0035", "lambda=0.013"]
    assert check_consistency(r, path) == []
    assert all(x["filed"] == [1000] and not x["todo"] for x in mod.plan(args))
    # a part that repeats a filed λ is not filed again: its rows are compared with the committed ones
    before = path.read_bytes()
    msg = mod.file_part(args, e, 1000)
    assert "already filed" in msg and f"{r['coverage']['samples']} rows, 0 differ" in msg and path.read_bytes() == before
