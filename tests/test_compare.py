"""Comparing with published curves: BD on the shipped KITTI curves agrees with the `bjontegaard` package on the
same (cleaned) points, `bench compare` and the leaderboard print the same number, CompressAI JSON is read and our
own export round-trips, and a user's curve passed with --published shows in table and figure."""
from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.errors import ResultSchemaError
from benchmark.results.schema import write_json
from benchmark.results.files import to_compressai_json
from leaderboard.build import build
from leaderboard.compare import bd, clean
from leaderboard.curves import curve_from_compressai, curve_from_published, load_curve_file, merge_published
from leaderboard.published import DEFAULT_DIR, load_published_file

from tests.test_leaderboard import ANCHOR, make_result, section, table_rows

KITTI = "kitti-stereo/ndic"
NDIC = "NDIC (ours+Ballé2018)"
BALLE = "Ballé2018 hyperprior (NDIC authors)"


def _kitti(method_file: str):
    return merge_published([curve_from_published(load_published_file(DEFAULT_DIR / method_file))])[0]


@pytest.fixture(scope="module")
def ndic_vs_balle():
    a = _kitti("kitti-stereo__ndic__balle2018__fig8__psnr.json")
    t = _kitti("kitti-stereo__ndic__ndic.balle2018__psnr.json")
    return a, t, bd(a, t, "psnr")


def test_cleaning_lists_degenerate_and_non_monotone_points(ndic_vs_balle):
    a, t, res = ndic_vs_balle
    assert res.test_dropped.degenerate == [(6e-06, pytest.approx(16.8586746913209))]
    assert [b for b, _ in res.test_dropped.non_monotone] == [0.3768783]
    assert [b for b, _ in res.anchor_dropped.non_monotone] == [0.1356, 0.1495]
    for c in (res.test_dropped, res.anchor_dropped):  # what is kept is strictly increasing in rate and quality
        assert all(x[0] < y[0] and x[1] < y[1] for x, y in zip(c.kept, c.kept[1:]))


def test_bd_matches_bjontegaard_package_on_the_same_points(ndic_vs_balle):
    bj = pytest.importorskip("bjontegaard")
    a, t, res = ndic_vs_balle
    ra, qa = zip(*res.anchor_dropped.kept)
    rt, qt = zip(*res.test_dropped.kept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns about the overlap; we report it ourselves
        ref = bj.bd_rate(ra, qa, rt, qt, method="pchip", require_matching_points=False)
        ref_db = bj.bd_psnr(ra, qa, rt, qt, method="pchip", require_matching_points=False)
        # with the degenerate point (monotone order kept), as the table's "incl. degenerate points" column
        wt = clean(t.psnr, drop_degenerate=False).kept
        ref_with = bj.bd_rate(ra, qa, *zip(*wt), method="pchip", require_matching_points=False)
    assert abs(res.bd_rate - ref) < 1.0 and abs(res.bd_quality - ref_db) < 0.05
    assert abs(res.bd_rate_with_degenerate - ref_with) < 1.0
    assert res.bd_rate < 0 and res.bd_rate_with_degenerate < res.bd_rate  # the 6e-06 bpp point pulls it down
    assert res.overlap_quality == pytest.approx(0.788, abs=0.01) and not res.rate_mismatch


def test_bench_compare_and_leaderboard_show_the_same_number(tmp_path, ndic_vs_balle, monkeypatch):
    from cli.main import app

    monkeypatch.chdir(tmp_path)
    res = ndic_vs_balle[2]
    out = CliRunner().invoke(app, ["compare", NDIC, BALLE, "--protocol", KITTI, "--anchor", BALLE, "--out", "cmp.png"])
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith(f"{NDIC} vs {BALLE} (PSNR)"))
    printed = re.search(r"BD-rate ([+-]\d+\.\d) %", line).group(1)
    assert printed == f"{res.bd_rate:+.1f}"
    assert f"incl. degenerate points: BD-rate {res.bd_rate_with_degenerate:+.1f} %" in line
    assert "degenerate (6e-06 bpp, 16.86 dB)" in out.output and "non-monotone (0.3769 bpp" in out.output
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"

    build([tmp_path / "none"], tmp_path / "lb", protocols=[KITTI])
    sec = section((tmp_path / "lb" / "README.md").read_text(), KITTI)
    row = next(r for r in table_rows(sec, "### Published (not measured by this suite)") if r["published curve"] == NDIC)
    col = next(k for k in row if k.startswith("BD-rate vs") and k.endswith("(PSNR)"))
    assert row[col] == f"{printed} %"
    assert row["BD-rate incl. degenerate points"] == f"{res.bd_rate_with_degenerate:+.1f} %"
    assert "6e-06" in row["points left out"]


