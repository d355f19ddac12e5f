"""Leaderboard build on tiny hand-made result files: BD-rate sign, no-overlap, published rows, figures, exports."""
from __future__ import annotations

import csv
import functools
import json
import math
from pathlib import Path

import pytest

from benchmark.evaluation.record import suite_facts as _suite_facts
from benchmark.results.schema import validate_result, write_json
from leaderboard.build import build

PROTO = "stereo/pairs"  # registered, anchor "jpeg", fixed rates 0.1 / 0.25 / 0.5


@functools.lru_cache(maxsize=1)
def suite_facts() -> dict:
    """The suite's facts as `bench leaderboard` passes them (benchmark.evaluation.record.suite_facts)."""
    return _suite_facts()


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    """Pay the one-off import cost (protocol registry, matplotlib, seaborn) once, outside the timed tests."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import seaborn  # noqa: F401

    from benchmark.contract.registry import discover

    discover()


def make_result(method: str, curve: list[tuple[float, float]], *, protocol: str = PROTO, scenario: str = "separate",
                variant: str | None = None, band: float | None = None) -> dict:
    """A minimal valid result with the runner's field names (per_source band for distributed results) and, like the
    runner writes them, the facts of its protocol where the suite defines it."""
    points = []
    for i, (bpp, psnr) in enumerate(curve):
        mse = 10 ** (-psnr / 10)
        ms = 1 - 10 ** (-psnr / 25)
        p = {"rate_point": f"q={i}", "bpp": bpp, "bpp_payload": bpp * 0.97, "bpp_estimated": None, "psnr": psnr,
             "mse": mse, "ms_ssim": ms, "ms_ssim_db": -10 * math.log10(1 - ms), "encode_s": 0.01, "decode_s": 0.01,
             "n_images": 4}
        if band is not None:
            p["per_source"] = [{"source": 0, "bpp": bpp, "psnr": psnr - band, "ms_ssim": ms},
                               {"source": 1, "bpp": bpp, "psnr": psnr + band, "ms_ssim": ms}]
            p["psnr_min"], p["psnr_max"] = psnr - band, psnr + band
        points.append(p)
    result = {
        "schema_version": 1, "kind": "result", "method": method, "variant": variant, "dataset": "stereo",
        "protocol": protocol, "scenario": scenario, "rate_unit": "bpp",
        "rate_accounting": {"rate_source": "bytes of the container", "divided_by": "pixels of x",
                            "side_information": "not counted"},
        "metrics": {"psnr": "per image then mean"}, "points": points, "per_image_csv": None, "training": None,
        "environment": {"versions": {}, "device": "cpu", "command": "test", "git_commit": None},
        "created": "2024-01-01T00:00:00+00:00",
    }
    facts = suite_facts()["protocols"].get(protocol)
    if facts:
        result["protocol_facts"] = facts
    return validate_result(result)


ANCHOR = [(0.1, 28.0), (0.2, 30.0), (0.4, 32.0), (0.8, 34.0)]
BETTER = [(b * 0.7, q) for b, q in ANCHOR]  # same quality for 30 % fewer bits
DISJOINT = [(2.0, 40.0), (4.0, 44.0)]  # higher than every anchor point in rate and quality


def published(tmp: Path, **over) -> Path:
    d = tmp / "pub"
    d.mkdir(exist_ok=True)
    curve = {"kind": "published_curve", "schema_version": 1, "method": "paper_codec", "label": "Paper codec",
             "protocol": PROTO, "scenario": "decoder_side_info", "metric": "psnr", "rate": "bpp",
             "points": [{"bpp": 0.1, "value": 29.0}, {"bpp": 0.3, "value": 32.0}, {"bpp": 0.6, "value": 34.0}],
             "source": "Somebody et al., Fig. 2", "provenance": "exact", "accuracy": "exact", "notes": "test", **over}
    (d / f"{curve['method']}.json").write_text(json.dumps(curve))
    return d


def table_rows(md: str, heading: str) -> list[dict[str, str]]:
    """Rows of the first Markdown table after `heading`, as dicts keyed by header."""
    lines = md.splitlines()
    i = lines.index(heading)
    while not lines[i].startswith("|"):
        i += 1
    header = [c.strip() for c in lines[i].strip("|").split("|")]
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def section(md: str, protocol: str) -> str:
    start = md.index(f"## {protocol}\n")
    nxt = md.find("\n## ", start + 3)
    return md[start:] if nxt < 0 else md[start:nxt]


@pytest.fixture
def results_dir(tmp_path):
    d = tmp_path / "results" / "stereo" / "pairs"
    write_json(d / "jpeg.json", make_result("jpeg", ANCHOR))
    write_json(d / "better.json", make_result("better", BETTER, scenario="decoder_side_info"))
    write_json(d / "far.json", make_result("far", DISJOINT))
    return tmp_path / "results"


def _row(rows, name):
    found = [r for r in rows if name in r[next(iter(r))]]
    assert len(found) == 1, (name, rows)
    return found[0]


def test_build_table_bd_sign_no_overlap_and_published(tmp_path, results_dir):
    out = tmp_path / "out"
    written = build([results_dir], out, [published(tmp_path)])
    md = (out / "README.md").read_text()
    sec = section(md, PROTO)
    assert "`jpeg` (the protocol's anchor)" in sec

    rows = table_rows(sec, "### Measured by this suite")
    assert [r["method"].strip("*") for r in rows] == ["better", "far", "jpeg"]
    bd_col = next(k for k in rows[0] if k.startswith("BD-rate"))
    bdp_col = next(k for k in rows[0] if k.startswith("BD-PSNR"))
    better = _row(rows, "better")
    assert better[bd_col].startswith("-") and abs(float(better[bd_col].split()[0]) + 30.0) < 1.0
    assert better[bdp_col].startswith("+")
    assert _row(rows, "far")[bd_col] == "no overlap"
    assert _row(rows, "jpeg")[bd_col] == "anchor"
    assert better["PSNR @ 0.25 bpp"] != "—" and _row(rows, "far")["PSNR @ 0.25 bpp"] == "—"

    # published rows: their own table, marked, BD against the measured anchor marked as such
    pub = table_rows(sec, "### Published (not measured by this suite)")
    assert len(pub) == 1 and pub[0]["origin"] == "published (exact)"
    bd_pub = next(k for k in pub[0] if k.startswith("BD-rate vs measured"))
    assert bd_pub.endswith("†") and pub[0][bd_pub][0] in "+-"
    assert "Somebody et al., Fig. 2" in sec
    assert "Paper codec" not in "\n".join(sec.split("### Published")[0].splitlines())

    for name in ("stereo__pairs_psnr.svg", "stereo__pairs_msssim.svg"):
        path = out / name
        assert path in written and path.read_text(encoding="utf-8").startswith("<svg xmlns=")
        assert f"({name})" in sec
    assert "<table class=\"lb ranked\"" in (out / "index.html").read_text() and 'src="stereo__pairs_psnr.svg"' in (out / "index.html").read_text()

    with open(out / "points.csv", newline="") as f:
        pts = list(csv.DictReader(f))
    assert sum(r["origin"] == "measured" for r in pts) == 4 + 4 + 2
    assert sum(r["origin"] == "published" for r in pts) == 3

    export = json.loads((out / "compressai" / "stereo__pairs__better.json").read_text())
    assert export["name"] == "better" and export["results"]["bpp"] == [b for b, _ in BETTER]


def test_invalid_files_are_listed_not_fatal(tmp_path, results_dir):
    bad = make_result("broken", ANCHOR)
    del bad["points"][0]["bpp"]
    (results_dir / "broken.json").write_text(json.dumps(bad))
    (results_dir / "garbage.json").write_text("{not json")
    (results_dir / "weights").mkdir()
    # a weights manifest carries "points" and "protocol" like a result; folders of weights are never read
    (results_dir / "weights" / "manifest.json").write_text(json.dumps({"method": "x", "points": ["a"], "protocol": "p"}))
    (results_dir / "other.json").write_text(json.dumps({"kind": "something else"}))
    out = tmp_path / "out"
    build([results_dir], out, [tmp_path / "no-published-here"])
    md = (out / "README.md").read_text()
    skipped = md[md.index("## Skipped files"):]
    assert "broken.json" in skipped and "points[0].bpp" in skipped
    assert "garbage.json" in skipped and "not readable JSON" in skipped
    assert "manifest.json" not in skipped and "1 other JSON file" in md
    assert "| better |" in md  # the valid files still make the table


def test_kitti_section_without_measured_results(tmp_path):
    out = tmp_path / "out"
    build([tmp_path / "empty"], out, protocols=["kitti-stereo/ndic"], suite=suite_facts())  # shipped curves only
    md = (out / "README.md").read_text()
    sec = section(md, "kitti-stereo/ndic")
    assert "No measured results for this protocol yet" in sec
    pub = table_rows(sec, "### Published (not measured by this suite)")
    labels = {r["published curve"] for r in pub}
    assert {"NDIC (ours+Ballé2018)", "NDIC-CAM (cross-attention)", "Neural DSC (prior bpp)", "BPG (NDIC authors)"} <= labels
    assert {r["origin"] for r in pub} == {"published (exact)", "published (digitized)"}
    assert (out / "kitti-stereo__ndic_psnr.svg").exists() and (out / "kitti-stereo__ndic_msssim.svg").exists()
    ours = {r["our curve"] for r in table_rows(sec, "### Reported vs reproduced")}  # the suite's facts name the dataset
    assert "missing: `bench run --method ndic_balle2018 --dataset kitti --protocol kitti-stereo/ndic --budget paper`" in ours
    assert "## mnist/drasic-class" not in md


def test_anchor_falls_back_to_jpeg_and_band_is_drawn(tmp_path):
    proto = "middlebury-sample/stereo"  # anchor balle2018, not measured here
    d = tmp_path / "res"
    write_json(d / "jpeg.json", make_result("jpeg", ANCHOR, protocol=proto))
    write_json(d / "dist.json", make_result("dist", BETTER, protocol=proto, scenario="distributed", band=0.5))
    out = tmp_path / "out"
    written = build([d], out, [tmp_path / "none"])
    sec = section((out / "README.md").read_text(), proto)
    assert "`balle2018` has no measured result here, so `jpeg` is used instead" in sec
    rows = table_rows(sec, "### Measured by this suite")
    assert _row(rows, "dist")[next(k for k in rows[0] if k.startswith("BD-rate"))].startswith("-")
    assert out / "middlebury-sample__stereo_psnr.svg" in written


def test_quick_trained_anchor_gives_way_to_a_ranked_classical_one(tmp_path):
    """BD numbers against a quick-budget (unranked) learned anchor would compare with an unconverged model: a
    ranked jpeg is the anchor instead, and without one the learned anchor is kept and labelled unranked."""
    proto = "middlebury-sample/stereo"  # the protocol's anchor is balle2018
    quick = make_result("balle2018", [(b, q - 2.0) for b, q in ANCHOR], protocol=proto)
    quick["training"] = {"budget": "quick", "steps": 500}
    quick = validate_result(quick)
    d = tmp_path / "res"
    write_json(d / "balle2018.json", quick)
    write_json(d / "jpeg.json", make_result("jpeg", ANCHOR, protocol=proto))
    build([d], tmp_path / "out", [tmp_path / "none"])
    sec = section((tmp_path / "out" / "README.md").read_text(), proto)
    assert "Anchor for BD metrics: `jpeg`" in sec and "is measured only unranked" in sec
    (d / "jpeg.json").unlink()
    build([d], tmp_path / "out2", [tmp_path / "none"])
    sec = section((tmp_path / "out2" / "README.md").read_text(), proto)
    assert "Anchor for BD metrics: `balle2018` (the protocol's anchor; unranked: learned at the quick budget" in sec


def test_gaussian_section_hook_is_used(tmp_path, monkeypatch):
    seen = {}

    def gaussian_section(results, out_dir):
        seen["n"] = len(results)
        return "custom gaussian markdown"

    from leaderboard import sections

    sections.protocol_section_for("gaussian/wz")  # the built-in sections registered first, then replaced here
    monkeypatch.setitem(sections.PROTOCOL_SECTIONS, "gaussian/wz", gaussian_section)
    d = tmp_path / "res"
    r = make_result("scalar", [(0.5, 10.0), (1.0, 16.0)], protocol="gaussian/wz")
    r["rate_unit"] = "bits/sample"
    write_json(d / "scalar.json", r)
    out = tmp_path / "out"
    build([d], out, [tmp_path / "none"])
    md = (out / "README.md").read_text()
    assert seen == {"n": 1} and "custom gaussian markdown" in section(md, "gaussian/wz")


def test_partial_run_is_listed_apart_unless_rank_all(tmp_path):
    d = tmp_path / "res"
    write_json(d / "jpeg.json", make_result("jpeg", ANCHOR))
    short = make_result("webp", BETTER)
    short["coverage"] = {"samples": 1, "split_samples": 4, "limit": 1, "skipped": 0, "complete": False}
    write_json(d / "webp.json", short)
    for rank_all in (False, True):
        out = tmp_path / f"out{rank_all}"
        build([d], out, [tmp_path / "none"], rank_all=rank_all)
        sec = section((out / "README.md").read_text(), PROTO)
        ranked = {r["method"] for r in table_rows(sec, "### Measured by this suite")}
        if rank_all:
            assert ranked == {"jpeg", "webp"}
            row = _row(table_rows(sec, "### Measured by this suite"), "webp")
            assert row["ranking"].startswith("ranked on request") and "--limit 1" in row["ranking"]
        else:
            assert ranked == {"jpeg"}
            row = _row(table_rows(sec, "### Measured, not ranked (pipeline checks, learning-curve points, partial runs)"), "webp")
            assert row["coverage"] == "1/4 (--limit 1)" and "--limit 1" in row["why not ranked"]


def test_protocol_facts_are_read_from_the_result_files(tmp_path):
    """A protocol the suite does not define is shown as its results describe it (anchor, fixed rates,
    description); one that nothing describes is built with the defaults, and the page says so."""
    d = tmp_path / "res"
    facts = {"name": "lab/custom", "version": 1, "dataset": "lab", "description": "A protocol of our own",
             "rate_unit": "bpp", "anchor": "mycodec", "fixed_bpps": [0.3]}
    for method, curve in (("mycodec", ANCHOR), ("other", BETTER)):
        r = make_result(method, curve, protocol="lab/custom")
        r["protocol_facts"] = facts
        write_json(d / f"{method}.json", validate_result(r))
    write_json(d / "bare" / "jpeg.json", make_result("jpeg", ANCHOR, protocol="lab/bare"))
    out = tmp_path / "out"
    build([d], out, [tmp_path / "none"])
    md = (out / "README.md").read_text()
    sec = section(md, "lab/custom")
    assert "> A protocol of our own" in sec and "Anchor for BD metrics: `mycodec` (the protocol's anchor)." in sec
    assert "PSNR @ 0.3 bpp" in table_rows(sec, "### Measured by this suite")[0]
    assert "No result file or suite description gives the facts of protocol `lab/bare`" in section(md, "lab/bare")


def test_reported_vs_reproduced_pairs_published_curves_with_suite_methods_by_their_key(tmp_path):
    """`paper.codec` is reproduced by the suite method `paper_codec` (measured here); `lab.distributed` by `lab`, a
    distributed method the suite's facts name (not run: the row gives the command, with the protocol's dataset);
    `lab.joint` by nothing (`lab` does not run joint)."""
    pub = published(tmp_path, method="paper.codec")
    published(tmp_path, method="lab.distributed", label="Lab distributed", scenario="distributed")
    published(tmp_path, method="lab.joint", label="Lab joint", scenario="joint")
    d = tmp_path / "res"
    write_json(d / "jpeg.json", make_result("jpeg", ANCHOR))
    write_json(d / "paper_codec.json", make_result("paper_codec", BETTER, scenario="decoder_side_info"))
    suite = {"protocols": {}, "methods": {"lab": {"name": "lab", "scenario": "distributed"}}}
    out = tmp_path / "out"
    build([d], out, [pub], suite=suite)
    rows = table_rows(section((out / "README.md").read_text(), PROTO), "### Reported vs reproduced")
    assert [r["published curve"] for r in rows] == ["Lab distributed", "Paper codec"]
    assert rows[0]["our curve"] == "missing: `bench run --method lab --dataset stereo --protocol stereo/pairs --budget paper`"
    assert rows[1]["our curve"] == "paper_codec" and rows[1]["BD-PSNR ours − published"].endswith("dB")


def test_building_the_leaderboard_imports_no_method_dataset_or_registry(tmp_path, results_dir):
    import subprocess
    import sys

    code = ("import sys; from leaderboard.build import build; build([sys.argv[1]], sys.argv[2]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('methods', 'baselines', 'datasets', 'cli')"
            " or m == 'benchmark.contract.registry'))")
    out = subprocess.run([sys.executable, "-c", code, str(results_dir), str(tmp_path / "out")], capture_output=True,
                         text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------- issue 27: one protocol, figures that ship, tables
KITTI_FOLDER = "stereo/kitti-ndic"  # kitti-stereo/ndic's preprocessing on a stereo folder's own pairs


def _learning_point(method: str, curve, steps: int, scenario: str = "separate") -> dict:
    r = make_result(method, curve, protocol=KITTI_FOLDER, scenario=scenario, variant=f"steps{steps}")
    r["training"] = {"budget": "quick", "seed": 0, "steps": steps}
    r["learning_curve"] = {"steps": steps}
    r["coverage"] = {"samples": 4, "split_samples": 4, "limit": None, "skipped": 0, "complete": True}
    return validate_result(r)


def test_results_on_other_samples_sit_in_the_published_protocols_section(tmp_path):
    """A result whose protocol applies kitti-stereo/ndic's preprocessing to other samples (protocol_facts.alias_of)
    is shown in kitti-stereo/ndic's section, not in a section of its own: apart from the test-split tables, with
    its coverage, in the figures beside the published curves (only the most-trained learning-curve point), and in
    reported vs reproduced with its BD-PSNR, its steps and the flag "not the protocol's test split"."""
    facts = suite_facts()["protocols"][KITTI_FOLDER]
    assert facts["alias_of"] == "kitti-stereo/ndic" and facts["alias_test_split"] is False
    res = tmp_path / "res" / "stereo" / "kitti-ndic"
    write_json(res / "jpeg.json", make_result("jpeg", [(0.1, 20.0), (0.2, 23.0), (0.4, 26.0)], protocol=KITTI_FOLDER))
    write_json(res / "b100.json", _learning_point("balle2018", [(0.1, 18.0), (0.3, 22.0)], 100))
    write_json(res / "b900.json", _learning_point("balle2018", [(0.08, 21.0), (0.25, 24.5)], 900))
    out = tmp_path / "out"
    build([tmp_path / "res"], out, protocols=["kitti-stereo/ndic"], suite=suite_facts())
    md = (out / "README.md").read_text(encoding="utf-8")
    assert f"## {KITTI_FOLDER}" not in md and "## kitti-stereo/ndic" in md
    sec = md.split("## kitti-stereo/ndic", 1)[1]
    assert f"### Measured on other samples: `{KITTI_FOLDER}` (not the protocol's test split)" in sec
    assert "4 test samples" in sec
    with open(out / "leaderboard.csv", newline="", encoding="utf-8") as f:
        rep = [r for r in csv.DictReader(f) if r["table"] == "reproduced"]
    ours = next(r for r in rep if r["label"].startswith("Ballé2018"))
    assert ours["ours"] == "balle2018 (steps900)" and "900 steps" in ours["training"] and ours["steps"] == "900"
    assert math.isfinite(float(ours["bd_psnr"]))
    assert "not the protocol's test split" in ours["flag"] and "not the protocol's test split" in ours["coverage"]
    assert "Reported vs reproduced" in sec and ours["flag"].split(";")[0] in sec
    drawn = json.loads((out / "figures.json").read_text(encoding="utf-8"))["kitti-stereo__ndic_psnr.svg"]
    names = [s["label"] for s in drawn if s["measured"]]
    assert any("balle2018 (900 steps" in n for n in names) and not any("100 steps" in n for n in names)
    assert any(not s["measured"] for s in drawn)  # the papers' curves in the same figure


def test_svg_figures_are_byte_stable_and_step_labels_never_overlap():
    from leaderboard.svg import Figure, Panel, Series, _Box, _limits, _point_labels

    xs = [0.30 + 0.001 * i for i in range(12)]
    ys = [20 + 0.05 * i for i in range(12)]
    panel = Panel("bpp", "PSNR", series=[Series(xs, ys, "#123456", "a", labels=[f"{100 * i:,}" for i in range(12)])])
    fig = Figure("t <&>", [panel])
    text = fig.render()
    assert text == Figure("t <&>", [panel]).render() and "t &lt;&amp;&gt;" in text
    import re

    box = _Box(0, 0, 620, 380, _limits(panel))
    rects = []
    for t in _point_labels(panel, box, 9):
        x, y = (float(v) for v in re.search(r'x="([\d.-]+)" y="([\d.-]+)"', t).groups())
        w = 0.58 * 9 * len(re.search(r">([^<]*)</text>", t).group(1))
        rects.append((x, y - 9, x + w, y))
    assert 1 <= len(rects) <= 12
    assert not any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                   for i, a in enumerate(rects) for b in rects[i + 1:])


def test_counts_print_whole_and_https_sources_link():
    from leaderboard.formatting import csv_text
    from leaderboard.page import _inline, link_https
    from leaderboard.tables import fmt_cell

    assert fmt_cell("params", 2552710.0) == "2,552,710" and csv_text(2552710.0) == "2552710"
    assert csv_text(0.123456789) == "0.123457"
    assert link_https("see https://example.org/a.pdf.") == 'see <a href="https://example.org/a.pdf">https://example.org/a.pdf</a>.'
    assert "<a" not in _inline("javascript:alert(1) http://plain.example ftp://x")
    assert _inline("[x](javascript:alert(1))").count("<a") == 0


def test_every_html_table_sorts_and_filters_and_training_sorts_by_steps(tmp_path):
    """index.html: a Markdown table gets the filter box and the sortable class of the leaderboard's own tables; a
    training cell carries its steps as the sort key (the browser test clicks them)."""
    from leaderboard.page import render

    res = tmp_path / "res" / "stereo" / "kitti-ndic"
    write_json(res / "jpeg.json", make_result("jpeg", ANCHOR, protocol=KITTI_FOLDER))
    write_json(res / "b1000.json", _learning_point("balle2018", [(0.1, 27.0), (0.3, 31.0)], 1000))
    out = tmp_path / "out"
    build([tmp_path / "res"], out, suite=suite_facts())
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'data-col="training" data-value="quick, 1,000 steps" data-sort="1000"' in page
    md_page = render("| a | b |\n|---|---|\n| 1 | x |\n", {}, "t")
    assert '<table class="lb md" id="table-md-1">' in md_page and 'data-table="table-md-1"' in md_page


def test_a_protocol_alias_is_a_safe_protocol_name():
    from benchmark.errors import ResultSchemaError

    r = make_result("jpeg", ANCHOR, protocol=KITTI_FOLDER)
    for bad in ("../../etc", "a/<script>", ""):
        r["protocol_facts"] = {**r["protocol_facts"], "alias_of": bad}
        with pytest.raises(ResultSchemaError, match="alias_of"):
            validate_result(r)
    r["protocol_facts"]["alias_of"], r["protocol_facts"]["alias_test_split"] = "kitti-stereo/ndic", "no"
    with pytest.raises(ResultSchemaError, match="alias_test_split"):
        validate_result(r)


def test_a_full_rebuild_removes_what_a_removed_result_left_and_nothing_else(tmp_path, results_dir):
    """files.json lists what a build wrote; a full rebuild removes the figures and CompressAI exports of results that
    left the results folders, and nothing it did not write itself (a user's file, a hostile manifest entry)."""
    out = tmp_path / "out"
    first = {p.relative_to(out).as_posix() for p in build([results_dir], out, [])}
    assert json.loads((out / "files.json").read_text()) == sorted(first - {"files.json"})
    gone = [n for n in first if n.startswith("compressai/") and "__better" in n]
    assert gone and all((out / n).is_file() for n in gone)
    (out / "mine.svg").write_text("<svg/>")  # not the build's: stays
    outside = tmp_path / "outside.svg"
    outside.write_text("<svg/>")
    manifest = json.loads((out / "files.json").read_text())
    (out / "files.json").write_text(json.dumps(manifest + ["../outside.svg", "README.md"]))  # hostile entries
    (results_dir / "stereo" / "pairs" / "better.json").unlink()
    second = {p.relative_to(out).as_posix() for p in build([results_dir], out, [])}
    assert not any((out / n).exists() for n in gone) and not set(gone) & second
    assert (out / "mine.svg").is_file() and outside.is_file() and (out / "README.md").is_file()
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == second | {"mine.svg"}
    # a partial build (one protocol) removes nothing and keeps the full list
    build([results_dir], out, [], protocols=["stereo/pairs"])
    assert set(json.loads((out / "files.json").read_text())) >= second - {"files.json"}
