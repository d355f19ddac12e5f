"""Result files: versioned JSON schema, atomic writes, validation naming the offending field.

A result file holds one method evaluated under one protocol. Its per-image rows live in a CSV beside it.
The schema is versioned (`schema_version`); older versions are upgraded on load through `_MIGRATIONS`."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

from benchmark.errors import ResultSchemaError

SCHEMA_VERSION = 1
RESULT_KIND = "result"
SCENARIOS = ("separate", "decoder_side_info", "joint", "distributed")
ISOLATION_LEVELS = ("sandbox", "process", "none")  # how the method's code was run (benchmark/evaluation/isolation.py)
_HEX64 = re.compile(r"[0-9a-f]{64}")

# version -> function upgrading a dict of that version to version+1
_MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that a crash leaves either the old file or the new one, never half a file."""
    from benchmark.safety.atomicio import (
        atomic_write_text as write,  # umask permissions; OSError -> OutputError naming the folder
    )

    write(Path(path), text)


def write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_result_pair(path: Path, result: dict[str, Any], csv_bytes: bytes) -> dict[str, Any]:
    """Write a result and its per-image CSV (named by `result["per_image_csv"]`, beside `path`) together.

    Both go to temporary files in the folder first (flushed to disk); then the CSV is renamed over its name
    and the JSON over its own. The JSON records the CSV's sha256 (`per_image_csv_sha256`): a crash between
    the two renames leaves the new CSV beside the old JSON, which `bench validate` refuses by that hash,
    never a pair that validates. Returns the result as written."""
    import hashlib
    import os
    import tempfile

    from benchmark.results.per_image_csv import csv_name_problem
    from benchmark.safety.atomicio import current_umask, output_error

    path = Path(path)
    why = csv_name_problem(result.get("per_image_csv"), path.name)
    if why:
        raise ResultSchemaError("per_image_csv", why)
    csv_path = path.parent / result["per_image_csv"]
    result = {**result, "per_image_csv_sha256": hashlib.sha256(csv_bytes).hexdigest()}
    text = (json.dumps(result, indent=2, sort_keys=False, allow_nan=False) + "\n").encode("utf-8")
    temps: list[str] = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, data in ((csv_path, csv_bytes), (path, text)):
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=path.parent)
            temps.append(tmp)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o666 & ~current_umask())
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.replace(temps[0], csv_path)
        temps[0] = ""
        os.replace(temps[1], path)
        temps[1] = ""
    except OSError as exc:
        raise output_error(path, exc) from exc
    finally:  # whatever stopped us, no temporary file is left behind
        for tmp in temps:
            if tmp:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
    return result


# ---------------------------------------------------------------- validation
_TYPES = {
    "str": (str,),
    "int": (int,),
    "num": (int, float),
    "dict": (dict,),
    "list": (list,),
    "bool": (bool,),
}


def _check(obj: dict, key: str, kind: str, where: str, *, optional: bool = False, nullable: bool = False) -> Any:
    field = f"{where}.{key}" if where else key
    if not isinstance(obj, dict):
        raise ResultSchemaError(where or "<root>", f"must be an object, got {type(obj).__name__} ({obj!r:.60})")
    if key not in obj:
        if optional:
            return None
        raise ResultSchemaError(field, "missing required field")
    val = obj[key]
    if val is None:
        if nullable or optional:
            return None
        raise ResultSchemaError(field, f"must be {kind}, got null")
    types = _TYPES[kind]
    if isinstance(val, bool) and kind in ("int", "num"):
        raise ResultSchemaError(field, f"must be {kind}, got bool")
    if not isinstance(val, types):
        raise ResultSchemaError(field, f"must be {kind}, got {type(val).__name__} ({val!r:.60})")
    if kind == "num" and not _finite(val):
        raise ResultSchemaError(field, f"must be a finite number, got {val!r}")
    return val


def _finite(val: int | float) -> bool:
    try:
        return math.isfinite(float(val))
    except OverflowError:  # an integer too large for a float
        return False


