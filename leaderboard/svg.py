"""A small SVG plot writer for the leaderboard's figures: line plots in one or more panels, with markers, dashes,
shaded bands, step lines, point labels placed so that they never overlap, and a legend under the panels with
its entries in groups ("measured", "published", ...) and as many columns as fit.

Pure Python and plain text: the same data give the same bytes on every machine and with every library version
(numbers are written with fixed decimals), so the committed leaderboard holds its figures and a rebuild compares
them byte for byte. Every text is XML-escaped.

    fig = Figure("title", panels=[Panel("x", "y", series=[Series([0, 1], [2, 3], "#1f77b4", label="a")])])
    text = fig.render()
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

FONT = "font-family=\"DejaVu Sans,Arial,sans-serif\""
CHAR_W = 0.58  # mean glyph width / font size, for laying out text without a font engine


@dataclass
class Series:
    x: Sequence[float]
    y: Sequence[float]
    colour: str
    label: str = ""  # "" = not in the legend
    group: str = ""  # legend group heading
    dash: str = ""  # SVG stroke-dasharray, "" = solid, "none" = no line (markers only)
    marker: str = ""  # o s ^ v D P X < > . or "" for none
    width: float = 1.5
    opacity: float = 1.0
    step: bool = False  # a step line, changing value half-way between x samples
    labels: Sequence[str] = ()  # one text per point (e.g. training steps), placed without overlaps


@dataclass
class Band:
    x: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]
    colour: str
    opacity: float = 0.2


@dataclass
class Panel:
    xlabel: str
    ylabel: str
    title: str = ""
    series: list[Series] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None


@dataclass
class Figure:
    title: str
    panels: list[Panel]
    columns: int = 0  # panels per row (0 = all in one row)
    panel_w: float = 620.0
    panel_h: float = 380.0
    font: float = 11.0

    def render(self) -> str:
        return _render(self)


def _f(v: float) -> str:
    """A coordinate with one decimal and no "-0.0"."""
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


def text_width(s: str, size: float) -> float:
    return CHAR_W * size * len(s)


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, k = [], 0
    while first + k * step <= hi + 1e-9 * step:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def tick_text(v: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(v) or 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / 10 ** math.floor(math.log10(step)), 6) == 2.5 else 0)
    return f"{v:.{decimals}f}"


def _limits(panel: Panel) -> tuple[float, float, float, float]:
    xs = [v for s in panel.series for v in s.x if math.isfinite(v)] + [v for b in panel.bands for v in b.x]
    ys = [v for s in panel.series for v in s.y if math.isfinite(v)] + [v for b in panel.bands for v in (*b.lo, *b.hi)]
    x0, x1 = panel.xlim or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    y0, y1 = panel.ylim or ((min(ys), max(ys)) if ys else (0.0, 1.0))
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if not panel.xlim:
        pad = 0.04 * (x1 - x0)
        x0, x1 = x0 - pad, x1 + pad
    if not panel.ylim:
        pad = 0.06 * (y1 - y0)
        y0, y1 = y0 - pad, y1 + pad
    return x0, x1, y0, y1


@dataclass
class _Box:
    """Pixel frame of one panel's plotting area and its data limits."""

    left: float
    top: float
    w: float
    h: float
    lim: tuple[float, float, float, float]

    def px(self, x: float, y: float) -> tuple[float, float]:
        x0, x1, y0, y1 = self.lim
        return self.left + (x - x0) / (x1 - x0) * self.w, self.top + self.h - (y - y0) / (y1 - y0) * self.h


def _marker(kind: str, x: float, y: float, colour: str, r: float = 3.2) -> str:
    fill = f'fill="{colour}" stroke="{colour}"'
    if kind in ("o", "."):
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r if kind == "o" else 1.6)}" {fill}/>'
    if kind == "s":
        return f'<rect x="{_f(x - r)}" y="{_f(y - r)}" width="{_f(2 * r)}" height="{_f(2 * r)}" {fill}/>'
    shapes = {"^": [(0, -1.2), (1.1, 0.8), (-1.1, 0.8)], "v": [(0, 1.2), (1.1, -0.8), (-1.1, -0.8)],
              "<": [(-1.2, 0), (0.8, -1.1), (0.8, 1.1)], ">": [(1.2, 0), (-0.8, -1.1), (-0.8, 1.1)],
              "D": [(0, -1.3), (1.0, 0), (0, 1.3), (-1.0, 0)],
              "P": [(-.4, -1.1), (.4, -1.1), (.4, -.4), (1.1, -.4), (1.1, .4), (.4, .4), (.4, 1.1), (-.4, 1.1),
                    (-.4, .4), (-1.1, .4), (-1.1, -.4), (-.4, -.4)],
              "X": [(-1, -1), (0, -.35), (1, -1), (.35, 0), (1, 1), (0, .35), (-1, 1), (-.35, 0)]}
    pts = " ".join(f"{_f(x + dx * r)},{_f(y + dy * r)}" for dx, dy in shapes.get(kind, shapes["D"]))
    return f'<polygon points="{pts}" {fill}/>'


