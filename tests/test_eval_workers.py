"""`--eval-workers N`: how a run's samples are shared among role processes and how the roles are run side by side
(no process started here; tests/test_determinism.py runs real roles and compares their bytes with one worker)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from benchmark.errors import IsolationError
from benchmark.evaluation import sandbox, session
from benchmark.evaluation.sandbox_eval import split_groups, view_groups


def _entries(views: str) -> list[dict]:
    """One entry per letter: its view; scenes are numbered per view, so x of scene i in view a is the side of scene
    i in view b."""
    out, seen = [], {}
    for v in views:
        i = seen[v] = seen.get(v, -1) + 1
        other = "b" if v == "a" else "a"
        out.append({"k": f"{v}{i}", "view": v, "hx": f"{v}{i}", "hs": f"{other}{i}"})
    return out


@pytest.mark.parametrize("views,workers", [("aaaaabbbbb", 1), ("aaaaabbbbb", 2), ("aaaaabbbbb", 3), ("aaaaaaab", 2),
                                           ("aaaaa", 2), ("ab", 4)])
def test_parts_of_view_groups_cover_every_sample_once_and_never_hold_two_views_of_a_scene(views, workers):
    groups = view_groups(_entries(views))
    parts = split_groups(groups, workers)
    assert sorted(e["k"] for p in parts for e in p) == sorted(e["k"] for e in _entries(views))
    for p in parts:
        assert any(all(e in g for e in p) for g in groups)  # a part lies inside one view group
        assert not {e["hx"] for e in p} & {e["hs"] for e in p}
    if workers == 1:
        assert parts == groups
    else:
        assert len(parts) >= min(workers, len(views))
        assert max(len(p) for p in parts) == -(-len(views) // workers)


def _jobs(tmp_path: Path, n: int) -> list:
    return [(sandbox.Role(f"encode-{i}", tmp_path, {}, threads=2), "encode", {"n": i}) for i in range(n)]


def test_launch_all_runs_at_most_n_roles_at_once_each_with_one_thread(tmp_path, monkeypatch):
    lock, running, peak, seen = threading.Lock(), [0], [0], []

    def launch(self, role, kind, extra, zygote=None):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
            seen.append((extra["n"], role.threads))
        return {"n": extra["n"]}

    monkeypatch.setattr(session.Context, "launch", launch)
    ctx = session.Context("process", tmp_path, {}, workers=2)
    got = list(ctx.launch_all(_jobs(tmp_path, 5)))
    assert sorted(i for i, _ in got) == list(range(5)) and all(resp["n"] == i for i, resp in got)
    assert peak[0] == 2 and all(t == 1 for _, t in seen)
    seen.clear()
    one = session.Context("process", tmp_path, {}, workers=1, threads=2)
    assert [i for i, _ in one.launch_all(_jobs(tmp_path, 3))] == [0, 1, 2]  # one worker: in order, threads kept
    assert [t for _, t in seen] == [2, 2, 2]


def test_launch_all_raises_the_first_error_and_starts_no_further_role(tmp_path, monkeypatch):
    started = []

    def launch(self, role, kind, extra, zygote=None):
        started.append(extra["n"])
        if extra["n"] == 0:
            raise IsolationError("encode-0: the method's process exited with code 1 without a response")
        time.sleep(0.2)
        return {}

    monkeypatch.setattr(session.Context, "launch", launch)
    ctx = session.Context("process", tmp_path, {}, workers=2)
    with pytest.raises(IsolationError, match="encode-0"):
        list(ctx.launch_all(_jobs(tmp_path, 6)))
    assert len(started) <= 3  # the failed role, the one beside it, at most one taken before the error was seen


def test_zygotes_one_per_worker_started_once_and_closed(tmp_path):
    class FakeZygote:
        closed = 0

        def close(self):
            FakeZygote.closed += 1

    made = []
    ctx = session.Context("sandbox", tmp_path, {}, workers=3, zygote=FakeZygote(),
                          zygote_factory=lambda: made.append(FakeZygote()) or made[-1])
    assert len(set(map(id, ctx._zygotes(3)))) == 3 and len(made) == 2
    assert len(ctx._zygotes(2)) == 2 and len(made) == 2  # kept for the decoders
    ctx.close()
    assert FakeZygote.closed == 2  # the run's own zygote is shared with later runs: not closed here
    lone = session.Context("sandbox", tmp_path, {}, workers=3, zygote=FakeZygote())
    assert len(lone._zygotes(3)) == 1  # no way to start another: one role at a time
