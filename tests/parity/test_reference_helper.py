"""The isolation helper itself, on a fake tree whose names clash with ours and with the stdlib."""
import sys

import pytest

from .reference import reference_import, reference_root, reference_tree


def _fake_tree(root):
    tree = root / "fake"
    (tree / "models" / "sub").mkdir(parents=True)
    (tree / "models" / "sub" / "net.py").write_text("from utils import VALUE\nimport code\nCODE = code.WHO\n")
    (tree / "utils.py").write_text("VALUE = 41\n")
    (tree / "code.py").write_text("WHO = 'reference'\n")
    (tree / "benchmark").mkdir()
    (tree / "benchmark" / "__init__.py").write_text("WHO = 'reference'\n")
    return tree


def test_isolated_import_and_exact_restore(tmp_path, monkeypatch):
    _fake_tree(tmp_path)
    monkeypatch.setenv("BENCH_REFERENCE_CODE", str(tmp_path))
    import benchmark
    import code as stdlib_code
    path_before = list(sys.path)
    with reference_import("fake", "models.sub.net", "benchmark",
                          stubs={"tensorboard_stub": {"SummaryWriter": object}}) as (net, bench):
        assert net.VALUE == 41 and net.CODE == "reference"   # the tree's utils and code, not the stdlib's
        assert bench.WHO == "reference"
        assert sys.modules["tensorboard_stub"].SummaryWriter is object
    assert sys.path == path_before
    assert sys.modules["benchmark"] is benchmark and sys.modules["code"] is stdlib_code
    assert "models" not in sys.modules and "utils" not in sys.modules and "tensorboard_stub" not in sys.modules
    assert hasattr(stdlib_code, "InteractiveConsole")


def test_missing_tree_skips_with_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_REFERENCE_CODE", str(tmp_path / "absent"))
    assert reference_root() is None
    with pytest.raises(pytest.skip.Exception, match="BENCH_REFERENCE_CODE"):
        reference_tree("ndic")
