"""`bench submit`: a --limit run and a result without provenance are refused with the reason; a complete one is
placed under the results tree with its per-image CSV; `bench new-method` writes a method that round-trips."""
from __future__ import annotations

import ast
import copy

from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.results import write_json
from benchmark.submit import check_result
from tests.test_leaderboard import ANCHOR, make_result

PROTO = "stereo/pairs"


def good_result() -> dict:
    r = copy.deepcopy(make_result("jpeg", ANCHOR))
    r["coverage"] = {"samples": 4, "split_samples": 4, "limit": None, "skipped": 0, "complete": True}
    r["protocol_version"] = 1
    r["per_image_csv"] = "jpeg.csv"
    r["environment"] = {"versions": {"python": "3.11", "torch": "2.14.1"}, "device": "cpu", "platform": "linux",
                        "command": "bench run --method jpeg --dataset stereo --root data", "git_commit": "0123456789abcdef"}
    return r


def _write(tmp_path, r, name="jpeg.json"):
    d = tmp_path / "results" / "stereo" / "pairs"
    write_json(d / name, r)
    (d / "jpeg.csv").write_text("image,source,rate_point,bpp,psnr\na,0,q=0,0.1,28\n")
    return d / name


def test_complete_result_is_placed_with_its_csv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, good_result())
    out = CliRunner().invoke(app, ["submit", str(path), "--into", "measured"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "measured" / "stereo" / "pairs" / "jpeg.json").is_file()
    assert (tmp_path / "measured" / "stereo" / "pairs" / "jpeg.csv").is_file()
    again = CliRunner().invoke(app, ["submit", str(path), "--into", "measured"])
    assert again.exit_code == 1 and "--replace" in again.output


def test_limit_run_is_refused_with_the_reason(tmp_path):
    r = good_result()
    r["coverage"] = {"samples": 1, "split_samples": 4, "limit": 1, "skipped": 0, "complete": False}
    r["metrics"]["limit"] = 1
    path = _write(tmp_path, r)
    chk = check_result(path)
    assert not chk.ok and any("--limit 1" in w and "1 of 4 test samples" in w for w in chk.refused)
    out = CliRunner().invoke(app, ["submit", str(path), "--into", str(tmp_path / "measured")])
    assert out.exit_code == 1 and "refused" in out.output and "rerun without --limit" in out.output
    assert not (tmp_path / "measured").exists()


def test_result_without_provenance_is_refused_naming_what_is_missing(tmp_path):
    r = good_result()
    r["environment"]["git_commit"] = None
    r["environment"]["command"] = ""
    r["training"] = {"seed": 0}  # a learned result that does not say its budget
    r["method_meta"] = {"trainable": True}
    chk = check_result(_write(tmp_path, r))
    text = " ".join(chk.refused)
    assert not chk.ok and "provenance missing" in text
    assert "environment.git_commit" in text and "environment.command" in text and "training.budget" in text


def test_schema_error_and_old_files_are_refused(tmp_path):
    r = good_result()
    del r["points"][0]["bpp"]
    chk = check_result(_write(tmp_path, r))
    assert not chk.ok and "points[0].bpp" in chk.refused[0]
    r = good_result()
    del r["coverage"]
    assert any("no `coverage` record" in w for w in check_result(_write(tmp_path, r, "old.json")).refused)


def test_new_method_scaffold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["new-method", "my_dsc", "--paper", "A. Author, A Paper, Venue 2025, arXiv:0000.00000"])
    assert out.exit_code == 0, out.output
    pkg = tmp_path / "methods" / "my_dsc"
    for f in ("__init__.py", "codec.py", "configs.py", "README.md"):
        assert (pkg / f).is_file()
    assert "arXiv:0000.00000" in (pkg / "README.md").read_text()
    for f in (pkg / "codec.py", tmp_path / "tests" / "test_my_dsc.py"):
        ast.parse(f.read_text())
    assert CliRunner().invoke(app, ["new-method", "my_dsc"]).exit_code == 2  # exists: refused

    # the generated codec round-trips to real bytes (loaded as a package without touching the registry)
    import importlib.util
    import sys

    from benchmark import registry

    monkeypatch.setattr(registry, "register_method", lambda cls: cls)
    spec = importlib.util.spec_from_file_location("my_dsc", pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "my_dsc", mod)
    spec.loader.exec_module(mod)
    import torch

    codec = mod.codec.MyDscCodec()
    x = torch.rand(3, 16, 24, generator=torch.Generator().manual_seed(0))
    sizes = [len(codec.compress(x, point=p)) for p in codec.rate_points()]
    y = codec.decompress(codec.compress(x, point=codec.rate_points()[-1]))
    assert sizes == sorted(sizes) and (y - x).abs().max() <= 0.5 / 63 + 1e-6
