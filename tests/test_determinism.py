"""Bitstreams are deterministic: every learned codec encodes the same input to the same bytes with 1 and with 2
torch threads and in another process, and each of those bitstreams decodes to the same image whatever thread
count or process decodes it (encoding with N threads and decoding with 1 is how hyperprior codecs break)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.contract.codec import LearnedCodec
from benchmark.contract.registry import METHODS, get_protocol
from tests.determinism_inputs import det_input

LEARNED = [n for n in METHODS.names() if issubclass(METHODS.get(n), LearnedCodec)]
WORKER = Path(__file__).with_name("determinism_worker.py")
SUB_THREADS = 2


@contextlib.contextmanager
def threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().float().contiguous().numpy().tobytes()).hexdigest()


def _build(name: str):
    cls = METHODS.get(name)
    proto = getattr(cls, "test_protocol", "middlebury-sample/stereo")
    return cls(protocol=get_protocol(proto), **getattr(cls, "test_options", {})), proto


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """Per codec: bytes with 1 and 2 threads here, and the subprocess's bytes and decodes of our 1-thread bytes."""
    root = tmp_path_factory.mktemp("determinism")
    here, job = {}, {"threads": SUB_THREADS, "codecs": {}}
    for name in LEARNED:
        codec, proto = _build(name)
        x, side = det_input(type(codec))
        enc_side = side if codec.meta.scenario.encoder_sees_side else None
        points = codec.rate_points()
        points = sorted({points[0], points[-1]}, key=points.index)
        with threads(1):
            one = {p: codec.compress(x, side=enc_side, point=p) for p in points}
        with threads(2):
            two = {p: codec.compress(x, side=enc_side, point=p) for p in points}
        codec.save_weights(root / name)
        here[name] = (codec, x, side, one, two)
        job["codecs"][name] = {"protocol": proto, "options": getattr(type(codec), "test_options", {}),
                               "weights": str(root / name), "points": points,
                               "decode": {p: b.hex() for p, b in one.items()}}
    (root / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": str(SUB_THREADS)}
    proc = subprocess.run([sys.executable, str(WORKER), str(root / "job.json"), str(root / "out.json")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sub = json.loads((root / "out.json").read_text())
    assert sub["threads"] == SUB_THREADS
    return here, sub["codecs"]


@pytest.mark.parametrize("name", LEARNED)
@pytest.mark.slow
def test_bytes_and_decoded_images_do_not_depend_on_threads_or_process(coded, name):
    here, sub = coded
    codec, x, side, one, two = here[name]
    dec_side = side if codec.meta.scenario.decoder_sees_side else None
    for p in one:
        other = bytes.fromhex(sub[name]["bytes"][p])
        assert one[p] == two[p], f"{name} {p}: 1 and 2 encoder threads give different bytes ({len(one[p])} vs {len(two[p])})"
        assert one[p] == other, f"{name} {p}: another process gives different bytes ({len(one[p])} vs {len(other)})"
        with threads(2):
            a = codec.decompress(one[p], side=dec_side)  # encoded with 1 thread, decoded with 2
        with threads(1):
            b = codec.decompress(two[p], side=dec_side)  # encoded with 2 threads, decoded with 1
            c = codec.decompress(other, side=dec_side)  # encoded in another process, decoded here
        assert torch.equal(a, b) and torch.equal(a, c), f"{name} {p}: the decoded image depends on the thread count"
        assert _sha(a) == sub[name]["decoded"][p], f"{name} {p}: another process decodes the same bytes differently"


_TIMING = {"encode_s", "decode_s", "created", "environment", "loaded_from", "wall_s", "cpu_s",
           "per_image_csv_sha256", "roles_cpu_s"}  # the CSV holds the timings; the roles' CPU seconds


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in _TIMING}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


@pytest.mark.slow
def test_jobs_1_and_jobs_2_write_identical_result_files(tmp_path):
    """`bench run --jobs 1` (methods one after the other in this process) and `--jobs 2` (worker processes with
    cpu_count/2 threads each) on the same weights: the same result files apart from timings and provenance."""
    import csv
    import shutil

    from cli.main import _run_parallel
    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec, protocol_dir

    tiny = {"N": 8, "M": 8, "lambdas": "0.0035,0.0483", "steps": 2, "batch_size": 2, "crop": 64}
    methods = {"balle2018": tiny, "ndic_balle2017": tiny, "jpeg": {}}
    specs = lambda out: [RunSpec(method=m, dataset="middlebury_sample", limit=2, out=out, budget="smoke",
                                 method_options=o, progress=False) for m, o in methods.items()]
    for spec in specs(tmp_path / "pre"):  # train once; both runs load the same weights
        if spec.method_options:
            run(spec)
    pdir = lambda out: protocol_dir(out, "middlebury-sample/stereo")
    for out in ("one", "two"):
        shutil.copytree(pdir(tmp_path / "pre") / "weights", pdir(tmp_path / out) / "weights")
    with threads(2):  # as `--jobs 1` runs: this process's own thread count
        for spec in specs(tmp_path / "one"):
            run(spec)
    _run_parallel(specs(tmp_path / "two"), 2, quiet=True)
    for m in methods:
        a, b = (json.loads((pdir(tmp_path / o) / f"{m}.json").read_text()) for o in ("one", "two"))
        assert _without_timings(a) == _without_timings(b), m
        rows = []
        for o in ("one", "two"):
            with open(pdir(tmp_path / o) / f"{m}.csv", newline="") as f:
                rows.append([{k: v for k, v in r.items() if k not in _TIMING} for r in csv.DictReader(f)])
        assert rows[0] == rows[1] and all(len(r["sha256"]) == 64 for r in rows[0]), m


def _isolated_level() -> str:
    from benchmark.evaluation.sandbox import sandbox_problem

    return "sandbox" if sandbox_problem() is None else "process"


def _rows(csv_path: Path) -> list[dict[str, str]]:
    import csv

    with open(csv_path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in _TIMING} for r in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("method,dataset,limit,resume", [("balle2018", "middlebury_sample", 4, False),
                                                         ("neural_dsc", "lfw_sample", 5, True)])
def test_eval_workers_2_code_the_same_bytes_as_1(tmp_path, monkeypatch, method, dataset, limit, resume):
    """`bench run --eval-workers 2` (encoders, then decoders, two at a time, one thread each; lfw_sample's single
    view group cut in two) writes the same rows — same per-image sha256, same distortion — as `--eval-workers 1`; its
    --keep-bitstreams archive holds every stream, and (Neural DSC) a run interrupted after 3 rows resumes to the
    same rows."""
    import zipfile

    from benchmark.evaluation import rows as rows_mod
    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec, protocol_dir

    from benchmark.contract.registry import get_dataset

    proto = get_dataset(dataset).default_protocol
    codec = METHODS.get(method)(protocol=get_protocol(proto), **getattr(METHODS.get(method), "test_options", {}))
    codec.save_weights(tmp_path / "weights")  # untrained weights: the bytes are what is compared
    spec = lambda out, n, **kw: RunSpec(method=method, dataset=dataset, limit=limit, out=tmp_path / out, progress=False,
                                        method_options=getattr(type(codec), "test_options", {}), weights=tmp_path / "weights",
                                        isolation=_isolated_level(), eval_workers=n, **kw)
    _, one = run(spec("one", 1))
    _, two = run(spec("two", 2, keep_bitstreams=True))
    pdir = lambda out: protocol_dir(tmp_path / out, proto)
    a, b = _rows(pdir("one") / f"{method}.csv"), _rows(pdir("two") / f"{method}.csv")
    assert a == b and len(a) == limit * len(codec.rate_points()) and all(len(r["sha256"]) == 64 for r in a)
    assert _without_timings(one) == _without_timings({**two, "bitstreams": None})
    with zipfile.ZipFile(pdir("two") / f"{method}.bitstreams.zip") as z:
        assert set(z.namelist()) == {f"bits/{r['sha256']}.bin" for r in a}  # untrained weights: some streams repeat
    if not resume:
        return
    added, real_add = [], rows_mod.PartialCSV.add

    def add_then_stop(self, row):  # the parent dies after writing its third row
        if len(added) == 3:
            raise KeyboardInterrupt
        real_add(self, row)
        added.append(row)

    monkeypatch.setattr(rows_mod.PartialCSV, "add", add_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(spec("resumed", 2))
    partial = pdir("resumed") / f".{method}.partial.csv"
    assert partial.read_text().count("\n") == 1 + 3  # header and the three rows written before it stopped
    fresh = []
    monkeypatch.setattr(rows_mod.PartialCSV, "add", lambda self, row: (fresh.append(row), real_add(self, row)))
    run(spec("resumed", 2))
    assert len(fresh) == len(a) - 3  # the three rows were taken from the partial CSV, not coded again
    assert _rows(pdir("resumed") / f"{method}.csv") == a and not partial.exists()
