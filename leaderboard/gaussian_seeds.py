"""Seeds, intervals and verdicts of the `gaussian/wz` checklist (`gaussian_paper`): pure functions.

A configuration (stage configuration, prior, σ², λ, training family) run with several training seeds (the result's
`training.seed`; the files are told apart by a `.seed<s>` part of their variant) is one row: the mean over seeds
and a two-sided 95 % Student-t interval, mean ± t(0.975, n−1)·s/√n. A statement holds for values in a band
[lo, hi] (lo or hi may be infinite); the verdict is "reproduced" when the whole interval lies inside the band, "not
reproduced" when it lies wholly outside it (on one side), "inconclusive" otherwise. One seed gives no interval:
"inconclusive (1 seed)", whatever the value."""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


from .compare import t_interval as compare_t_interval
from .formatting import NA
from .gaussian_points import options_of

LEVEL = 0.95
INF = math.inf


def seed_of(result: dict[str, Any]) -> int | None:
    """The training seed a result records (None when it records none)."""
    s = (result.get("training") or {}).get("seed")
    return s if isinstance(s, int) and not isinstance(s, bool) else None


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float] | None:
    """(mean, low, high) of the two-sided Student-t interval for the mean (`compare.t_interval`); None with
    fewer than 2 values."""
    ci = compare_t_interval(values, level)
    return None if ci is None else (statistics.fmean(values), ci[0], ci[1])


def verdict(values: Sequence[float], lo: float = -INF, hi: float = INF, *, yes: str = "reproduced",
            no: str = "not reproduced") -> str:
    """`yes` when the interval of the mean lies inside [lo, hi], `no` when it lies wholly outside (below lo or
    above hi), "inconclusive" otherwise; one value: "inconclusive (1 seed)"; none: not measured."""
    if not values:
        return NA
    ci = t_interval(values)
    if ci is None:
        return "inconclusive (1 seed)"
    _, a, b = ci
    if lo <= a and b <= hi:
        return yes
    if b < lo or a > hi:
        return no
    return "inconclusive"


def band_text(lo: float = -INF, hi: float = INF, unit: str = " dB", fmt: str = "{:+.1f}") -> str:
    """The band a statement needs, as the checklist's threshold column shows it."""
    f = lambda v: fmt.format(v) + unit
    if lo == -INF and hi == INF:
        return NA
    if lo == -INF:
        return f"≤ {f(hi)}"
    if hi == INF:
        return f"≥ {f(lo)}"
    if math.isclose(lo, -hi):
        return f"within ±{fmt.format(hi).lstrip('+')}{unit}"
    return f"in [{f(lo)}, {f(hi)}]"


def measured_text(values: Sequence[float], seeds: Sequence[int | None], unit: str = " dB", fmt: str = "{:+.2f}") -> str:
    """'−0.21 dB (1 seed: no interval)' or '−0.21 dB, 95 % CI [−0.90, +0.48] (3 seeds: 0, 1, 2)'."""
    names = ", ".join("?" if s is None else str(s) for s in seeds)
    ci = t_interval(values)
    if ci is None:
        return f"{fmt.format(values[0])}{unit} (1 seed: no interval)" if values else NA
    m, a, b = ci
    return f"{fmt.format(m)}{unit}, {LEVEL * 100:.0f} % CI [{fmt.format(a)}, {fmt.format(b)}] ({len(values)} seeds: {names})"


def family(result: dict[str, Any]) -> str | None:
    """Which training recipe a layered result belongs to: 'suite' (this suite's defaults: Gumbel-softmax, 1/σ
    input scaling, residual decoder), 'faithful' (the paper's networks, `faithful=true`), 'exact' (the expectation
    over codes summed exactly) or 'anneal' (relaxed, then hard samples); None for the others (an initialisation,
    straight-through samples throughout, another coder)."""
    o = options_of(result)
    if o.get("init", "random") != "random" or o.get("hard") or o.get("coder", "range") != "range":
        return None
    est = o.get("estimator", "gumbel")
    if o.get("faithful"):
        return "faithful" if est == "gumbel" else None
    return {"gumbel": "suite", "exact": "exact", "anneal": "anneal"}.get(est)


def by_seed(results: Sequence[dict[str, Any]]) -> dict[int | None, dict[str, Any]]:
    """One result per seed (the most recent when a seed was run twice)."""
    out: dict[int | None, dict[str, Any]] = {}
    for r in results:
        s = seed_of(r)
        if s not in out or r.get("created", "") > out[s].get("created", ""):
            out[s] = r
    return out


def code_changes(code: str) -> int:
    return sum(1 for i in range(1, len(code)) if code[i] != code[i - 1])


MIRROR_AGREEMENT = 0.75  # share of grid points x whose code equals that of −x, for a code to count as mirror bins


def bin_shape(code: str) -> str:
    """A stage's code along the symmetric x grid of the result's figure: 'contiguous' (one interval per code),
    'mirror' (codes reused symmetrically: code(x) = code(−x) on at least 75 % of the grid, the side information
    resolving the sign), 'non-contiguous' (some code covers several intervals otherwise: binning), or 'one code'."""
    n, ch = len(code), code_changes(code)
    if ch == 0:
        return "one code"
    if ch == len(set(code)) - 1:
        return "contiguous"
    if sum(code[i] == code[n - 1 - i] for i in range(n)) / n >= MIRROR_AGREEMENT:
        return "mirror"
    return "non-contiguous"
