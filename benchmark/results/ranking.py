"""Which results may be ranked against each other, and what a result file records to decide it.

A ranking (BD-rate against the anchor, order by quality) is honest only between results that are what they
claim to be: a codec that needs no training, or a learned codec trained at its method's ``paper`` budget, in
both cases evaluated on the *whole* test split of the protocol. Everything else -- the quick and smoke
budgets, an explicit ``--option steps=S`` learning-curve point, a ``--limit N`` run -- is a pipeline check or
a learning-curve point and is listed apart, with its steps, never ranked above or below a classical codec.

The runner writes ``coverage`` (see ``coverage_record``); files written before it existed are judged from
``metrics.limit`` (no limit: the whole split was coded) and say so in the reason."""
from __future__ import annotations

from typing import Any, Mapping

RANKED_BUDGET = "paper"


def coverage_record(samples: int, split_samples: int, limit: int | None, skipped: int = 0) -> dict[str, Any]:
    """The ``coverage`` object of a result file: test samples coded, samples in the split, --limit, and samples
    the dataset skipped as unreadable; ``complete`` only when every sample of the split was coded."""
    return {"samples": int(samples), "split_samples": int(split_samples), "limit": limit, "skipped": int(skipped),
            "complete": bool(samples == split_samples and skipped == 0)}


def needs_training(result: Mapping[str, Any]) -> bool:
    meta = result.get("method_meta") or {}
    if "trainable" in meta:
        return bool(meta["trainable"])
    return result.get("training") is not None


def training_budget(result: Mapping[str, Any]) -> str | None:
    """The budget the weights were trained at (also when they were loaded from a folder), or None if unknown."""
    t = result.get("training") or {}
    budget = t.get("budget")
    if budget is None and isinstance(t.get("training"), Mapping):  # weights loaded with --weights
        budget = t["training"].get("budget")
    return budget if isinstance(budget, str) else None


def training_steps(result: Mapping[str, Any]) -> int | None:
    t = result.get("training") or {}
    steps = t.get("steps")
    if steps is None and isinstance(t.get("training"), Mapping):
        steps = t["training"].get("steps")
    return int(steps) if isinstance(steps, (int, float)) and not isinstance(steps, bool) else None


def coverage_complete(result: Mapping[str, Any]) -> tuple[bool, str]:
    cov = result.get("coverage")
    if isinstance(cov, Mapping):
        if cov.get("complete"):
            return True, f"all {cov.get('split_samples')} test samples"
        return False, (f"{cov.get('samples')} of {cov.get('split_samples')} test samples"
                       + (f" (--limit {cov['limit']})" if cov.get("limit") is not None else "")
                       + (f", {cov['skipped']} skipped" if cov.get("skipped") else ""))
    limit = (result.get("metrics") or {}).get("limit")
    if limit is None:
        return True, "whole split (inferred: file has no coverage record, no --limit)"
    return False, f"--limit {limit} (file has no coverage record)"


def isolation(result: Mapping[str, Any]) -> tuple[str, bool]:
    """(isolation level the result was coded at, recorded?): files written before the sandbox existed record none
    and are labelled "none" (benchmark/evaluation/sandbox.py)."""
    level = result.get("isolation")
    return (level, True) if isinstance(level, str) and level else ("none", False)


def is_ranked(result: Mapping[str, Any]) -> tuple[bool, str]:
    """(ranked?, why): ranked only if the method needs no training or was trained at its ``paper`` budget, AND
    the result covers the whole test split, AND it was coded in the sandbox (results committed before the sandbox
    existed keep their place, labelled, until they are rerun). The reason is a short phrase a leaderboard can
    print."""
    level, recorded = isolation(result)
    if recorded and level != "sandbox":
        return False, f"coded at --isolation {level}, not in the sandbox: rerun with --isolation sandbox to be ranked"
    complete, cov_why = coverage_complete(result)
    if needs_training(result):
        budget = training_budget(result)
        if budget != RANKED_BUDGET:
            steps = training_steps(result)
            what = f"{budget or 'unknown'} budget" + (f", {steps} steps" if steps is not None else "")
            return False, f"learned at the {what}: a pipeline check / learning-curve point, not the paper's training"
        trained = f"paper budget ({training_steps(result)} steps)"
    else:
        trained = "needs no training"
    if not complete:
        return False, f"partial test split: {cov_why}"
    return True, f"{trained}; {cov_why}" + ("" if recorded else "; isolation none (coded before the sandbox existed)")
