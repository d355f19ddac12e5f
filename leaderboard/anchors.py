"""The two anchors of a protocol's BD numbers: the measured anchor (the protocol's anchor codec as this suite ran
it, or `jpeg` in its place) and the published anchor (`published.PUBLISHED_ANCHORS`), each with the sentence
that names it on the page."""
from __future__ import annotations

import math
from typing import Any

from benchmark.results.ranking import is_ranked

from .compare import MIN_OVERLAP, clean, describe_dropped
from .curves import RDCurve
from .facts import FALLBACK_ANCHOR, ProtocolInfo
from .inputs import Measured
from .published import PUBLISHED_ANCHORS


def _has_points(result: dict[str, Any]) -> bool:
    """At least one point with a positive rate and a PSNR."""
    return any(p.get("bpp") is not None and p.get("psnr") is not None and math.isfinite(float(p["psnr"]))
               and math.isfinite(float(p["bpp"])) and float(p["bpp"]) > 0 for p in result["points"])


def _pick(measured: list[Measured], method: str) -> Measured | None:
    cands = [m for m in measured if m.result["method"] == method and _has_points(m.result)]
    # a ranked result (whole test split) is a better anchor than a --limit run of the same method
    cands.sort(key=lambda m: (not is_ranked(m.result)[0], m.result.get("variant") is not None, m.key))
    return cands[0] if cands else None


def choose_anchor(measured: list[Measured], info: ProtocolInfo) -> tuple[Measured | None, str]:
    """The protocol's anchor if it has a ranked result; else a ranked `jpeg`; else whatever of the two exists.

    A quick-budget learned anchor would make every BD number a comparison with an unconverged model, so a ranked
    classical anchor is preferred to it (and the text says so)."""
    a = _pick(measured, info.anchor)
    if a is not None and is_ranked(a.result)[0]:
        return a, f"Anchor for BD metrics: `{a.key}` (the protocol's anchor)."
    fb = _pick(measured, FALLBACK_ANCHOR) if info.anchor != FALLBACK_ANCHOR else None
    if fb is not None and (a is None or is_ranked(fb.result)[0]):
        why = ("has no measured result here" if a is None else
               f"is measured only unranked (`{a.key}`: {is_ranked(a.result)[1]})")
        return fb, f"Anchor for BD metrics: `{fb.key}` — the protocol's anchor `{info.anchor}` {why}, so `{FALLBACK_ANCHOR}` is used instead."
    if a is not None:
        return a, (f"Anchor for BD metrics: `{a.key}` (the protocol's anchor; unranked: {is_ranked(a.result)[1]}, "
                   "so BD numbers here compare with an unconverged model).")
    return None, (f"No measured anchor (`{info.anchor}`" + (f" or `{FALLBACK_ANCHOR}`" if info.anchor != FALLBACK_ANCHOR else "")
                  + f"): BD metrics are not computed. Run `bench run --method {info.anchor} --dataset DATASET --protocol {info.name}` to get them.")


def published_anchor_label(name: str, pub: list[RDCurve]) -> str | None:
    """How the tables' headers name the published anchor: its label, or its key where it is per M or absent."""
    key = PUBLISHED_ANCHORS.get(name)
    if not key:
        return None
    if "{M}" in key:
        return key.replace("{M}", "M")
    found = [c for c in pub if c.method == key and c.psnr]
    return found[0].label if found else key


def published_anchor_text(name: str, pub: list[RDCurve]) -> list[str]:
    """The paragraph naming the protocol's published anchor and the point policy, with the anchor's left-out points."""
    key = PUBLISHED_ANCHORS.get(name)
    if not key:
        return []
    if "{M}" in key:
        anchors = [c for c in pub if c.method == key.replace("{M}", str(c.sources))]
        what = f"`{key.replace('{M}', 'M')}` (the published curve with the same number of sources M)"
    else:
        anchors = [c for c in pub if c.method == key and c.psnr][:1]
        what = (f"**{anchors[0].label}** [{anchors[0].provenance}, {anchors[0].rate_type}]" if anchors
                else f"`{key}` (not among the curves read)")
    left = [f"{c.label}: {describe_dropped(clean(c.psnr))}" for c in anchors if describe_dropped(clean(c.psnr))]
    return [f"Published anchor (“pub. anchor” in the tables) for BD metrics of every curve: {what}. Points left out "
            "of BD (listed per row): a degenerate point (rate more than 100× below the next point of its curve, e.g. a model that sends almost "
            "nothing) — the headline number excludes it and the column “incl. degenerate points” shows BD with it; and "
            "points that break monotonicity (quality not above every cheaper point's). Overlap is the common quality "
            f"interval over the union (the `bjontegaard` package's measure); below {MIN_OVERLAP:.0%} the row is flagged. "
            "A different rate type than the anchor's (likelihood estimate vs real bytes vs fixed-length code) is flagged."
            + (" Anchor points left out: " + "; ".join(left) + "." if left else ""), ""]
