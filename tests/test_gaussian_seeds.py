"""The gaussian/wz checklist's seed statistics (leaderboard.gaussian_seeds): Student-t intervals by hand, verdicts
that never rest on a difference inside the interval, bin shapes, and a checklist row over three seeds."""
import math

import pytest

from leaderboard.gaussian_seeds import (
    INF,
    band_text,
    bin_shape,
    by_seed,
    family,
    measured_text,
    t_interval,
    verdict,
)


def test_student_t_interval_by_hand():
    assert t_interval([]) is None and t_interval([0.3]) is None
    m, lo, hi = t_interval([-0.1, -0.3, -0.2])  # mean −0.2, s = 0.1, t(0.975, 2) = 4.302653
    assert m == pytest.approx(-0.2)
    assert hi - m == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6) and m - lo == pytest.approx(hi - m)
    m, lo, hi = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])  # s = 1.5811, t(0.975, 4) = 2.776445
    assert (m, hi - m) == pytest.approx((3.0, 2.776445 * 1.5811388 / math.sqrt(5)), rel=1e-6)
    assert t_interval([0.5, 0.5]) == (0.5, 0.5, 0.5)


def test_verdict_needs_the_whole_interval_on_one_side():
    # one seed: never a verdict, whatever the value (−0.21 dB against a −0.2 dB threshold included)
    assert verdict([-0.21], -INF, -0.2) == "inconclusive (1 seed)"
    assert verdict([-3.0], -INF, -0.2) == "inconclusive (1 seed)"
    assert verdict([], -0.4, 0.4) == "—"
    # the mean is past the threshold but the interval straddles it: inconclusive, not reproduced
    assert verdict([-0.9, 0.45, -0.2], -INF, -0.2) == "inconclusive"
    assert verdict([-0.5, -0.6, -0.55], -INF, -0.2) == "reproduced"
    assert verdict([0.1, 0.0, 0.05], -INF, -0.2) == "not reproduced"
    # a band: inside, outside on either side, straddling an edge
    assert verdict([0.1, -0.1, 0.0], -0.4, 0.4) == "reproduced"
    assert verdict([1.0, 1.1, 0.9], -0.4, 0.4) == "not reproduced"
    assert verdict([-1.0, -1.1, -0.9], -0.4, 0.4) == "not reproduced"
    assert verdict([0.3, 0.5, 0.4], -0.4, 0.4) == "inconclusive"
    assert verdict([0.95, 0.97], 0.9, yes="met", no="not met") == "inconclusive"  # two seeds: t(0.975, 1) = 12.7
    assert verdict([0.95, 0.96, 0.97], 0.9, yes="met", no="not met") == "met"


def test_texts():
    assert measured_text([-0.21], [0]) == "-0.21 dB (1 seed: no interval)"
    _, lo, hi = t_interval([-0.1, -0.3, -0.2])
    assert measured_text([-0.1, -0.3, -0.2], [0, 1, 2]) == f"-0.20 dB, 95 % CI [{lo:+.2f}, {hi:+.2f}] (3 seeds: 0, 1, 2)"
    assert band_text(-0.4, 0.4) == "within ±0.4 dB" and band_text(-INF, -0.2) == "≤ -0.2 dB"
    assert band_text(0.9, unit="", fmt="{:.2f}") == "≥ 0.90" and band_text(-1.5, -0.5) == "in [-1.5 dB, -0.5 dB]"


def test_bin_shapes():
    assert bin_shape("0000") == "one code"
    assert bin_shape("00001111") == "contiguous" and bin_shape("0011223333") == "contiguous"
    assert bin_shape("1100000011") == "mirror"  # code 1 on both tails: x and −x share it
    assert bin_shape("0101010101") == "non-contiguous"


def test_families_and_seeds():
    def res(seed, created="2026", **opts):
        return {"codec_info": {"options": {"config": "222", "prior": "conditional", **opts}},
                "training": {"seed": seed}, "created": created}

    assert family(res(0)) == "suite" and family(res(0, faithful=True)) == "faithful"
    assert family(res(0, estimator="exact")) == "exact" and family(res(0, estimator="anneal")) == "anneal"
    assert family(res(0, init="nested")) is None and family(res(0, hard=True)) is None
    assert family(res(0, faithful=True, estimator="exact")) is None
    old, new = res(1, "2026-01"), res(1, "2026-02")
    assert by_seed([old, res(0), new]) == {0: res(0), 1: new}


def _res(config, prior, s2, seed, pts, lam=3000.0, figure=None, **opts):
    """A paper-budget layered result: pts = [(ideal rate, D in dB)] per stage."""
    points = [{"rate_point": f"stage={k}", "bpp": r + 1.0, "bpp_estimated": r, "psnr": -d, "mse": 10 ** (d / 10),
               "n_images": 1} for k, (r, d) in enumerate(pts, 1)]
    return {"method": "layered_wz", "variant": f"{config}.{prior[:4]}.s{s2:g}.seed{seed}", "dataset_options": {"sigma2": s2},
            "points": points, "training": {"budget": "paper", "seed": seed},
            "codec_info": {"options": {"config": config, "prior": prior, "lam": lam, **opts},
                           **({"figure": figure} if figure else {})}}


