"""The `gaussian/wz` figures: the rate–distortion plane of one σ² (every result against the Wyner–Ziv bound, the
bound without side information and the two scalar references), and for a result whose `codec_info.figure` holds
the learned quantizer (layered_wz), the bins per stage as a function of x and the reconstruction x̂_k(y) per code
prefix (Joukovsky, De Weerd, Deligiannis, Fig. 3). SVG files (`leaderboard.svg`), written whole."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.results.bounds import (
    nosi_distortion_db,
    scalar_marginal_distortion_db,
    scalar_sw_sweep,
    wz_distortion_db,
)
from benchmark.results.schema import atomic_write_text

from .curves import result_key
from .gaussian_points import options_of, point_rows
from .svg import Figure, Panel, Series


TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
TAB20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
         "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5")
REFERENCES = "bounds and scalar references"


def _r(vals: Any, nd: int = 5) -> list[float]:
    return [round(float(v), nd) for v in vals]


def _references(sigma2: float, rmax: float) -> list[Series]:
    """The Wyner–Ziv bound, the bound without side information and the two scalar references up to rate `rmax`."""
    grid = np.linspace(0.0, rmax, 200)
    _, rates, dists = scalar_sw_sweep(float(sigma2))
    keep = rates <= rmax
    return [Series(_r(grid), _r(wz_distortion_db(r, sigma2) for r in grid), "#000", "Wyner–Ziv bound", REFERENCES),
            Series(_r(grid), _r(nosi_distortion_db(r, sigma2) for r in grid), "#000", "no side information", REFERENCES,
                   dash="2 3", width=1.2),
            Series(_r(rates[keep]), _r(10 * np.log10(dists[keep])), "#000", "scalar quantizer + ideal SW + MMSE",
                   REFERENCES, dash="6 3", width=1.2),
            Series(_r(grid), _r(scalar_marginal_distortion_db(float(r), sigma2) for r in grid), "#000",
                   "scalar quantizer + ideal marginal coder + MMSE", REFERENCES, dash="6 3 2 3", width=1.0)]


def _prior(result: dict[str, Any]) -> str:
    return str(options_of(result).get("prior") or "other")


def rd_figure(sigma2: float, results: list[dict[str, Any]], path: Path) -> None:
    """Distortion against rate: the references, then every result (solid: its ideal rate, dotted: its bytes), one
    panel per prior (conditional, marginal) so that each legend stays short."""
    rmax = 0.5
    for r in results:
        for row in point_rows(r, sigma2):
            rmax = max(rmax, row["rate_ideal"] or 0.0, row["rate_bytes"] or 0.0)
    rmax = min(rmax * 1.1, 8.0)
    refs = _references(sigma2, rmax)
    priors = sorted({_prior(r) for r in results}) or ["none"]
    panels = []
    for prior in priors:
        panel = Panel("rate (bits/sample)", "distortion 10·log10(MSE) (dB)", f"prior: {prior}", list(refs), xlim=(0.0, rmax))
        group = f"{prior} prior (solid: ideal rate, dotted: bytes)"
        for i, r in enumerate(x for x in results if _prior(x) == prior):
            rows, c = point_rows(r, sigma2), TAB10[i % 10]
            ri = [(x["rate_ideal"], x["d_db"]) for x in rows if x["rate_ideal"] is not None]
            rb = [(x["rate_bytes"], x["d_db"]) for x in rows if x["rate_bytes"] is not None]
            if ri:
                panel.series.append(Series(*map(_r, zip(*ri)), c, result_key(r), group, marker="o"))
            if rb:
                panel.series.append(Series(*map(_r, zip(*rb)), c, "" if ri else result_key(r), group, dash="2 3", marker="o"))
        panels.append(panel)
    fig = Figure(f"gaussian/wz, σ² = {sigma2:g}", panels, columns=2, panel_w=520, panel_h=330)
    atomic_write_text(path, fig.render())


def _runs(codes: str, x: np.ndarray) -> tuple[list[float], list[float]]:
    """The step line of one stage's code along x: one vertex per change of code (and the two ends)."""
    vals = [int(ch, 16) for ch in codes]
    xs, ys = [float(x[0])], [vals[0]]
    for i in range(1, len(vals)):
        if vals[i] != vals[i - 1]:
            mid = float(x[i - 1] + x[i]) / 2
            xs += [mid, mid]
            ys += [vals[i - 1], vals[i]]
    return _r(xs + [float(x[-1])], 4), [float(v) for v in ys + [vals[-1]]]


def binning_figure(result: dict[str, Any], fig_data: dict[str, Any], path: Path) -> None:
    """Top: code of each stage vs x. Bottom: x̂_k(y) for every code prefix of stage k."""
    codes = fig_data["codes"]
    K = len(codes)
    x = np.linspace(*fig_data["x"][:2], int(fig_data["x"][2]))
    y = _r(np.linspace(*fig_data["y"][:2], int(fig_data["y"][2])), 4)
    top, bottom = [], []
    for k in range(K):
        xs, ys = _runs(codes[k], x)
        top.append(Panel("x", "code", f"stage {k + 1}: m_{k + 1}(x)", [Series(xs, ys, TAB10[0], width=1.0)]))
        prefixes = sorted(p for p in fig_data["recon"] if len(p) == k + 1)
        many = len(prefixes) > 8  # the prefixes of a long stage are told apart by colour only (no legend)
        bottom.append(Panel("y", "x̂", f"stage {k + 1}: x̂_{k + 1}(y) per prefix", [
            Series(y, _r(fig_data["recon"][pre], 4), TAB20[j % 20], "" if many else pre + "X" * (K - k - 1),
                   f"stage {k + 1} code prefixes", width=1.0) for j, pre in enumerate(prefixes)]))
    fig = Figure(f"{result_key(result)}: learned bins and reconstructions", top + bottom, columns=K,
                 panel_w=260, panel_h=180, font=10)
    atomic_write_text(path, fig.render())
