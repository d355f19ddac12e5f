"""Practical 1-D Wyner–Ziv reference (uniform scalar quantizer + ideal Slepian–Wolf coding + MMSE decoding).

The closed forms live in the core leaf module `benchmark.results.bounds`, which the leaderboard also reads; the
names stay importable from here."""
from __future__ import annotations

from benchmark.results.bounds import (  # noqa: F401
    LOG2E,
    _interval_prob,
    _phi,
    bin_edges,
    conditional_code_length,
    marginal_pmf,
    mmse_reconstruct,
    quantize,
    scalar_sw_distortion,
    scalar_sw_distortion_db,
    scalar_sw_point,
    scalar_sw_step_for_rate,
    scalar_sw_sweep,
)