def test_checklist_rows_over_three_seeds_pair_each_layered_seed_with_the_monolithic_one():
    from benchmark.results.bounds import scalar_sw_distortion_db as sq
    from leaderboard.gaussian_paper import checklist

    # gaps to the scalar reference per seed; Δ (layered − monolithic) per stage and seed:
    # stage 1 [−0.2, −0.3, −0.25] (interval straddles −0.2), stage 2 [−0.5, −0.6, −0.55], stage 3 [0.0, 0.1, −0.05]
    rates = (0.1, 0.2, 0.3)
    mono_gaps = {2: [0.3, 0.4, 0.35], 4: [0.6, 0.7, 0.65], 8: [0.1, 0.0, 0.15]}  # per seed; the layered gaps are all 0.1
    results = [_res("222", "conditional", 0.01, s, [(r, sq(r, 0.01) + 0.1) for r in rates]) for s in range(3)]
    for (n, g), r in zip(mono_gaps.items(), (0.11, 0.25, 0.6)):
        results += [_res(f"mono{n}", "conditional", 0.01, s, [(r, sq(r, 0.01) + g[s])]) for s in range(3)]
    md = "\n".join(checklist(results))
    claim = "(conditional) layered better than monolithic at σ²=0.01, D at matched rate: 222 stage"
    row = lambda k: next(line for line in md.splitlines() if line.startswith(f"| {claim} {k} |"))
    assert row(1).endswith("(3 seeds: 0, 1, 2) | inconclusive |") and "| -0.25 dB, 95 % CI [-0.37, -0.13]" in row(1)
    assert row(2).endswith("| reproduced |") and "| -0.55 dB, 95 % CI" in row(2)
    assert row(3).endswith("| not reproduced |") and "| +0.02 dB, 95 % CI [-0.17, +0.21]" in row(3)
    # stage 3 of 222 against mono8 at the same λ: the rate it sends (0.30 vs 0.60 bit)
    rate3 = next(line for line in md.splitlines() if "222 stage 3 sends the rate of the monolithic coder with 8 bins (same λ), σ²=0.01" in line)
    assert "| 0.30 vs 0.60 bit; ΔR -0.30 bit, 95 % CI [-0.30, -0.30] (3 seeds: 0, 1, 2) | not reproduced |" in rate3
    # a monolithic coder run with other seeds only: nothing to pair
    lone = [r for r in results if _opts(r)["config"] != "mono2"] + [_res("mono2", "conditional", 0.01, 7, [(0.11, -20.3)])]
    assert "not measured (no seed in common (222: ['0', '1', '2']; mono2: ['7']))" in "\n".join(checklist(lone))


def _opts(r):
    return r["codec_info"]["options"]


def test_checklist_says_when_a_marginal_number_matches_through_mirror_bins():
    from benchmark.results.bounds import scalar_marginal_distortion_db as sqm
    from leaderboard.gaussian_paper import checklist

    mirror = {"x": [-3, 3, 10], "codes": ["0123333210", "3210000123"], "y": [-1, 1, 2], "recon": {}}
    lay = _res("44", "marginal", 0.01, 0, [(1.9, sqm(1.9, 0.01)), (2.8, sqm(2.8, 0.01) - 0.9)], figure=mirror)
    monos = [_res(f"mono{n}", "marginal", 0.01, 0, [(r, sqm(r, 0.01))]) for n, r in ((4, 1.8), (16, 3.0))]
    md = "\n".join(checklist([lay, *monos]))
    row = next(line for line in md.splitlines() if line.startswith("| (marginal) 44 stage 2 vs monolithic at σ²=0.01"))
    assert "| −1.0 dB | in [-1.5 dB, -0.5 dB] | -0.90 dB (1 seed: no interval); the mean matches the paper through mirror bins" in row
    assert "not the paper's interleaved bins | inconclusive (1 seed) |" in row


def test_faithful_rows_compare_faithful_results_only_and_this_suites_layered_coder_against_them():
    from benchmark.results.bounds import scalar_sw_distortion_db as sq
    from leaderboard.gaussian_paper import checklist

    lay = [_res("44", "conditional", 0.01, s, [(0.3, sq(0.3, 0.01) + 0.1), (0.55, sq(0.55, 0.01) + 0.1)], faithful=True)
           for s in range(3)]
    mono4 = [_res("mono4", "conditional", 0.01, s, [(0.4, sq(0.4, 0.01) + g)], faithful=True)
             for s, g in enumerate((1.3, 1.5, 1.4))]  # a weak faithful baseline: Δ = −1.2, −1.4, −1.3 dB
    ours = [_res("mono4", "conditional", 0.01, s, [(0.3, sq(0.3, 0.01))]) for s in range(3)]  # not a faithful result
    md = "\n".join(checklist(lay + mono4 + ours)).splitlines()
    row = next(line for line in md if "paper-faithful networks) layered better than monolithic at σ²=0.01, D at matched "
               "rate: 44 stage 1" in line)
    assert "| -1.30 dB, 95 % CI [-1.55, -1.05] (3 seeds: 0, 1, 2) | reproduced |" in row
    alpha = next(line for line in md if "D at matched alphabet (4 bins, each at its own rate): 44 stage 1" in line)
    d = [(sq(0.3, 0.01) + 0.1) - (sq(0.4, 0.01) + g) for g in (1.3, 1.5, 1.4)]
    assert f"| {sum(d) / 3:+.2f} dB, 95 % CI" in alpha and alpha.endswith("| reproduced |")
    stage2 = next(line for line in md if "D at matched rate: 44 stage 2" in line and "paper-faithful networks" in line)
    assert "not measured (no paper-budget result for mono16.cond (faithful))" in stage2
    suite = next(line for line in md if "this suite's layered coder better than the paper-faithful" in line and "44 stage 1" in line)
    assert "not measured (no paper-budget result at λ=3000 for 44.cond)" in suite
