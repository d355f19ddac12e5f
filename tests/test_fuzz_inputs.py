"""Property-based tests (hypothesis, derandomized, no example database) of the readers of untrusted input:
the container parser, the result and published-curve validators (as `bench validate` reads files), and the
weights manifest reader. On arbitrary bytes / JSON / mutations of valid files they raise only the suite's
own error class for that input (BitstreamError, ResultSchemaError, WeightsError), never anything else."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ResultSchemaError, WeightsError
from benchmark.results.files import validate_file
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec
from benchmark.training.weights import load_weights, save_weights

FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
N_FAST = 1000  # examples per target whose check takes microseconds
N_FILE = 400  # examples per target that writes and reads a file

PUBLISHED = {
    "kind": "published_curve", "schema_version": 1, "method": "toy", "label": "Toy codec",
    "protocol": "kitti-stereo/ndic", "scenario": "decoder_side_info", "metric": "psnr", "rate": "bpp",
    "points": [{"bpp": 0.1, "value": 25.0}, {"bpp": 0.2, "value": 27.5, "rate_point": "q=2"}],
    "source": "A. Author, Some Paper, Fig. 1", "provenance": "exact",
}

# ---------------------------------------------------------------- strategies
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=10**300, max_value=10**320), st.text(max_size=20),
    st.sampled_from(["x/../../../../escaped", "..", "javascript:alert(1)", "<b>x</b>", "", "a" * 300]),
)
json_values = st.recursive(_scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                         st.dictionaries(st.text(max_size=10), c, max_size=4)),
                           max_leaves=16)


def _paths(obj, prefix=()):
    """Every (path to a value) in a JSON object."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _mutated(valid: dict, data) -> object:
    """`valid` with one value replaced by arbitrary JSON, or one key deleted."""
    obj = copy.deepcopy(valid)
    paths = list(_paths(obj))
    path = data.draw(st.sampled_from(paths))
    if not path:
        return data.draw(json_values)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    return obj


def _text(data, valid: dict) -> str:
    """The text of a file: mutated JSON, broken JSON, deep nesting, huge numbers or arbitrary text."""
    kind = data.draw(st.sampled_from(["mutated", "mutated", "mutated", "truncated", "deep", "number", "raw"]))
    if kind == "mutated":
        return json.dumps(_mutated(valid, data), allow_nan=True)
    if kind == "truncated":
        text = json.dumps(valid)
        return text[: data.draw(st.integers(0, len(text) - 1))]
    if kind == "deep":
        n = data.draw(st.sampled_from([65, 1000, 200_000]))
        return "[" * n + "]" * n
    if kind == "number":
        digits = data.draw(st.sampled_from([40, 400, 5000]))
        obj = copy.deepcopy(valid)
        path = data.draw(st.sampled_from([p for p in _paths(obj) if p]))
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = "@@"
        return json.dumps(obj).replace('"@@"', "1" * digits + data.draw(st.sampled_from(["", ".5", "e999"])))
    return data.draw(st.text(max_size=200))


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def valid_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("res")
    _, result = run(RunSpec(method="jpeg", dataset="middlebury_sample", out=out, limit=1, progress=False,
                            method_options={"qualities": [10, 50]}))
    return result


# ---------------------------------------------------------------- container
def test_fuzz_container_parser_raises_only_bitstream_error():
    tried = []

    @settings(FUZZ, max_examples=N_FAST)
    @given(st.one_of(
        st.binary(max_size=300),
        st.builds(lambda p, shp, s: Container("jpeg", p, shp, s).to_bytes(), st.integers(0, 1 << 40),
                  st.lists(st.integers(0, 1 << 30), max_size=9).map(tuple), st.lists(st.binary(max_size=40), max_size=5)),
        st.builds(lambda head, tail: head + tail, st.sampled_from([b"\xdb\x5c", b"\xdb\x5c\x01", b"\xdb"]), st.binary(max_size=60)),
    ))
    def check(data):
        tried.append(1)
        try:
            c = Container.from_bytes(data, "jpeg")
        except BitstreamError:
            return
        assert c.to_bytes() == data  # whatever parses is exactly what the container would write

    check()
    print(f"fuzz container parser: {len(tried)} inputs")
    assert len(tried) >= N_FAST // 2


# ---------------------------------------------------------------- result and published-curve files
def _file_target(valid: dict, path: Path, read, error: type[Exception]) -> int:
    """Write fuzzed text to `path` and read it with `read(path)`; only `error` may come out. Returns the count."""
    tried = []

    @settings(FUZZ, max_examples=N_FILE)
    @given(st.data())
    def check(data):
        tried.append(1)
        path.write_text(_text(data, valid), encoding="utf-8", errors="surrogatepass")
        try:
            read(path)
        except error:
            pass

    check()
    print(f"fuzz {path.name} via {getattr(read, '__name__', 'reader')}: {len(tried)} inputs")
    return len(tried)


def test_fuzz_result_validator_raises_only_result_schema_error(valid_result, tmp_path):
    assert _file_target(valid_result, tmp_path / "r.json", validate_file, ResultSchemaError) >= N_FILE // 2


def test_fuzz_published_validator_raises_only_result_schema_error(tmp_path):
    assert _file_target(PUBLISHED, tmp_path / "c.json", validate_file, ResultSchemaError) >= N_FILE // 2


def test_fuzz_validators_on_objects(valid_result):
    """The validators called on in-memory objects (as the leaderboard does after parsing)."""
    from benchmark.results.schema import validate_result
    from leaderboard.published import validate_published

    tried = []

    @settings(FUZZ, max_examples=N_FAST)
    @given(st.data())
    def check(data):
        tried.append(1)
        for valid, validate in ((valid_result, validate_result), (PUBLISHED, validate_published)):
            try:
                validate(_mutated(valid, data))
            except ResultSchemaError:
                pass

    check()
    print(f"fuzz validators on objects: {len(tried)} inputs x 2 validators")
    assert len(tried) >= N_FAST // 2


# ---------------------------------------------------------------- weights manifests
def test_fuzz_weights_manifest_reader_raises_only_weights_error(tmp_path):
    wdir = tmp_path / "w"
    save_weights(wdir, method="toy", models={"a": {"w": torch.arange(4.0)}}, config={"N": 2}, points=["a"],
                 training={"budget": "smoke", "seed": 0})
    valid = json.loads((wdir / "manifest.json").read_text())
    read = lambda path: load_weights(path.parent, method="toy").summary()
    assert _file_target(valid, wdir / "manifest.json", read, WeightsError) >= N_FILE // 2
