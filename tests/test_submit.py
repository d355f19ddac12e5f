"""`bench submit`: a --limit run, a result without provenance, one not evaluated in the sandbox and one whose method
code is not this commit's are refused with the reason; a complete one is placed under the results tree with its
per-image CSV under the derived name, and nothing else is written or replaced; `bench new-method`
writes a method that round-trips."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from benchmark.results.schema import write_json
from benchmark.results.submit import check_result
from tests.test_consistency import write_result

PROTO = "stereo/pairs"
ROOT = Path(__file__).resolve().parent.parent


def submittable() -> dict:
    """What a result needs beyond its numbers: coverage, provenance, sandbox isolation and its method's code."""
    from benchmark.results.provenance import code_record

    return {
        "protocol_version": 1, "isolation": "sandbox", "code": code_record(str(ROOT / "baselines" / "classical.py")),
        "environment": {"versions": {"python": "3.11", "torch": "2.14.1"}, "device": "cpu", "platform": "linux",
                        "command": "bench run --method jpeg --dataset stereo --root data", "git_commit": "0123456789abcdef"},
    }


def good_result() -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(write_result(Path(tmp), extra=submittable()).read_text())


def _write(tmp_path, r, name="jpeg.json"):
    """`r` (a variant of `good_result()`) beside its own CSV in results/stereo/pairs/."""
    d = tmp_path / "results" / "stereo" / "pairs"
    write_result(d, extra=submittable())
    write_json(d / name, r)
    return d / name


def test_complete_result_is_placed_with_its_csv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, good_result())
    out = CliRunner().invoke(app, ["submit", str(path), "--into", "measured"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "measured" / "stereo" / "pairs" / "jpeg.json").is_file()
    assert (tmp_path / "measured" / "stereo" / "pairs" / "jpeg.csv").read_bytes() == path.with_suffix(".csv").read_bytes()
    assert CliRunner().invoke(app, ["validate", "measured"]).exit_code == 0
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

    from benchmark.contract import registry

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


# ---------------------------------------------------------------- submit writes only what it derives
def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (b"->" + str(p.readlink()).encode()) if p.is_symlink() else p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def _tree_with_other_result(tmp_path) -> Path:
    """measured/stereo/pairs/ already holding another method's result (webp.json + webp.csv)."""
    return write_result(tmp_path / "measured" / "stereo" / "pairs", "webp", extra=submittable())


def _evil(tmp_path, csv_name, make=None):
    """A valid result of method `evil` whose per_image_csv is `csv_name` (made by `make(folder)` if given)."""
    d = tmp_path / "results" / "stereo" / "pairs"
    path = write_result(d, "evil", extra=submittable())
    if make:
        make(d)
    r = json.loads(path.read_text())
    r["per_image_csv"] = csv_name
    r.pop("per_image_csv_sha256")
    write_json(path, r)
    return path


def _secret_link(d: Path) -> None:
    secret = d.parent.parent.parent / "shadow"
    secret.write_text("root:$6$secret\n")
    (d / "link.csv").symlink_to(secret)


@pytest.mark.parametrize("csv_name, make", [
    ("webp.json", None),  # the probe: replaced another method's JSON in the tree
    ("link.csv", _secret_link),  # the probe: a link to /etc/shadow copied into the tree
    ("../../../shadow", None), ("/etc/passwd", None), ("evil.json", None),
], ids=["other-json", "symlink", "traversal", "absolute", "itself"])
def test_submit_cannot_write_or_copy_what_it_did_not_derive(tmp_path, monkeypatch, csv_name, make):
    monkeypatch.chdir(tmp_path)
    _tree_with_other_result(tmp_path)
    path = _evil(tmp_path, csv_name, make)
    before = _snapshot(tmp_path)
    for args in (["submit", str(path)], ["submit", str(path), "--replace"], ["submit", "--check", str(path)]):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 1 and "field per_image_csv" in out.output, out.output
    assert _snapshot(tmp_path) == before


def test_csv_goes_only_under_the_derived_name(tmp_path, monkeypatch):
    """A correct CSV under another name is copied as <method>.csv and the placed JSON names that, with its hash."""
    import hashlib

    monkeypatch.chdir(tmp_path)
    d = tmp_path / "results" / "stereo" / "pairs"
    path = write_result(d, extra=submittable())
    path.with_suffix(".csv").rename(d / "rows-of-my-run.csv")
    r = json.loads(path.read_text())
    r["per_image_csv"] = "rows-of-my-run.csv"
    write_json(path, r)
    out = CliRunner().invoke(app, ["submit", str(path)])
    assert out.exit_code == 0, out.output
    placed = tmp_path / "measured" / "stereo" / "pairs"
    assert sorted(p.name for p in placed.iterdir()) == ["jpeg.csv", "jpeg.json"]
    got = json.loads((placed / "jpeg.json").read_text())
    assert got["per_image_csv"] == "jpeg.csv"
    assert got["per_image_csv_sha256"] == hashlib.sha256((placed / "jpeg.csv").read_bytes()).hexdigest()


def test_submit_never_replaces_a_file_it_did_not_write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, good_result())
    placed = tmp_path / "measured" / "stereo" / "pairs"
    placed.mkdir(parents=True)
    (placed / "jpeg.csv").write_text("somebody else's file\n")  # no jpeg.json names it
    out = CliRunner().invoke(app, ["submit", str(path), "--replace"])
    assert out.exit_code == 1 and "never replaces a file it did not write" in out.output.replace("\n", "")
    assert (placed / "jpeg.csv").read_text() == "somebody else's file\n" and not (placed / "jpeg.json").exists()
    (placed / "jpeg.csv").unlink()
    for victim, why in ((tmp_path / "victim.json", "outside"), (placed / "victim.json", "symbolic link")):
        (placed / "jpeg.json").symlink_to(victim)  # a link where the JSON goes, out of the tree or in it
        out = CliRunner().invoke(app, ["submit", str(path), "--replace"])
        assert out.exit_code == 1 and why in out.output and not victim.exists(), out.output
        (placed / "jpeg.json").unlink()
    assert CliRunner().invoke(app, ["submit", str(path)]).exit_code == 0
    again = CliRunner().invoke(app, ["submit", str(path), "--replace"])  # its own pair: replaced together
    assert again.exit_code == 0, again.output


