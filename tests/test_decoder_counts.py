"""What the decoder counts reaches the result (`Codec.decoder_counts` -> the result's `decoding` record), whether
the method ran in this process or in sandboxed decode roles (summed over them), and a decoder's hostile answer
(a negative count, a float, 10^5 keys, nesting too deep, no mapping) is refused naming the method."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from benchmark.contract.registry import get_protocol
from benchmark.errors import BenchError, IsolationError, ResultSchemaError
from benchmark.evaluation.inprocess import evaluate
from benchmark.evaluation.record import add_counts, checked_counts, decoding_record
from benchmark.evaluation.runner import run
from benchmark.evaluation.sandbox import sandbox_problem
from benchmark.evaluation.setup import RunSpec
from benchmark.results.schema import MAX_COUNT, counts_problem, validate_result
from datasets.gaussian import GaussianBlocks, draw_pairs
from tests.hostile_counts import HOSTILE, CountingRaw

PROTO = get_protocol("gaussian/wz")
needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}")
PLUGIN = ("tests.hostile_counts_plugin",)


# ------------------------------------------------------------------------------------------ the checks themselves
@pytest.mark.parametrize("bad,why", [
    ({"a": -1}, "a = -1 lies outside"), ({"a": {"b": 1.5}}, "a.b is float"), ({"a": True}, "a is bool"),
    ({"a": MAX_COUNT + 1}, "lies outside"), ({f"k{i}": 1 for i in range(100_000)}, "more than 1000 keys"),
    ({"a": {"b": {"c": {"d": 1}}}}, "a.b.c nests more than 3 levels"), ([1], "got list"), ({"": 1}, "not a name"),
    ({"x" * 101: 1}, "not a name"), ({1: 1}, "not a name"), ({"a": "3"}, "a is str")])
def test_counts_problem_names_what_is_wrong(bad, why):
    assert why in counts_problem(bad)
    with pytest.raises(IsolationError, match=rf"^lattice_wz: decode-0: decoder_counts\(\) must return None or a "
                                             rf"mapping of names to non-negative integers.*{why.split()[-1]}"):
        checked_counts(bad, "lattice_wz", "decode-0", IsolationError)


def test_good_counts_pass_and_add_up_key_by_key():
    a = {"p=1": {"blocks": 3, "failed": 1}, "streams": 3}
    assert counts_problem(a) is None and checked_counts(None, "m", "d") is None and checked_counts({}, "m", "d") == {}
    total = add_counts(copy.deepcopy(a), {"p=1": {"blocks": 2, "failed": 0, "new": 4}, "p=2": {"blocks": 1}}, "m")
    assert total == {"p=1": {"blocks": 5, "failed": 1, "new": 4}, "streams": 3, "p=2": {"blocks": 1}}
    with pytest.raises(IsolationError, match="disagree at p=1.blocks"):
        add_counts(copy.deepcopy(a), {"p=1": {"blocks": {"x": 1}}}, "m", IsolationError)
    with pytest.raises(BenchError, match="disagree at streams"):
        add_counts(copy.deepcopy(a), {"streams": {"x": 1}}, "m")


def test_the_decoding_record_counts_only_this_runs_streams_and_validates():
    rec = decoding_record({"decoder_counts": {"s": 4}, "decoders": 2, "streams_decoded": 4}, rows=10)
    assert rec["counts"] == {"s": 4} and rec["streams_resumed"] == 6 and rec["decoders"] == 2
    assert decoding_record({"decoder_counts": None}, rows=3) is None and decoding_record({}, rows=3) is None
    result = json.loads(open("docs/examples/jpeg.json", encoding="utf-8").read())
    assert "decoding" not in result and validate_result(copy.deepcopy(result))  # results from before still validate
    validate_result({**copy.deepcopy(result), "decoding": rec})
    validate_result({**copy.deepcopy(result), "decoding": None})
    for field, bad in (("counts", {"s": -1}), ("streams_decoded", -1), ("decoders", "2")):
        with pytest.raises(ResultSchemaError, match=f"decoding.{field}"):
            validate_result({**copy.deepcopy(result), "decoding": {**rec, field: bad}})


# ------------------------------------------------------------------------------------------ in this process
def test_layered_wz_and_lattice_wz_report_their_slepian_wolf_counts_as_a_copy():
    from methods.layered_wz.codec import LayeredWZCodec
    from methods.layered_wz.lattice_codec import LatticeWZCodec

    x, y = (torch.from_numpy(a).float() for a in draw_pairs(1000, 0.1, 3))
    torch.manual_seed(0)
    lw = LayeredWZCodec(PROTO, config="44", coder="ldpc", hidden=8, sw_margin=0.5)
    assert lw.decoder_counts() == {}
    lw.decompress(lw.compress(x, point="stage=2"), side=y)
    counts = lw.decoder_counts()
    assert counts == lw.sw_stats == {"stage=2": {"blocks": 1, "failed": 0, "failed_at_stage1": 0, "failed_at_stage2": 0}}
    counts["stage=2"]["blocks"] = 99
    assert lw.sw_stats["stage=2"]["blocks"] == 1
    assert LayeredWZCodec(PROTO, config="44", hidden=8).decoder_counts() is None  # the range coder counts nothing
    lat = LatticeWZCodec(PROTO, lattice="Z", scales=[2.5], design_samples=1000, draws=16)
    lat.decompress(lat.compress(x, point="scale=2.5"), side=y)
    assert lat.decoder_counts() == {"scale=2.5": {"blocks": 1, "failed": 0}}
    assert LatticeWZCodec(PROTO, lattice="Z", scales=[2.5], coder="nested").decoder_counts() is None


def test_in_process_evaluation_records_the_decoders_counts_and_refuses_a_hostile_answer():
    test = GaussianBlocks("test", sigma2=0.1, block=50, n_blocks=3)
    facts: dict = {}
    rows = evaluate(CountingRaw(PROTO), test, PROTO, progress=False, facts=facts)
    assert len(rows) == 3 and facts["decoder_counts"] == {"streams": 3, "per_source": {"0": 3}}
    assert facts["decoders"] == 1 and facts["streams_decoded"] == 3
    for name, cls in HOSTILE.items():
        with pytest.raises(BenchError, match=rf"^{name}: the decoder: decoder_counts\(\) must return None or a mapping"):
            evaluate(cls(PROTO), test, PROTO, progress=False, facts={})


# ------------------------------------------------------------------------------------------ sandboxed decode roles
def _run(out, method, isolation, workers=1, **kw):
    spec = RunSpec(method=method, dataset="gaussian", out=out, isolation=isolation, eval_workers=workers,
                   progress=False, **kw)
    return run(spec)[1]


@needs_sandbox
@pytest.mark.slow
def test_lattice_wz_sandboxed_over_two_decoders_records_the_in_process_counts(tmp_path):
    """A margin small enough that some blocks fail: the counts of two decode roles add up to the in-process run's."""
    kw = dict(method_options={"lattice": "Z", "scales": [2.5, 1.4], "margin": 0.1, "rel_margin": 0.0, "draws": 16,
                              "design_samples": 1000}, dataset_options={"sigma2": 0.1, "block": 300, "test_blocks": 4})
    none = _run(tmp_path / "none", "lattice_wz", "none", **kw)
    sand = _run(tmp_path / "sandbox", "lattice_wz", "sandbox", workers=2, **kw)
    counts = none["decoding"]["counts"]
    assert counts == none["codec_info"]["slepian_wolf"]["decoding"]  # the in-process instance's own record
    assert sum(v["blocks"] for v in counts.values()) == 8 and 0 < sum(v["failed"] for v in counts.values()) < 8
    assert sand["decoding"]["counts"] == counts and sand["codec_info"]["slepian_wolf"]["decoding"] == {}
    assert (none["decoding"]["decoders"], sand["decoding"]["decoders"]) == (1, 2)
    for r in (none, sand):
        assert (r["decoding"]["streams_decoded"], r["decoding"]["streams_resumed"]) == (8, 0)


