"""The result document of a run: what the runner writes beside the per-image CSV (`benchmark.results.schema` says
what each field means). Built from the run's specification, its protocol, the test split and the `Outcome` of
coding it; the runner writes it (`runner._finish`).

A result carries what the leaderboard shows about its protocol and its method (`protocol_facts`, `method_meta`),
so the leaderboard reads result files and never the registry. `suite_facts` gives the same two records for every
registered protocol and method, for the protocols and methods that have no result yet."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from benchmark.contract.codec import Scenario
from benchmark.contract.protocol import Protocol
from benchmark.evaluation.environment import environment
from benchmark.evaluation.rows import aggregate, estimate_check
from benchmark.evaluation.setup import RunSpec
from benchmark.results.ranking import coverage_record
from benchmark.errors import BenchError
from benchmark.results.schema import COUNTS_EXPECTED, SCHEMA_VERSION, counts_problem
from benchmark.safety.jsonsafe import jsonable


@dataclass
class Outcome:
    """What coding the test split produced, whichever path ran the method (sandboxed roles or this process)."""

    key: str  # <method>[.<variant>]: the result's file name
    variant: str | None
    meta: dict[str, Any]  # MethodMeta.as_dict()
    rate_points: list[str]
    codec_info: dict[str, Any]
    rows: list[dict[str, Any]]
    training: Any
    complexity: Any
    isolation: str
    method_file: str | None
    bitstreams: str | None = None  # the archive's file name when --keep-bitstreams kept every stream
    # input facts (exif_rotated), roles_cpu_s, and what the decoders counted: decoder_counts (summed, None: the codec
    # counts nothing), decoders (how many answered), streams_decoded (in this run)
    facts: dict[str, Any] = field(default_factory=dict)


def result_record(spec: RunSpec, protocol: Protocol, test: Any, out: Outcome, csv_name: str, csv_text: str) -> dict[str, Any]:
    """The result document (JSON-ready: infinities and NaN as null)."""
    scenario = Scenario(out.meta["scenario"])
    points = aggregate(out.rows, out.rate_points, scenario)
    image_protocol = protocol.rate_unit == "bpp"
    n = len(test) if spec.limit is None else min(spec.limit, len(test))
    return jsonable({  # infinities and NaN as null
        "schema_version": SCHEMA_VERSION,
        "kind": "result",
        "method": out.meta["name"],
        "variant": out.variant,
        "dataset": spec.dataset,
        "dataset_options": {k: v for k, v in {**protocol.options, **spec.dataset_options}.items()},
        "protocol": protocol.name,
        "protocol_version": protocol.version,
        "protocol_facts": protocol_facts(protocol),
        "scenario": scenario.value,
        "rate_unit": protocol.rate_unit,
        "rate_accounting": _rate_accounting(scenario, points, out.codec_info, image_protocol),
        "metrics": _metrics_record(protocol, spec.limit, image_protocol),
        "points": points,
        "coverage": coverage_record(n, len(test), spec.limit, int(getattr(test, "skipped", 0) or 0)),
        "per_image_csv": csv_name,
        "per_image_csv_sha256": hashlib.sha256(csv_text.encode("utf-8")).hexdigest(),
        "isolation": out.isolation,
        "input_facts": {"exif_rotated": int(out.facts.get("exif_rotated", 0)),
                        "note": "test images turned upright by their EXIF orientation when read (coded upright)"},
        "roles_cpu_s": out.facts.get("roles_cpu_s"),  # CPU seconds of each sandboxed role, as it reported them
        "method_options": {k: v for k, v in spec.method_options.items()},  # as given (`bench verify` rebuilds the codec)
        "estimate_check": estimate_check(out.rows),
        "bitstreams": out.bitstreams,
        "code": _code_record(out.method_file),
        "complexity": out.complexity,
        "decoding": decoding_record(out.facts, len(out.rows)),
        "training": out.training,
        "method_meta": out.meta,
        "codec_info": out.codec_info,
        "environment": environment(spec.device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })


def protocol_facts(protocol: Protocol) -> dict[str, Any]:
    """What a result records of its protocol: its description (`Protocol.as_dict`), the fixed rates at which the
    leaderboard reads each curve and, for a protocol that applies a published protocol's preprocessing and metrics
    to other samples, that protocol's name (`alias_of`: the leaderboard shows the result in its section) and whether
    the samples are its test split (`alias_test_split`)."""
    facts = {**protocol.as_dict(), "fixed_bpps": [float(b) for b in protocol.fixed_bpps]}
    if protocol.preprocessing_of:
        facts.update(alias_of=protocol.preprocessing_of, alias_test_split=bool(protocol.preprocessing_of_test_split))
    return facts


def suite_facts() -> dict[str, Any]:
    """The facts results record, for every registered protocol and method: {"protocols": {name: protocol_facts},
    "methods": {name: MethodMeta.as_dict()}}. The leaderboard reads them for protocols and methods without results
    (a published curve's protocol, a method that reproduces a published curve but has not been run)."""
    from benchmark.contract.registry import METHODS, PROTOCOLS

    return {"protocols": {name: protocol_facts(p) for name, p in PROTOCOLS.items()},
            "methods": {name: cls.meta.as_dict() for name, cls in METHODS.items()}}


def _rate_accounting(scenario: Scenario, points: list[dict[str, Any]], codec_info: dict[str, Any],
                     image_protocol: bool) -> dict[str, Any]:
    return {
        "rate_source": "bytes of the suite's bitstream container (header included; bpp_payload excludes it)"
        + ("; bpp_estimated: the codec's likelihood estimate" if any(p.get("bpp_estimated") is not None for p in points) else ""),
        "divided_by": "pixels (H*W) of the coded image x" if image_protocol else "number of coded samples",
        "side_information": scenario.rate_accounting,
        "codec_notes": str(codec_info.get("rate_notes", "")),
    }


def _metrics_record(protocol: Protocol, limit: int | None, image_protocol: bool) -> dict[str, Any]:
    return {
        "psnr": protocol.psnr if image_protocol else "10*log10(1/MSE) on raw values (not rounded)",
        "ms_ssim": f"pytorch_msssim, win_size={protocol.ms_ssim_win}, data_range=1, per image then mean; "
                   "ms_ssim_db = -10*log10(1 - mean MS-SSIM)" if image_protocol else "not applicable",
        "aggregation": "mean over test images (and over sources for distributed codecs)",
        "limit": limit,
    }


def _code_record(method_file: str | None) -> dict[str, Any] | None:
    """Content hashes of the method's code and of the suite's (benchmark/results/provenance.py), where it is available."""
    try:
        from benchmark.results import provenance
    except ImportError:
        return None
    try:
        rec: dict[str, Any] = {"suite_sha256": provenance.suite_code_hash()}
        if method_file:
            rec["method"] = provenance.method_code_record(method_file)
        return rec
    except Exception as exc:  # noqa: BLE001 - provenance must not fail a finished run; the file says why
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}




