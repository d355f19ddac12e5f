"""Learning curves at equal training: a side-information codec against its separate twin, point by point.

Reads only result files. A learning-curve point is a result with a ``learning_curve`` record (written by
``perf/learning_curve.py``: steps, the shared training options, the command that reproduces it). For each
protocol, each pair (side-information codec, and the twin without side information its results name in
``method_meta.twin``) and each number of steps both reached, the section gives both codecs' points (bpp, PSNR, MS-SSIM per λ), the BD-rate and BD-PSNR of the
side-information codec against its twin (PCHIP; "no overlap" when the PSNR ranges do not meet, then the PSNR
difference at the twin's bpp where it can be read off), the BD-rate of each against the classical codecs
measured on the same pairs, and for NDIC the share of the training rate term spent on the common
information w (``bpp_w / (bpp_x + bpp_w)`` over the last training steps). These points are learning-curve
points, never ranked (``benchmark.results.ranking.is_ranked``). A figure shows the RD points per steps and the
BD-rate against steps."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from benchmark.results.bdrate import NoOverlapError, bd_psnr, bd_rate, quality_at_rate

from .compare import MIN_OVERLAP, overlap_fraction
from .facts import twin as twin_of
from .formatting import md_table, text
from .learning_curve_bd import PerImage, headline_lines, twin_at_hours

NONE = "–"  # the cell of a number that was not measured


def curve_steps(result: Mapping[str, Any]) -> int | None:
    rec = result.get("learning_curve")
    if isinstance(rec, Mapping) and isinstance(rec.get("steps"), int):
        return int(rec["steps"])
    return None


def curve_seed(result: Mapping[str, Any]) -> int:
    """The training seed of a learning-curve point (0 where the result does not say)."""
    seed = (result.get("training") or {}).get("seed")
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0


def collect(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[tuple[int, int], Mapping[str, Any]]]]:
    """protocol -> method -> (steps, seed) -> result, for learning-curve points only."""
    out: dict[str, dict[str, dict[tuple[int, int], Mapping[str, Any]]]] = {}
    for r in results:
        s = curve_steps(r)
        if s is not None:
            out.setdefault(r["protocol"], {}).setdefault(r["method"], {})[(s, curve_seed(r))] = r
    return out


def _xy(result: Mapping[str, Any], metric: str = "psnr") -> tuple[list[float], list[float]]:
    pts = [p for p in result["points"] if p.get("bpp") and p.get(metric) is not None]
    return [p["bpp"] for p in pts], [p[metric] for p in pts]


def _restrict(result: Mapping[str, Any], points: Iterable[str]) -> dict[str, Any]:
    keep = set(points)
    return {**result, "points": [p for p in result["points"] if p["rate_point"] in keep]}


def compare(test: Mapping[str, Any], anchor: Mapping[str, Any]) -> dict[str, Any]:
    """BD-rate / BD-PSNR of `test` against `anchor` over the rate points both have (None with a reason when they
    cannot be computed: fewer than 2 common points, or no PSNR overlap)."""
    common = [p["rate_point"] for p in anchor["points"] if p["rate_point"] in {q["rate_point"] for q in test["points"]}]
    if anchor.get("training") is None:  # a classical reference: its whole curve against the test's points
        common = [p["rate_point"] for p in test["points"]]
        ra, qa = _xy(anchor)
    else:
        ra, qa = _xy(_restrict(anchor, common))
    rt, qt = _xy(_restrict(test, common))
    out: dict[str, Any] = {"bd_rate": None, "bd_psnr": None, "why": "", "common": common, "overlap": None,
                           "overlap_rate": None}
    if len(rt) < 2:
        out["why"] = "one λ"
        return out
    out["overlap"] = overlap_fraction(qa, qt) if qa else None  # of the PSNR ranges, as BD-rate integrates over it
    pos = [v for v in list(ra) + list(rt) if v > 0]
    if qa and len(pos) == len(ra) + len(rt):  # of the log-rate ranges, as BD-PSNR integrates over it
        out["overlap_rate"] = overlap_fraction([math.log10(v) for v in ra], [math.log10(v) for v in rt])
    try:
        out["bd_rate"] = bd_rate(ra, qa, rt, qt)
    except (NoOverlapError, ValueError) as exc:
        out["why"] = "no PSNR overlap" if isinstance(exc, NoOverlapError) else str(exc)
    try:
        out["bd_psnr"] = bd_psnr(ra, qa, rt, qt)
    except (NoOverlapError, ValueError):
        pass
    return out


def vs_reference(point: Mapping[str, Any], ref: Mapping[str, Any]) -> float | None:
    """PSNR of a learned point minus the reference codec's PSNR at the same bpp (PCHIP in log-rate; None outside
    the reference's range): a yardstick that compares single points of two codecs at matched bpp."""
    x, y = _xy(ref)
    return None if point.get("psnr") is None else (lambda q: None if q is None else point["psnr"] - q)(
        quality_at_rate(x, y, point["bpp"]))


