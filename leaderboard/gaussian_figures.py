"""The `gaussian/wz` figures: the rate–distortion plane of one σ² (every result against the Wyner–Ziv bound, the
bound without side information and the two scalar references), and for a result whose `codec_info.figure` holds
the learned quantizer (layered_wz), the bins per stage as a function of x and the reconstruction x̂_k(y) per code
prefix (paper 004_*, Fig. 3). PNG files, written whole."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.results.bounds import (
    nosi_distortion_db,
    scalar_marginal_distortion_db,
    scalar_sw_sweep,
    wz_distortion_db,
)
from benchmark.safety.atomicio import atomic_write_bytes

from .curves import result_key
from .gaussian_points import point_rows


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def rd_figure(sigma2: float, results: list[dict[str, Any]], path: Path) -> None:
    plt = _plt()
    rmax = 0.5
    for r in results:
        for row in point_rows(r, sigma2):
            rmax = max(rmax, row["rate_ideal"] or 0.0, row["rate_bytes"] or 0.0)
    rmax = min(rmax * 1.1, 8.0)
    grid = np.linspace(0.0, rmax, 200)
    fig, ax = plt.subplots(figsize=(8.5, 5.0))
    try:
        ax.plot(grid, [wz_distortion_db(r, sigma2) for r in grid], "k-", lw=1.5, label="Wyner–Ziv bound")
        ax.plot(grid, [nosi_distortion_db(r, sigma2) for r in grid], "k:", lw=1.2, label="no side information")
        _, rates, dists = scalar_sw_sweep(float(sigma2))
        keep = rates <= rmax
        ax.plot(rates[keep], 10 * np.log10(dists[keep]), "k--", lw=1.2, label="scalar quantizer + ideal SW + MMSE")
        mr = np.linspace(0.0, rmax, 200)
        ax.plot(mr, [scalar_marginal_distortion_db(float(r), sigma2) for r in mr], "k-.", lw=1.0,
                label="scalar quantizer + ideal marginal coder + MMSE")
        cmap = plt.get_cmap("tab10")
        for i, r in enumerate(results):
            rows = point_rows(r, sigma2)
            c = cmap(i % 10)
            ri = [(x["rate_ideal"], x["d_db"]) for x in rows if x["rate_ideal"] is not None]
            rb = [(x["rate_bytes"], x["d_db"]) for x in rows if x["rate_bytes"] is not None]
            if ri:
                ax.plot(*zip(*ri), "-o", color=c, ms=5, label=f"{result_key(r)} (ideal rate)")
            if rb:
                ax.plot(*zip(*rb), ":o", color=c, ms=5, mfc="none", label=f"{result_key(r)} (bytes)")
        ax.set_xlim(0, rmax)
        ax.set_xlabel("rate (bits/sample)")
        ax.set_ylabel("distortion 10·log10(MSE) (dB)")
        ax.set_title(f"gaussian/wz, σ² = {sigma2:g}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)


def binning_figure(result: dict[str, Any], fig_data: dict[str, Any], path: Path) -> None:
    """Top: code of each stage vs x. Bottom: x̂_k(y) for every code prefix of stage k."""
    plt = _plt()
    codes = fig_data["codes"]
    K = len(codes)
    x = np.linspace(*fig_data["x"][:2], int(fig_data["x"][2]))
    y = np.linspace(*fig_data["y"][:2], int(fig_data["y"][2]))
    fig, axes = plt.subplots(2, K, figsize=(3.2 * K + 0.5, 5.6), squeeze=False)
    try:
        cmap = plt.get_cmap("tab20")
        for k in range(K):
            ax = axes[0][k]
            ax.step(x, [int(ch, 16) for ch in codes[k]], where="mid", lw=1.0)
            ax.set_title(f"stage {k + 1}: m_{k + 1}(x)", fontsize=9)
            ax.set_xlabel("x", fontsize=8)
            ax.tick_params(labelsize=7)
            ax = axes[1][k]
            prefixes = sorted(p for p in fig_data["recon"] if len(p) == k + 1)
            for j, pre in enumerate(prefixes):
                ax.plot(y, fig_data["recon"][pre], lw=1.0, color=cmap(j % 20), label=pre + "X" * (K - k - 1))
            ax.set_title(f"stage {k + 1}: x̂_{k + 1}(y) per prefix", fontsize=9)
            ax.set_xlabel("y", fontsize=8)
            ax.tick_params(labelsize=7)
            if len(prefixes) <= 8:
                ax.legend(fontsize=6, frameon=False)
        fig.suptitle(f"{result_key(result)}: learned bins and reconstructions", fontsize=10)
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)
