"""Leaderboard extra for DRASIC: every configuration against the joint reference of the same M and T.

Called by `leaderboard.build` as `joint_gap_section(results) -> markdown | None` for every protocol; returns
None unless a protocol holds a measured DRASIC `joint` result and at least one other DRASIC result with the
same number of sources M and iterations T. All DRASIC configurations code the same raw binary code (8 bits
per 8x8 block and iteration), so their rate points sit at identical bpp and the gap is a plain PSNR
difference per iteration (positive = better than joint). BD-PSNR over the common rate interval is given too.
The worst-source column is the PSNR of the worst encoder minus the joint PSNR (the lower edge of the band)."""
from __future__ import annotations

from typing import Any

from benchmark.results.bdrate import bd_psnr

METHOD = "drasic"
NA = "—"


def _info(result: dict[str, Any]) -> dict[str, Any]:
    return result.get("codec_info") or {}


def _group_key(result: dict[str, Any]) -> tuple[Any, Any] | None:
    info = _info(result)
    if result.get("method") != METHOD or info.get("config") is None:
        return None
    return info.get("sources"), info.get("iterations")


def _label(result: dict[str, Any]) -> str:
    return result["method"] + (f".{result['variant']}" if result.get("variant") else "")


def _psnr_by_point(result: dict[str, Any], key: str = "psnr") -> dict[str, tuple[float, float]]:
    return {p["rate_point"]: (p["bpp"], p[key]) for p in result.get("points", [])
            if p.get("bpp") is not None and p.get(key) is not None}


def _f(v: float | None, fmt: str = "{:+.2f}") -> str:
    return NA if v is None else fmt.format(v)


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
    return {"points": shared, "delta": per_point, "delta_worst": worst_point, "bd_psnr": bd}


def joint_gap_section(results: list[dict[str, Any]]) -> str | None:
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in results:
        k = _group_key(r)
        if k is not None:
            groups.setdefault(k, []).append(r)
    lines: list[str] = []
    for (m, t), rs in sorted(groups.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        joints = [r for r in rs if _info(r).get("config") == "joint"]
        others = sorted((r for r in rs if _info(r).get("config") != "joint"), key=_label)
        if not joints or not others:
            continue
        joint = joints[0]
        rows = []
        for r in others:
            g = gaps(r, joint)
            if not g["points"]:
                continue
            pts = g["points"]
            picks = [p for p in (pts[0], pts[len(pts) // 4], pts[len(pts) // 2], pts[-1])]
            picks = list(dict.fromkeys(picks))
            d = g["delta"]
            cells = [f"{p}: {_f(d[p])}" for p in picks]
            rows.append([_label(r), _info(r).get("config"), _f(g["bd_psnr"]), " · ".join(cells),
                         _f(min(d.values())), _f(max(d.values())),
                         _f(min(g["delta_worst"].values())) if g["delta_worst"] else NA])
        if not rows:
            continue
        lines += [f"#### DRASIC gap to the joint reference `{_label(joint)}` (M = {m}, T = {t})", "",
                  "PSNR difference in dB at the same iteration (same bpp: raw binary code); positive = better than "
                  "joint. Joint trains one codec on the pooled data of all sources (not deployable as distributed "
                  "coding).", "",
                  "| result | config | BD-PSNR vs joint | ΔPSNR at iterations | min Δ | max Δ | worst source, min Δ |",
                  "|---|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        lines.append("")
        by_cfg = {(_info(r).get("config"), bool(_info(r).get("low_complexity"))): r for r in others}
        dist, sep = by_cfg.get(("distributed", False)), by_cfg.get(("separate", False))
        if dist is not None and sep is not None:
            a, b = gaps(dist, joint)["delta"], gaps(sep, joint)["delta"]
            diff = {p: a[p] - b[p] for p in a if p in b}
            if diff:
                worst = min(diff, key=diff.get)
                lines += [f"Distributed − separate: {_f(min(diff.values()))} to {_f(max(diff.values()))} dB over "
                          f"{len(diff)} iterations (smallest at {worst}); distributed is at least as good at "
                          f"{sum(v >= 0 for v in diff.values())} of {len(diff)}.", ""]
    return "\n".join(lines).strip() or None
