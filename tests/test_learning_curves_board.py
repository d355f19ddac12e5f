"""The learning-curve section of the leaderboard: per steps and λ both codecs reached, the differences, the
classical yardstick, w's share and the wrong-side probe, from result files only; the leaderboard includes it."""
import copy
import json

import pytest

from benchmark.results.ranking import is_ranked
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec
from leaderboard.learning_curves import learning_curve_section, rows


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("lc")
    _, jpeg = run(RunSpec(method="jpeg", dataset="middlebury_sample", out=out, progress=False, limit=1,
                          method_options={"qualities": [5, 20, 50, 90]}))
    made = [jpeg]
    for method, scen, gain in (("balle2018", "separate", 0.0), ("ndic_balle2018", "decoder_side_info", 1.0)):
        for steps, q in ((100, 1), (200, 2)):
            r = copy.deepcopy(jpeg)
            p = dict(r["points"][q], rate_point="lambda=0.0035")
            p["psnr"] += gain
            r.update(method=method, scenario=scen, points=[p], variant=f"steps{steps}",
                     method_meta={**r["method_meta"], "name": method, "trainable": True,
                                  **({"twin": "balle2018"} if method.startswith("ndic") else {})},
                     training={"budget": "quick", "steps": steps,
                               "points": {"lambda=0.0035": {"final_train": {"bpp": 0.3, "bpp_w": 0.1}}}},
                     learning_curve={"steps": steps, "options": {"steps": str(steps)}})
            if method.startswith("ndic"):
                r["learning_curve"]["side_probe"] = {"lambda=0.0035": {"loss_other_pair_db": 2.5, "loss_grey_db": 3.0}}
            made.append(r)
    return out, made


def test_rows_compare_equal_steps(results):
    _, rs = results
    table = rows(rs)
    assert [(r["method"], r["twin"], r["steps"]) for r in table] == [("ndic_balle2018", "balle2018", 100),
                                                                     ("ndic_balle2018", "balle2018", 200)]
    pp = table[0]["points"][0]
    assert pp["d_psnr"] == pytest.approx(1.0) and pp["d_bpp"] == pytest.approx(0.0)
    a, t = pp["vs"]["jpeg"]  # the point sits on jpeg's own curve: 0 for the twin, +1 dB with side information
    assert a == pytest.approx(0.0, abs=1e-9) and t == pytest.approx(1.0)
    assert table[0]["w_share"]["lambda=0.0035"] == pytest.approx(0.25)
    assert table[0]["bd_rate"] is None and table[0]["why"] == "one λ"
    assert not any(is_ranked(r)[0] for r in rs[1:])
    # the pair is what the side-information codec's results name as its twin (method_meta.twin), nothing else
    untwinned = [dict(r, method_meta={k: v for k, v in r["method_meta"].items() if k != "twin"}) for r in rs]
    assert rows(untwinned) == []


def test_section_and_leaderboard(results, tmp_path):
    out, rs = results
    md = learning_curve_section(rs, tmp_path)
    assert "| 100 | 0 | 0.0035 |" in md and "| 200 | 0 | 0.0035 |" in md and "+1.00 dB" in md and "25.0%" in md
    assert "+2.50 / +3.00 dB" in md
    assert (tmp_path / "learning-curve-middlebury-sample_stereo.svg").is_file()
    assert learning_curve_section(rs[:1], tmp_path) == ""
    from leaderboard.build import build

    tree = tmp_path / "tree"
    for r in rs[1:]:
        (tree / f"{r['method']}.{r['variant']}.json").parent.mkdir(parents=True, exist_ok=True)
        (tree / f"{r['method']}.{r['variant']}.json").write_text(json.dumps({**r, "per_image_csv": None}))
    (tree / "jpeg.json").write_text(json.dumps({**rs[0], "per_image_csv": None}))
    build([tree], tmp_path / "board")
    assert "## Learning curves at equal training" in (tmp_path / "board" / "README.md").read_text()


