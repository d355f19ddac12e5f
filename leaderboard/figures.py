"""RD figures: measured curves solid with markers, published curves dashed, one stable colour per method.

The colour of a method comes from its name (a hash into a 20-colour seaborn palette, moved on to the next free
colour where two methods of one figure would share one), so a method has the same colour in every figure of a
build, and in every build where its neighbours are the same. The legend sits under the axes in several columns
instead of beside them. `series_data` returns what a figure draws as plain numbers: the committed-leaderboard
test compares that (never PNG bytes). `figsize` and `axes` (xmin, xmax, ymin, ymax) work as in CompressAI's
plot tool."""
from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmark.results.ranking import is_ranked

from .curves import RDCurve

_MARKERS = ("v", "s", "^", "D", "P", "X", "<", ">")
_RATE_MARKERS = {"bpp": "s", "bpp_uniform": "^", "bpp_prior": "v"}  # curves of one method (one colour) told apart
DEFAULT_FIGSIZE = (8.0, 5.6)


def _palette() -> list[tuple[float, float, float]]:
    import seaborn as sns

    return [tuple(c) for c in sns.color_palette("tab20", 20)]


def family(method: str) -> str:
    """Colour key: the method without its M suffix (DRASIC m2/m4/... share a colour, markers tell M apart), dots as
    underscores (a published curve's key `ndic.balle2018` and the suite's method `ndic_balle2018` share a colour:
    ours solid, theirs dashed)."""
    return re.sub(r"\.m\d+$", "", method).replace(".", "_")


def assign_colours(groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """One colour per method family for a whole build: each starts at the palette index its name hashes to and
    moves on past colours already taken by a family it shares a figure with (`groups`: the methods of each
    figure), so a method keeps its colour in every figure and two methods of one figure differ (up to 20)."""
    pal = ["#%02x%02x%02x" % tuple(round(255 * v) for v in c) for c in _palette()]
    groups = [{family(m) for m in g} for g in groups]
    out: dict[str, str] = {}
    for fam in sorted(set().union(*groups) if groups else set()):
        taken = {out[o] for g in groups if fam in g for o in g if o in out}
        start = zlib.crc32(fam.encode("utf-8")) % len(pal)
        free = [pal[(start + i) % len(pal)] for i in range(len(pal)) if pal[(start + i) % len(pal)] not in taken]
        out[fam] = free[0] if free else pal[start]
    return out


def series_data(curves: Sequence[RDCurve], kind: str, colours: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """What the figure of `kind` ("psnr" | "msssim") draws: one dict per curve, sorted as drawn. `colours` maps a
    method family to its colour (`assign_colours`); by default the figure's own curves are coloured."""
    colours = colours or assign_colours([[c.method for c in curves]])
    out = []
    sources = sorted({c.sources for c in curves if c.origin != "measured" and c.sources})
    for c in curves:
        pts = c.psnr if kind == "psnr" else [(b, 1.0 - 10 ** (-v / 10)) for b, v in c.msssim_db]
        pts = sorted(p for p in pts if p[0] > 0)
        if not pts:
            continue
        measured = c.origin == "measured"
        ranked = measured and c.result is not None and is_ranked(c.result)[0]
        label = c.label + ((" (measured)" if ranked else " (measured, not ranked)") if measured
                           else f" [{c.provenance}, {c.rate_type}]")
        marker = "o" if measured else (_MARKERS[sources.index(c.sources) % len(_MARKERS)] if c.sources
                                       else _RATE_MARKERS.get(c.rate_type, "."))
        out.append({"label": label, "name": c.label, "method": c.method, "measured": measured, "ranked": ranked, "marker": marker,
                    "colour": colours.get(family(c.method)) or assign_colours([[c.method]])[family(c.method)],
                    "x": [round(b, 8) for b, _ in pts], "y": [round(q, 6) for _, q in pts]})
    return out


def draw(title: str, rate_unit: str, series: list[dict[str, Any]], kind: str, path: Path,
         figsize: Sequence[float] | None = None, axes: Sequence[float] | None = None, bands: dict[str, Any] | None = None) -> bytes:
    """Render the series to PNG bytes (written by the caller)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    import seaborn as sns

    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=tuple(figsize or DEFAULT_FIGSIZE))
        try:
            for s in series:
                if s["measured"]:
                    ranked = s.get("ranked", True)  # unranked runs (partial, short training) drawn lighter
                    ax.plot(s["x"], s["y"], "-o", color=s["colour"], label=s["label"], linewidth=2 if ranked else 1.2,
                            markersize=5 if ranked else 3.5, alpha=1.0 if ranked else 0.6, zorder=3)
                    band = (bands or {}).get(s["name"])
                    if band:
                        ax.fill_between(band[0], band[1], band[2], color=s["colour"], alpha=0.2, linewidth=0)
                else:
                    ax.plot(s["x"], s["y"], "--", marker=s["marker"], color=s["colour"], label=s["label"], linewidth=1.3,
                            markersize=4 if s["marker"] == "." else 3.5, alpha=0.9, zorder=2)
            if axes:
                ax.set_xlim(axes[0], axes[1])
                ax.set_ylim(axes[2], axes[3])
            ax.set_xlabel(f"rate ({rate_unit})")
            ax.set_ylabel("PSNR (dB)" if kind == "psnr" else "MS-SSIM")
            ax.set_title(title, fontsize=10)
            ncol = 3 if len(series) > 8 else 2
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=ncol, fontsize=6.5, frameon=False,
                      handlelength=2.2, columnspacing=1.0)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, metadata={"Software": None}, bbox_inches="tight")
        finally:
            plt.close(fig)
    return buf.getvalue()


PX_PER_INCH = 80.0
LEGEND_GROUP = 10  # more curves of one origin than this: their legend in one block per method family


def svg(title: str, rate_unit: str, series: list[dict[str, Any]], kind: str, figsize: Sequence[float] | None = None,
        axes: Sequence[float] | None = None, bands: dict[str, Any] | None = None) -> str:
    """The same figure as `draw`, as SVG text (`leaderboard.svg`: byte-stable, no plotting library): measured curves
    solid with markers (lighter when not ranked), published dashed, the legend in those two groups."""
    from .svg import Band, Figure, Panel, Series

    panel = Panel(f"rate ({rate_unit})", "PSNR (dB)" if kind == "psnr" else "MS-SSIM")
    many = {m: sum(s["measured"] == m for s in series) > LEGEND_GROUP for m in (True, False)}

    def group(s: dict[str, Any]) -> str:  # beyond LEGEND_GROUP entries, one legend block per method family
        base = "measured by this suite" if s["measured"] else "published"
        return f"{base}: {family(s['method'])}" if many[s["measured"]] else base

    for s in series:
        if s["measured"]:
            ranked = s.get("ranked", True)
            band = (bands or {}).get(s["name"])
            if band:
                panel.bands.append(Band(band[0], band[1], band[2], s["colour"]))
            panel.series.append(Series(s["x"], s["y"], s["colour"], s["label"], group(s), marker="o",
                                       width=2.0 if ranked else 1.2, opacity=1.0 if ranked else 0.6))
        else:
            panel.series.append(Series(s["x"], s["y"], s["colour"], s["label"], group(s), dash="6 3",
                                       marker=s["marker"], width=1.3, opacity=0.9))
    if axes:
        panel.xlim, panel.ylim = (axes[0], axes[1]), (axes[2], axes[3])
    w, h = figsize or DEFAULT_FIGSIZE
    return Figure(title, [panel], panel_w=w * PX_PER_INCH, panel_h=h * PX_PER_INCH * 0.75).render()
