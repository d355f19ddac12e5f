"""`bench compare`: BD-rate / BD-quality of any curves against one of them, without writing code.

Curves are named by file (a result file, a published-curve file, a CompressAI result JSON) or by name
(label or method key) among the curves of the protocol: the shipped published curves, `--published` folders
and the result files under `--results` folders.

The numbers are the leaderboard's (leaderboard.compare: `bd` for BD-rate, BD-quality, overlap and flags;
`rate_interval` for the 95 % bootstrap interval of a PSNR BD-rate between two measured results, each read with
its per-image CSV as the leaderboard reads it). `bd_frame` is the same table for `--csv` and `--latex`;
`write_figure` draws the curves with the anchor highlighted, on a linear or logarithmic rate axis."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from benchmark.errors import BenchError

from benchmark.safety.atomicio import atomic_write_bytes

from .compare import MIN_OVERLAP, BD, bd, clean, describe_dropped, interval_text, rate_interval
from .curves import RATE_TYPES, RDCurve, curve_from_published, curve_from_result, load_curve_file, merge_published
from .facts import aliases, section_of
from .figures import series_data
from .formatting import db, pct
from .inputs import discover_results, per_image_rows
from .published import DEFAULT_DIR as PUBLISHED_DIR
from .published import scan_published


def pool(protocol: str, published: Sequence[Path] = (), results: Sequence[Path] = (), shipped: bool = True) -> list[RDCurve]:
    """Every curve of `protocol` the suite can see: shipped + `published` curve files, and measured results. Protocol
    names are aliased as the leaderboard aliases them (`facts.aliases`: stereo/kitti-ndic applies kitti-stereo/ndic's
    preprocessing and metrics to other samples), so either name gives the curves of that one section."""
    measured, _, _ = discover_results([Path(r) for r in results if Path(r).exists()])
    alias = aliases([m.result for m in measured], None)
    section = section_of(protocol, alias)
    dirs = ([PUBLISHED_DIR] if shipped else []) + [Path(p) for p in published]
    good, _ = scan_published(dirs)
    curves = merge_published([curve_from_published(c) for _, c in good if section_of(c["protocol"], alias) == section])
    curves += [curve_from_result(m.result, m.label, str(m.path)) for m in measured if section_of(m.protocol, alias) == section]
    return curves


def same_section(curve: RDCurve, protocol: str) -> bool:
    """Whether a curve belongs to `protocol`'s section: the same protocol, or one of the two an alias of the other
    (as the curve's own result file records it)."""
    if curve.protocol in (None, protocol):
        return True
    alias = aliases([curve.result], None) if curve.result is not None else {}
    return section_of(curve.protocol, alias) == section_of(protocol, alias)


def alias_note(curve: RDCurve) -> str | None:
    """"measured under P: ..." for a measured curve filed under an alias of the section it is compared in."""
    if curve.result is None:
        return None
    a = aliases([curve.result], None).get(curve.protocol or "")
    return None if a is None else (f"{curve.label}: measured under {a.protocol}, {a.section}'s preprocessing and "
                                   f"metrics on other samples ({a.split_text})")


def resolve(name: str, protocol: str, curves: list[RDCurve], **labels: str | None) -> RDCurve:
    """A file path, or a curve's label / method key (exact, then case-insensitive, then a unique substring).
    `labels`: scenario, rate, provenance of a CompressAI result JSON that does not state them."""
    p = Path(name)
    if p.is_file():
        c = load_curve_file(p, protocol, **labels)
        if not same_section(c, protocol):
            raise BenchError(f"{p} is a curve of protocol {c.protocol!r}, not {protocol!r}: results are comparable "
                             "only within one protocol")
        if c.origin == "published":  # the other metric of a published curve lives in a sibling file
            same = [o for o in curves if o.origin == "published" and (o.method, o.label, o.rate_type) == (c.method, c.label, c.rate_type)]
            if same:
                return same[0]
        return c
    for test in (lambda c: name in (c.label, c.method), lambda c: name.lower() in (c.label.lower(), c.method.lower())):
        found = [c for c in curves if test(c)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise BenchError(f"{name!r} names {len(found)} curves of {protocol}: "
                             + "; ".join(f"{c.label} [{c.method}, {c.rate_type}]" for c in found) + ". Use the full label.")
    found = [c for c in curves if name.lower() in c.label.lower()]
    if len(found) == 1:
        return found[0]
    known = "\n  ".join(sorted(f"{c.label}  [{c.method}, {c.origin}, {c.rate_type}]" for c in curves)) or "(none)"
    raise BenchError(f"no single curve of protocol {protocol!r} is called {name!r} "
                     f"({'several match' if found else 'none matches'}). Pass a file, or one of:\n  {known}")


@dataclass
class Row:
    curve: RDCurve
    psnr: BD | None
    msssim: BD | None
    ci: tuple[float, float] | None = None  # 95 % bootstrap interval of the PSNR BD-rate (measured curves)

    @property
    def is_anchor(self) -> bool:
        return self.psnr is None and self.msssim is None


def images(c: RDCurve) -> dict[str, dict[str, tuple[float, float]]]:
    """A measured curve's per-image rows (rate point -> image -> (bpp, psnr)), read as the leaderboard reads them;
    {} for a published curve or a result without its CSV."""
    if c.origin != "measured" or c.result is None or not c.source:
        return {}
    return per_image_rows(Path(c.source), c.result)


def compare(names: Sequence[str], protocol: str, anchor: str | None = None, published: Sequence[Path] = (),
            results: Sequence[Path] = (), shipped: bool = True, **labels: str | None) -> tuple[RDCurve, list[Row]]:
    curves = pool(protocol, published, results, shipped)
    chosen = [resolve(n, protocol, curves, **labels) for n in names]
    a = resolve(anchor, protocol, curves, **labels) if anchor else chosen[0]
    if all(c is not a for c in chosen):
        chosen.insert(0, a)
    a_images = images(a)
    rows = []
    for c in chosen:
        if c is a:
            rows.append(Row(c, None, None))
            continue
        p = bd(a, c, "psnr") if a.psnr and c.psnr else None
        rows.append(Row(c, p, bd(a, c, "msssim") if a.msssim_db and c.msssim_db else None,
                        rate_interval(p, a_images, images(c))))
    return a, rows


def _interval(b: BD | None, unit: str) -> str:
    if b is None or b.interval_quality is None:
        return "—"
    q, r = b.interval_quality, b.interval_rate
    return f"{q[0]:.2f}–{q[1]:.2f} dB / {r[0]:.3g}–{r[1]:.3g} {unit}"


def report_lines(a: RDCurve, rows: list[Row], unit: str = "bpp") -> list[str]:
    """Plain-text sentences (also what the tests read): one per curve and metric."""
    out = [f"anchor: {a.label} [{a.origin}, {a.rate_type}: {RATE_TYPES.get(a.rate_type, a.rate_type)}]"]
    left = describe_dropped(clean(a.psnr))
    if left:
        out.append(f"  anchor points left out: {left}")
    out += [f"  {n}" for n in (alias_note(r.curve) for r in rows) if n]
    for r in rows:
        if r.psnr is None and r.msssim is None:
            continue
        for metric, b in (("PSNR", r.psnr), ("MS-SSIM", r.msssim)):
            if b is None:
                continue
            if b.problem:
                out.append(f"{r.curve.label} vs {a.label} ({metric}): {b.problem}")
                continue
            s = f"{r.curve.label} vs {a.label} ({metric}): BD-rate {pct(b.bd_rate)}"
            if metric == "PSNR" and r.ci is not None:
                s += f" (95 % CI {interval_text(r.ci)}, bootstrap over test images)"
            s += f", BD-{'PSNR' if metric == 'PSNR' else 'MS-SSIM'} {db(b.bd_quality)}"
            if b.bd_rate_with_degenerate is not None:
                s += f" (incl. degenerate points: BD-rate {pct(b.bd_rate_with_degenerate)})"
            s += (f"; overlap {b.overlap_quality:.0%} of quality, {b.overlap_rate:.0%} of log-rate"
                  f" over {_interval(b, unit)}; rates {b.rate_types[1]} vs anchor {b.rate_types[0]}")
            flags = b.flags()
            if flags:
                s += " — " + "; ".join(flags)
            out.append(s)
            dropped = describe_dropped(b.test_dropped)
            if dropped and metric == "PSNR":
                out.append(f"  {r.curve.label} points left out: {dropped}")
    out.append(f"(overlap below {MIN_OVERLAP:.0%} is flagged; degenerate = rate more than 100x below the next point; "
               "non-monotone = quality not above every cheaper point's)")
    return out


# ---------------------------------------------------------------- the BD table as CSV and LaTeX
def bd_frame(a: RDCurve, rows: list[Row], unit: str = "bpp"):
    """One row per curve (the anchor first, marked): the numbers `report_lines` prints, as a pandas DataFrame."""
    import pandas as pd

    out = []
    for r in sorted(rows, key=lambda r: not r.is_anchor):
        p, m = r.psnr, r.msssim
        row = {"curve": r.curve.label, "method": r.curve.method, "origin": r.curve.origin,
               "rate_type": r.curve.rate_type, "anchor": r.is_anchor,
               "bd_rate_pct": _num(p, "bd_rate"), "bd_rate_ci95_low_pct": None if r.ci is None else r.ci[0],
               "bd_rate_ci95_high_pct": None if r.ci is None else r.ci[1], "bd_psnr_db": _num(p, "bd_quality"),
               "bd_rate_incl_degenerate_pct": _num(p, "bd_rate_with_degenerate"),
               "overlap_psnr": _num(p, "overlap_quality"), "overlap_log_rate": _num(p, "overlap_rate"),
               "bd_rate_msssim_pct": _num(m, "bd_rate"), "bd_msssim_db": _num(m, "bd_quality"),
               "overlap_msssim": _num(m, "overlap_quality"),
               "flags": _flags(p), "flags_msssim": _flags(m),
               "points_left_out": describe_dropped(p.test_dropped if p else clean(r.curve.psnr), unit) or None}
        out.append(row)
    return pd.DataFrame(out)


def _flags(b: BD | None) -> str | None:
    """Why there is no number, then the flags: the text of the leaderboard's flags column."""
    return "; ".join(([b.problem] if b.problem else []) + b.flags()) or None if b is not None else None


def _num(b: BD | None, attr: str) -> float | None:
    v = getattr(b, attr) if b is not None else None
    return None if v is None else float(v)


def bd_csv(df) -> str:
    """The frame as CSV; text cells never start a spreadsheet formula (benchmark.safety.csvsafe)."""
    from benchmark.safety.csvsafe import safe_cell

    return df.astype(object).where(df.notna(), None).map(lambda v: "" if v is None else safe_cell(v)) \
        .to_csv(index=False, lineterminator="\n")


LATEX_COLUMNS = {"curve": "Curve", "rate_type": "Rate", "bd_rate_pct": "BD-rate (\\%)", "ci": "95\\,\\% CI",
                 "bd_psnr_db": "BD-PSNR (dB)", "bd_rate_msssim_pct": "BD-rate MS-SSIM (\\%)",
                 "bd_msssim_db": "BD-MS-SSIM (dB)", "overlap_psnr": "Overlap (\\%)", "flags": "Flags (PSNR)"}


def bd_latex(df, caption: str) -> str:
    """A booktabs `table` of the frame (pandas Styler.to_latex): text escaped for LaTeX, the anchor row in bold."""
    t = df.copy()
    t["ci"] = [None if lo is None or lo != lo else f"[{lo:+.1f}, {hi:+.1f}]"
               for lo, hi in zip(t["bd_rate_ci95_low_pct"], t["bd_rate_ci95_high_pct"])]
    t.loc[t["anchor"], ["bd_rate_pct", "bd_psnr_db", "flags"]] = [None, None, "anchor"]
    t["overlap_psnr"] = t["overlap_psnr"] * 100
    t = t[list(LATEX_COLUMNS)].astype(object)
    st = t.style.hide(axis="index").format(
        {"bd_rate_pct": "{:+.1f}", "bd_psnr_db": "{:+.2f}", "bd_rate_msssim_pct": "{:+.1f}", "bd_msssim_db": "{:+.2f}",
         "overlap_psnr": "{:.0f}", "flags": lambda v: v.replace("<", "$<$")}, na_rep="--", escape="latex")
    st = st.format_index(lambda c: LATEX_COLUMNS[c], axis="columns")
    st = st.apply(lambda row: ["font-weight: bold" if df["anchor"].iloc[row.name] else ""] * len(row), axis=1)
    return st.to_latex(hrules=True, caption=latex_escape(caption), convert_css=True,
                       column_format="l" * len(LATEX_COLUMNS), position="htbp")


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


# ---------------------------------------------------------------- the figure
def draw_compare(title: str, unit: str, series: list[dict], kind: str, anchor: str, log_rate: bool = False,
                 figsize=None, axes=None) -> bytes:
    """PNG bytes: the anchor black and thick, on top, marked "(anchor)" in the legend; measured curves solid,
    published dashed, in the leaderboard's colours; `log_rate`: a logarithmic rate axis."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .figures import DEFAULT_FIGSIZE

    buf = io.BytesIO()
    with sns.axes_style("whitegrid"), plt.rc_context({"axes.titlesize": 10, "legend.fontsize": 7}):
        fig, ax = plt.subplots(figsize=tuple(figsize or DEFAULT_FIGSIZE))
        try:
            for s in series:
                is_anchor = s["name"] == anchor
                ax.plot(s["x"], s["y"], "-" if s["measured"] or is_anchor else "--", marker="o" if s["measured"] else s["marker"],
                        color="black" if is_anchor else s["colour"], linewidth=2.8 if is_anchor else 1.5,
                        markersize=5 if is_anchor else 3.5, zorder=4 if is_anchor else 3,
                        label=s["label"] + (" (anchor)" if is_anchor else ""))
            if log_rate:  # ticks as plain numbers (0.2, 0.5, 1), not 2x10^-1
                from matplotlib.ticker import FuncFormatter

                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
            ax.set(title=title, xlabel=f"rate ({unit}{', log scale' if log_rate else ''})",
                   ylabel="PSNR (dB)" if kind == "psnr" else "MS-SSIM", **({"xlim": axes[:2], "ylim": axes[2:]} if axes else {}))
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
            fig.savefig(buf, format="png", dpi=110, metadata={"Software": None}, bbox_inches="tight")
        finally:
            plt.close(fig)
    return buf.getvalue()


def write_figure(protocol: str, unit: str, curves: list[RDCurve], out: Path, figsize=None, axes=None,
                 anchor: RDCurve | None = None, log_rate: bool = False) -> list[Path]:
    """`out` (PSNR) and `*_msssim` beside it, where the curves have those metrics; `anchor` (default: the first
    curve) highlighted."""
    anchor = anchor or curves[0]
    written = []
    for kind, path in (("psnr", out), ("msssim", out.with_name(out.stem + "_msssim" + out.suffix))):
        series = series_data(curves, kind)
        if series:
            title = f"{protocol}: {'PSNR' if kind == 'psnr' else 'MS-SSIM'} vs rate, against {anchor.label}"
            atomic_write_bytes(path, draw_compare(title, unit, series, kind, anchor.label, log_rate, figsize, axes))
            written.append(path)
    return written
