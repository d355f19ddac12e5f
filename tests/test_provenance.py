"""Content hashes of the method's code and the suite's (benchmark/results/provenance.py): stable, blind to what is not
code, changed by any change of a code file, found without importing the method, and checked by `bench submit`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.results.provenance import (CodeRecordError, code_files, code_record, method_code_problem, method_code_record,
                                  record_problem, repo_root, suite_code_hash, tree_hash)

ROOT = Path(__file__).resolve().parent.parent


def fake_repo(root: Path) -> Path:
    """A checkout in miniature: a methods/ package importing a baseline, the suite's packages, docs and caches."""
    files = {
        "benchmark/__init__.py": "",
        "benchmark/contract/__init__.py": "",
        "benchmark/contract/codec.py": "class Codec: pass\n",
        "datasets/__init__.py": "",
        "baselines/__init__.py": "",
        "baselines/base.py": "from benchmark.contract.codec import Codec\nclass Base(Codec): pass\n",
        "baselines/jpeg.py": "from benchmark.contract.codec import Codec\n",
        "baselines/derived.py": "from .base import Base\n",
        "methods/__init__.py": "",
        "methods/mine/__init__.py": "from . import codec\n",
        "methods/mine/codec.py": "def make():\n    from baselines.base import Base  # imported lazily\n    return Base\n",
        "methods/mine/model.py": "import torch\nfrom .tables import T\n",
        "methods/mine/tables.json": "[1, 2, 3]\n",
        "methods/mine/README.md": "docs only\n",
        "methods/mine/__pycache__/codec.cpython-311.pyc": "bytecode",
        "methods/other/__init__.py": "",
        "methods/other/codec.py": "",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_tree_hash_is_stable_and_blind_to_what_is_not_code(tmp_path):
    repo = fake_repo(tmp_path / "a")
    h = tree_hash(repo, ["methods/mine"])
    assert h == tree_hash(repo, ["methods/mine"]) and len(h) == 64
    assert "methods/mine/tables.json" in code_files(repo, ["methods/mine"])
    (repo / "methods/mine/README.md").write_text("other docs\n")
    (repo / "methods/mine/__pycache__/codec.cpython-311.pyc").write_text("other bytecode")
    (repo / "methods/mine/.hidden.py").write_text("x = 1\n")
    os.utime(repo / "methods/mine/codec.py", (0, 0))
    assert tree_hash(repo, ["methods/mine"]) == h
    other = fake_repo(tmp_path / "b")  # another location, files written in another order: the same hash
    assert tree_hash(other, ["methods/mine"]) == h


@pytest.mark.parametrize("change", ["edit", "add", "rename", "data"])
def test_tree_hash_changes_with_any_code_file(tmp_path, change):
    repo = fake_repo(tmp_path)
    h = tree_hash(repo, ["methods/mine"])
    mine = repo / "methods" / "mine"
    if change == "edit":
        (mine / "codec.py").write_text((mine / "codec.py").read_text() + "# one more line\n")
    elif change == "add":
        (mine / "extra.py").write_text("")
    elif change == "rename":
        (mine / "model.py").rename(mine / "model2.py")
    else:
        (mine / "tables.json").write_text("[1, 2, 4]\n")
    assert tree_hash(repo, ["methods/mine"]) != h


def test_method_record_follows_the_methods_imports(tmp_path):
    repo = fake_repo(tmp_path)
    rec = method_code_record(str(repo / "methods/mine/codec.py"), repo)
    # its package whole, the baseline it imports (inside a function) with the package's __init__, never the suite
    assert rec["paths"] == ["baselines/__init__.py", "baselines/base.py", "methods/__init__.py", "methods/mine"]
    assert rec["root"] == "repo" and rec["sha256"] == tree_hash(repo, rec["paths"])
    assert method_code_record(str(repo / "baselines/jpeg.py"), repo)["paths"] == ["baselines/__init__.py", "baselines/jpeg.py"]
    assert method_code_record(str(repo / "baselines/derived.py"), repo)["paths"] == [
        "baselines/__init__.py", "baselines/base.py", "baselines/derived.py"]  # a relative import
    before = rec["sha256"]
    (repo / "baselines/base.py").write_text("class Base: pass  # changed\n")
    assert method_code_record(str(repo / "methods/mine/codec.py"), repo)["sha256"] != before
    (repo / "benchmark/contract/codec.py").write_text("class Codec: pass  # changed\n")  # the suite's code: not the method's
    assert method_code_record(str(repo / "baselines/jpeg.py"), repo)["sha256"] == tree_hash(
        repo, ["baselines/__init__.py", "baselines/jpeg.py"])


def test_plugin_record_is_its_package_on_sys_path(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    (site / "plug" / "sub").mkdir(parents=True)
    for rel in ("plug/__init__.py", "plug/sub/__init__.py", "plug/sub/codec.py", "single.py"):
        (site / rel).write_text(f"# {rel}\n")
    monkeypatch.syspath_prepend(str(site))
    rec = method_code_record(str(site / "plug/sub/codec.py"), fake_repo(tmp_path / "repo"))
    assert rec == {"root": "sys.path", "paths": ["plug"], "sha256": tree_hash(site, ["plug"])}
    assert method_code_record(str(site / "single.py"), tmp_path / "repo")["paths"] == ["single.py"]
    assert method_code_problem({"method": rec}) is None
    (site / "plug/sub/codec.py").write_text("# changed\n")
    assert method_code_problem({"method": rec}).startswith("method code differs from the commit")
    (tmp_path / "loose.py").write_text("")
    with pytest.raises(CodeRecordError, match="neither in the suite's checkout"):
        method_code_record(str(tmp_path / "loose.py"), tmp_path / "repo")


def test_the_suites_methods_and_hashes():
    joint = method_code_record(str(ROOT / "baselines" / "joint.py"))
    assert joint["paths"] == ["baselines/__init__.py", "baselines/balle.py", "baselines/convert.py", "baselines/joint.py"]
    ndic = method_code_record(str(ROOT / "methods" / "ndic" / "codec.py"))
    assert "methods/ndic" in ndic["paths"] and "baselines/balle.py" in ndic["paths"]
    assert method_code_problem({"method": ndic}) is None
    suite = suite_code_hash()
    assert suite == tree_hash(repo_root(), ["benchmark", "datasets"])
    assert code_record(str(ROOT / "baselines" / "classical.py"))["suite_sha256"] == suite
    assert record_problem(code_record(str(ROOT / "baselines" / "classical.py"))) is None


def test_no_method_module_is_imported():
    code = ("import sys\nfrom benchmark.results.provenance import code_record\n"
            "code_record('methods/ndic/codec.py'); code_record('baselines/joint.py')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('methods', 'baselines', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("paths, field", [
    (["../../etc/passwd"], "code.method.paths[0]"), (["/etc/passwd"], "code.method.paths[0]"),
    ([], "code.method.paths"), (["methods/./x"], "code.method.paths[0]"),
])
def test_hostile_code_records_are_refused_by_the_schema(paths, field):
    from benchmark.errors import ResultSchemaError
    from benchmark.results.schema import validate_result
    from tests.test_leaderboard import ANCHOR, make_result

    r = make_result("jpeg", ANCHOR)
    r["code"] = {"method": {"root": "repo", "paths": paths, "sha256": "0" * 64}, "suite_sha256": "0" * 64}
    with pytest.raises(ResultSchemaError) as exc:
        validate_result(r)
    assert exc.value.field == field
    assert record_problem(r["code"])[0] == field


def test_a_record_the_runner_could_not_complete_validates_but_is_not_submitted(tmp_path):
    from benchmark.results.schema import validate_result
    from benchmark.results.submit import check_result
    from tests.test_submit import _write, good_result

    r = good_result()
    r["code"] = {"suite_sha256": suite_code_hash(), "error": "CodeRecordError: the codec's file is not on this machine"}
    validate_result(r)
    chk = check_result(_write(tmp_path, r), into=tmp_path / "measured")
    assert any("does not record its method's code" in w and "not on this machine" in w for w in chk.refused), chk.refused
