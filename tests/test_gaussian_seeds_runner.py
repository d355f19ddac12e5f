"""perf/gaussian_seeds.py, without running anything: the run lists the issue asks for, the seeded names, the bench
command, and which runs count as done."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "perf"))
import gaussian_seeds as gs  # noqa: E402


def test_lists_cover_the_checklist_the_faithful_baseline_and_the_binning_runs():
    ck = gs.LISTS["checklist"]
    assert len(ck) == 24 and {(j["prior"], j["sigma2"]) for j in ck} == {(p, s) for p in ("conditional", "marginal")
                                                                         for s in ("0.1", "0.01")}
    assert {j["config"] for j in ck} == {"222", "44", "mono2", "mono4", "mono8", "mono16"}
    assert all(float(j["lam"]) * float(j["sigma2"]) == pytest.approx(30) for j in ck)
    fa = gs.LISTS["faithful"]
    assert [j["config"] for j in fa][:4] == ["mono4", "mono8", "222", "44"]
    assert all(j["faithful"] == "true" and j["sigma2"] == "0.01" and j["prior"] == "conditional" for j in fa)
    bi = gs.LISTS["binning"]
    assert {(j["estimator"], j["sigma2"]) for j in bi} == {(e, s) for e in ("exact", "anneal") for s in ("0.1", "0.01")}
    assert all(j["config"] == "222" and j["prior"] == "conditional" for j in bi)
    bm = gs.LISTS["binning-marginal"]  # the checklist row whose seeds split between mirror bins and contiguous cells
    assert [gs.variant_of(j) for j in bm] == ["44.marg.s0.01.lam3000.exact", "44.marg.s0.01.lam3000.anneal"]


def test_names_commands_and_what_counts_as_done(tmp_path):
    job = gs.LISTS["faithful"][2]
    variant = gs.variant_of(job)
    assert variant == "222.cond.s0.01.lam3000.faithful"
    assert gs.filed_name(variant, 1) == "layered_wz.222.cond.s0.01.lam3000.faithful.seed1"
    cmd = gs.bench_command(job, 1, "OUT", "paper", 1000)
    shown = gs.shown(cmd)
    assert shown.startswith("OMP_NUM_THREADS=1 bench run --method layered_wz --dataset gaussian --budget paper --seed 1 --out OUT")
    assert "--option faithful=true" in shown and "--dataset-option sigma2=0.01 --dataset-option test_blocks=1000" in shown
    # done: the seeded file, or the unseeded one when it records this seed and budget (results before seeds)
    dest = tmp_path / "gaussian" / "wz"
    dest.mkdir(parents=True)
    assert gs.exists(dest, variant, 0, "paper") is None
    (dest / f"layered_wz.{variant}.json").write_text(json.dumps({"training": {"seed": 0, "budget": "paper"}}))
    assert gs.exists(dest, variant, 0, "paper") is not None
    assert gs.exists(dest, variant, 1, "paper") is None and gs.exists(dest, variant, 0, "quick") is None
    (dest / f"{gs.filed_name(variant, 1)}.json").write_text("{}")
    assert gs.exists(dest, variant, 1, "paper") == dest / f"{gs.filed_name(variant, 1)}.json"


def test_estimate_and_dry_run_start_nothing(tmp_path, monkeypatch, capsys):
    """--estimate beside a running runner must not start the same runs again into the same folders."""
    def refuse(*a, **k):
        raise AssertionError("a run was started")

    monkeypatch.setattr(gs, "run_one", refuse)
    monkeypatch.setattr(gs, "code_checkout", refuse)
    for flag in ("--estimate", "--dry-run"):
        monkeypatch.setattr(sys, "argv", ["gaussian_seeds.py", "--list", "checklist", "--seeds", "1", flag,
                                          "--measured", str(tmp_path), "--work", str(tmp_path / "work")])
        assert gs.main() == 0
        out = capsys.readouterr().out
        assert "list checklist: 24 runs, 24 to do" in out
    assert not (tmp_path / "work").exists()
