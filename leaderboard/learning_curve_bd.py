"""The headline of the learning-curve section: at equal training steps, the BD-PSNR of each side-information codec
against its twin over the λ both reached, averaged over the seeds both reached, with a 95 % interval over seeds
(Student-t, `compare.t_interval`; none with one seed) and, per seed, a 95 % interval over test images (bootstrap of
the per-image rows, `compare.bootstrap_bd`, the same resampling as the leaderboard's BD-rate intervals). BD-rate is
shown only where the two curves' PSNR ranges overlap by at least half (`BD_RATE_MIN_OVERLAP`): with less, the
log-rate integral extrapolates; BD-PSNR is flagged where the log-rate ranges overlap by less than half. The
wall hours column is the per-λ training wall time of the common λ, summed (one torch thread each: a machine's
load inflates it); the last column compares at equal training CPU time: the
side-information codec against its twin's curve at the same training hours per λ (`twin_at_hours`: the twin's
points interpolated linearly in hours between the two learning-curve points that bracket them)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .compare import bootstrap_bd, t_interval
from .formatting import md_table, text

BD_RATE_MIN_OVERLAP = 0.5
PerImage = Callable[[Any], dict[str, dict[str, tuple[float, float]]]]


def _restricted(rows: dict[str, dict[str, tuple[float, float]]], points: list[str]) -> dict:
    return {p: rows[p] for p in points if p in rows}


def image_interval(row: Mapping[str, Any], per_image: PerImage | None) -> tuple[float, float] | None:
    """The bootstrap interval (over test images) of one seed's BD-PSNR, over the common λ."""
    if per_image is None or row.get("bd_psnr") is None:
        return None
    a = _restricted(per_image(row["anchor"]), row["common"])
    t = _restricted(per_image(row["test"]), row["common"])
    if len(a) < 2 or len(t) < 2:
        return None
    return bootstrap_bd(a, t, which="psnr")


def training_hours(result: Mapping[str, Any], points: list[str], key: str = "wall_s") -> float | None:
    """Training time of `points` (`wall_s`: wall seconds; `cpu_s`: CPU seconds of the training process), summed
    over their per-point records, in hours (None if any is missing)."""
    per = ((result.get("training") or {}).get("points") or {})
    vals = [(per.get(p) or {}).get(key) for p in points]
    if not vals or not all(isinstance(v, (int, float)) for v in vals):
        return None
    return sum(vals) / 3600.0


def twin_at_hours(test: Mapping[str, Any], twin_runs: list[Mapping[str, Any]], key: str = "cpu_s") -> dict[str, Any] | None:
    """The twin's curve at the side-information codec's training time: per rate point both have, the twin's bpp and
    PSNR interpolated linearly in training hours between its two learning-curve points (same seed) that bracket the
    side codec's hours for that point. Time is CPU time (`cpu_s`, recorded since results kept it): wall times of
    runs made on a machine under different loads are not comparable. None when the twin was never trained that
    long (or not that briefly) for some point, or when a record has no such time."""
    points = []
    for p in test["points"]:
        h = training_hours(test, [p["rate_point"]], key)
        seq = sorted((hr, q) for r in twin_runs for q in r["points"] if q["rate_point"] == p["rate_point"]
                     and (hr := training_hours(r, [p["rate_point"]], key)) is not None and q.get("psnr") is not None)
        pair = next(((a, b) for a, b in zip(seq, seq[1:]) if h is not None and a[0] <= h <= b[0]), None)
        if pair is None:
            return None
        (h0, q0), (h1, q1) = pair
        w = 0.0 if h1 == h0 else (h - h0) / (h1 - h0)
        points.append({"rate_point": p["rate_point"], "bpp": q0["bpp"] + w * (q1["bpp"] - q0["bpp"]),
                       "psnr": q0["psnr"] + w * (q1["psnr"] - q0["psnr"]), "hours": h})
    return {"points": points, "training": {"points": {}}} if len(points) >= 2 else None


