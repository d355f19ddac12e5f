"""The leaderboard's tables as pandas DataFrames: one row per measured result or published curve.

The same frames give the Markdown tables (README), the sortable HTML tables (index.html) and
`leaderboard.csv`, so the three agree by construction; `tests/test_html_browser.py` checks the page against
the CSV in a real browser. Raw numbers live in the frame; `fmt_cell` turns them into text for the page.

Tables per protocol:
- `ranked`: measured results that enter the ranking (`benchmark.results.ranking.is_ranked`: no training needed or the
  method's paper budget, and the whole test split);
- `unranked`: every other measured result (pipeline checks, learning-curve points, partial runs), with why;
- `published`: published curves, never mixed with measured rows;
- `reproduced`: for each suite method with a published curve under the same protocol, the published curve,
  ours, and the BD-PSNR between them ("reported vs reproduced")."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from benchmark.results.ranking import is_ranked

from .compare import bd, describe_dropped, interval_text, rate_interval
from .curves import RDCurve, curve_from_result, result_key
from .facts import reproducing_method
from .formatting import text
from .inputs import per_image_rows
from .published import published_anchor_for

REPRODUCED_FLAG_DB = 0.3


def row_id(protocol: str, table: str, key: str) -> str:
    """A unique, HTML-safe id for a table row (also its key in leaderboard.csv)."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{protocol}--{table}--{key}").strip("-")
    return s.lower()


def coverage_text(result: dict[str, Any]) -> str:
    cov = result.get("coverage")
    if isinstance(cov, dict):
        s = f"{cov.get('samples')}/{cov.get('split_samples')}"
        if cov.get("limit") is not None:
            s += f" (--limit {cov['limit']})"
        if cov.get("skipped"):
            s += f" ({cov['skipped']} skipped)"
        return s
    n = max((p.get("n_images") or 0 for p in result["points"]), default=0)
    return f"{n}/? (not recorded)"