def test_compare_names_unknown_curve_clearly(tmp_path, monkeypatch):
    from cli.main import app

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["compare", "no such codec", BALLE, "--protocol", KITTI])
    assert out.exit_code == 2 and "no single curve" in out.output and NDIC in out.output


EVAL_MODEL = {  # the shape compressai.utils.eval_model prints
    "name": "bmshj2018-hyperprior-mse", "description": "Inference (ans)",
    "results": {"psnr-rgb": [20.5, 22.0, 24.1, 26.0], "ms-ssim-rgb": [0.90, 0.93, 0.95, 0.97],
                "bpp": [0.05, 0.1, 0.2, 0.35], "encoding_time": [0.1] * 4, "decoding_time": [0.1] * 4},
}


LABELS = {"scenario": "separate", "rate": "bpp", "provenance": "exact"}  # what EVAL_MODEL does not state


def test_compressai_json_is_read_with_its_labels_and_our_export_round_trips(tmp_path):
    c = curve_from_compressai(EVAL_MODEL, KITTI, **LABELS)
    assert c.rate_type == "bpp" and c.psnr[0] == (0.05, 20.5) and len(c.msssim_db) == 4
    assert (c.scenario, c.provenance) == ("separate", "exact")
    stated = dict(EVAL_MODEL, protocol=KITTI, scenario="decoder_side_info", rate="bpp_estimated", provenance="digitized")
    c = curve_from_compressai(stated)
    assert (c.protocol, c.scenario, c.rate_type, c.provenance) == (KITTI, "decoder_side_info", "bpp_estimated", "digitized")
    est = dict(EVAL_MODEL, description="Inference (entropy estimation)")
    assert curve_from_compressai(est, KITTI, **dict(LABELS, rate="bpp_estimated")).rate_type == "bpp_estimated"
    with pytest.raises(ResultSchemaError, match="entropy estimate"):  # real bytes claimed for an estimate
        curve_from_compressai(est, KITTI, **LABELS)

    r = make_result("jpeg", ANCHOR)
    path = tmp_path / "export.json"
    write_json(path, to_compressai_json(r))
    back = load_curve_file(path)  # the export states protocol, scenario, rate and provenance
    assert (back.protocol, back.scenario, back.rate_type) == (r["protocol"], "separate", "bpp")
    assert back.psnr == sorted((p["bpp"], p["psnr"]) for p in r["points"])
    assert bd(back, load_curve_file(path)).bd_rate == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("missing", ["protocol", "scenario", "rate", "provenance"])
def test_compressai_json_that_does_not_state_a_label_is_refused(missing):
    stated = dict(EVAL_MODEL, protocol=KITTI, **LABELS)
    del stated[missing]
    with pytest.raises(ResultSchemaError) as exc:
        curve_from_compressai(stated)
    assert exc.value.field == missing and "nothing is assumed" in str(exc.value) and f"--{missing}" in str(exc.value)
    assert curve_from_compressai(stated, **{missing: dict(LABELS, protocol=KITTI)[missing]}).protocol == KITTI
    with pytest.raises(ResultSchemaError, match="the command line"):  # file and option disagree
        curve_from_compressai(dict(EVAL_MODEL, protocol=KITTI, **LABELS), "cityscapes/ndic")
    with pytest.raises(ResultSchemaError, match="must be one of"):
        curve_from_compressai(dict(EVAL_MODEL, protocol=KITTI, **dict(LABELS, rate="bits")))


def test_bench_validate_and_compare_on_a_raw_compressai_json(tmp_path, monkeypatch):
    from cli.main import app

    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "eval_model.json"
    raw.write_text(json.dumps(EVAL_MODEL))
    out = CliRunner().invoke(app, ["validate", str(raw)])
    assert out.exit_code == 1 and "protocol" in out.output and "nothing is assumed" in out.output
    out = CliRunner().invoke(app, ["compare", str(raw), BALLE, "--protocol", KITTI, "--anchor", BALLE])
    assert out.exit_code == 2 and "scenario" in out.output  # --protocol given, the scenario is not
    out = CliRunner().invoke(app, ["compare", str(raw), BALLE, "--protocol", KITTI, "--anchor", BALLE,
                                   "--scenario", "separate", "--rate", "bpp", "--provenance", "exact"])
    assert out.exit_code == 0, out.output
    assert any(x.startswith(f"bmshj2018-hyperprior-mse vs {BALLE} (PSNR): BD-rate ") for x in out.output.splitlines())


