"""Only results at the paper budget (or of codecs that need no training) covering the whole test split are ranked;
the runner records the coverage that decision needs, and the schema checks it."""
import copy

import pytest

from benchmark.errors import ResultSchemaError
from benchmark.results.ranking import coverage_record, is_ranked
from benchmark.results.schema import validate_result
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec


@pytest.fixture(scope="module")
def jpeg_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank")
    whole = run(RunSpec(method="jpeg", dataset="middlebury_sample", out=out / "a", progress=False,
                        method_options={"qualities": [50]}))[1]
    part = run(RunSpec(method="jpeg", dataset="middlebury_sample", out=out / "b", limit=1, progress=False,
                       method_options={"qualities": [50]}))[1]
    assert whole["isolation"] == part["isolation"] == "none"  # the suite's tests run in-process (tests/conftest.py)
    # the budget and coverage rules below are judged as for sandboxed results (test_isolation_decides_too)
    return dict(whole, isolation="sandbox"), dict(part, isolation="sandbox")


def test_isolation_decides_too(jpeg_runs):
    """Only results coded in the sandbox are ranked; files from before the sandbox keep their place, labelled."""
    whole = jpeg_runs[0]
    for level in ("none", "process"):
        ok, why = is_ranked(dict(whole, isolation=level))
        assert not ok and f"--isolation {level}" in why
    legacy = {k: v for k, v in whole.items() if k != "isolation"}
    ok, why = is_ranked(legacy)
    assert ok and "isolation none" in why


def test_runner_records_coverage(jpeg_runs):
    whole, part = jpeg_runs
    assert whole["coverage"] == {"samples": 4, "split_samples": 4, "limit": None, "skipped": 0, "complete": True}
    assert part["coverage"] == {"samples": 1, "split_samples": 4, "limit": 1, "skipped": 0, "complete": False}


def test_classical_whole_split_is_ranked_partial_is_not(jpeg_runs):
    whole, part = jpeg_runs
    ok, why = is_ranked(whole)
    assert ok and "no training" in why
    ok, why = is_ranked(part)
    assert not ok and "1 of 4" in why and "--limit 1" in why


@pytest.mark.parametrize("budget, steps, ranked", [("quick", 500, False), ("smoke", 150, False), (None, None, False),
                                                   ("paper", 1_000_000, True)])
def test_learned_rows_rank_only_at_the_paper_budget(jpeg_runs, budget, steps, ranked):
    r = copy.deepcopy(jpeg_runs[0])
    r["method_meta"]["trainable"] = True
    r["training"] = {"budget": budget, "steps": steps}
    ok, why = is_ranked(r)
    assert ok is ranked
    if not ranked:
        assert "learning-curve point" in why and (str(steps) in why if steps else "unknown" in why)
    # weights loaded with --weights carry their training record one level down
    r["training"] = {"loaded_from": "w", "training": {"budget": budget, "steps": steps}}
    assert is_ranked(r)[0] is ranked


def test_paper_budget_on_part_of_the_split_is_not_ranked(jpeg_runs):
    r = copy.deepcopy(jpeg_runs[1])
    r["method_meta"]["trainable"] = True
    r["training"] = {"budget": "paper", "steps": 1_000_000}
    ok, why = is_ranked(r)
    assert not ok and "partial test split" in why


def test_older_files_without_coverage_are_judged_by_limit(jpeg_runs):
    whole, part = (copy.deepcopy(r) for r in jpeg_runs)
    whole.pop("coverage")
    part.pop("coverage")
    validate_result(whole)  # optional field
    assert is_ranked(whole)[0] and "inferred" in is_ranked(whole)[1]
    assert not is_ranked(part)[0]


def test_schema_checks_coverage(jpeg_runs):
    r = copy.deepcopy(jpeg_runs[0])
    r["coverage"]["complete"] = False
    with pytest.raises(ResultSchemaError) as exc:
        validate_result(r)
    assert exc.value.field == "coverage.complete"
    r["coverage"] = {"samples": "4"}
    with pytest.raises(ResultSchemaError) as exc:
        validate_result(r)
    assert exc.value.field == "coverage.samples"
    assert coverage_record(3, 4, None, 0)["complete"] is False
    assert coverage_record(4, 4, None, 1)["complete"] is False


def test_runner_records_the_protocol_facts_the_leaderboard_shows(jpeg_runs):
    """The leaderboard reads a protocol's anchor, fixed rates, unit and description from the result, never from
    the registry; the schema checks that block, and files written before it existed still load."""
    from benchmark.contract.registry import get_protocol

    r = copy.deepcopy(jpeg_runs[0])
    p = get_protocol(r["protocol"])
    facts = r["protocol_facts"]
    assert (facts["name"], facts["anchor"], facts["rate_unit"], facts["dataset"]) == (p.name, p.anchor, p.rate_unit, p.dataset)
    assert facts["fixed_bpps"] == list(p.fixed_bpps) and facts["description"] == p.description
    validate_result({k: v for k, v in r.items() if k != "protocol_facts"})
    for field, bad in (("name", "other/protocol"), ("fixed_bpps", [0.1, -1.0]), ("anchor", None)):
        broken = copy.deepcopy(r)
        broken["protocol_facts"][field] = bad
        with pytest.raises(ResultSchemaError) as exc:
            validate_result(broken)
        assert exc.value.field.startswith(f"protocol_facts.{field}")
    r["method_meta"]["twin"] = 3
    with pytest.raises(ResultSchemaError) as exc:
        validate_result(r)
    assert exc.value.field == "method_meta.twin"