@needs_sandbox
@pytest.mark.slow
def test_layered_wz_ldpc_sandboxed_records_the_in_process_failures(tmp_path):
    """Given weights (an untrained model: no training role), a margin below the threshold: stage 1 fails."""
    from methods.layered_wz.codec import LayeredWZCodec

    opts = {"config": "44", "coder": "ldpc", "sw_margin": -0.04, "hidden": 8}
    torch.manual_seed(0)
    LayeredWZCodec(PROTO, **opts).save_weights(tmp_path / "weights")
    kw = dict(method_options=opts, weights=str(tmp_path / "weights"),
              dataset_options={"sigma2": 0.1, "block": 1000, "test_blocks": 3})
    none = _run(tmp_path / "none", "layered_wz", "none", **kw)
    sand = _run(tmp_path / "sandbox", "layered_wz", "sandbox", **kw)
    assert sand["decoding"]["counts"] == none["decoding"]["counts"]
    assert none["decoding"]["counts"]["stage=2"]["blocks"] == 3 and none["decoding"]["counts"]["stage=2"]["failed"] > 0


@needs_sandbox
@pytest.mark.slow
def test_a_hostile_decode_role_is_refused_and_an_honest_one_sums_over_workers(tmp_path):
    kw = dict(plugins=PLUGIN, dataset_options={"sigma2": 0.1, "block": 20, "test_blocks": 4})
    r = _run(tmp_path / "ok", "counting_raw", "sandbox", workers=2, **kw)
    assert r["decoding"]["counts"] == {"streams": 4, "per_source": {"0": 4}} and r["decoding"]["decoders"] == 2
    for name, why in (("counts_negative", "streams = -"), ("counts_float", "streams is float"),
                      ("counts_many_keys", "more than 1000 keys")):  # the others: in this process, above
        with pytest.raises(IsolationError, match=rf"^{name}: decode-\d: decoder_counts\(\) must return None .*; {why}"):
            _run(tmp_path / name, name, "sandbox", **kw)
        assert not list((tmp_path / name).rglob("*.json"))  # no result written