def test_user_curve_with_published_appears_in_table_and_figure(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_curve.json").write_text(json.dumps({
        "kind": "published_curve", "schema_version": 1, "method": "my_codec", "label": "My codec",
        "protocol": KITTI, "scenario": "decoder_side_info", "metric": "psnr", "rate": "bpp",
        "points": [{"bpp": 0.05, "value": 22.0}, {"bpp": 0.15, "value": 25.0}, {"bpp": 0.3, "value": 27.5}],
        "source": "me", "provenance": "exact"}))
    (mine / "theirs_compressai.json").write_text(json.dumps(dict(EVAL_MODEL, protocol=KITTI, **LABELS)))
    out = tmp_path / "lb"
    build([tmp_path / "none"], out, protocols=[KITTI], extra_published=[mine])
    sec = section((out / "README.md").read_text(), KITTI)
    labels = {r["published curve"] for r in table_rows(sec, "### Published (not measured by this suite)")}
    assert {"My codec", "bmshj2018-hyperprior-mse", NDIC, BALLE} <= labels  # added to the shipped ones
    figs = json.loads((out / "figures.json").read_text())
    fig = {kind: next(v for k, v in figs.items() if k.startswith(f"kitti-stereo__ndic_{kind}.")) for kind in ("psnr", "msssim")}
    drawn = {s["label"] for s in fig["psnr"]}
    assert "My codec [exact, bpp]" in drawn and any(l.startswith(NDIC) for l in drawn)
    from leaderboard.figures import family

    colours = {family(s["method"]): s["colour"] for s in fig["psnr"]}
    assert len(set(colours.values())) == len(colours)  # one colour per method within a figure
    assert colours["balle2018"] == {s["method"]: s["colour"] for s in fig["msssim"]}["balle2018"]


def test_compressai_file_without_protocol_is_listed_with_the_fix(tmp_path):
    d = tmp_path / "pub"
    d.mkdir()
    (d / "x.json").write_text(json.dumps(dict(EVAL_MODEL, **LABELS)))
    out = tmp_path / "lb"
    build([tmp_path / "none"], out, protocols=[KITTI], extra_published=[d])
    md = (out / "README.md").read_text()
    assert "x.json" in md[md.index("## Skipped files"):] and "--protocol NAME" in md


def _with_images(r: dict, path, noise: float, seed: int) -> None:
    """Per-image rows around each point's mean (4 images), as the runner writes them, and the result beside them."""
    import random

    rng = random.Random(seed)
    lines = ["image,source,rate_point,bpp,psnr"]
    for p in r["points"]:
        offs = [rng.uniform(-noise, noise) for _ in range(4)]
        offs = [o - sum(offs) / 4 for o in offs]
        for i, o in enumerate(offs):
            lines.append(f"img{i},0,{p['rate_point']},{p['bpp'] * (1 + o / 10):.6f},{p['psnr'] + o:.6f}")
    r["per_image_csv"] = path.stem + ".csv"
    write_json(path, r)
    path.with_suffix(".csv").write_text("\n".join(lines) + "\n")


def test_bootstrap_ci_and_seed_spread(tmp_path):
    from tests.test_leaderboard import BETTER, PROTO

    d = tmp_path / "res" / "stereo" / "pairs"
    _with_images(make_result("jpeg", ANCHOR), d / "jpeg.json", 0.5, 0)
    for seed in (0, 1):
        r = make_result("better", [(b * (1 + 0.05 * seed), q) for b, q in BETTER], scenario="decoder_side_info")
        r["training"] = {"budget": "paper", "steps": 10, "seed": seed}
        _with_images(r, tmp_path / "res" / f"s{seed}" / "better.json", 0.5, seed + 1)
    out = tmp_path / "lb"
    build([tmp_path / "res"], out, [tmp_path / "none"])
    rows = table_rows(section((out / "README.md").read_text(), PROTO), "### Measured by this suite")
    better = [r for r in rows if r["method"].startswith("better")]
    assert len(better) == 2
    for r in better:
        lo, hi = (float(x) for x in re.findall(r"[+-]\d+\.\d", r["95 % CI (bootstrap)"]))
        bd_value = float(r["BD-rate vs jpeg"].split()[0])
        assert lo <= bd_value <= hi and hi - lo < 20
        assert r["over seeds"].startswith("2 seeds: ")


