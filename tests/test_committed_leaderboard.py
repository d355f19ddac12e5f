"""The committed leaderboard (docs/leaderboard/) is exactly what `bench leaderboard` regenerates from the committed
results tree (measured/) and the shipped published curves, and every committed result passes `bench submit`.

Compared: every file byte for byte (README.md, index.html, leaderboard.csv, points.csv, figures.json with what each
figure draws, the SVG figures — written by `leaderboard.svg`, plain text with fixed decimals, the same on every
machine — and the CompressAI exports). Every figure README.md and index.html reference is a committed file, and
the whole committed leaderboard stays under 10 MB. Only files tracked by git are used, so results another engineer
is still producing do not count until they are committed.

To fix a failure: `bench leaderboard --results measured --out docs/leaderboard` and commit docs/leaderboard/."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchmark.results.files import result_candidates

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "leaderboard"
TREE = ROOT / "measured"
FIX = "run `bench leaderboard --results measured --out docs/leaderboard` and commit docs/leaderboard/"


def _tracked(folder: Path) -> list[Path]:
    """Files under `folder` that git tracks (all files when this is not a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", str(folder.relative_to(ROOT))], cwd=ROOT,
                             capture_output=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return sorted(ROOT / p for p in out.decode().split("\0") if p and (ROOT / p).is_file())


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    from benchmark.evaluation.record import suite_facts
    from leaderboard.build import build

    tmp = tmp_path_factory.mktemp("committed")
    tree = tmp / "measured"  # same relative layout as the repository: tmp/measured, tmp/docs/leaderboard
    tree.mkdir()
    for f in _tracked(TREE):
        dst = tree / f.relative_to(TREE)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst)
    out = tmp / "docs" / "leaderboard"
    build([tree], out, suite=suite_facts())  # as `bench leaderboard` builds it
    return out


@pytest.mark.slow
def test_committed_leaderboard_is_what_bench_leaderboard_regenerates(rebuilt):
    assert COMMITTED.is_dir(), f"docs/leaderboard/ is missing: {FIX}"
    committed = {p.relative_to(COMMITTED).as_posix() for p in _tracked(COMMITTED)}
    fresh = {p.relative_to(rebuilt).as_posix() for p in rebuilt.rglob("*") if p.is_file()}
    assert committed == fresh, (f"files differ: only committed {sorted(committed - fresh)}, only regenerated "
                                f"{sorted(fresh - committed)}; {FIX}")
    import json

    drawn = json.loads((rebuilt / "figures.json").read_text(encoding="utf-8"))
    assert all((rebuilt / svg).is_file() for svg in drawn)  # every figure the data describes was drawn
    for name in sorted(fresh):
        a, b = (COMMITTED / name).read_text(encoding="utf-8"), (rebuilt / name).read_text(encoding="utf-8")
        if a != b:
            diff = next(i for i, (x, y) in enumerate(zip(a.splitlines() + [""], b.splitlines() + [""])) if x != y)
            pytest.fail(f"docs/leaderboard/{name} differs from a rebuild at line {diff + 1}:\n"
                        f"  committed:   {a.splitlines()[diff] if diff < len(a.splitlines()) else '<end>'}\n"
                        f"  regenerated: {b.splitlines()[diff] if diff < len(b.splitlines()) else '<end>'}\n{FIX}")


def test_every_committed_result_passes_bench_submit():
    from benchmark.results.submit import check_result

    tracked = set(_tracked(TREE))
    files = [p for p in result_candidates(TREE) if p in tracked] if TREE.is_dir() else []
    refused = {}
    for f in files:
        chk = check_result(f)
        if not chk.ok:
            refused[str(f.relative_to(ROOT))] = chk.refused
    assert not refused, f"committed results that `bench submit` refuses: {refused}"


def test_every_referenced_figure_is_committed_and_the_board_is_small():
    """README.md and index.html reference only committed files (no broken image on GitHub or in a browser), and
    the committed leaderboard stays under 10 MB."""
    import re

    tracked = {p.relative_to(COMMITTED).as_posix() for p in _tracked(COMMITTED)}
    assert "README.md" in tracked and "index.html" in tracked, FIX
    md = (COMMITTED / "README.md").read_text(encoding="utf-8")
    page = (COMMITTED / "index.html").read_text(encoding="utf-8")
    refs = set(re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", md)) | set(re.findall(r'<img [^>]*src="([^"]+)"', page))
    assert refs, "the committed leaderboard shows no figure"
    assert not refs - tracked, f"figures referenced but not committed: {sorted(refs - tracked)}; {FIX}"
    size = sum((COMMITTED / p).stat().st_size for p in tracked)
    assert size < 10 * 2**20, f"docs/leaderboard/ is {size / 2**20:.1f} MB (limit 10 MB)"