def _two_lambda(method: str, seed: int, gain: float, images: dict[str, float]) -> tuple[dict, dict]:
    """A learning-curve point at 1000 steps with two λ (PSNR +`gain` over the base curve) and its per-image rows
    (per-image PSNR offsets `images`, so the rows average to the points)."""
    base = {"lambda=0.0035": (0.3, 30.0), "lambda=0.013": (0.6, 33.0)}
    points = [{"rate_point": k, "bpp": b, "psnr": q + gain, "ms_ssim": 0.9} for k, (b, q) in base.items()]
    result = {"protocol": "stereo/kitti-ndic", "method": method, "points": points,
              "method_meta": {"twin": "balle2018"} if method != "balle2018" else {},
              "training": {"seed": seed, "points": {k: {"wall_s": 1800.0 * (2 if method != "balle2018" else 1)}
                                                    for k in base}},
              "learning_curve": {"steps": 1000}}
    rows = {k: {img: (b, q + gain + off) for img, off in images.items()} for k, (b, q) in base.items()}
    return result, rows


def test_headline_seeds_intervals_and_bd_rate_overlap_rule():
    from leaderboard.learning_curve_bd import headline

    imgs = {"a|0": -0.5, "b|0": 0.0, "c|0": 0.5}
    made = [_two_lambda("balle2018", s, 0.0, imgs) for s in (0, 1)]
    made += [_two_lambda("ndic_balle2018", s, g, {"a|0": -0.2, "b|0": 0.1, "c|0": 0.1}) for s, g in ((0, 1.0), (1, 1.2))]
    rows_of = {id(r): rows for r, rows in made}
    table = rows([r for r, _ in made])
    assert [(r["steps"], r["seed"]) for r in table] == [(1000, 0), (1000, 1)]
    (h,) = headline(table, lambda r: rows_of[id(r)])
    assert h["seeds"] == [0, 1] and h["bd_psnr"] == pytest.approx(1.1)
    lo, hi = h["seed_ci"]  # t(0.975, 1) = 12.706; sd = 0.1414: 1.1 +- 1.27
    assert lo == pytest.approx(1.1 - 12.706 * 0.1414 / 2 ** 0.5, abs=1e-2) and hi == pytest.approx(1.1 + 1.270, abs=1e-2)
    for (a, b), gain in zip(h["image_ci"], (1.0, 1.2)):  # images resampled: the interval holds the seed's value
        assert a <= gain + 1e-9 and b >= gain - 1e-9 and b - a < 1.5
    # PSNR ranges [30, 33] and [31.2, 34.2]: overlap 1.8 / 4.2 = 43 % < 50 %: no BD-rate
    assert h["bd_rate"] is None and h["overlap"] == pytest.approx(1.8 / 4.2)
    assert h["hours"] == [(1.0, 2.0), (1.0, 2.0)]  # common λ, per seed: 2 x 1800 s and 2 x 3600 s
    close = [made[0], made[1]] + [_two_lambda("ndic_balle2018", s, 0.3, imgs) for s in (0, 1)]
    (h,) = headline(rows([r for r, _ in close]), None)  # +0.3 dB: overlap 2.7 / 3.3 = 82 %: BD-rate shown
    assert h["bd_rate"] is not None and h["bd_rate"] < 0 and h["image_ci"] == [None, None]


def test_twin_at_hours_interpolates_in_training_time():
    from leaderboard.learning_curve_bd import twin_at_hours

    def point(hours: float, psnr: float) -> dict:
        pts = [{"rate_point": f"lambda={lam}", "bpp": b, "psnr": psnr + d} for lam, b, d in (("0.0035", 0.3, 0), ("0.013", 0.6, 3))]
        return {"points": pts, "training": {"points": {p["rate_point"]: {"cpu_s": hours * 3600} for p in pts}}}

    twin = [point(0.5, 30.0), point(1.0, 31.0)]
    eq = twin_at_hours(point(0.75, 99.0), twin)  # the side codec's time: halfway between the twin's two points
    assert [round(p["psnr"], 6) for p in eq["points"]] == [30.5, 33.5]
    assert twin_at_hours(point(1.5, 99.0), twin) is None  # the twin never trained that long: no comparison
    walls = [{**r, "training": {"points": {k: {"wall_s": v["cpu_s"]} for k, v in r["training"]["points"].items()}}}
             for r in twin + [point(0.75, 99.0)]]
    assert twin_at_hours(walls[2], walls[:2]) is None  # wall time alone (a machine's load) is not compared
