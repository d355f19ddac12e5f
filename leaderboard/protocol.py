"""One protocol's section of the leaderboard, in four parts:

- measured: the anchors, the ranked and the unranked tables of this suite's results, and the method-specific
  tables registered in `leaderboard.sections` (or, instead of all of it, the section the protocol registered);
  then, apart, the results of the protocols that apply this one's preprocessing and metrics to other samples
  (`facts.Alias`), each with its coverage and whether it is the test split, compared among themselves only;
- published: the published curves, never mixed with measured rows, with their references;
- reproduced: each published curve of a method this suite implements beside our curve of it (a result on other
  samples where there is none on the test split: the most-trained one, flagged);
- figures: PSNR- and MS-SSIM-vs-rate plots of every curve (of learning-curve points, the most-trained of each
  method; the learning-curve section shows the others), drawn as SVG (`leaderboard.svg`).

`ctx` carries what the whole build shares: the tables ("tables": key -> page.Table) and figure data ("figures":
png name -> series) collected for index.html, leaderboard.csv and figures.json; the figure options ("figsize",
"axes", "colours"); "rank_all"; the suite's facts ("suite", see `leaderboard.facts`) and the suite's methods
("methods": name -> scenarios)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.results.schema import atomic_write_text
from benchmark.safety.safenames import safe_path

from . import sections
from . import tables as tbl
from .anchors import choose_anchor, published_anchor_label, published_anchor_text
from .curves import RDCurve, curve_from_published, curve_from_result, merge_published
from .facts import ProtocolInfo, protocol_info
from .figures import series_data, svg
from .inputs import Curve, Measured, file_stem
from .page import TABLE_MARKER, Table

BD_TEXT = ("BD-rate: mean rate difference at equal quality (negative = fewer bits than the anchor); BD-PSNR: mean "
           "PSNR difference at equal rate (Bjøntegaard, PCHIP interpolation, overlapping interval only; MS-SSIM in dB). "
           "95 % CI: bootstrap over test images (200 resamples, seed 0) where both results have per-image rows. PSNR at "
           "fixed rates is interpolated in log-rate; — outside a curve's range. Coverage: test samples coded / in the "
           "split. Only results that need no training or were trained at the method's `paper` budget, on the whole "
           "test split, are ranked; every other result is listed apart.")
PUBLISHED_NOTE = ("† Published curve against the suite's measured anchor, computed only where the curves overlap: "
                  "different runs and possibly a different rate type (`bpp` = coded bits, `bpp_estimated` = likelihood "
                  "estimate, `bpp_uniform` = fixed-length code, `bpp_prior` = ideal code length under a prior). Read it "
                  "as indicative, not as a measurement.")


@dataclass
class Section:
    """What the parts of one protocol's section read."""

    info: ProtocolInfo
    measured: list[Measured]
    pub: list[RDCurve]  # the published curves, one per method, label, rate type and M
    out_dir: Path
    ctx: dict[str, Any]
    anchor: Measured | None
    pub_anchor: str | None  # how the headers name the published anchor
    others: dict[str, list[Measured]] = field(default_factory=dict)  # alias protocol -> its results (other samples)

    def table(self, kind: str, rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
        """Register a table for the page and the CSV; return its marker line."""
        key = f"{file_stem(self.info.name)}--{kind}".replace("/", "-").replace(".", "-")
        self.ctx["tables"][key] = Table(key, tbl.frame(rows), cols, kind, tbl.fmt_cell)
        return TABLE_MARKER.format(key)

    @property
    def anchor_key(self) -> str | None:
        return self.anchor.key if self.anchor else None


def protocol_section(name: str, measured: list[Measured], curves: list[Curve], out_dir: Path,
                     ctx: dict[str, Any] | None = None, others: dict[str, list[Measured]] | None = None
                     ) -> tuple[list[str], list[Path]]:
    """Markdown lines and files of one protocol (module docstring); `others`: the results of the protocols that
    alias this one (other samples), by protocol."""
    ctx = {} if ctx is None else ctx
    ctx.setdefault("tables", {})
    ctx.setdefault("figures", {})
    info = protocol_info(name, [m.result for m in measured], ctx.get("suite"))
    lines = [f"## {name}", ""]
    if info.description:
        lines += [f"> {info.description}", ""]
    if info.note:
        lines += [f"_{info.note}_", ""]
    custom, note, written = _custom_section(name, measured, out_dir)
    if note:
        lines += [f"_Note: {note}_", ""]
    pub = merge_published([curve_from_published(c.curve) for c in curves])
    anchor, anchor_text = choose_anchor(measured, info)
    sec = Section(info, measured, pub, out_dir, ctx, anchor, published_anchor_label(name, pub), dict(others or {}))
    if custom is not None:
        lines += [custom.strip(), ""]
    else:
        lines += [anchor_text, ""] + published_anchor_text(name, pub) + [BD_TEXT, ""] + measured_part(sec)
    for other, ms in sorted(sec.others.items()):
        lines += other_samples_part(sec, other, ms)
    if pub:
        lines += published_part(sec) + reproduced_part(sec)
    if custom is None:
        figure_lines, figures = figures_part(sec)
        lines += figure_lines
        written += figures
    return lines, written


# ---------------------------------------------------------------- measured
def _custom_section(name: str, measured: list[Measured], out_dir: Path) -> tuple[str | None, str, list[Path]]:
    """The section the protocol registered (leaderboard.sections), the note when it failed, and the files it wrote;
    (None, "", []) when it registered none."""
    fn = sections.protocol_section_for(name)
    if fn is None:
        return None, "", []
    before = _snapshot(out_dir)
    try:
        custom, note = str(fn([m.result for m in measured], out_dir)), ""
    except Exception as exc:  # a bug there must not take the whole leaderboard down, but it is shown
        custom, note = None, f"the `{name}` section failed ({type(exc).__name__}: {exc}); the generic table is shown."
    after = _snapshot(out_dir)
    return custom, note, sorted(p for p, t in after.items() if before.get(p) != t)


def _snapshot(d: Path) -> dict[Path, tuple[float, int]]:
    if not d.is_dir():
        return {}
    return {p: (p.stat().st_mtime, p.stat().st_size) for p in d.rglob("*") if p.is_file()}


def measured_part(sec: Section, level: str = "###", where: str = "") -> list[str]:
    """The tables of this suite's results: ranked, then unranked, then the method-specific extras. `level` and
    `where` make the headings of a part about other samples (`other_samples_part`)."""
    info, measured = sec.info, sec.measured
    mrows = tbl.measured_rows(info, measured, sec.anchor, sec.pub, rank_all=bool(sec.ctx.get("rank_all")))
    ranked = [r for r in mrows if r["table"] == "ranked"]
    unranked = [r for r in mrows if r["table"] == "unranked"]
    lines = [f"{level} Measured by this suite{where}", ""]
    if ranked:
        cols = tbl.columns("ranked", info, sec.anchor_key, sec.pub_anchor)
        if sec.ctx.get("rank_all"):  # say on each row whether it would be ranked without --rank-all
            cols.insert(1, ("ranking", "ranking"))
        lines += [sec.table("ranked", ranked, cols), ""]
    elif measured:
        lines += ["_No measured result here is ranked yet (see the next table for why)._", ""]
    else:
        lines += [f"_No measured results for this protocol yet — `bench run --method METHOD --dataset DATASET --protocol {info.name}` "
                  "writes one" + ("; the results below were measured on other samples" if sec.others else "") + "._", ""]
    if unranked:
        lines += [f"{level} Measured{where}, not ranked (pipeline checks, learning-curve points, partial runs)", "",
                  sec.table("unranked", unranked, tbl.columns("unranked", info, sec.anchor_key, sec.pub_anchor)), ""]
    extra = _method_extras(measured) if measured else ""
    return lines + ([extra, ""] if extra else [])


def _method_extras(measured: list[Measured]) -> str:
    """Method-specific tables under the generic one (e.g. DRASIC's gap to its joint reference); never fatal."""
    out = []
    for fn in sections.extra_sections():
        try:
            md = fn([m.result for m in measured])
        except Exception as exc:  # a bug there must not take the whole leaderboard down, but it is shown
            md = f"_Note: the `{getattr(fn, '__name__', fn)}` table failed ({type(exc).__name__}: {exc})._"
        if md:
            out.append(md)
    return "\n\n".join(out)


def other_samples_part(sec: Section, protocol: str, measured: list[Measured]) -> list[str]:
    """The results of `protocol`, which applies this section's preprocessing and metrics to other samples: which
    samples, whether they are the test split, and their tables, BD against the anchor measured on the same samples
    (never ranked against results on the test split)."""
    al = sec.ctx["alias"][protocol]
    info = protocol_info(protocol, [m.result for m in measured], sec.ctx.get("suite"))
    anchor, anchor_text = choose_anchor(measured, info)
    sub = Section(info, measured, [], sec.out_dir, sec.ctx, anchor, None)
    lines = [f"### Measured on other samples: `{protocol}` ({al.split_text})", "",
             f"`{protocol}` applies the preprocessing, rate accounting and metrics of `{sec.info.name}` to "
             f"{tbl.samples_text(measured)}: **{al.split_text}**. These results are compared with each other only "
             "(BD against an anchor measured on the same samples) and are never ranked against results on the test "
             "split; they are drawn in this section's figures and compared with the published curves under "
             "“Reported vs reproduced”, flagged.", "", anchor_text, ""]
    return lines + measured_part(sub, "####", f" on `{protocol}` samples")


# ---------------------------------------------------------------- published and reproduced
def published_part(sec: Section) -> list[str]:
    """The published curves' table, then their references, numbered in the order the rows first cite them."""
    prows = tbl.published_rows(sec.info, sec.pub, sec.anchor)
    refs: list[str] = []
    for r in prows:
        if r["ref"] not in refs:
            refs.append(r["ref"])
        r["source"], r["ref"] = r["ref"], f"[{refs.index(r['ref']) + 1}]"
    lines = ["### Published (not measured by this suite)", "",
             sec.table("published", prows, tbl.columns("published", sec.info, sec.anchor_key, sec.pub_anchor)), "",
             PUBLISHED_NOTE, ""]
    return lines + [f"{i + 1}. {r}" for i, r in enumerate(refs)] + [""]


def reproduced_part(sec: Section) -> list[str]:
    """Reported vs reproduced: empty where no published curve is of a method this suite implements."""
    rrows = tbl.reproduced_rows(sec.info, sec.pub, sec.measured, sec.ctx.get("methods") or {},
                                [(m, sec.ctx["alias"][p]) for p, ms in sorted(sec.others.items()) for m in ms])
    if not rrows:
        return []
    return ["### Reported vs reproduced", "",
            f"Each published curve of a method this suite implements, beside our curve under the same protocol: "
            f"BD-PSNR of ours against the published one, flagged when |Δ| > {tbl.REPRODUCED_FLAG_DB} dB. Ours is a "
            "result on the test split where there is one; else the most-trained result on other samples (its steps "
            "named), flagged when they are not the protocol's test split: such a row says how close a run gets, it "
            "ranks nothing. An empty cell says which run is missing.", "",
            sec.table("reproduced", rrows, tbl.columns("reproduced", sec.info, None, None)), ""]


# ---------------------------------------------------------------- figures
def _bands(plotted: list[tuple[Measured, str]]) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Per plotted label, the per-source PSNR band (rates, min, max) of distributed codecs."""
    bands = {}
    for m, label in plotted:
        pts = sorted((p for p in m.result["points"] if p.get("psnr_min") is not None and p.get("psnr_max") is not None
                      and p["bpp"] > 0), key=lambda p: p["bpp"])
        if pts:
            bands[label] = ([p["bpp"] for p in pts], [p["psnr_min"] for p in pts], [p["psnr_max"] for p in pts])
    return bands


def plotted(sec: Section) -> list[tuple[Measured, str]]:
    """The measured results a figure draws, with their legend labels: every result, except that of a method's
    learning-curve points only the most-trained is drawn (named with its steps; the learning-curve section draws
    the others); results on other samples say whose samples they are."""
    out: list[tuple[Measured, str]] = []
    for protocol, ms in [(None, sec.measured)] + sorted(sec.others.items()):
        best: dict[str, Measured] = {}
        for m in ms:
            if m.result.get("learning_curve"):
                b = best.get(m.result["method"])
                if b is None or (tbl.steps_of(m.result) or 0) > (tbl.steps_of(b.result) or 0):
                    best[m.result["method"]] = m
        for m in ms:
            lc = m.result.get("learning_curve")
            if lc and best.get(m.result["method"]) is not m:
                continue
            label = f"{m.result['method']} ({tbl.steps_of(m.result) or 0:,} steps)" if lc else m.label
            out.append((m, label + (f" on {protocol} samples" if protocol else "")))
    return out


def _zoom(series: list[dict[str, Any]], drawn: list[tuple[Measured, str]]) -> tuple[float, ...] | None:
    """Where a figure has published curves: the rates of the published and the learned curves (1.25 times the
    largest), so that a classical codec measured up to several bpp does not squeeze the papers' range; None (the
    whole range) otherwise."""
    classical = {label for m, label in drawn if not m.result.get("training")}
    keep = [s for s in series if not s["measured"] or s["name"] not in classical]
    if not any(not s["measured"] for s in series) or not keep:
        return None
    xmax = 1.25 * max(max(s["x"]) for s in keep)
    ys = [y for s in series for x, y in zip(s["x"], s["y"]) if x <= xmax]
    pad = 0.05 * (max(ys) - min(ys) or 1.0)
    return (0.0, xmax, min(ys) - pad, max(ys) + pad)


def figures_part(sec: Section) -> tuple[list[str], list[Path]]:
    """PSNR and MS-SSIM against rate, measured curves solid, published dashed, as SVG files; a figure without
    points is not drawn (and one left by an earlier build is removed: it would show data that is no longer there)."""
    name, ctx = sec.info.name, sec.ctx
    drawn = plotted(sec)
    curves = [curve_from_result(m.result, label, str(m.path)) for m, label in drawn] + sec.pub
    for c, (m, _) in zip(curves, drawn):
        c.result = m.result if m in sec.measured else None  # results on other samples are never ranked here
        if m.result.get("learning_curve"):  # the colour of its method, as the published curve of that method has
            c.method = m.result["method"]
    bands = _bands(drawn)
    links, written = [], []
    for kind, suffix, title in (("psnr", "psnr", "PSNR vs rate"), ("msssim", "msssim", "MS-SSIM vs rate")):
        path = safe_path(sec.out_dir, f"{file_stem(name)}_{suffix}.svg")
        series = series_data(curves, kind, ctx.get("colours"))
        if series:
            atomic_write_text(path, svg(f"{name}: {title} — measured solid, published dashed", sec.info.rate_unit,
                                        series, kind, ctx.get("figsize"), ctx.get("axes") or _zoom(series, drawn),
                                        bands if kind == "psnr" else None))
            ctx["figures"][path.name] = series
            written.append(path)
            links.append(f"![{name}: {title}]({path.name})")
        elif path.exists():
            path.unlink()
    if any(m.result.get("learning_curve") for m, _ in drawn):
        links.append("_Of each method's learning-curve points the figures draw the most-trained; the learning-curve "
                     "section below draws them all._")
    return (links or ["_No plottable points._"]) + [""], written