def test_json_and_csv_are_replaced_together_or_the_mismatch_shows(tmp_path, monkeypatch):
    """A crash between the two renames leaves the new CSV beside the old JSON: `bench validate` refuses the pair."""
    import os

    from benchmark.results.schema import write_result_pair

    path = _write(tmp_path, good_result())
    result = json.loads(path.read_text())
    target = tmp_path / "out" / "jpeg.json"
    write_result_pair(target, result, path.with_suffix(".csv").read_bytes())
    assert CliRunner().invoke(app, ["validate", str(target)]).exit_code == 0
    real = os.replace

    def crash_on_json(src, dst):
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_json)
    new_csv = path.with_suffix(".csv").read_bytes().replace(b"\r\n", b"\n")  # same rows, other bytes
    with pytest.raises(KeyboardInterrupt):
        write_result_pair(target, result, new_csv)
    monkeypatch.undo()
    assert sorted(p.name for p in target.parent.iterdir()) == ["jpeg.csv", "jpeg.json"]  # no temporary file left
    out = CliRunner().invoke(app, ["validate", str(target)])
    assert out.exit_code == 1 and "field per_image_csv_sha256" in out.output, out.output


# ---------------------------------------------------------------- the method's code and the sandbox
def test_method_code_must_be_this_commits(tmp_path):
    r = good_result()
    r["code"]["method"]["sha256"] = "0" * 64
    chk = check_result(_write(tmp_path, r), into=tmp_path / "measured")
    assert not chk.ok and any(w.startswith("method code differs from the commit") for w in chk.refused), chk.refused
    r = good_result()
    del r["code"]
    chk = check_result(_write(tmp_path, r), into=tmp_path / "measured")
    assert any("written before results recorded their code; rerun" in w for w in chk.refused), chk.refused


@pytest.mark.parametrize("isolation", ["process", "none", None])
def test_only_sandboxed_results_are_accepted(tmp_path, isolation):
    r = good_result()
    if isolation is None:
        del r["isolation"]  # a missing field means none
    else:
        r["isolation"] = isolation
    out = CliRunner().invoke(app, ["submit", "--check", "--into", str(tmp_path / "measured"), str(_write(tmp_path, r))])
    assert out.exit_code == 1 and "--isolation sandbox" in out.output and f"`{isolation or 'none'}`" in out.output


def test_results_from_before_code_records_keep_their_place_but_are_not_submitted(tmp_path):
    """A committed result without code and isolation records passes at its place in the tree (a note); the same
    file elsewhere is refused as a new submission."""
    r = good_result()
    del r["code"], r["isolation"]
    r["created"] = "2026-11-30T03:26:07+00:00"
    placed = write_result(tmp_path / "measured" / "stereo" / "pairs", extra=submittable())
    write_json(placed, {**r, "per_image_csv_sha256": json.loads(placed.read_text())["per_image_csv_sha256"]})
    chk = check_result(placed, into=tmp_path / "measured")
    assert chk.ok and any("shown with isolation `none`" in w for w in chk.warnings), chk.refused
    chk = check_result(_write(tmp_path, r), into=tmp_path / "measured")
    assert not chk.ok and any("written before results recorded their code" in w for w in chk.refused)


def test_a_result_from_a_dirty_tree_is_refused_but_a_committed_one_is_kept_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = good_result()
    r["environment"]["git_commit"] += "-dirty"
    new = check_result(_write(tmp_path, r))
    assert not new.ok and any("uncommitted changes" in why and "commit your changes" in why for why in new.refused)
    tree = tmp_path / "measured" / "stereo" / "pairs"  # the same file at its own place in the committed tree
    tree.mkdir(parents=True)
    (tree / "jpeg.csv").write_bytes((tmp_path / "results" / "stereo" / "pairs" / "jpeg.csv").read_bytes())
    write_json(tree / "jpeg.json", r)
    kept = check_result(tree / "jpeg.json", into=tmp_path / "measured")
    assert not any("uncommitted" in why for why in kept.refused)
    assert any("uncommitted changes" in w for w in kept.warnings)


def test_the_environment_records_the_hash_of_uncommitted_changes():
    import hashlib
    import subprocess

    from benchmark.evaluation.environment import environment

    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, capture_output=True).stdout
    want = hashlib.sha256(diff).hexdigest() if diff else None
    env = environment()
    assert env["git_diff_sha256"] == want
    assert (want is None) == (not str(env["git_commit"] or "").endswith("-dirty"))
