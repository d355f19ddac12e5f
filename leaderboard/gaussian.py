"""The `gaussian/wz` section of the leaderboard: every measured point against the limits of the source.

Registered in `leaderboard.sections` for `gaussian/wz`: `gaussian_section(results, out_dir) -> markdown` replaces
the protocol's generic tables. Results are grouped by the noise variance σ² (results for different σ² are
different sources). Per σ²: a table of every rate point against the bounds and the scalar references
(`gaussian_points`), a table of each result's training and Slepian–Wolf decoding, and the figures
(`gaussian_figures`); then the paper's statements as a checklist (`gaussian_paper`)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .curves import result_key
from .formatting import NA, md_table, text
from .gaussian_figures import binning_figure, rd_figure
from .gaussian_paper import boundaries, checklist
from .gaussian_points import options_of, point_rows, sigma2_of

INTRO = (
    "Source: Y ~ N(0,1) at the decoder only, X = Y + N(0, σ²); MSE in dB (10·log10 MSE, lower is better); "
    "rates in bits/sample. References at the codec's rate: **WZ** = Wyner–Ziv bound σ²·2^(−2R); **no-SI** = "
    "(1+σ²)·2^(−2R); **SQ** = uniform scalar quantizer with ideal Slepian–Wolf coding (rate H(Q|Y)) and "
    "E[X|Q,Y], exact; **SQ-marg** = the same quantizer entropy-coded without the side information (rate H(Q), "
    "the better of mid-tread and mid-rise cells, time sharing between steps) and E[X|Q,Y]: what a contiguous "
    "code with a marginal prior reaches, the anchor of marginal-prior coders. Gaps are D − reference in dB (positive = worse). *ideal* = the codec's estimated rate "
    "(`bpp_estimated`: cross-entropy under its prior — an ideal Slepian–Wolf coder for conditional priors, an "
    "ideal entropy coder for marginal ones); *bytes* = the real bitstream (container included).")
POINT_HEADER = ["method", "point", "rate ideal", "rate bytes", "D (dB)", "WZ (dB)", "no-SI (dB)", "SQ (dB)",
                "gap WZ", "gap SQ", "gap SQ-marg", "gap no-SI", "gap WZ @bytes", "gap SQ @bytes"]


def _file_slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def _point_table(rs: list[dict[str, Any]], s2: float) -> list[str]:
    """One row per rate point: D and the references at the ideal rate (at the byte rate where there is none)."""
    body = []
    for r in rs:
        for row in point_rows(r, s2):
            t = "ideal" if row["rate_ideal"] is not None else "bytes"
            two, gap = "{:.2f}", "{:+.2f}"
            body.append([f"`{result_key(r)}`", row["point"], text(row["rate_ideal"], "{:.3f}"),
                         text(row["rate_bytes"], "{:.3f}"), text(row["d_db"], two), text(row.get(f"wz_{t}"), two),
                         text(row.get(f"nosi_{t}"), two), text(row.get(f"sq_{t}"), two),
                         text(row.get(f"gap_wz_{t}"), gap), text(row.get(f"gap_sq_{t}"), gap),
                         text(row.get(f"gap_sqm_{t}"), gap), text(row.get(f"gap_nosi_{t}"), gap),
                         text(row.get("gap_wz_bytes"), gap), text(row.get("gap_sq_bytes"), gap)])
    return md_table(POINT_HEADER, body) + [""]


def _provenance(results: list[dict[str, Any]]) -> list[str]:
    """Per result: its training budget, steps, wall time and λ, its bins, its Slepian–Wolf decoding failures."""
    rows = []
    for r in sorted(results, key=result_key):
        t = r.get("training") or {}
        fails = _sw_failures(r)
        fd = (r.get("codec_info") or {}).get("figure")
        rows.append([f"`{result_key(r)}`", str(t.get("budget", NA)), str(t.get("seed", NA)), str(t.get("steps", NA)),
                     text(t.get("seconds"), "{:.0f}"), str(t.get("lam", options_of(r).get("lam", NA))),
                     ", ".join(map(str, boundaries(fd))) if fd else NA, _leak_text(t.get("leak")), fails])
    return (["#### Training and Slepian–Wolf decoding per result", "", LEAK_NOTE, ""]
            + md_table(["result", "budget", "seed", "steps", "train wall s", "λ", "code changes along x per stage",
                        "relaxation leak per stage: D hard − D relaxed / relaxed D − WZ (dB)",
                        "SW decoding failures (per point: failed/blocks)"], rows) + [""])


def _sw_failures(r: dict[str, Any]) -> str:
    """Failed/blocks per point: from the result's `decoding` record (what the decoders counted, sandboxed or not),
    else from codec_info.slepian_wolf.decoding (in-process results written before the record existed)."""
    rec = r.get("decoding")
    sw_ = (r.get("codec_info") or {}).get("slepian_wolf")
    if isinstance(rec, dict) and isinstance(rec.get("counts"), dict):
        dec, resumed = rec["counts"], rec.get("streams_resumed") or 0
        note = f" ({rec.get('streams_decoded')} streams counted; {resumed} of an earlier run not)" if resumed else ""
    elif sw_:
        dec, note = sw_.get("decoding") or {}, ""
    else:
        return NA
    text_ = ", ".join(f"{p}: {v['failed']}/{v['blocks']}" for p, v in sorted(dec.items())
                      if isinstance(v, dict) and "failed" in v and "blocks" in v)
    if text_:
        return text_ + note
    if "decoding" not in r and r.get("isolation") == "sandbox":  # written before the decode roles' counts reached it
        return "not recorded (the sandboxed decoder's counts do not reach the result)"
    return "not recorded"


LEAK_NOTE = (
    "Relaxation leak (recorded by training since 2026-12-07; — for older results): on 10^5 source pairs and one "
    "draw of Gumbel noise at the final temperature, the distortion of the decoder fed one-hot samples minus that "
    "fed the relaxed (Gumbel-softmax) samples of the same noise, then the relaxed distortion minus the Wyner–Ziv "
    "bound at the relaxed rate term (negative: the relaxed objective sits below the bound, which no code can); in "
    "brackets the temperature, the samples the last training step used (relaxed, hard or exact: no samples) and the "
    "lowest gap of the training objective to the bound during training (smoothed over about 100 steps).")


def _leak_text(leak: dict[str, Any] | None) -> str:
    if not isinstance(leak, dict) or not isinstance(leak.get("leak_db"), list):
        return NA
    pairs = ", ".join(f"{a:+.2f} / {b:+.2f}" for a, b in zip(leak["leak_db"], leak.get("relaxed_gap_wz_db") or []))
    low = ((leak.get("training_gap_wz_db") or {}).get("lowest")) or []
    during = "; lowest during training: " + ", ".join(NA if v is None else f"{v:+.2f}" for v in low) if low else ""
    return f"{pairs} (τ={leak.get('tau', NA)}, last step: {leak.get('last_step_samples', NA)}{during})"


def _figures(rs: list[dict[str, Any]], s2: float, out_dir: Path) -> list[str]:
    """The rate–distortion figure of σ², and the bins of every result that recorded its quantizer."""
    rd = out_dir / f"gaussian__wz_s{s2:g}_rd.svg"
    rd_figure(s2, rs, rd)
    lines = [f"![gaussian/wz σ²={s2:g}: distortion vs rate]({rd.name})", ""]
    for r in rs:
        fd = (r.get("codec_info") or {}).get("figure")
        if fd and fd.get("codes"):
            p = out_dir / f"gaussian__wz_{_file_slug(result_key(r))}_bins.svg"
            binning_figure(r, fd, p)
            lines += [f"![{result_key(r)}: bins and reconstructions]({p.name})", ""]
    return lines


def gaussian_section(results: Iterable[dict[str, Any]], out_dir: Path) -> str:
    out_dir = Path(out_dir)
    results = list(results)
    groups: dict[float | None, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(sigma2_of(r), []).append(r)
    lines = [INTRO, ""]
    for s2 in sorted(groups, key=lambda v: (v is None, v or 0.0)):
        rs = sorted(groups[s2], key=result_key)
        if s2 is None:
            lines += ["### σ² unknown", "", "_Results without `sigma2` in their dataset options cannot be compared "
                      "with the bounds: " + ", ".join(f"`{result_key(r)}`" for r in rs) + "._", ""]
            continue
        lines += [f"### σ² = {s2:g}", ""] + _point_table(rs, s2) + _provenance(rs) + _figures(rs, s2, out_dir)
    lines += checklist([r for r in results if sigma2_of(r) is not None])
    if not results:
        lines += ["_No measured results for this protocol yet — `bench run --method layered_wz --dataset gaussian` "
                  "writes one._", ""]
    return "\n".join(lines)
