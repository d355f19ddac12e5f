"""The runner's isolation by construction (benchmark/evaluation/isolation.py): a codec written to cheat gains nothing in a
real `run`, while the same codec does cheat when one instance both decodes and encodes."""
from __future__ import annotations

import csv

import pytest

from benchmark.evaluation import runner, setup
from benchmark.contract.registry import METHODS, get_dataset, get_protocol
from benchmark.evaluation.runner import run
from benchmark.evaluation.inprocess import evaluate
from benchmark.evaluation.setup import RunSpec
from tests.cheaters import FitMemo, SideViewMemo

PROTO = get_protocol("middlebury-sample/stereo")
TOKEN = 64  # a token bitstream is the container header plus 2 bytes; an honest lossless crop is > 50 kB


@pytest.fixture
def registered():
    added = []

    def add(cls):
        METHODS.add(cls.meta.name, cls)
        added.append(cls.meta.name)

    yield add
    for name in added:
        METHODS.remove(name)


def _test_split():
    return get_dataset("middlebury_sample").factory(None, PROTO, "test", **PROTO.options)


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_side_view_memo_cheats_with_one_instance_and_gains_nothing_in_run(registered, tmp_path):
    test = _test_split()
    # both directions: sample 2k+1 codes the view that was sample 2k's side view
    assert any(test[i].x.equal(test[j].side) for i in range(len(test)) for j in range(len(test)))
    shared = evaluate(SideViewMemo(PROTO), test, PROTO, progress=False)
    assert sum(r["bytes"] < TOKEN for r in shared) >= len(test) // 2  # the cheat works on a shared instance

    registered(SideViewMemo)
    path, result = run(RunSpec(method=SideViewMemo.meta.name, dataset="middlebury_sample", out=tmp_path,
                               budget="smoke", progress=False))
    rows = _csv_rows(path.with_suffix(".csv"))
    assert len(rows) == len(test)
    assert min(int(r["bytes"]) for r in rows) > TOKEN, [r["bytes"] for r in rows]
    assert all(len(r["sha256"]) == 64 for r in rows)
    assert result["points"][0]["mse"] == 0  # and it stays lossless on 8-bit data


def test_fit_memo_cheats_with_one_instance_and_gains_nothing_in_run(registered, tmp_path, monkeypatch):
    test = _test_split()
    trained = FitMemo(PROTO)
    trained.fit(test, None, budget="smoke", device="cpu", workdir=tmp_path / "w0")
    shared = evaluate(trained, test, PROTO, progress=False)
    assert all(r["bytes"] < TOKEN for r in shared)  # every test x is some training side view: all tokens

    # a run whose training split holds the test pairs (so training side views are test images)
    real = setup.build_split
    for module in (setup, runner):
        monkeypatch.setattr(module, "build_split", lambda info, spec, protocol, split: real(info, spec, protocol, "test"))
    registered(FitMemo)
    path, _ = run(RunSpec(method=FitMemo.meta.name, dataset="middlebury_sample", out=tmp_path, budget="smoke",
                          progress=False))
    rows = _csv_rows(path.with_suffix(".csv"))
    assert len(rows) == len(test) and min(int(r["bytes"]) for r in rows) > TOKEN, [r["bytes"] for r in rows]


def test_a_partial_csv_written_before_the_sha256_column_still_resumes(tmp_path):
    """Rows of an interrupted run written by a version without the `sha256` column are reused, not re-coded."""
    class Counting(SideViewMemo):
        calls = 0

        def compress(self, x, **kw):
            Counting.calls += 1
            return super().compress(x, **kw)

    test = _test_split()
    samples = [test[0], test[1]]
    partial = tmp_path / ".memo.partial.csv"
    evaluate(Counting(PROTO), samples[:1], PROTO, progress=False, partial_csv=partial, fingerprint="f")
    with open(partial, newline="", encoding="utf-8") as f:
        old = [{k: v for k, v in r.items() if k != "sha256"} for r in csv.DictReader(f)]
    with open(partial, "w", newline="", encoding="utf-8") as f:  # the old layout: no sha256 column
        w = csv.DictWriter(f, fieldnames=list(old[0]))
        w.writeheader()
        w.writerows(old)
    Counting.calls = 0
    rows = evaluate(Counting(PROTO), samples, PROTO, progress=False, partial_csv=partial, fingerprint="f")
    assert Counting.calls == 1 and len(rows) == 2  # only the second sample was coded
    assert rows[0]["sha256"] is None and len(rows[1]["sha256"]) == 64