# ------------------------------------------------------------------------------------------ the leaderboard column
def test_the_gaussian_leaderboard_reads_the_decoding_record_then_codec_info():
    from leaderboard.formatting import NA
    from leaderboard.gaussian import _sw_failures

    sw_info = {"slepian_wolf": {"decoding": {"s=1": {"blocks": 3, "failed": 1}}}}
    rec = {"counts": {"s=1": {"blocks": 2, "failed": 0}, "s=2": {"blocks": 2, "failed": 2}}, "streams_decoded": 4,
           "streams_resumed": 0, "decoders": 2, "counted_by": "the decoder"}
    assert _sw_failures({"decoding": rec, "codec_info": {"slepian_wolf": {"decoding": {}}}, "isolation": "sandbox"}) \
        == "s=1: 0/2, s=2: 2/2"
    assert _sw_failures({"decoding": {**rec, "streams_resumed": 4}}).endswith("(4 streams counted; 4 of an earlier run not)")
    assert _sw_failures({"codec_info": sw_info, "isolation": "none"}) == "s=1: 1/3"  # in-process, before the record
    assert _sw_failures({"codec_info": {"slepian_wolf": {"decoding": {}}}, "isolation": "sandbox"}) == \
        "not recorded (the sandboxed decoder's counts do not reach the result)"  # sandboxed, before the record
    assert _sw_failures({"decoding": None, "codec_info": {"slepian_wolf": {"decoding": {}}}, "isolation": "sandbox"}) \
        == "not recorded"  # a run that decoded nothing new
    assert _sw_failures({"codec_info": {}, "isolation": "sandbox"}) == NA  # no Slepian–Wolf coder


def test_point_jobs_merged_by_a_sweep_sum_their_decoders_counts():
    from benchmark.cluster.sweep_merge import _merged_decoding

    a = decoding_record({"decoder_counts": {"p=1": {"blocks": 3, "failed": 1}}, "decoders": 1, "streams_decoded": 3}, 3)
    b = decoding_record({"decoder_counts": {"p=2": {"blocks": 3, "failed": 0}}, "decoders": 2, "streams_decoded": 2}, 3)
    merged = _merged_decoding([a, b])
    assert merged["counts"] == {"p=1": {"blocks": 3, "failed": 1}, "p=2": {"blocks": 3, "failed": 0}}
    assert (merged["streams_decoded"], merged["streams_resumed"], merged["decoders"]) == (5, 1, 3)
    assert a["counts"] == {"p=1": {"blocks": 3, "failed": 1}}  # the parts are left as they were
    assert _merged_decoding([a, None]) is None  # a part without counts: the merged result records none
