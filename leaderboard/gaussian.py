"""The `gaussian/wz` section of the leaderboard: every measured point against the limits of the source.

Called by `leaderboard.build` as `gaussian_section(results, out_dir) -> markdown`. Results are grouped by
the noise variance σ² (results for different σ² are different sources). For every rate point of every
result the table gives the distortion D in dB (10·log10 MSE; lower is better), the rate, and at that rate
the Wyner–Ziv bound, the bound without side information and the practical scalar reference (uniform
scalar quantizer + ideal Slepian–Wolf coding + E[X|Q,Y], computed exactly), with the gaps in dB
(positive = worse than the reference). Gaps are given twice: at the ideal rate the codec estimates
(`bpp_estimated`: cross-entropy under its prior, the paper's rate) and at the rate of the real bytes.

Figures (PNG beside the README): the rate–distortion plane per σ², and for every result whose
`codec_info.figure` holds the learned quantizer (layered_wz), the bins per stage as a function of x and
the reconstruction x̂_k(y) per code prefix (paper 004_*, Fig. 3)."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from datasets.gaussian import nosi_distortion_db, wz_distortion_db
from methods.layered_wz.scalar_reference import scalar_sw_distortion_db, scalar_sw_sweep

NA = "—"


def sigma2_of(result: dict[str, Any]) -> float | None:
    for where in (result.get("dataset_options") or {}, ((result.get("codec_info") or {}).get("options") or {})):
        v = where.get("sigma2")
        if v is not None:
            return float(v)
    return None


def label_of(result: dict[str, Any]) -> str:
    return result["method"] + (f".{result['variant']}" if result.get("variant") else "")


def point_rows(result: dict[str, Any], sigma2: float) -> list[dict[str, Any]]:
    """One dict per rate point: rates, D in dB, the three references at the ideal and the byte rate, gaps."""
    rows = []
    for p in result.get("points", []):
        mse = p.get("mse")
        if mse is None or not mse > 0:
            continue
        d_db = 10.0 * math.log10(mse)
        row = {"point": p["rate_point"], "d_db": d_db, "rate_bytes": p.get("bpp"), "rate_ideal": p.get("bpp_estimated")}
        for tag, r in (("ideal", row["rate_ideal"]), ("bytes", row["rate_bytes"])):
            if r is None:
                continue
            row[f"wz_{tag}"] = wz_distortion_db(r, sigma2)
            row[f"nosi_{tag}"] = nosi_distortion_db(r, sigma2)
            row[f"sq_{tag}"] = scalar_sw_distortion_db(r, sigma2)
            row[f"gap_wz_{tag}"] = d_db - row[f"wz_{tag}"]
            row[f"gap_sq_{tag}"] = d_db - row[f"sq_{tag}"]
            row[f"gap_nosi_{tag}"] = d_db - row[f"nosi_{tag}"]
        rows.append(row)
    return rows


def _f(v: Any, fmt: str = ".3f", signed: bool = False) -> str:
    if v is None:
        return NA
    return format(v, ("+" if signed else "") + fmt)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    from benchmark.atomicio import atomic_write_bytes

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
        cmap = plt.get_cmap("tab10")
        for i, r in enumerate(results):
            rows = point_rows(r, sigma2)
            c = cmap(i % 10)
            ri = [(x["rate_ideal"], x["d_db"]) for x in rows if x["rate_ideal"] is not None]
            rb = [(x["rate_bytes"], x["d_db"]) for x in rows if x["rate_bytes"] is not None]
            if ri:
                ax.plot(*zip(*ri), "-o", color=c, ms=5, label=f"{label_of(r)} (ideal rate)")
            if rb:
                ax.plot(*zip(*rb), ":o", color=c, ms=5, mfc="none", label=f"{label_of(r)} (bytes)")
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
        fig.suptitle(f"{label_of(result)}: learned bins and reconstructions", fontsize=10)
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)


def gaussian_section(results: Iterable[dict[str, Any]], out_dir: Path) -> str:
    out_dir = Path(out_dir)
    results = list(results)
    groups: dict[float | None, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(sigma2_of(r), []).append(r)
    lines = [
        "Source: Y ~ N(0,1) at the decoder only, X = Y + N(0, σ²); MSE in dB (10·log10 MSE, lower is better); "
        "rates in bits/sample. References at the codec's rate: **WZ** = Wyner–Ziv bound σ²·2^(−2R); **no-SI** = "
        "(1+σ²)·2^(−2R); **SQ** = uniform scalar quantizer with ideal Slepian–Wolf coding (rate H(Q|Y)) and "
        "E[X|Q,Y], exact. Gaps are D − reference in dB (positive = worse). *ideal* = the codec's estimated rate "
        "(`bpp_estimated`: cross-entropy under its prior — an ideal Slepian–Wolf coder for conditional priors, an "
        "ideal entropy coder for marginal ones); *bytes* = the real bitstream (container included).",
        "",
    ]
    for s2 in sorted(groups, key=lambda v: (v is None, v or 0.0)):
        rs = sorted(groups[s2], key=label_of)
        if s2 is None:
            lines += ["### σ² unknown", "", "_Results without `sigma2` in their dataset options cannot be compared "
                      "with the bounds: " + ", ".join(f"`{label_of(r)}`" for r in rs) + "._", ""]
            continue
        lines += [f"### σ² = {s2:g}", ""]
        header = ["method", "point", "rate ideal", "rate bytes", "D (dB)", "WZ (dB)", "no-SI (dB)", "SQ (dB)",
                  "gap WZ", "gap SQ", "gap no-SI", "gap WZ @bytes", "gap SQ @bytes"]
        body = []
        for r in rs:
            for row in point_rows(r, s2):
                t = "ideal" if row["rate_ideal"] is not None else "bytes"
                body.append([f"`{label_of(r)}`", row["point"], _f(row["rate_ideal"]), _f(row["rate_bytes"]),
                             _f(row["d_db"], ".2f"), _f(row.get(f"wz_{t}"), ".2f"), _f(row.get(f"nosi_{t}"), ".2f"),
                             _f(row.get(f"sq_{t}"), ".2f"), _f(row.get(f"gap_wz_{t}"), ".2f", True),
                             _f(row.get(f"gap_sq_{t}"), ".2f", True), _f(row.get(f"gap_nosi_{t}"), ".2f", True),
                             _f(row.get("gap_wz_bytes"), ".2f", True), _f(row.get("gap_sq_bytes"), ".2f", True)])
        lines += _table(header, body) + [""]
        rd = out_dir / f"gaussian__wz_s{s2:g}_rd.png"
        rd_figure(s2, rs, rd)
        lines += [f"![gaussian/wz σ²={s2:g}: distortion vs rate]({rd.name})", ""]
        for r in rs:
            fd = (r.get("codec_info") or {}).get("figure")
            if fd and fd.get("codes"):
                p = out_dir / f"gaussian__wz_{_slug(label_of(r))}_bins.png"
                binning_figure(r, fd, p)
                lines += [f"![{label_of(r)}: bins and reconstructions]({p.name})", ""]
    if not results:
        lines += ["_No measured results for this protocol yet — `bench run --method layered_wz --dataset gaussian` "
                  "writes one._", ""]
    return "\n".join(lines)