def headline(table: list[dict[str, Any]], per_image: PerImage | None) -> list[dict[str, Any]]:
    """One entry per (protocol, pair, steps): the seeds, the mean BD-PSNR and its intervals, the BD-rate where the
    overlap allows it, and both codecs' training hours."""
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for r in table:
        groups.setdefault((r["protocol"], r["method"], r["twin"], r["steps"]), []).append(r)
    out = []
    for (protocol, method, twin, steps), rs in sorted(groups.items()):
        psnr = [r["bd_psnr"] for r in rs if r["bd_psnr"] is not None]
        overlaps = [r["overlap"] for r in rs if r["overlap"] is not None]
        rate_ok = len(overlaps) == len(rs) and min(overlaps) >= BD_RATE_MIN_OVERLAP
        rates = [r["bd_rate"] for r in rs if r["bd_rate"] is not None]
        out.append({
            "protocol": protocol, "method": method, "twin": twin, "steps": steps, "seeds": [r["seed"] for r in rs],
            "lambdas": rs[0]["common"], "bd_psnr": sum(psnr) / len(psnr) if psnr else None,
            "seed_ci": t_interval(psnr), "image_ci": [image_interval(r, per_image) for r in rs],
            "bd_rate": sum(rates) / len(rates) if rate_ok and len(rates) == len(rs) else None,
            "overlap": min(overlaps) if overlaps else None, "why": rs[0]["why"],
            "overlap_rate": min((r["overlap_rate"] for r in rs if r.get("overlap_rate") is not None), default=None),
            "hours": [(training_hours(r["anchor"], r["common"]), training_hours(r["test"], r["common"])) for r in rs],
            "equal_cpu": _mean([r["equal_cpu"] for r in rs]), "equal_cpu_seeds": sum(r["equal_cpu"] is not None for r in rs)})
    return out


def _mean(values: list[float | None]) -> float | None:
    """The mean when every seed has a value (a seed without one leaves the cell empty)."""
    return sum(values) / len(values) if values and all(v is not None for v in values) else None


def _ci(ci: tuple[float, float] | None, unit: str = " dB") -> str:
    return "–" if ci is None else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]{unit}"


def _cells(h: Mapping[str, Any]) -> list[str]:
    seeds = ", ".join(str(s) for s in h["seeds"])
    if h["bd_rate"] is not None:
        rate = f"{h['bd_rate']:+.1f} %"
    elif h["overlap"] is None:
        rate = f"– ({h['why'] or 'n/a'})"
    else:
        rate = f"– (PSNR overlap {h['overlap']:.0%} < {BD_RATE_MIN_OVERLAP:.0%})"
    psnr = text(h["bd_psnr"], "{:+.2f} dB", "–")
    if h["bd_psnr"] is not None and (h["overlap_rate"] or 0) < BD_RATE_MIN_OVERLAP:
        psnr += f" (log-rate overlap {h['overlap_rate'] or 0:.0%} < {BD_RATE_MIN_OVERLAP:.0%})"
    hours = "; ".join(f"{text(a, '{:.2f}', '–')} / {text(t, '{:.2f}', '–')}" for a, t in h["hours"])
    seed_ci = _ci(h["seed_ci"]) if len(h["seeds"]) > 1 else "– (1 seed)"
    return [f"`{h['method']}` vs `{h['twin']}`", f"{h['steps']:,}", seeds, str(len(h["lambdas"])),
            psnr, seed_ci, "; ".join(_ci(c) for c in h["image_ci"]), rate, hours,
            text(h["equal_cpu"], "{:+.2f} dB", "– (no CPU time recorded, or the twin not trained that long)")]


HEAD = ["pair (side info vs twin)", "steps", "seeds", "λ (common)", "BD-PSNR (mean over seeds)",
        "95 % CI over seeds (Student-t)", "95 % CI over test images (bootstrap, per seed)",
        f"BD-rate (PSNR overlap ≥ {BD_RATE_MIN_OVERLAP:.0%})", "training wall h, twin / side (common λ, per seed)",
        "BD-PSNR at equal training CPU time (mean over seeds)"]


def headline_lines(table: list[dict[str, Any]], per_image: PerImage | None) -> list[str]:
    """The headline table of one protocol (Markdown lines)."""
    hs = headline(table, per_image)
    return md_table(HEAD, [_cells(h) for h in hs]) + [""] if hs else []
