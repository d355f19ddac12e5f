"""Leaderboard extra for codecs measured against a joint reference: every configuration against the `joint`
configuration of the same method, number of sources M and iterations T.

Registered in `leaderboard.sections` as an extra section, `joint_gap_section(results) -> markdown | None`, for
the results of every protocol; returns None unless a protocol holds a measured result whose `codec_info.config`
is `joint` and at least one other result of the same method with the same number of sources M and iterations T
(`codec_info.sources`, `.iterations`: what DRASIC records). All DRASIC configurations code the same raw binary code (8 bits per 8x8 block and iteration), so
their rate points sit at identical bpp and the gap is a plain PSNR difference per iteration (positive = better
than joint). BD-PSNR over the common rate interval is given too. The worst-source column is the PSNR of the
worst encoder minus the joint PSNR (the lower edge of the band)."""
from __future__ import annotations

import math

from typing import Any

from benchmark.results.bdrate import bd_psnr

from .compare import MIN_OVERLAP, overlap_fraction

from .curves import result_key
from .formatting import NA, md_table, text


def _info(result: dict[str, Any]) -> dict[str, Any]:
    return result.get("codec_info") or {}


def _group_key(result: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """(method, M, T) of a result that records its configuration; None for any other."""
    info = _info(result)
    if info.get("config") is None:
        return None
    return result.get("method"), info.get("sources"), info.get("iterations")


def _psnr_by_point(result: dict[str, Any], key: str = "psnr") -> dict[str, tuple[float, float]]:
    return {p["rate_point"]: (p["bpp"], p[key]) for p in result.get("points", [])
            if p.get("bpp") is not None and p.get(key) is not None}


def _f(v: float | None) -> str:
    return text(v, "{:+.2f}")


def gaps(result: dict[str, Any], joint: dict[str, Any]) -> dict[str, Any]:
    """PSNR(result) - PSNR(joint) per shared rate point (mean and worst source), and BD-PSNR vs joint."""
    mine, ref = _psnr_by_point(result), _psnr_by_point(joint)
    worst = _psnr_by_point(result, "psnr_min")
    shared = [p for p in mine if p in ref]
    per_point = {p: mine[p][1] - ref[p][1] for p in shared}
    worst_point = {p: worst[p][1] - ref[p][1] for p in shared if p in worst}
    bd = None
    if len(shared) >= 4:
        try:
            bd = bd_psnr([ref[p][0] for p in shared], [ref[p][1] for p in shared],
                         [mine[p][0] for p in shared], [mine[p][1] for p in shared])
        except Exception:  # degenerate curves (non-monotone rates): the per-point gaps still stand
            bd = None
    overlap = None
    if bd is not None:  # BD-PSNR integrates over the common log-rate interval
        la, lr = [math.log10(mine[p][0]) for p in shared], [math.log10(ref[p][0]) for p in shared]
        overlap = overlap_fraction(la, lr)
    return {"points": shared, "delta": per_point, "delta_worst": worst_point, "bd_psnr": bd, "overlap": overlap}


def _rows(others: list[dict[str, Any]], joint: dict[str, Any]) -> list[list[Any]]:
    """One row per configuration: BD-PSNR against joint and the PSNR difference at a few iterations."""
    rows = []
    for r in others:
        g = gaps(r, joint)
        if not g["points"]:
            continue
        pts = g["points"]
        picks = list(dict.fromkeys((pts[0], pts[len(pts) // 4], pts[len(pts) // 2], pts[-1])))
        d = g["delta"]
        flag = (f" (poor overlap {g['overlap']:.0%} < {MIN_OVERLAP:.0%})" if g["overlap"] is not None
                and g["overlap"] < MIN_OVERLAP else "")
        rows.append([result_key(r), _info(r).get("config"), _f(g["bd_psnr"]) + flag, " · ".join(f"{p}: {_f(d[p])}" for p in picks),
                     _f(min(d.values())), _f(max(d.values())),
                     _f(min(g["delta_worst"].values())) if g["delta_worst"] else NA])
    return rows


def _distributed_vs_separate(others: list[dict[str, Any]], joint: dict[str, Any]) -> list[str]:
    """The sentence comparing the distributed and the separate configuration iteration by iteration."""
    by_cfg = {(_info(r).get("config"), bool(_info(r).get("low_complexity"))): r for r in others}
    dist, sep = by_cfg.get(("distributed", False)), by_cfg.get(("separate", False))
    if dist is None or sep is None:
        return []
    a, b = gaps(dist, joint)["delta"], gaps(sep, joint)["delta"]
    diff = {p: a[p] - b[p] for p in a if p in b}
    if not diff:
        return []
    worst = min(diff, key=diff.get)
    return [f"Distributed − separate: {_f(min(diff.values()))} to {_f(max(diff.values()))} dB over "
            f"{len(diff)} iterations (smallest at {worst}); distributed is at least as good at "
            f"{sum(v >= 0 for v in diff.values())} of {len(diff)}.", ""]


def joint_gap_section(results: list[dict[str, Any]]) -> str | None:
    groups: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    for r in results:
        k = _group_key(r)
        if k is not None:
            groups.setdefault(k, []).append(r)
    lines: list[str] = []
    for (method, m, t), rs in sorted(groups.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        joints = [r for r in rs if _info(r).get("config") == "joint"]
        others = sorted((r for r in rs if _info(r).get("config") != "joint"), key=result_key)
        rows = _rows(others, joints[0]) if joints else []
        if not rows:
            continue
        lines += [f"#### `{method}`: gap to the joint reference `{result_key(joints[0])}` (M = {m}, T = {t})", "",
                  "PSNR difference in dB at the same iteration (same bpp: raw binary code); positive = better than "
                  "joint. Joint trains one codec on the pooled data of all sources (not deployable as distributed "
                  "coding).", ""]
        lines += md_table(["result", "config", "BD-PSNR vs joint", "ΔPSNR at iterations", "min Δ", "max Δ",
                           "worst source, min Δ"], rows) + [""]
        lines += _distributed_vs_separate(others, joints[0])
    return "\n".join(lines).strip() or None
