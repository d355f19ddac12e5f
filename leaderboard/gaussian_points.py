"""Every rate point of a `gaussian/wz` result against the limits of the source (`benchmark.results.bounds`): the
distortion D in dB (10·log10 MSE; lower is better), the rate, and at that rate the Wyner–Ziv bound, the bound
without side information and the practical scalar references (uniform scalar quantizer with ideal Slepian–Wolf
coding, or with an ideal marginal coder, and E[X|Q,Y], computed exactly), with the gaps in dB (positive = worse
than the reference). Gaps are given at the ideal rate the codec estimates (`bpp_estimated`: cross-entropy under
its prior, the paper's rate) and at the rate of the real bytes."""
from __future__ import annotations

import math
from typing import Any

from benchmark.results.bounds import (
    nosi_distortion_db,
    scalar_marginal_distortion_db,
    scalar_sw_distortion_db,
    wz_distortion_db,
)


def options_of(result: dict[str, Any]) -> dict[str, Any]:
    """The codec options the result recorded."""
    return (result.get("codec_info") or {}).get("options") or {}


def is_layered(result: dict[str, Any]) -> bool:
    """A learned layered code: its options name a stage configuration (`config`) and a prior."""
    o = options_of(result)
    return o.get("config") is not None and o.get("prior") is not None


def sigma2_of(result: dict[str, Any]) -> float | None:
    """The noise variance σ² of the result's source (its dataset options, else its codec's)."""
    for where in (result.get("dataset_options") or {}, options_of(result)):
        v = where.get("sigma2")
        if v is not None:
            return float(v)
    return None


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
            row[f"sqm_{tag}"] = scalar_marginal_distortion_db(r, sigma2)
            row[f"gap_sqm_{tag}"] = d_db - row[f"sqm_{tag}"]
            row[f"gap_wz_{tag}"] = d_db - row[f"wz_{tag}"]
            row[f"gap_sq_{tag}"] = d_db - row[f"sq_{tag}"]
            row[f"gap_nosi_{tag}"] = d_db - row[f"nosi_{tag}"]
        rows.append(row)
    return rows