def _check_numbers_finite(obj: Any, where: str) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ResultSchemaError(where, f"must be a finite number, got {obj!r}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_numbers_finite(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_numbers_finite(v, f"{where}[{i}]")


def check_names(obj: dict[str, Any]) -> None:
    """Names that become file names and links (method, variant, protocol) must be safe (benchmark.safety.safenames)."""
    from benchmark.safety.safenames import name_problem

    for key, slashes in (("method", False), ("variant", False), ("protocol", True)):
        if obj.get(key) is not None:
            why = name_problem(obj[key], slashes=slashes)
            if why:
                raise ResultSchemaError(key, why)


def upgrade(obj: dict[str, Any]) -> dict[str, Any]:
    version = obj.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultSchemaError("schema_version", f"must be an integer, got {version!r}")
    if version > SCHEMA_VERSION or (version < SCHEMA_VERSION and version not in _MIGRATIONS):
        raise ResultSchemaError(
            "schema_version",
            f"unknown schema version {version}; this suite reads versions "
            f"{sorted(set(_MIGRATIONS) | {SCHEMA_VERSION})} (upgrade dsc-bench to read newer files)",
        )
    while obj["schema_version"] < SCHEMA_VERSION:
        obj = _MIGRATIONS[obj["schema_version"]](dict(obj))
    return obj


def validate_result(obj: Any) -> dict[str, Any]:
    """Check a result dict; return it upgraded to the current schema. Raises ResultSchemaError(field, ...)."""
    if not isinstance(obj, dict):
        raise ResultSchemaError("<root>", f"a result file holds a JSON object, got {type(obj).__name__}")
    obj = upgrade(obj)
    _check_numbers_finite(obj, "")
    kind = _check(obj, "kind", "str", "")
    if kind != RESULT_KIND:
        raise ResultSchemaError("kind", f"expected {RESULT_KIND!r}, got {kind!r}")
    for key in ("method", "dataset", "protocol", "scenario", "rate_unit", "created"):
        _check(obj, key, "str", "")
    if obj["scenario"] not in SCENARIOS:
        raise ResultSchemaError("scenario", f"must be one of {SCENARIOS}, got {obj['scenario']!r}")
    _check(obj, "variant", "str", "", nullable=True)
    check_names(obj)
    _check(obj, "dataset_options", "dict", "", optional=True)
    ra = _check(obj, "rate_accounting", "dict", "")
    for key in ("rate_source", "divided_by", "side_information"):
        _check(ra, key, "str", "rate_accounting")
    _check(obj, "metrics", "dict", "")
    _check(obj, "per_image_csv", "str", "", nullable=True)
    sha = _check(obj, "per_image_csv_sha256", "str", "", optional=True)
    if sha is not None and not _HEX64.fullmatch(sha):
        raise ResultSchemaError("per_image_csv_sha256", f"must be a sha256 (64 lower-case hex digits), got {sha!r:.80}")
    isolation = _check(obj, "isolation", "str", "", optional=True)  # absent in files written before it existed: none
    if isolation is not None and isolation not in ISOLATION_LEVELS:
        raise ResultSchemaError("isolation", f"must be one of {ISOLATION_LEVELS}, got {isolation!r:.40}")
    if _check(obj, "code", "dict", "", optional=True) is not None:
        from benchmark.results.provenance import record_problem

        bad = record_problem(obj["code"])
        if bad:
            raise ResultSchemaError(*bad)
    _check(obj, "training", "dict", "", nullable=True)
    _check_protocol_facts(obj)
    meta = _check(obj, "method_meta", "dict", "", optional=True)
    if meta is not None:
        _check(meta, "twin", "str", "method_meta", optional=True)
    _check_coverage(obj)
    _check_decoding(obj)
    env = _check(obj, "environment", "dict", "")
    for key in ("versions", "device", "command"):
        _check(env, key, "dict" if key == "versions" else "str", "environment")
    _check(env, "git_commit", "str", "environment", nullable=True)
    _check_points(obj)
    return obj


def _check_coverage(obj: dict[str, Any]) -> None:
    cov = _check(obj, "coverage", "dict", "", optional=True)  # absent in files written before it existed
    if cov is None:
        return
    for key in ("samples", "split_samples", "skipped"):
        _check(cov, key, "int", "coverage")
    _check(cov, "limit", "int", "coverage", nullable=True)
    if _check(cov, "complete", "bool", "coverage") != (cov["samples"] == cov["split_samples"] and cov["skipped"] == 0):
        raise ResultSchemaError("coverage.complete", "must be true exactly when samples == split_samples and skipped == 0")


# ---------------------------------------------------------------- what the decoder counted
MAX_COUNT_KEYS = 1000  # keys in all, at every level
MAX_COUNT_DEPTH = 3  # levels of mappings (a flat mapping is 1)
MAX_COUNT = 2**53 - 1  # exact in every JSON reader
COUNTS_EXPECTED = (f"a mapping of names to non-negative integers (at most {MAX_COUNT}), nested at most "
                   f"{MAX_COUNT_DEPTH} levels, with at most {MAX_COUNT_KEYS} keys in all")


def counts_problem(value: Any) -> str | None:
    """Why `value` is not a record of decoder counts (`Codec.decoder_counts`, the `decoding.counts` of a result),
    or None when it is one. Walked without recursion and stopped at the first excess: it may come from a method."""
    if not isinstance(value, dict):
        return f"got {type(value).__name__} ({value!r:.40})"
    keys, stack = 0, [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_COUNT_DEPTH:
            return f"{path or 'the mapping'} nests more than {MAX_COUNT_DEPTH} levels"
        keys += len(node)
        if keys > MAX_COUNT_KEYS:
            return f"more than {MAX_COUNT_KEYS} keys"
        for k, v in node.items():
            if not isinstance(k, str) or not 0 < len(k) <= 100:
                return f"key {k!r:.60} is not a name of 1 to 100 characters"
            where = f"{path}.{k}" if path else k
            if isinstance(v, dict):
                stack.append((v, depth + 1, where))
            elif isinstance(v, bool) or not isinstance(v, int):
                return f"{where} is {type(v).__name__} ({v!r:.40})"
            elif not 0 <= v <= MAX_COUNT:
                return f"{where} = {v} lies outside [0, {MAX_COUNT}]"
    return None


def _check_decoding(obj: dict[str, Any]) -> None:
    """`decoding` (what the decoder counted in this run) is optional: files written before it existed lack it, and
    it is null for a codec that counts nothing."""
    rec = _check(obj, "decoding", "dict", "", optional=True)
    if rec is None:
        return
    why = counts_problem(_check(rec, "counts", "dict", "decoding"))
    if why:
        raise ResultSchemaError("decoding.counts", f"must be {COUNTS_EXPECTED}: {why}")
    for key in ("streams_decoded", "streams_resumed", "decoders"):
        if _check(rec, key, "int", "decoding") < 0:
            raise ResultSchemaError(f"decoding.{key}", f"must be >= 0, got {rec[key]}")
    _check(rec, "counted_by", "str", "decoding")


def _check_points(obj: dict[str, Any]) -> None:
    points = _check(obj, "points", "list", "")
    if not points:
        raise ResultSchemaError("points", "must hold at least one rate point")
    for i, p in enumerate(points):
        where = f"points[{i}]"
        if not isinstance(p, dict):
            raise ResultSchemaError(where, "must be an object")
        _check(p, "rate_point", "str", where)
        _check(p, "bpp", "num", where)
        _check(p, "psnr", "num", where, nullable=True)
        _check(p, "n_images", "int", where)
        for key in ("bpp_payload", "bpp_estimated", "ms_ssim", "ms_ssim_db", "mse", "encode_s", "decode_s"):
            _check(p, key, "num", where, optional=True, nullable=True)
        if p.get("ms_ssim") is not None and not (0.0 <= p["ms_ssim"] <= 1.0):
            raise ResultSchemaError(f"{where}.ms_ssim", f"must lie in [0, 1], got {p['ms_ssim']}")
        if p["bpp"] < 0:
            raise ResultSchemaError(f"{where}.bpp", f"must be >= 0, got {p['bpp']}")
        per_source = _check(p, "per_source", "list", where, optional=True)
        for j, s in enumerate(per_source or []):
            _check(s, "source", "int", f"{where}.per_source[{j}]")
            _check(s, "bpp", "num", f"{where}.per_source[{j}]")
            _check(s, "psnr", "num", f"{where}.per_source[{j}]", nullable=True)
        _check(p, "extra", "dict", where, optional=True)


def _check_protocol_facts(obj: dict[str, Any]) -> None:
    """`protocol_facts` (what the leaderboard shows of the protocol) is optional: files written before it existed
    lack it. Where present it describes the result's own protocol."""
    facts = _check(obj, "protocol_facts", "dict", "", optional=True)
    if facts is None:
        return
    for key in ("name", "dataset", "description", "rate_unit", "anchor"):
        _check(facts, key, "str", "protocol_facts")
    if facts["name"] != obj["protocol"]:
        raise ResultSchemaError("protocol_facts.name", f"must be the result's protocol {obj['protocol']!r}, got "
                                f"{facts['name']!r:.80}")
    _check(facts, "version", "int", "protocol_facts", optional=True)
    alias = _check(facts, "alias_of", "str", "protocol_facts", optional=True)  # shown in that protocol's section
    if alias is not None:  # a protocol name: it becomes a heading, file names and links
        from benchmark.safety.safenames import name_problem

        why = name_problem(alias, slashes=True)
        if why:
            raise ResultSchemaError("protocol_facts.alias_of", why)
    _check(facts, "alias_test_split", "bool", "protocol_facts", optional=True)
    rates = _check(facts, "fixed_bpps", "list", "protocol_facts")
    for i, b in enumerate(rates):
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0:
            raise ResultSchemaError(f"protocol_facts.fixed_bpps[{i}]", f"must be a positive number, got {b!r:.40}")


def load_result(path: Path) -> dict[str, Any]:
    return validate_result(load_untrusted(path))


def load_untrusted(path: Path) -> Any:
    """A result or published-curve file parsed with the limits of benchmark.safety.untrusted (ResultSchemaError)."""
    from benchmark.safety.untrusted import load_json_file

    return load_json_file(Path(path), error=lambda msg: ResultSchemaError("<file>", msg))