def w_share(result: Mapping[str, Any]) -> dict[str, float]:
    """NDIC: bpp_w / (bpp_x + bpp_w) per rate point over the last training steps (empty if not recorded)."""
    pts = ((result.get("training") or {}).get("points") or {})
    shares = {}
    for p in result["points"]:
        ft = (pts.get(p["rate_point"]) or {}).get("final_train") or {}
        bx, bw = ft.get("bpp"), ft.get("bpp_w")
        if isinstance(bx, (int, float)) and isinstance(bw, (int, float)) and bx + bw > 0:
            shares[p["rate_point"]] = bw / (bx + bw)
    return shares


def _fmt(v: Any, spec: str, none: str = NONE) -> str:
    return text(v, "{:" + spec + "}", none)


def classical(results: Iterable[Mapping[str, Any]], protocol: str) -> list[Mapping[str, Any]]:
    return sorted((r for r in results if r["protocol"] == protocol and r.get("training") is None
                   and not (r.get("method_meta") or {}).get("trainable") and r.get("scenario") == "separate"),
                  key=lambda r: r["method"])


def _twin_of(runs: Mapping[tuple[int, int], Mapping[str, Any]]) -> str | None:
    """The twin the learning-curve points of one method name (`facts.twin`)."""
    return next((t for t in (twin_of(r) for r in runs.values()) if t), None)