def test_bench_validate_reads_our_compressai_export(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    path = tmp_path / "export.json"
    write_json(path, to_compressai_json(make_result("jpeg", ANCHOR)))
    out = CliRunner().invoke(app, ["validate", str(path)])
    assert out.exit_code == 0 and "compressai_result" in out.output


MEASURED = Path(__file__).resolve().parent.parent / "measured" / "stereo" / "kitti-ndic"
PAIR = ("jpeg", "balle2018.steps2500")  # committed results with per-image CSVs; the second overlaps the first by 7 %


@pytest.fixture(scope="module")
def committed_pair(tmp_path_factory):
    """The two committed results (with their CSVs) in a results tree of their own, and the leaderboard built on it."""
    import shutil

    tmp = tmp_path_factory.mktemp("pair")
    tree = tmp / "measured" / "stereo" / "kitti-ndic"
    tree.mkdir(parents=True)
    for stem in PAIR:
        for ext in (".json", ".csv"):
            shutil.copyfile(MEASURED / (stem + ext), tree / (stem + ext))
    build([tmp / "measured"], tmp / "lb")
    with open(tmp / "lb" / "leaderboard.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "balle2018 (steps2500)" and r["m_anchor"] == "jpeg"]
    assert len(rows) == 1, "the leaderboard lists the committed result once, against jpeg"
    return tmp, tree, rows[0]


def test_bench_compare_prints_the_leaderboards_interval_for_two_measured_results(committed_pair, monkeypatch):
    """Acceptance (issue 27): the same BD-rate, 95 % bootstrap interval and flags as the leaderboard's row."""
    from cli.main import app

    tmp, tree, lb = committed_pair
    monkeypatch.chdir(tmp)
    protocol = json.loads((tree / "jpeg.json").read_text())["protocol"]
    out = CliRunner().invoke(app, ["compare", str(tree / "jpeg.json"), str(tree / "balle2018.steps2500.json"),
                                   "--protocol", protocol, "--csv", "bd.csv", "--latex", "bd.tex", "--out", "cmp.png"])
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith("balle2018 (steps2500) vs jpeg (PSNR)"))
    assert lb["m_bd_rate_ci"] and f"(95 % CI {lb['m_bd_rate_ci']}, bootstrap over test images)" in line
    assert f"BD-rate {float(lb['m_bd_rate']):+.1f} %" in line and f"BD-PSNR {float(lb['m_bd_psnr']):+.2f} dB" in line
    assert lb["m_flags"] and "poor overlap (7% < 75%)" in lb["m_flags"] and lb["m_flags"] in line
    with open(tmp / "bd.csv", newline="", encoding="utf-8") as f:
        mine = {r["curve"]: r for r in csv.DictReader(f)}
    row = mine["balle2018 (steps2500)"]
    assert float(row["bd_rate_pct"]) == pytest.approx(float(lb["m_bd_rate"]), abs=1e-4)  # the CSV rounds
    assert f"[{float(row['bd_rate_ci95_low_pct']):+.1f}, {float(row['bd_rate_ci95_high_pct']):+.1f}] %" == lb["m_bd_rate_ci"]
    assert row["flags"] == lb["m_flags"] and mine["jpeg"]["anchor"] == "True"
    tex = (tmp / "bd.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\bfseries jpeg" in tex  # the anchor row in bold
    assert lb["m_bd_rate_ci"].replace(" %", "") in tex and "(7\\% $<$ 75\\%)" in tex


def test_compare_figure_highlights_the_anchor_on_a_log_rate_axis(committed_pair, monkeypatch):
    import matplotlib

    from leaderboard.compare_cmd import compare, write_figure

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    tmp, tree, _ = committed_pair
    monkeypatch.chdir(tmp)
    protocol = json.loads((tree / "jpeg.json").read_text())["protocol"]
    a, rows = compare([str(tree / "balle2018.steps2500.json")], protocol, anchor=str(tree / "jpeg.json"))
    assert [r.is_anchor for r in rows] == [True, False]  # the anchor is drawn and tabled even when not listed first
    drawn = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, *args, **kwargs):
        ax = fig.axes[0]
        drawn.update(scale=ax.get_xscale(), lines={l.get_label(): (l.get_color(), l.get_linewidth()) for l in ax.lines})
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    paths = write_figure(protocol, "bpp", [r.curve for r in rows], tmp / "log.png", anchor=a, log_rate=True)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and drawn["scale"] == "log"
    anchor_label = next(k for k in drawn["lines"] if k.endswith("(anchor)"))
    assert anchor_label.startswith("jpeg") and drawn["lines"][anchor_label][0] == "black"
    assert all(w < drawn["lines"][anchor_label][1] for k, (_, w) in drawn["lines"].items() if k != anchor_label)


def test_compare_aliases_protocol_names_as_the_leaderboard(committed_pair):
    """stereo/kitti-ndic applies kitti-stereo/ndic's preprocessing to other samples (its results record it): either name
    gives the measured curves beside the published ones, each said to be measured on other samples."""
    from leaderboard.compare_cmd import compare, report_lines

    tmp, tree, _ = committed_pair
    facts = json.loads((tree / "jpeg.json").read_text())["protocol_facts"]
    if not facts.get("alias_of"):
        pytest.skip("the committed results record no alias")
    for protocol in (facts["alias_of"], facts["name"]):
        a, rows = compare(["balle2018 (steps2500)", "jpeg", BALLE], protocol, anchor=BALLE, results=[tmp / "measured"])
        assert [r.curve.origin for r in rows] == ["measured", "measured", "published"] and a.label == BALLE
    text = "\n".join(report_lines(a, rows))
    assert f"jpeg: measured under {facts['name']}, {facts['alias_of']}'s preprocessing" in text
    assert "(not the protocol's test split)" in text
