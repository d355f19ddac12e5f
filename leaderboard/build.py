"""Build the leaderboard: a pure function of result files plus published curves.

Per protocol: a Markdown table of the suite's measured results (BD-rate / BD-PSNR against the protocol's
anchor codec, PSNR at the protocol's fixed rates), a separate table of published curves (marked with their
provenance, never mixed with measured rows), PSNR- and MS-SSIM-vs-rate plots; for all protocols together a
README.md, a CSV of every point, a static index.html and a CompressAI-format export of each measured result.

    python -m leaderboard.build RESULTS_DIR [RESULTS_DIR ...] --out OUT [--published DIR] [--protocol NAME]
"""
from __future__ import annotations

import csv
import html
import importlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmark.bdrate import NoOverlapError, bd_psnr, bd_rate, quality_at_rate
from benchmark.errors import ResultSchemaError
from benchmark.results import (RESULT_KIND, atomic_write_text, result_candidates, to_compressai_json, validate_result,
                               write_json)

from .published import DEFAULT_DIR as PUBLISHED_DIR
from .published import scan_published

NA = "—"
DEFAULT_FIXED_BPPS = (0.1, 0.25, 0.5)
FALLBACK_ANCHOR = "jpeg"
GAUSSIAN_PROTOCOL = "gaussian/wz"


# ---------------------------------------------------------------- inputs
@dataclass
class Measured:
    """One valid result file."""

    path: Path
    result: dict[str, Any]
    key: str  # method[.variant], unique within its protocol
    label: str

    @property
    def protocol(self) -> str:
        return self.result["protocol"]


@dataclass
class Curve:
    """One valid published-curve file."""

    path: Path
    curve: dict[str, Any]

    @property
    def protocol(self) -> str:
        return self.curve["protocol"]

    @property
    def legend(self) -> str:
        c = self.curve
        return f"{c['label']} [{c['provenance']}, {c['rate']}]"


@dataclass
class Inputs:
    measured: list[Measured] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # invalid files, with the reason
    ignored: int = 0  # JSON files that are not results (weights manifests, exports, ...)