# ---------------------------------------------------------------- what the decoders counted
COUNTED_BY = ("the decoder: Codec.decoder_counts() of every decoding instance (each sandboxed decode role, or the one "
              "in this process at --isolation none) once it had decoded its streams, summed key by key; only the "
              "streams decoded in this run (streams_resumed: rows an interrupted earlier run left, not counted)")


def checked_counts(value: Any, method: str, who: str, error: type[BenchError] = BenchError) -> dict[str, Any] | None:
    """A decoder's answer to `decoder_counts()` (None, or a mapping `counts_problem` accepts); anything else is
    refused with `error` naming the method, the decoder (`who`) and what was expected."""
    if value is None:
        return None
    why = counts_problem(value)
    if why:
        raise error(f"{method}: {who}: decoder_counts() must return None or {COUNTS_EXPECTED}; {why}")
    return value


def add_counts(total: dict[str, Any], counts: dict[str, Any], method: str, error: type[BenchError] = BenchError,
               path: str = "") -> dict[str, Any]:
    """`counts` added into `total` key by key (a count where the other holds a mapping is refused); returns total."""
    for k, v in counts.items():
        where = f"{path}.{k}" if path else k
        have = total.get(k)
        if isinstance(v, dict) != isinstance(have, dict) and have is not None:
            raise error(f"{method}: decoder_counts() of two decoders disagree at {where}: a count in one, a mapping "
                        "in the other")
        total[k] = add_counts(have if have is not None else {}, v, method, error, where) if isinstance(v, dict) \
            else (have or 0) + v
    return total


def decoding_record(facts: dict[str, Any], rows: int) -> dict[str, Any] | None:
    """The result's `decoding` record: the decoders' summed counts, how many decoders answered and how many of the
    run's `rows` streams they decoded in this run. None where the codec counts nothing."""
    counts = facts.get("decoder_counts")
    if counts is None:
        return None
    decoded = int(facts.get("streams_decoded", 0))
    return {"counts": counts, "streams_decoded": decoded, "streams_resumed": max(rows - decoded, 0),
            "decoders": int(facts.get("decoders", 1)), "counted_by": COUNTED_BY}
