"""Practical 1-D Wyner–Ziv reference (uniform scalar quantizer + ideal Slepian–Wolf coding + MMSE decoding).

The closed forms are in `benchmark.results.bounds` (import them from there); the names here are for
tests/test_gaussian.py, which imports them from this module."""
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