def natural_key(text: str) -> list[Any]:
    """Sort "M=2" before "M=10"."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _looks_like_result(obj: Any) -> bool:
    """A file is a result candidate if it says so, or has no kind but carries result-like fields."""
    if not isinstance(obj, dict):
        return False
    if "kind" in obj:
        return obj["kind"] == RESULT_KIND
    return "points" in obj and "protocol" in obj


def discover_results(results_dirs: Iterable[Path]) -> tuple[list[Measured], list[tuple[Path, str]], int]:
    """Every `kind == "result"` JSON under the folders (recursively). Invalid ones are returned as skipped."""
    measured: list[Measured] = []
    skipped: list[tuple[Path, str]] = []
    ignored = 0
    files: list[Path] = []
    for d in results_dirs:
        d = Path(d)
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(result_candidates(d))
        else:
            skipped.append((d, "results folder does not exist (nothing measured read from it)"))
    for path in sorted(set(files)):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            skipped.append((path, f"not readable JSON: {exc}"))
            continue
        if not _looks_like_result(obj):
            ignored += 1
            continue
        try:
            result = validate_result(obj)
        except ResultSchemaError as exc:
            skipped.append((path, f"invalid result file: {exc}"))
            continue
        key = result["method"] + (f".{result['variant']}" if result.get("variant") else "")
        label = result["method"] + (f" ({result['variant']})" if result.get("variant") else "")
        measured.append(Measured(path, result, key, label))
    # the same method measured twice under one protocol (two runs, two folders): keep both, tell them apart
    seen: dict[tuple[str, str], int] = {}
    for m in sorted(measured, key=lambda m: (m.protocol, m.key, str(m.path))):
        n = seen.get((m.protocol, m.key), 0) + 1
        seen[(m.protocol, m.key)] = n
        if n > 1:
            m.label = f"{m.label} #{n} ({m.path.parent.name}/{m.path.name})"
            m.key = f"{m.key}-{n}"
    measured.sort(key=lambda m: (m.protocol, m.key))
    return measured, skipped, ignored


def gather(results_dirs: Iterable[Path], published_dirs: Iterable[Path] | None) -> Inputs:
    measured, skipped, ignored = discover_results(results_dirs)
    good, bad = scan_published(list(published_dirs) if published_dirs is not None else [PUBLISHED_DIR])
    curves = sorted((Curve(p, c) for p, c in good),
                    key=lambda c: (c.protocol, natural_key(c.curve["label"]), c.curve["metric"], c.curve["rate"], str(c.path)))
    return Inputs(measured, curves, skipped + [(p, f"invalid published curve: {why}") for p, why in bad], ignored)


# ---------------------------------------------------------------- protocol facts
@dataclass
class ProtocolInfo:
    name: str
    anchor: str
    fixed_bpps: tuple[float, ...]
    rate_unit: str
    description: str
    registered: bool
    note: str = ""


def protocol_info(name: str) -> ProtocolInfo:
    try:
        from benchmark.registry import get_protocol

        p = get_protocol(name)
    except Exception as exc:  # unknown protocol, or the registry cannot load: the leaderboard still builds
        unit = "bits/sample" if name == GAUSSIAN_PROTOCOL else "bpp"
        why = "not registered in this installation" if isinstance(exc, KeyError) else f"registry unavailable ({exc})"
        return ProtocolInfo(name, FALLBACK_ANCHOR, DEFAULT_FIXED_BPPS, unit, "", False,
                            f"Protocol `{name}` is {why}: anchor `{FALLBACK_ANCHOR}` and rates {DEFAULT_FIXED_BPPS} assumed.")
    return ProtocolInfo(name, p.anchor, tuple(p.fixed_bpps), p.rate_unit, p.description, True)


def file_stem(protocol: str) -> str:
    return protocol.replace("/", "__")


# ---------------------------------------------------------------- numbers
def _curve_xy(pairs: Iterable[tuple[Any, Any]]) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for x, y in pairs:
        if x is None or y is None:
            continue
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y) and x > 0:
            xs.append(x)
            ys.append(y)
    return xs, ys


def measured_xy(m: Measured, metric: str = "psnr") -> tuple[list[float], list[float]]:
    return _curve_xy((p.get("bpp"), p.get(metric)) for p in m.result["points"])


def curve_xy(c: Curve) -> tuple[list[float], list[float]]:
    return _curve_xy((p["bpp"], p["value"]) for p in c.curve["points"])


def _bd_cells(anchor: tuple[list[float], list[float]], test: tuple[list[float], list[float]]) -> tuple[str, str]:
    cells = []
    for fn, fmt in ((bd_rate, "{:+.1f} %"), (bd_psnr, "{:+.2f} dB")):
        try:
            cells.append(fmt.format(fn(anchor[0], anchor[1], test[0], test[1])))
        except NoOverlapError:
            cells.append("no overlap")
        except ValueError:
            cells.append("n/a (< 2 points)")
    return cells[0], cells[1]


def _range(xs: Sequence[float]) -> str:
    return f"{min(xs):.3g}–{max(xs):.3g}" if xs else NA


def _at(xs: Sequence[float], ys: Sequence[float], target: float, fmt: str) -> str:
    if not xs:
        return NA
    try:
        v = quality_at_rate(xs, ys, target)
    except ValueError:
        return NA
    return NA if v is None else fmt.format(v)


_MARKERS = ("v", "s", "^", "D", "P", "X", "<", ">")
_VALUE_FMT = {"psnr": "{:.2f}", "ms_ssim": "{:.4f}", "ms_ssim_db": "{:.2f} dB"}
_METRIC_NAME = {"psnr": "PSNR (dB)", "ms_ssim": "MS-SSIM", "ms_ssim_db": "MS-SSIM (dB)"}


# ---------------------------------------------------------------- Markdown helpers
def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


# ---------------------------------------------------------------- one protocol
def _pick(measured: list[Measured], method: str) -> Measured | None:
    cands = [m for m in measured if m.result["method"] == method and len(measured_xy(m)[0]) > 0]
    cands.sort(key=lambda m: (m.result.get("variant") is not None, m.key))
    return cands[0] if cands else None


def choose_anchor(measured: list[Measured], info: ProtocolInfo) -> tuple[Measured | None, str]:
    a = _pick(measured, info.anchor)
    if a is not None:
        return a, f"Anchor for BD metrics: `{a.key}` (the protocol's anchor)."
    if info.anchor != FALLBACK_ANCHOR:
        a = _pick(measured, FALLBACK_ANCHOR)
        if a is not None:
            return a, (f"Anchor for BD metrics: `{a.key}` — the protocol's anchor `{info.anchor}` has no measured "
                       f"result here, so `{FALLBACK_ANCHOR}` is used instead.")
    return None, (f"No measured anchor (`{info.anchor}`" + (f" or `{FALLBACK_ANCHOR}`" if info.anchor != FALLBACK_ANCHOR else "")
                  + f"): BD metrics are not computed. Run `bench run --method {info.anchor} --dataset DATASET --protocol {info.name}` to get them.")


def _training_cell(result: dict[str, Any]) -> str:
    """What a learned row was trained with (budget and steps): quick-budget rows are far from converged."""
    t = result.get("training") or {}
    if not t or not t.get("budget"):
        return "—"
    steps = t.get("steps")
    return f"{t['budget']}" + (f", {steps:,} steps" if isinstance(steps, int) else "")


def measured_table(measured: list[Measured], anchor: Measured | None, info: ProtocolInfo) -> list[str]:
    unit = info.rate_unit
    header = ["method", "scenario", "training", "points", f"{unit} range",
              f"BD-rate vs {anchor.key if anchor else 'anchor'}", f"BD-PSNR vs {anchor.key if anchor else 'anchor'}"]
    header += [f"PSNR @ {b:g} {unit}" for b in info.fixed_bpps]
    a_xy = measured_xy(anchor) if anchor else None
    rows = []
    for m in measured:
        xs, ys = measured_xy(m)
        if anchor is None:
            bdr = bdp = NA
        elif m is anchor:
            bdr = bdp = NA + " (anchor)"
        else:
            bdr, bdp = _bd_cells(a_xy, (xs, ys))
        rows.append([f"**{m.label}**" if m is anchor else m.label, m.result["scenario"], _training_cell(m.result),
                     len(m.result["points"]), _range([p["bpp"] for p in m.result["points"]]), bdr, bdp]
                    + [_at(xs, ys, b, "{:.2f}") for b in info.fixed_bpps])
    return md_table(header, rows)


def published_table(curves: list[Curve], anchor: Measured | None, info: ProtocolInfo) -> list[str]:
    unit = info.rate_unit
    aname = f"measured {anchor.key}" if anchor else "measured anchor"
    header = ["published curve", "origin", "scenario", "metric", "rate", "points", "rate range",
              f"BD-rate vs {aname}†", f"BD-PSNR vs {aname}†"]
    header += [f"@ {b:g} {unit}" for b in info.fixed_bpps] + ["ref"]
    a_xy = measured_xy(anchor) if anchor else None
    rows, refs = [], []
    for c in curves:
        cv = c.curve
        xs, ys = curve_xy(c)
        if anchor is None or cv["metric"] != "psnr":
            bdr = bdp = NA
        else:
            bdr, bdp = _bd_cells(a_xy, (xs, ys))
            bdr, bdp = (f"{bdr} †" if bdr[0] in "+-" else bdr), (f"{bdp} †" if bdp[0] in "+-" else bdp)
        ref = f"{cv['source']}" + (f" — {cv['accuracy']}" if cv.get("accuracy") else "")
        if ref not in refs:
            refs.append(ref)
        label = cv["label"] + (f" (M={cv['sources']})" if cv.get("sources") and f"M={cv['sources']}" not in cv["label"] else "")
        rows.append([label, f"published ({cv['provenance']})", cv["scenario"], _METRIC_NAME[cv["metric"]], cv["rate"],
                     len(cv["points"]), _range([p["bpp"] for p in cv["points"]]), bdr, bdp]
                    + [_at(xs, ys, b, _VALUE_FMT[cv["metric"]]) for b in info.fixed_bpps] + [f"[{refs.index(ref) + 1}]"])
    lines = md_table(header, rows)
    lines += ["", "† Published curve against the suite's measured anchor, on PSNR only, computed only where the "
                  "curves overlap: different runs and possibly a different rate type (see the `rate` column: "
                  "`bpp` = coded bits, `bpp_estimated` = likelihood estimate, `bpp_uniform` = fixed-length code, "
                  "`bpp_prior` = ideal code length under a prior). Read it as indicative, not as a measurement.", ""]
    lines += [f"{i + 1}. {r}" for i, r in enumerate(refs)]
    return lines


def _plot(info: ProtocolInfo, measured: list[Measured], curves: list[Curve], kind: str, path: Path) -> bool:
    """Draw measured (solid, markers; per-source band) and published (dashed) curves. False if nothing to draw."""
    # (legend, xs, ys, measured?, band, colour group, marker)
    series: list[tuple[str, list[float], list[float], bool, Any, str, str]] = []
    for m in measured:
        metric = "psnr" if kind == "psnr" else "ms_ssim"
        xs, ys = measured_xy(m, metric)
        if not xs:
            continue
        band = None
        if kind == "psnr":
            bx, lo, hi = [], [], []
            for p in sorted(m.result["points"], key=lambda p: p["bpp"]):
                if p.get("psnr_min") is not None and p.get("psnr_max") is not None and p["bpp"] > 0:
                    bx.append(p["bpp"])
                    lo.append(p["psnr_min"])
                    hi.append(p["psnr_max"])
            band = (bx, lo, hi) if bx else None
        order = sorted(range(len(xs)), key=xs.__getitem__)
        series.append((m.label, [xs[i] for i in order], [ys[i] for i in order], True, band, "measured:" + m.key, "o"))
    if kind == "psnr":
        chosen = [c for c in curves if c.curve["metric"] == "psnr"]
    else:
        linear = {(c.curve["method"], c.curve["rate"], c.curve["label"]) for c in curves if c.curve["metric"] == "ms_ssim"}
        chosen = [c for c in curves if c.curve["metric"] == "ms_ssim"
                  or (c.curve["metric"] == "ms_ssim_db" and (c.curve["method"], c.curve["rate"], c.curve["label"]) not in linear)]
    source_counts = {c.curve["sources"] for c in chosen if c.curve.get("sources")}
    for c in chosen:
        xs, ys = curve_xy(c)
        if c.curve["metric"] == "ms_ssim_db":
            ys = [1.0 - 10.0 ** (-v / 10.0) for v in ys]
        order = sorted(range(len(xs)), key=xs.__getitem__)
        if xs:
            family = re.sub(r"\.m\d+$", "", c.curve["method"]) + ":" + c.curve["rate"]
            marker = _MARKERS[sorted(source_counts).index(c.curve["sources"]) % len(_MARKERS)] if c.curve.get("sources") else "."
            series.append((c.legend, [xs[i] for i in order], [ys[i] for i in order], False, None, family, marker))
    if not series:
        return False

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(s[5] for s in series))
    try:
        import seaborn as sns

        palette = sns.color_palette("tab10" if len(groups) <= 10 else "husl", len(groups))
        style = sns.axes_style("whitegrid")
    except Exception:  # seaborn missing: plain matplotlib still draws the same figure
        import contextlib

        cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "hsv")
        palette = [cmap(i / len(groups) if len(groups) > 10 else i) for i in range(len(groups))]
        style = contextlib.nullcontext()
    with style:
        fig, ax = plt.subplots(figsize=(9.5, 5.5))
        try:
            for label, xs, ys, is_measured, band, group, marker in series:
                color = palette[groups.index(group)]
                if is_measured:
                    ax.plot(xs, ys, "-o", color=color, label=f"{label} (measured)", linewidth=2, markersize=5, zorder=3)
                    if band:
                        ax.fill_between(band[0], band[1], band[2], color=color, alpha=0.2, linewidth=0,
                                        label=f"{label}: per-source min–max")
                else:
                    ax.plot(xs, ys, "--", marker=marker, color=color, label=label, linewidth=1.4,
                            markersize=4 if marker == "." else 3.5, alpha=0.9, zorder=2)
            ax.set_xlabel(f"rate ({info.rate_unit}; published curves: rate type in brackets)")
            ax.set_ylabel("PSNR (dB)" if kind == "psnr" else "MS-SSIM")
            ax.set_title(f"{info.name}: {'PSNR' if kind == 'psnr' else 'MS-SSIM'} vs rate — measured solid, published dashed",
                         fontsize=10)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
            fig.tight_layout()
            path.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        finally:
            plt.close(fig)
    _write_bytes(path, buf.getvalue())
    return True


def _write_bytes(path: Path, data: bytes) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _gaussian_section(measured: list[Measured], out_dir: Path) -> tuple[str | None, str]:
    """Markdown from `leaderboard.gaussian.gaussian_section` if that module exists; (None, note) otherwise."""
    try:
        mod = importlib.import_module("leaderboard.gaussian")
    except ModuleNotFoundError as exc:
        if exc.name in ("leaderboard.gaussian",):
            return None, ""
        return None, f"`leaderboard.gaussian` could not be imported ({exc}); the generic table is shown."
    fn = getattr(mod, "gaussian_section", None)
    if fn is None:
        return None, "`leaderboard.gaussian` has no `gaussian_section`; the generic table is shown."
    try:
        return str(fn([m.result for m in measured], out_dir)), ""
    except Exception as exc:  # a bug there must not take the whole leaderboard down, but it is shown
        return None, f"`gaussian_section` failed ({type(exc).__name__}: {exc}); the generic table is shown."


def _method_extras(measured: list[Measured]) -> str:
    """Method-specific tables under the generic one (e.g. DRASIC's gap to its joint reference); never fatal."""
    try:
        from leaderboard.drasic import joint_gap_section

        return joint_gap_section([m.result for m in measured]) or ""
    except Exception as exc:  # a bug there must not take the whole leaderboard down, but it is shown
        return f"_Note: the DRASIC joint-gap table failed ({type(exc).__name__}: {exc})._"


def protocol_section(name: str, measured: list[Measured], curves: list[Curve], out_dir: Path) -> tuple[list[str], list[Path]]:
    info = protocol_info(name)
    lines = [f"## {name}", ""]
    if info.description:
        lines += [f"> {info.description}", ""]
    if info.note:
        lines += [f"_{info.note}_", ""]
    written: list[Path] = []

    custom, note = (None, "")
    if name == GAUSSIAN_PROTOCOL:
        before = _snapshot(out_dir)
        custom, note = _gaussian_section(measured, out_dir)
        after = _snapshot(out_dir)
        written += sorted(p for p, t in after.items() if before.get(p) != t)
    if note:
        lines += [f"_Note: {note}_", ""]
    anchor, anchor_text = choose_anchor(measured, info)
    if custom is not None:
        lines += [custom.strip(), ""]
    else:
        lines += [anchor_text, "",
                  "BD-rate: mean rate difference at equal PSNR (negative = fewer bits than the anchor); BD-PSNR: mean "
                  "PSNR difference at equal rate (Bjøntegaard, PCHIP interpolation, overlapping interval only). PSNR at "
                  "fixed rates is interpolated in log-rate; — outside a curve's range.", "",
                  "### Measured by this suite", ""]
        if measured:
            lines += measured_table(measured, anchor, info) + [""]
            extra = _method_extras(measured)
            if extra:
                lines += [extra, ""]
        else:
            lines += [f"_No measured results for this protocol yet — `bench run --method METHOD --dataset DATASET --protocol {name}` "
                      "writes one._", ""]
    if curves:
        lines += ["### Published (not measured by this suite)", ""]
        lines += published_table(curves, anchor, info) + [""]

    if custom is None:
        figs = []
        for kind, suffix, title in (("psnr", "psnr", "PSNR vs rate"), ("msssim", "msssim", "MS-SSIM vs rate")):
            path = out_dir / f"{file_stem(name)}_{suffix}.png"
            if _plot(info, measured, curves, kind, path):
                written.append(path)
                figs.append(f"![{name}: {title}]({path.name})")
            elif path.exists():
                path.unlink()  # a figure left by an earlier build would show data that is no longer there
        if figs:
            lines += figs + [""]
        else:
            lines += ["_No plottable points._", ""]
    return lines, written


def _snapshot(d: Path) -> dict[Path, tuple[float, int]]:
    if not d.is_dir():
        return {}
    return {p: (p.stat().st_mtime, p.stat().st_size) for p in d.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- outputs for all protocols
CSV_FIELDS = ["origin", "protocol", "method", "variant", "label", "scenario", "provenance", "rate_type", "rate_point",
              "bpp", "bpp_estimated", "psnr", "psnr_min", "psnr_max", "ms_ssim", "ms_ssim_db", "file"]


def points_csv(measured: list[Measured], curves: list[Curve]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for m in measured:
        r = m.result
        for p in r["points"]:
            w.writerow({"origin": "measured", "protocol": r["protocol"], "method": r["method"], "variant": r.get("variant") or "",
                        "label": m.label, "scenario": r["scenario"], "provenance": "measured",
                        "rate_type": "bpp" if r.get("rate_unit", "bpp") == "bpp" else r["rate_unit"],
                        "file": str(m.path), **{k: _num(p.get(k)) for k in
                                                ("rate_point", "bpp", "bpp_estimated", "psnr", "psnr_min", "psnr_max", "ms_ssim", "ms_ssim_db")}})
    for c in curves:
        cv = c.curve
        for p in cv["points"]:
            w.writerow({"origin": "published", "protocol": cv["protocol"], "method": cv["method"], "variant": "",
                        "label": cv["label"], "scenario": cv["scenario"], "provenance": cv["provenance"],
                        "rate_type": cv["rate"], "rate_point": p.get("rate_point", ""), "bpp": _num(p["bpp"]),
                        cv["metric"]: _num(p["value"]), "file": c.path.name})
    return buf.getvalue()


def _num(v: Any) -> Any:
    return "" if v is None else v


def compressai_exports(measured: list[Measured], out_dir: Path) -> list[Path]:
    written = []
    for m in measured:
        path = out_dir / "compressai" / f"{file_stem(m.protocol)}__{m.key}.json"
        write_json(path, to_compressai_json(m.result))
        written.append(path)
    return written


def build(results_dirs: list[Path], out_dir: Path, published_dirs: list[Path] | None = None,
          *, protocols: Sequence[str] | None = None) -> list[Path]:
    """Write README.md, per-protocol PNGs, leaderboard.csv, index.html and compressai/*.json under `out_dir`.

    `results_dirs` are searched recursively for result files; `published_dirs` default to the package's
    `leaderboard/published`. `protocols` restricts the build to those names. Returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = gather([Path(d) for d in results_dirs], published_dirs)
    names = sorted({m.protocol for m in inputs.measured} | {c.protocol for c in inputs.curves})
    if protocols:
        names = [n for n in names if n in set(protocols)] + sorted(set(protocols) - set(names))
    measured = [m for m in inputs.measured if m.protocol in names]
    curves = [c for c in inputs.curves if c.protocol in names]

    written: list[Path] = []
    lines = ["# Leaderboard", "",
             "Generated by `bench leaderboard` (`leaderboard.build`) from "
             f"{len(measured)} measured result file(s) and {len(curves)} published curve(s); do not edit by hand.",
             "Results are comparable only within one protocol. Measured rows come from this suite's own runs (rate = "
             "bytes of a real bitstream); published rows are numbers from papers and the authors' repositories, shown "
             "in their own table with their provenance (exact or digitized) and never mixed with measured rows. "
             "Figures: measured curves solid with markers (shaded band = per-source min–max of distributed codecs), "
             "published curves dashed.", "",
             "Also here: [leaderboard.csv](leaderboard.csv) (every point), [index.html](index.html)"
             + (", [compressai/](compressai/) (each measured result in CompressAI's JSON format)." if measured else "."), "",
             "## Protocols", ""]
    lines += [f"- [{n}](#{slug(n)}) — {sum(m.protocol == n for m in measured)} measured, "
              f"{sum(c.protocol == n for c in curves)} published" for n in names] + [""]
    for n in names:
        sec, files = protocol_section(n, [m for m in measured if m.protocol == n], [c for c in curves if c.protocol == n], out_dir)
        lines += sec
        written += files
    if inputs.skipped:
        lines += ["## Skipped files", "", "These files were not used; fix them (`bench validate FILE` says what is wrong):", ""]
        lines += [f"- `{p}`: {why}" for p, why in inputs.skipped] + [""]
    if inputs.ignored:
        lines += [f"_{inputs.ignored} other JSON file(s) under the results folders are not result files "
                  "(e.g. weights manifests) and were ignored._", ""]
    markdown = "\n".join(lines).rstrip() + "\n"

    readme = out_dir / "README.md"
    atomic_write_text(readme, markdown)
    csv_path = out_dir / "leaderboard.csv"
    atomic_write_text(csv_path, points_csv(measured, curves))
    index = out_dir / "index.html"
    atomic_write_text(index, to_html(markdown, title="DSC benchmark leaderboard"))
    written += [readme, csv_path, index]
    written += compressai_exports(measured, out_dir)
    return written


# ---------------------------------------------------------------- a small Markdown -> HTML renderer
_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), r'<img alt="\1" src="\2">'),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])_([^_]+)_(?![\w*])"), r"<em>\1</em>"),
]


def _inline(text: str) -> str:
    s = html.escape(text, quote=True)
    for rx, rep in _INLINE:
        s = rx.sub(rep, s)
    return s


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def to_html(markdown: str, title: str = "Leaderboard") -> str:
    """Render the subset of Markdown this module writes (headings, tables, lists, images, quotes, paragraphs)."""
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append("<p>" + " ".join(_inline(p) for p in para) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
            i += 1
            continue
        m = re.match(r"(#{1,6})\s+(.*)", line)
        if m:
            flush()
            level, text = len(m.group(1)), m.group(2)
            out.append(f'<h{level} id="{html.escape(slug(text))}">{_inline(text)}</h{level}>')
            i += 1
            continue
        if line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|?\s*:?-{3,}", lines[i + 1]):
            flush()
            head = _split_row(line)
            i += 2
            body = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                body.append(_split_row(lines[i]))
                i += 1
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head) + "</tr></thead><tbody>")
            for r in body:
                out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>")
            out.append("</tbody></table>")
            continue
        if re.match(r"\s*([-*]|\d+\.)\s+", line):
            flush()
            ordered = bool(re.match(r"\s*\d+\.", line))
            tag = "ol" if ordered else "ul"
            items = []
            while i < len(lines) and re.match(r"\s*([-*]|\d+\.)\s+", lines[i]):
                items.append(re.sub(r"^\s*([-*]|\d+\.)\s+", "", lines[i]))
                i += 1
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + f"</{tag}>")
            continue
        if line.startswith(">"):
            flush()
            out.append(f"<blockquote>{_inline(line.lstrip('> '))}</blockquote>")
            i += 1
            continue
        para.append(line)
        i += 1
    flush()
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.85em}th,td{border:1px solid #ccc;padding:3px 6px;"
             "text-align:left}th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}"
             "blockquote{color:#555;border-left:3px solid #ddd;margin:0;padding-left:1em}code{background:#f6f6f6}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(out) + "\n</body></html>\n")


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m leaderboard.build", description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", type=Path, default=[Path("leaderboard/results")], help="folders of result files")
    ap.add_argument("--out", type=Path, default=Path("leaderboard"), help="output folder")
    ap.add_argument("--published", type=Path, action="append", default=None, help="folder(s) of published curves")
    ap.add_argument("--protocol", action="append", default=None, help="build only this protocol (repeatable)")
    args = ap.parse_args(argv)
    files = build(args.results, args.out, args.published, protocols=args.protocol)
    print(f"wrote {len(files)} files; open {args.out / 'README.md'} or {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
