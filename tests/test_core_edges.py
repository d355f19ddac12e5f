"""Edge cases of core functions, each at the exact boundary where a one-character change would go unnoticed
otherwise (tests/test_mutants.py applies those changes and checks that these tests fail): non-finite points in
BD metrics, the smallest image MS-SSIM accepts, a bitstream cut inside the container header, and a resumed run
whose weights changed."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from pytorch_msssim import ms_ssim

from benchmark.contract.container import Container
from benchmark.errors import BitstreamError
from benchmark.results import metrics
from benchmark.results.bdrate import bd_psnr, bd_rate, quality_at_rate

# ---------------------------------------------------------------- BD metrics: non-finite points are left out
ANCHOR = ([0.1, 0.2, 0.4, 0.8], [28.0, 31.0, 34.0, 37.0])
TEST = ([0.1, 0.2, 0.4, 0.8], [29.0, 32.5, 35.0, 38.0])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_bd_metrics_leave_out_a_point_with_a_non_finite_quality_or_rate(bad):
    """A point whose quality (e.g. a null MS-SSIM) or rate is not finite counts as absent: BD-rate, BD-PSNR and
    quality_at_rate equal those of the curve without it (rates stay positive: only the finite filter drops it)."""
    rates, psnrs = TEST
    with_bad_quality = (rates + [1.6], psnrs + [bad])
    assert bd_psnr(*ANCHOR, *with_bad_quality) == pytest.approx(bd_psnr(*ANCHOR, *TEST), abs=1e-12)
    assert bd_rate(*ANCHOR, *with_bad_quality) == pytest.approx(bd_rate(*ANCHOR, *TEST), abs=1e-12)
    assert quality_at_rate(*with_bad_quality, 0.3) == pytest.approx(quality_at_rate(*TEST, 0.3), abs=1e-12)
    if bad > 0:  # a NaN or +inf rate: log10 keeps it non-finite (a rate <= 0 is refused before)
        with_bad_rate = (rates + [bad], psnrs + [40.0])
        assert bd_rate(*ANCHOR, *with_bad_rate) == pytest.approx(bd_rate(*ANCHOR, *TEST), abs=1e-12)
        assert bd_psnr(*ANCHOR, *with_bad_rate) == pytest.approx(bd_psnr(*ANCHOR, *TEST), abs=1e-12)


def test_bd_psnr_of_a_curve_with_too_few_finite_points_is_an_error():
    with pytest.raises(ValueError, match="at least 2 finite points"):
        bd_psnr(*ANCHOR, [0.1, 0.2, 0.4], [30.0, math.nan, math.nan])


# ---------------------------------------------------------------- MS-SSIM: the size rule at its boundary
@pytest.mark.parametrize("win", [7, 11])
def test_ms_ssim_size_rule_is_the_libraries_own_boundary(win):
    """5-scale MS-SSIM needs the smaller side to exceed (win - 1) * 16: a side of exactly that many pixels is
    refused (null with a reason, as pytorch_msssim itself refuses it), one pixel more is measured."""
    need = (win - 1) * 16
    g = torch.Generator().manual_seed(0)
    at = torch.rand(3, need, need + 40, generator=g)
    above = torch.rand(3, need + 1, need + 40, generator=g)

    with pytest.raises(AssertionError):  # the library's own rule at the boundary
        ms_ssim(at[None], at[None], data_range=1.0, win_size=win)
    assert ms_ssim(above[None], above[None], data_range=1.0, win_size=win) == pytest.approx(1.0, abs=1e-5)

    ok, reason = metrics.ms_ssim_supported(need, need + 40, win)
    assert not ok and f"needs side > {need}" in reason
    assert metrics.ms_ssim_supported(need + 40, need, win)[0] is False  # the smaller side decides, either way round
    assert metrics.ms_ssim_supported(need + 1, need + 1, win) == (True, None)
    v, reason = metrics.msssim(at, at, win_size=win)
    assert v is None and "too small" in reason
    v, reason = metrics.msssim(above, above, win_size=win)
    assert reason is None and v == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------- container: a cut inside the 5-byte header
@pytest.mark.parametrize("cut", [2, 3, 4])
def test_a_bitstream_cut_inside_the_header_is_reported_as_truncated(cut):
    """Magic (2 bytes), version (1) and method tag (2): a stream of 2, 3 or 4 bytes that starts right is reported
    as truncated, not as another method's or another version's stream."""
    data = Container("jpeg", 0, (3, 8, 8), [b"x" * 5]).to_bytes()
    with pytest.raises(BitstreamError, match=rf"truncated: {cut} bytes, shorter than the 5-byte container header"):
        Container.from_bytes(data[:cut], "jpeg")
    with pytest.raises(BitstreamError, match="truncated while reading rate-point index"):
        Container.from_bytes(data[:5], "jpeg")  # the whole header, nothing after it


# ---------------------------------------------------------------- resume: rows of other weights are coded again
TINY = {"N": 8, "M": 8, "lambdas": [0.0035, 0.0483], "steps": 3, "batch_size": 2, "val_samples": 1}


def _spec(**kw):
    from benchmark.evaluation.setup import RunSpec

    return RunSpec(method="balle2018", dataset="middlebury_sample", budget="smoke", progress=False, limit=1,
                   isolation="none", **kw)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["image"], r["rate_point"], r["sha256"]) for r in csv.DictReader(f)]


class _Interrupted(Exception):
    pass


def test_a_partial_csv_coded_with_other_weights_is_not_resumed(tmp_path, monkeypatch):
    """A run with weights A is interrupted after coding every row (its partial CSV left behind); the same run with
    weights B in the same --out codes every row again: its rows are those of a fresh run with B, none of A's."""
    from benchmark.evaluation import runner

    wa, _ = runner.train_only(_spec(out=tmp_path / "a", seed=0, method_options=TINY))
    wb, _ = runner.train_only(_spec(out=tmp_path / "b", seed=1, method_options=TINY))
    _, fresh_b = runner.run(_spec(out=tmp_path / "fresh", weights=wb))

    out = tmp_path / "out"
    pdir = out / "middlebury-sample" / "stereo"
    real_finish = runner._finish

    def crash(*args, **kwargs):
        raise _Interrupted

    monkeypatch.setattr(runner, "_finish", crash)
    with pytest.raises(_Interrupted):
        runner.run(_spec(out=out, weights=wa))
    rows_a = _rows(pdir / ".balle2018.partial.csv")
    assert len(rows_a) == 2 and not (pdir / "balle2018.json").exists()

    monkeypatch.setattr(runner, "_finish", real_finish)
    _, resumed = runner.run(_spec(out=out, weights=wb))
    rows_b = _rows(pdir / "balle2018.csv")
    rows_fresh = _rows(tmp_path / "fresh" / "middlebury-sample" / "stereo" / "balle2018.csv")
    assert {r[2] for r in rows_a}.isdisjoint(r[2] for r in rows_fresh)  # the two weights code differently
    assert rows_b == rows_fresh
    assert resumed["training"]["loaded_from"] == str(wb)
    assert [p["bpp"] for p in resumed["points"]] == [p["bpp"] for p in fresh_b["points"]]
    assert not (pdir / ".balle2018.partial.csv").exists()