def _step_xy(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """A step line that changes value half-way between samples (matplotlib's `where="mid"`)."""
    px, py = [xs[0]], [ys[0]]
    for i in range(1, len(xs)):
        mid = (xs[i - 1] + xs[i]) / 2
        px += [mid, mid]
        py += [ys[i - 1], ys[i]]
    return px + [xs[-1]], py + [ys[-1]]


def _line(s: Series, box: _Box) -> list[str]:
    xs, ys = _step_xy(s.x, s.y) if s.step else (list(s.x), list(s.y))
    out = []
    pts = [box.px(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    if s.dash != "none" and len(pts) > 1:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<polyline points="{" ".join(f"{_f(a)},{_f(b)}" for a, b in pts)}" fill="none" stroke="{s.colour}" '
                   f'stroke-width="{s.width:g}" stroke-opacity="{s.opacity:g}"{dash}/>')
    if s.marker:
        out += [f'<g fill-opacity="{s.opacity:g}">'] + [_marker(s.marker, a, b, s.colour) for a, b in
                                                      (box.px(x, y) for x, y in zip(s.x, s.y))] + ["</g>"]
    return out


def _overlaps(a: tuple[float, float, float, float], boxes: list[tuple[float, float, float, float]]) -> bool:
    return any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for b in boxes)


def _point_labels(panel: Panel, box: _Box, size: float) -> list[str]:
    """Each point label at the first place around its point that overlaps no other label, no marker and stays in
    the panel; a label with no such place is left out (never drawn over another)."""
    taken: list[tuple[float, float, float, float]] = []
    for s in panel.series:
        for x, y in zip(s.x, s.y):
            px, py = box.px(x, y)
            taken.append((px - 3, py - 3, px + 3, py + 3))
    out = []
    for s in panel.series:
        for x, y, t in zip(s.x, s.y, s.labels):
            if not t:
                continue
            px, py = box.px(x, y)
            w, h = text_width(t, size), size
            for dx, dy in ((4, -4), (4, h + 3), (-4 - w, -4), (-4 - w, h + 3), (-w / 2, -7), (-w / 2, h + 7),
                           (6, h / 2 - 1), (-6 - w, h / 2 - 1), (4, -4 - h), (-4 - w, -4 - h), (4, 2 * h + 4)):
                rect = (px + dx, py + dy - h, px + dx + w, py + dy)
                inside = rect[0] >= box.left and rect[2] <= box.left + box.w and rect[1] >= box.top and rect[3] <= box.top + box.h
                if inside and not _overlaps(rect, taken):
                    taken.append(rect)
                    out.append(f'<text x="{_f(rect[0])}" y="{_f(rect[3] - 1)}" font-size="{size:g}" fill="{s.colour}">'
                               f"{escape(t)}</text>")
                    break
    return out


def _axes(panel: Panel, box: _Box, size: float) -> list[str]:
    x0, x1, y0, y1 = box.lim
    out = [f'<rect x="{_f(box.left)}" y="{_f(box.top)}" width="{_f(box.w)}" height="{_f(box.h)}" fill="#fff" stroke="#888"/>']
    xt, yt = nice_ticks(x0, x1), nice_ticks(y0, y1)
    for t in xt:
        px, _ = box.px(t, y0)
        out.append(f'<line x1="{_f(px)}" y1="{_f(box.top)}" x2="{_f(px)}" y2="{_f(box.top + box.h)}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{_f(px)}" y="{_f(box.top + box.h + size + 3)}" font-size="{size - 1:g}" '
                   f'text-anchor="middle">{tick_text(t, xt)}</text>')
    for t in yt:
        _, py = box.px(x0, t)
        out.append(f'<line x1="{_f(box.left)}" y1="{_f(py)}" x2="{_f(box.left + box.w)}" y2="{_f(py)}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{_f(box.left - 5)}" y="{_f(py + size / 3)}" font-size="{size - 1:g}" '
                   f'text-anchor="end">{tick_text(t, yt)}</text>')
    cx, cy = box.left + box.w / 2, box.top + box.h / 2
    out.append(f'<text x="{_f(cx)}" y="{_f(box.top + box.h + 2 * size + 8)}" font-size="{size:g}" '
               f'text-anchor="middle">{escape(panel.xlabel)}</text>')
    out.append(f'<text x="{_f(box.left - 44)}" y="{_f(cy)}" font-size="{size:g}" text-anchor="middle" '
               f'transform="rotate(-90 {_f(box.left - 44)} {_f(cy)})">{escape(panel.ylabel)}</text>')
    if panel.title:
        out.append(f'<text x="{_f(cx)}" y="{_f(box.top - 6)}" font-size="{size:g}" text-anchor="middle">'
                   f"{escape(panel.title)}</text>")
    return out


def _panel(panel: Panel, box: _Box, clip: str, size: float) -> list[str]:
    out = _axes(panel, box, size)
    out.append(f'<clipPath id="{clip}"><rect x="{_f(box.left)}" y="{_f(box.top)}" width="{_f(box.w)}" '
               f'height="{_f(box.h)}"/></clipPath><g clip-path="url(#{clip})">')
    for b in panel.bands:
        upper = [box.px(x, v) for x, v in zip(b.x, b.hi)]
        lower = [box.px(x, v) for x, v in zip(b.x, b.lo)][::-1]
        out.append(f'<polygon points="{" ".join(f"{_f(a)},{_f(c)}" for a, c in upper + lower)}" fill="{b.colour}" '
                   f'fill-opacity="{b.opacity:g}" stroke="none"/>')
    for s in panel.series:
        out += _line(s, box)
    out.append("</g>")
    return out + _point_labels(panel, box, size - 2)


def _legend_entries(fig: Figure) -> list[tuple[str, Series]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in fig.panels:
        for s in p.series:
            if s.label and (s.group, s.label) not in seen:
                seen.add((s.group, s.label))
                out.append((s.group, s))
    return out


def _legend(fig: Figure, top: float, width: float) -> tuple[list[str], float]:
    """The legend under the panels, one block per group (in order of first appearance), entries in columns."""
    size = fig.font - 1.5
    entries = _legend_entries(fig)
    groups: list[str] = []
    for g, _ in entries:
        if g not in groups:
            groups.append(g)
    out, y = [], top
    for g in groups:
        items = [s for gg, s in entries if gg == g]
        if g:
            out.append(f'<text x="20" y="{_f(y + size)}" font-size="{size:g}" font-weight="bold">{escape(g)}</text>')
            y += size + 6
        col_w = max(text_width(s.label, size) for s in items) + 40
        ncol = max(1, min(len(items), int((width - 20) // col_w)))
        for i, s in enumerate(items):
            cx, cy = 20 + (i % ncol) * col_w, y + (i // ncol) * (size + 5) + size / 2
            sample = Series([0, 1], [0, 0], s.colour, dash=s.dash, marker="", width=s.width, opacity=s.opacity)
            if s.dash != "none":
                out += _line(sample, _Box(cx, cy, 24, 0.0001, (0, 1, -1, 1)))
            if s.marker:
                out.append(_marker(s.marker, cx + 12, cy, s.colour))
            out.append(f'<text x="{_f(cx + 30)}" y="{_f(cy + size / 3)}" font-size="{size:g}">{escape(s.label)}</text>')
        y += math.ceil(len(items) / ncol) * (size + 5) + 6
    return out, y - top


def _render(fig: Figure) -> str:
    cols = fig.columns or len(fig.panels)
    rows = math.ceil(len(fig.panels) / cols)
    left, top, gap_x, gap_y = 70.0, 40.0, 80.0, 70.0
    width = left + cols * fig.panel_w + (cols - 1) * gap_x + 20
    body = []
    for i, p in enumerate(fig.panels):
        r, c = divmod(i, cols)
        box = _Box(left + c * (fig.panel_w + gap_x), top + r * (fig.panel_h + gap_y), fig.panel_w, fig.panel_h, _limits(p))
        body += _panel(p, box, f"clip{i}", fig.font)
    legend_top = top + rows * fig.panel_h + (rows - 1) * gap_y + 2 * fig.font + 22
    legend, legend_h = _legend(fig, legend_top, width)
    height = legend_top + legend_h + 10
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
            f'viewBox="0 0 {_f(width)} {_f(height)}" {FONT}>')
    title = (f'<rect width="100%" height="100%" fill="#fff"/><text x="{_f(width / 2)}" y="{_f(fig.font + 8)}" '
             f'font-size="{fig.font + 1:g}" text-anchor="middle">{escape(fig.title)}</text>')
    return "\n".join([head, f"<title>{escape(fig.title)}</title>", title] + body + legend + ["</svg>"]) + "\n"