def _point_rows(a: Mapping[str, Any], t: Mapping[str, Any], common: list[str],
                refs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per rate point both reached: both points, their differences, each against the classical codecs, and the
    side-view probe of the side-information codec."""
    out = []
    for name in common:
        pa = next(p for p in a["points"] if p["rate_point"] == name)
        pt = next(p for p in t["points"] if p["rate_point"] == name)
        out.append({"rate_point": name, "twin": pa, "side": pt,
                    "d_bpp": pt["bpp"] / pa["bpp"] - 1.0 if pa["bpp"] else None,
                    "d_psnr": None if None in (pt["psnr"], pa["psnr"]) else pt["psnr"] - pa["psnr"],
                    "vs": {c["method"]: (vs_reference(pa, c), vs_reference(pt, c)) for c in refs},
                    "probe": (((t.get("learning_curve") or {}).get("side_probe") or {}).get(name) or {})})
    return out


def rows(results: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (protocol, pair, steps and seed both reached): the numbers of the table, for tests and the
    figure. A pair is a side-information codec and the twin its results name, both with learning-curve points."""
    table = []
    for protocol, methods in sorted(collect(results).items()):
        refs = classical(results, protocol)
        for side in sorted(methods):
            twin = _twin_of(methods[side])
            if twin not in methods:
                continue
            for steps, seed in sorted(set(methods[side]) & set(methods[twin])):
                a, t = methods[twin][(steps, seed)], methods[side][(steps, seed)]
                cmp = compare(t, a)
                eq = twin_at_hours(t, [r for (_, sd), r in methods[twin].items() if sd == seed])
                table.append({"protocol": protocol, "method": side, "twin": twin, "steps": steps, "seed": seed,
                              "anchor": a, "test": t, "equal_cpu": None if eq is None else compare(t, eq)["bd_psnr"],
                              **cmp, "w_share": w_share(t), "points": _point_rows(a, t, cmp["common"], refs)})
    return table


# ---------------------------------------------------------------- figure
Trajectories = dict[tuple[str, str], list[tuple[int, dict, str]]]


def _trajectories(table: list[dict[str, Any]]) -> Trajectories:
    """(method, rate point) -> [(steps, point, method)] along training, for both codecs of every pair."""
    traj: Trajectories = {}
    for r in table:
        for pp in r["points"]:
            traj.setdefault((r["twin"], pp["rate_point"]), []).append((r["steps"], pp["twin"], r["twin"]))
            traj.setdefault((r["method"], pp["rate_point"]), []).append((r["steps"], pp["side"], r["method"]))
    return traj


TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _panels(traj: Trajectories, twins: set[str], protocol: str) -> list[Any]:
    """Each trajectory in the RD plane (points labelled with their steps, placed without overlaps), its PSNR and
    its rate against steps; twins dashed with circles, side-information codecs solid with squares."""
    from .svg import Panel, Series

    rd = Panel("bpp (bytes)", "PSNR (dB)", f"{protocol}: RD points along training (labels: steps)")
    psnr = Panel("training steps (equal for both)", "PSNR (dB)", "PSNR along training (same λ, same steps)")
    rate = Panel("training steps (equal for both)", "bpp (bytes)", "rate along training")
    for i, ((method, point), seq) in enumerate(sorted(traj.items())):
        seq = sorted({s: (s, p, m) for s, p, m in seq}.values(), key=lambda t: t[0])
        style = {"dash": "5 3", "marker": "o"} if method in twins else {"dash": "", "marker": "s"}
        colour, label = TAB10[i % 10], f"{method} {point}"
        group = "twins (no side view)" if method in twins else "side-information codecs"
        steps = [float(s_) for s_, _, _ in seq]
        xs, ys = [p["bpp"] for _, p, _ in seq], [p["psnr"] for _, p, _ in seq]
        rd.series.append(Series(xs, ys, colour, label, group, width=1.0, labels=[f"{s_:,}" for s_, _, _ in seq], **style))
        psnr.series.append(Series(steps, ys, colour, label, group, width=1.0, **style))
        rate.series.append(Series(steps, xs, colour, label, group, width=1.0, **style))
    return [rd, psnr, rate]


def figure(table: list[dict[str, Any]], results: list[Mapping[str, Any]], path: Path) -> Path | None:
    """RD points along training (one trajectory per method and λ, classical codecs dotted grey), PSNR against steps
    and bpp against steps: the learning curves of both codecs of each pair, as an SVG file (`leaderboard.svg`)."""
    if not table:
        return None
    from benchmark.results.schema import atomic_write_text

    from .svg import Figure, Series

    first = min(r["seed"] for r in table)
    table = [r for r in table if r["seed"] == first]  # one seed's trajectories (the table gives every seed's)

    traj = _trajectories(table)
    rd, psnr, rate = _panels(traj, {r["twin"] for r in table}, table[0]["protocol"])
    learned = [p["bpp"] for seq in traj.values() for _, p, _ in seq]
    rd.xlim = (0.0, 1.5 * max(learned))
    for i, ref in enumerate(classical(results, table[0]["protocol"])):
        x, y = _xy(ref)
        keep = [(a, b) for a, b in zip(x, y) if a <= rd.xlim[1]]
        if keep:
            rd.series.insert(0, Series(*zip(*keep), ("#888", "#444", "#bbb")[i % 3], ref["method"],
                                       "classical codecs (same pairs)", dash=("2 2", "6 2", "1 3")[i % 3], width=1.2))
    atomic_write_text(path, Figure("Learning curves at equal training", [rd, psnr, rate], panel_w=430, panel_h=320,
                                   font=10).render())
    return path


# ---------------------------------------------------------------- section
INTRO = ("Each side-information codec against its twin without the side view, trained with the same widths, "
         "crops, batches, λ, learning rate, seed and steps, evaluated on the same test samples with real bytes. "
         "These are learning-curve points (never ranked). One row per steps and λ both reached: Δbpp and ΔPSNR "
         "are the side-information codec minus its twin; `PSNR − jpeg at own bpp` is each codec's PSNR minus "
         "the classical codec's PSNR at the same bpp on the same pairs (a yardstick that compares single points "
         "at matched bpp: side information pays where the second number exceeds the first); BD-rate (side "
         "information against twin, negative: bits saved) needs two λ (the headline table shows it only where "
         "the PSNR ranges overlap by half or more); w share: the share of the training "
         "rate term spent on NDIC's common information w (a regulariser, never coded); the last column is "
         "the PSNR lost when the same bytes are decoded with another pair's side view or a grey one. "
         "Reproduce a point with the `learning_curve.reproduce` command in its result file.")


def _point_text(p: Mapping[str, Any]) -> str:
    return f"{_fmt(p.get('bpp'), '.3f')} / {_fmt(p.get('psnr'), '.2f')} / {_fmt(p.get('ms_ssim'), '.4f')}"


def _cells(r: dict[str, Any], i: int, pp: dict[str, Any], refs: list[str]) -> list[str]:
    """The table cells of rate point `pp`, the i-th of row `r`."""
    cells = [str(r["steps"]), str(r["seed"]), pp["rate_point"].replace("lambda=", ""), _point_text(pp["twin"]), _point_text(pp["side"]),
             _fmt(None if pp["d_bpp"] is None else 100 * pp["d_bpp"], "+.1f") + " %", _fmt(pp["d_psnr"], "+.2f") + " dB"]
    for c in refs:
        va, vt = pp["vs"].get(c, (None, None))
        cells.append(f"{_fmt(va, '+.2f')}; {_fmt(vt, '+.2f')} dB")
    bd = (_fmt(r["bd_rate"], "+.1f", r["why"] or NONE) + ("" if r["bd_rate"] is None else " %")) if i == 0 else "″"
    if i == 0 and r["bd_rate"] is not None and r["overlap"] is not None and r["overlap"] < MIN_OVERLAP:
        bd += f" (poor overlap {r['overlap']:.0%} < {MIN_OVERLAP:.0%})"
    pr = pp["probe"]
    return cells + [bd, _fmt(r["w_share"].get(pp["rate_point"]), ".1%"),
                    f"{_fmt(pr.get('loss_other_pair_db'), '+.2f')} / {_fmt(pr.get('loss_grey_db'), '+.2f')} dB" if pr else NONE]


def _protocol_lines(protocol: str, rs: list[dict[str, Any]], results: list[Mapping[str, Any]], out_dir: Path,
                    per_image: PerImage | None = None) -> list[str]:
    """The figure, the headline BD table and the per-point table of one protocol."""
    refs = sorted({k for r in rs for pp in r["points"] for k in pp["vs"]})
    fig = figure(rs, [x for x in results if x["protocol"] == protocol],
                 Path(out_dir) / f"learning-curve-{protocol.replace('/', '_')}.svg")
    lines = [f"### {protocol}", ""]
    facts = next((x.get("protocol_facts") for x in results if x["protocol"] == protocol and x.get("protocol_facts")), {})
    if facts.get("alias_of"):  # shown in that protocol's section too (leaderboard.facts.aliases)
        split = "its test split" if facts.get("alias_test_split") else "not its test split"
        lines += [f"_`{protocol}` applies `{facts['alias_of']}`'s preprocessing and metrics to other samples "
                  f"({split}); its results are listed in the `{facts['alias_of']}` section._", ""]
    if fig is not None:
        lines += [f"![learning curves on {protocol}]({fig.name})", ""]
    lines += ["BD of the side-information codec against its twin at equal steps (the headline; "
              "`leaderboard.learning_curve_bd`):", ""] + headline_lines(rs, per_image)
    lines += ["Per steps, seed and λ:", ""]
    head = ["steps", "seed", "λ", "twin: bpp / PSNR / MS-SSIM", "side info: bpp / PSNR / MS-SSIM", "Δbpp", "ΔPSNR"]
    head += [f"PSNR − {c} at own bpp (twin; side info)" for c in refs]
    head += ["BD-rate (≥2 λ)", "w share", "PSNR loss, wrong / grey side view"]
    pairs = sorted({(r["method"], r["twin"]) for r in rs})
    lines += ["Pairs: " + ", ".join(f"`{m}` vs `{t}`" for m, t in pairs) + ".", ""]
    body = [_cells(r, i, pp, refs) for r in rs for i, pp in enumerate(r["points"])]
    return lines + md_table(head, body) + [""]


def learning_curve_section(results: list[Mapping[str, Any]], out_dir: Path, per_image: PerImage | None = None) -> str:
    """Markdown (tables + figure link) for every protocol holding learning-curve points; "" when none.
    `per_image(result)` gives a result's per-image rows (the image-bootstrap intervals; none without it)."""
    table = rows(results)
    if not table:
        return ""
    lines = ["## Learning curves at equal training", "", INTRO, ""]
    for protocol in sorted({r["protocol"] for r in table}):
        lines += _protocol_lines(protocol, [r for r in table if r["protocol"] == protocol], results, out_dir, per_image)
    return "\n".join(lines)