def steps_of(result: dict[str, Any]) -> int | None:
    """The training steps a result records (None: it needed no training or does not say)."""
    t = result.get("training") or {}
    inner = t.get("training") if isinstance(t.get("training"), dict) else {}
    steps = t.get("steps") if t.get("steps") is not None else inner.get("steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def samples_text(measured: list) -> str:
    """Which test samples results were measured on: how many, and the first and last name their per-image CSVs
    give (the same samples for every result of one protocol)."""
    names: set[str] = set()
    for m in measured:
        for per in per_image_rows(m.path, m.result).values():
            names |= {k.split("|")[0] for k in per}
    n = max([(m.result.get("coverage") or {}).get("samples") or 0 for m in measured] + [0])
    if not names:
        return f"{n} test samples"
    first, last = min(names), max(names)
    return f"{n} test samples ({len(names)} images, `{first}` … `{last}` as the per-image CSVs name them)"


def budget_text(result: dict[str, Any]) -> str:
    t = result.get("training") or {}
    if not t:
        return "no training"
    inner = t.get("training") if isinstance(t.get("training"), dict) else {}
    b = t.get("budget") or inner.get("budget")
    steps = t.get("steps") if t.get("steps") is not None else inner.get("steps")
    return f"{b or 'unknown'}" + (f", {steps:,} steps" if isinstance(steps, int) else "")


def commit_text(result: dict[str, Any]) -> str:
    c = (result.get("environment") or {}).get("git_commit")
    if not c:
        return "unknown"
    dirty = c.endswith("-dirty")
    return c[:10] + ("-dirty" if dirty else "")


def _mean(result: dict[str, Any], key: str) -> float | None:
    vals = [p[key] for p in result["points"] if isinstance(p.get(key), (int, float))]
    return sum(vals) / len(vals) if vals else None


def _complexity(result: dict[str, Any]) -> dict[str, Any]:
    c = result.get("complexity") or (result.get("codec_info") or {}).get("complexity") or {}
    enc, dec = _mean(result, "encode_s"), _mean(result, "decode_s")
    return {"params": c.get("params"), "enc_kmac_px": c.get("enc_kmac_per_pixel"), "dec_kmac_px": c.get("dec_kmac_per_pixel"),
            "enc_ms": None if enc is None else 1000 * enc, "dec_ms": None if dec is None else 1000 * dec}


def _at(points: Sequence[tuple[float, float]], target: float) -> float | None:
    from benchmark.results.bdrate import quality_at_rate

    if not points:
        return None
    xs, ys = zip(*points)
    try:
        return quality_at_rate(xs, ys, target)
    except ValueError:
        return None


def _bd_fields(prefix: str, anchor: RDCurve | None, curve: RDCurve, *, is_anchor: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {f"{prefix}_anchor": anchor.label if anchor else None}
    keys = ("bd_rate", "bd_psnr", "bd_rate_msssim", "bd_msssim_db", "bd_rate_with_degenerate", "overlap", "flags", "dropped")
    for k in keys:
        out[f"{prefix}_{k}"] = None
    if anchor is None or is_anchor:
        if is_anchor:
            out[f"{prefix}_flags"] = out[f"{prefix}_bd_rate"] = out[f"{prefix}_bd_psnr"] = "anchor"
        return out
    p = bd(anchor, curve, "psnr")
    m = bd(anchor, curve, "msssim")
    out.update({f"{prefix}_bd_rate": p.bd_rate, f"{prefix}_bd_psnr": p.bd_quality,
                f"{prefix}_bd_rate_msssim": m.bd_rate, f"{prefix}_bd_msssim_db": m.bd_quality,
                f"{prefix}_bd_rate_with_degenerate": p.bd_rate_with_degenerate,
                f"{prefix}_overlap": None if p.overlap_quality is None else round(p.overlap_quality, 4)})
    flags = p.flags() or []
    if p.problem:
        flags.insert(0, p.problem)
    out[f"{prefix}_flags"] = "; ".join(flags) or None
    if p.problem:  # the cell says why there is no number
        out[f"{prefix}_bd_rate"] = out[f"{prefix}_bd_psnr"] = p.problem
    if m.problem and (m.test_dropped and m.test_dropped.kept or m.anchor_dropped and m.anchor_dropped.kept):
        out[f"{prefix}_bd_rate_msssim"] = out[f"{prefix}_bd_msssim_db"] = m.problem
    dropped = "; ".join(x for x in (describe_dropped(p.test_dropped), ) if x)
    out[f"{prefix}_dropped"] = dropped or None
    return out


def measured_rows(info, measured: list, anchor_m, pub_curves: list[RDCurve], rank_all: bool = False) -> list[dict[str, Any]]:
    """One dict per measured result; `anchor_m` is the measured anchor (a build.Measured) or None. `rank_all`:
    rank every result (the user asked), each still saying why it would not be ranked otherwise."""
    rows = []
    a_curve = curve_from_result(anchor_m.result, anchor_m.label) if anchor_m is not None else None
    a_images = per_image_rows(anchor_m.path, anchor_m.result) if anchor_m is not None else {}
    for m in measured:
        r = m.result
        c = curve_from_result(r, m.label, str(m.path))
        ranked, why = is_ranked(r)
        if rank_all and not ranked:
            ranked, why = True, f"ranked on request (--rank-all); otherwise not: {why}"
        row: dict[str, Any] = {
            "id": row_id(info.name, "measured", m.key), "protocol": info.name,
            "table": "ranked" if ranked else "unranked", "label": m.label, "method": r["method"],
            "scenario": r["scenario"], "rate_type": c.rate_type, "coverage": coverage_text(r), "training": budget_text(r),
            "steps": steps_of(r), "ranking": why, "commit": commit_text(r), "protocol_version": r.get("protocol_version"),
            "isolation": _isolation_text(r),
            "points": len(r["points"]),
            "rate_min": min(p["bpp"] for p in r["points"]), "rate_max": max(p["bpp"] for p in r["points"]),
        }
        is_anchor = anchor_m is m
        row.update(_bd_fields("m", a_curve, c, is_anchor=is_anchor))
        ci = None  # the interval `bench compare` prints too (compare.rate_interval, compare.interval_text)
        if a_curve is not None and not is_anchor:
            ci = rate_interval(bd(a_curve, c, "psnr"), a_images, per_image_rows(m.path, r))
        row["m_bd_rate_ci"] = interval_text(ci)
        pa = published_anchor_for(info.name, pub_curves, c.sources)
        row.update(_bd_fields("p", pa, c))
        for b in info.fixed_bpps:
            row[f"psnr_at_{b:g}"] = _at(c.psnr, b)
        row.update(_complexity(r))
        rows.append(row)
    _seed_spread(rows, measured)
    return rows


def _seed_spread(rows: list[dict[str, Any]], measured: list) -> None:
    """Where one method was run with several training seeds: mean ± sd of its BD-rate, on each of its rows."""
    import statistics

    groups: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for row, m in zip(rows, measured):
        r = m.result
        row["seed"] = (r.get("training") or {}).get("seed")
        groups.setdefault(result_key(r), []).append((row, m))
    for items in groups.values():
        seeds = {row["seed"] for row, _ in items}
        vals = [row["m_bd_rate"] for row, _ in items if isinstance(row["m_bd_rate"], float)]
        spread = None
        if len(seeds) > 1 and len(vals) > 1:
            spread = f"{len(vals)} seeds: {statistics.mean(vals):+.1f} ± {statistics.stdev(vals):.1f} %"
        for row, _ in items:
            row["seed_spread"] = spread


def published_rows(info, curves: list[RDCurve], anchor_m) -> list[dict[str, Any]]:
    a_curve = curve_from_result(anchor_m.result, anchor_m.label) if anchor_m is not None else None
    rows = []
    for c in curves:
        pa = published_anchor_for(info.name, curves, c.sources)
        label = c.label + (f" (M={c.sources})" if c.sources and f"M={c.sources}" not in c.label else "")
        rates = [b for b, _ in c.psnr + c.msssim_db]
        row: dict[str, Any] = {
            "id": row_id(info.name, "published", f"{c.method}-{c.rate_type}-m{c.sources or 0}-{c.label}"),
            "protocol": info.name, "table": "published", "label": label, "method": c.method, "scenario": c.scenario,
            "origin": f"published ({c.provenance})", "rate_type": c.rate_type,
            "metrics": ", ".join(n for n, pts in (("PSNR", c.psnr), ("MS-SSIM", c.msssim_db)) if pts),
            "points": max(len(c.psnr), len(c.msssim_db)), "rate_min": min(rates), "rate_max": max(rates),
            "ref": c.source,
        }
        row.update(_bd_fields("p", pa, c, is_anchor=pa is c))
        row.update(_bd_fields("m", a_curve, c))
        for b in info.fixed_bpps:
            row[f"psnr_at_{b:g}"] = _at(c.psnr, b)
        rows.append(row)
    return rows


def reproduced_rows(info, curves: list[RDCurve], measured: list, methods: Mapping[str, set[str]],
                    others: Sequence[tuple[Any, Any]] = ()) -> list[dict[str, Any]]:
    """One row per published curve that a suite method reproduces (`facts.reproducing_method`; `methods`: the suite's
    methods and their scenarios): our most ranked result of that method under the protocol (with the curve's number
    of sources), else the most-trained of `others` ((result, facts.Alias) on other samples), and the BD numbers
    between the two; or the command that makes the missing run."""
    rows = []
    for c in curves:
        name = reproducing_method(c.method, c.scenario, methods)
        if name is None or not c.psnr:
            continue

        def fits(m) -> bool:
            return m.result["method"] == name and (
                c.sources is None or (m.result.get("dataset_options") or {}).get("sources") == c.sources)

        ours = sorted(((m, None) for m in measured if fits(m)), key=lambda t: (not is_ranked(t[0].result)[0], t[0].key))
        ours += sorted(((m, al) for m, al in others if fits(m)), key=lambda t: (-(steps_of(t[0].result) or 0), t[0].key))
        row: dict[str, Any] = {"id": row_id(info.name, "reproduced", f"{c.method}-{c.rate_type}-m{c.sources or 0}-{c.label}"),
                               "protocol": info.name, "table": "reproduced", "label": c.label, "method": name,
                               "published_rate_type": c.rate_type}
        row.update(_ours_against(c, *ours[0]) if ours else _missing_run(info, name, c))
        rows.append(row)
    return rows


def _missing_run(info, name: str, c: RDCurve) -> dict[str, Any]:
    run = f"bench run --method {name} --dataset {info.dataset} --protocol {info.name} --budget paper"
    return {"ours": f"missing: `{run}`" + (f" --sources {c.sources}" if c.sources else ""), "training": None,
            "steps": None, "coverage": None, "our_rate_type": None, "bd_psnr": None, "bd_rate": None,
            "overlap": None, "flag": "no run"}


def _ours_against(c: RDCurve, m, alias=None) -> dict[str, Any]:
    """Our result `m` against published curve `c`; `alias` (facts.Alias) when `m` was measured on other samples."""
    mine = curve_from_result(m.result, m.label)
    res = bd(c, mine, "psnr")
    flags = [res.problem or ("|Δ| > 0.3 dB" if res.bd_quality is not None and abs(res.bd_quality) > REPRODUCED_FLAG_DB
                             else "within 0.3 dB")] + res.flags()
    coverage = coverage_text(m.result)
    if alias is not None:
        flags.append(f"{alias.split_text} (`{alias.protocol}`)")
        coverage += f" of `{alias.protocol}`, {alias.split_text}"
    else:
        ranked, why = is_ranked(m.result)
        if not ranked:
            flags.append("ours not ranked (" + why + ")")
    bd_psnr: Any = res.bd_quality
    if res.problem == "no overlap" and mine.psnr and c.psnr:  # say which ranges do not meet
        (a, b), (p, q) = (mine.psnr[0][0], mine.psnr[-1][0]), (c.psnr[0][0], c.psnr[-1][0])
        bd_psnr = f"no common rate interval (ours {a:.3g}–{b:.3g}, published {p:.3g}–{q:.3g} {mine.rate_type})"
    return {"ours": m.label, "training": budget_text(m.result), "steps": steps_of(m.result), "coverage": coverage,
            "our_rate_type": mine.rate_type, "bd_psnr": bd_psnr, "bd_rate": res.bd_rate,
            "overlap": None if res.overlap_quality is None else round(res.overlap_quality, 4), "flag": "; ".join(flags)}


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- display
PCT, DB = "{:+.1f} %", "{:+.2f} dB"
FORMATS: dict[str, str] = {
    "rate_min": "{:.3g}", "rate_max": "{:.3g}",
    "m_bd_rate": PCT, "m_bd_psnr": DB, "m_bd_rate_msssim": PCT, "m_bd_msssim_db": DB,
    "p_bd_rate": PCT, "p_bd_psnr": DB, "p_bd_rate_msssim": PCT, "p_bd_msssim_db": DB,
    "p_bd_rate_with_degenerate": PCT, "m_bd_rate_with_degenerate": PCT,
    "p_overlap": "{:.0%}", "m_overlap": "{:.0%}",
    "bd_psnr": DB, "bd_rate": PCT, "overlap": "{:.0%}",
    "params": "{:,.0f}", "enc_kmac_px": "{:.1f}", "dec_kmac_px": "{:.1f}", "enc_ms": "{:.1f}", "dec_ms": "{:.1f}",
}


def fmt_cell(col: str, v: Any) -> str:
    """The text of a table cell (leaderboard.csv holds the raw value)."""
    return text(v, "{:.2f}" if col.startswith("psnr_at_") else FORMATS.get(col, "{}"))


def _isolation_text(result: dict[str, Any]) -> str:
    """Where the method's code ran (benchmark/evaluation/sandbox.py); results from before the sandbox say so."""
    from benchmark.results.ranking import isolation

    level, recorded = isolation(result)
    return level if recorded else "none (before the sandbox)"


def columns(table: str, info, anchor_name: str | None, pub_anchor: str | None) -> list[tuple[str, str]]:
    """(column, header) pairs shown for a table; the CSV holds every column of the frame."""
    unit = info.rate_unit
    a = anchor_name or "anchor"
    pa = "pub. anchor"  # named in the paragraph above the tables
    at = [(f"psnr_at_{b:g}", f"PSNR @ {b:g} {unit}") for b in info.fixed_bpps]
    if table in ("ranked", "unranked"):
        cols = [("label", "method"), ("scenario", "scenario"), ("coverage", "coverage"), ("training", "training"),
                ("commit", "commit"), ("isolation", "isolation"), ("points", "points"), ("rate_min", f"{unit} min"), ("rate_max", f"{unit} max"),
                ("m_bd_rate", f"BD-rate vs {a}"), ("m_bd_rate_ci", "95 % CI (bootstrap)"),
                ("seed_spread", "over seeds"), ("m_bd_psnr", f"BD-PSNR vs {a}"), ("m_overlap", "overlap"),
                ("m_flags", f"flags vs {a}")]
        if pub_anchor:
            cols += [("p_bd_rate", f"BD-rate vs {pa} (PSNR)"), ("p_bd_psnr", f"BD-PSNR vs {pa}"),
                     ("p_bd_rate_msssim", f"BD-rate vs {pa} (MS-SSIM)"), ("p_flags", f"flags vs {pa}")]
        cols += at + [("params", "params"), ("enc_kmac_px", "enc kMAC/px"), ("dec_kmac_px", "dec kMAC/px"),
                      ("enc_ms", "enc ms/img"), ("dec_ms", "dec ms/img")]
        if table == "unranked":
            cols.insert(1, ("ranking", "why not ranked"))
        return cols
    if table == "published":
        cols = [("label", "published curve"), ("origin", "origin"), ("scenario", "scenario"), ("metrics", "metrics"),
                ("rate_type", "rate"), ("points", "points"), ("rate_min", "rate min"), ("rate_max", "rate max")]
        if pub_anchor:
            cols += [("p_bd_rate", f"BD-rate vs {pa} (PSNR)"), ("p_bd_psnr", f"BD-PSNR vs {pa}"),
                     ("p_bd_rate_msssim", f"BD-rate vs {pa} (MS-SSIM)"), ("p_bd_msssim_db", f"BD-MS-SSIM vs {pa}"),
                     ("p_bd_rate_with_degenerate", "BD-rate incl. degenerate points"), ("p_overlap", "overlap"),
                     ("p_flags", "flags"), ("p_dropped", "points left out")]
        cols += [("m_bd_rate", f"BD-rate vs measured {a}†"), ("m_bd_psnr", f"BD-PSNR vs measured {a}†"),
                 ("m_flags", f"flags vs measured {a}†")]
        return cols + at + [("ref", "reference")]
    if table == "reproduced":
        return [("label", "published curve"), ("published_rate_type", "published rate"), ("ours", "our curve"),
                ("training", "our training"), ("coverage", "our coverage"), ("our_rate_type", "our rate"),
                ("bd_psnr", "BD-PSNR ours − published"), ("bd_rate", "BD-rate ours vs published"),
                ("overlap", "overlap"), ("flag", "flag")]
    raise ValueError(table)
