"""The sandbox (benchmark/evaluation/sandbox.py, benchmark/evaluation/sandbox_eval.py): every cheat fixture of tests/cheaters_sandbox.py
gains nothing in a real run — each image's bytes equal its honest path's — or is refused naming its channel; the
two honest edge cases run and are shown as they are."""
from __future__ import annotations

import csv
import hashlib
import json
import zlib
from pathlib import Path

import pytest
import torch

from benchmark.contract.container import Container
from benchmark.errors import BenchError
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec
from benchmark.evaluation.sandbox import sandbox_problem

PLUGIN = ("tests.cheaters_sandbox",)
needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}")


def _run(method: str, out: Path, isolation: str = "sandbox", limit: int = 2) -> tuple[dict, list[dict]]:
    path, result = run(RunSpec(method=method, dataset="middlebury_sample", out=out, limit=limit, isolation=isolation,
                               plugins=PLUGIN, progress=False))
    with open(path.parent / result["per_image_csv"], newline="") as fh:
        return result, list(csv.DictReader(fh))


def _honest_sha(method: str, limit: int = 2) -> dict[str, str]:
    """sha256 of each test image's honest stream (zlib of its 8-bit values), computed here without the codec."""
    from datasets.middlebury import MiddleburySample

    test = MiddleburySample("test")
    out = {}
    for i in range(limit):
        s = test[i]
        q = (s.x.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()
        out[s.name] = hashlib.sha256(Container(method, 0, tuple(s.x.shape), [b"R" + zlib.compress(q, 9)]).to_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def shared_out(tmp_path_factory):
    """One results folder for the sandboxed runs of this module: they share its zygote (one import of torch per
    test worker instead of one per run); each cheat writes its own result file."""
    return tmp_path_factory.mktemp("sandboxed")


STATE_CHEATS = ["cheat_instance", "cheat_class_attr", "cheat_lru_cache", "cheat_builtins", "cheat_torch_buffer",
                "cheat_environ", "cheat_tmp_file", "cheat_home_cache", "cheat_dev_shm"]


@needs_sandbox
@pytest.mark.parametrize("method", STATE_CHEATS)
@pytest.mark.slow
def test_state_cheats_gain_nothing_in_the_sandbox(method, shared_out):
    """Coded in both directions, image k+1 is image k's side view: in one process the cheat codes it as a token;
    in the sandbox every image takes the honest path — also on a second run (files and /dev/shm do not survive)."""
    honest = _honest_sha(method)
    for attempt in range(2 if method in ("cheat_tmp_file", "cheat_home_cache", "cheat_dev_shm") else 1):
        result, rows = _run(method, shared_out)
        assert result["isolation"] == "sandbox"
        assert {r["image"]: r["sha256"] for r in rows} == honest, f"{method} gained through its channel (run {attempt})"


@pytest.mark.parametrize("method", ["cheat_class_attr", "cheat_tmp_file"])
def test_the_cheats_are_real_without_isolation(method, tmp_path):
    """The fixtures do cheat where nothing isolates them: one of the two images costs a token."""
    honest = _honest_sha(method)
    result, rows = _run(method, tmp_path, isolation="none")
    cheap = [r for r in rows if r["sha256"] != honest[r["image"]]]
    assert len(cheap) == 1 and int(cheap[0]["bytes"]) < 60
    if method == "cheat_tmp_file":  # leave no token views behind for other tests
        import shutil
        import tempfile

        shutil.rmtree(Path(tempfile.gettempdir()) / "dsc-bench-cheat", ignore_errors=True)


@needs_sandbox
def test_the_callers_frame_holds_no_original(shared_out):
    result, rows = _run("cheat_frame", shared_out)
    assert result["points"][0]["n_lossless"] == 0
    assert all(float(r["psnr"]) < 20 for r in rows)  # a grey image, not x


@needs_sandbox
def test_fit_asking_the_registry_for_test_data_is_refused_naming_the_channel(shared_out):
    with pytest.raises(BenchError, match="asked the dataset registry"):
        _run("cheat_fit_test_data", shared_out)


@needs_sandbox
def test_fit_reading_the_embedded_files_learns_nothing(shared_out):
    honest = _honest_sha("cheat_fit_files")
    result, rows = _run("cheat_fit_files", shared_out)
    assert {r["image"]: r["sha256"] for r in rows} == honest


@needs_sandbox
def test_decoder_returning_the_side_view_is_shown_as_it_is(shared_out):
    from benchmark.results import metrics
    from datasets.middlebury import MiddleburySample

    result, rows = _run("edge_side_as_recon", shared_out)
    test = MiddleburySample("test")
    for i, r in enumerate(rows):
        s = test[i]
        assert float(r["psnr"]) == pytest.approx(metrics.psnr_8bit_capped(metrics.mse_8bit(s.x, s.side)), abs=1e-9)
        assert int(r["bytes"]) < 40


@needs_sandbox
def test_an_estimate_that_disagrees_with_the_bytes_is_flagged(shared_out):
    result, rows = _run("edge_wrong_estimate", shared_out)
    check = result["estimate_check"]
    assert check["agrees"] is False and check["max_relative_gap"] > 5
    for r in rows:
        assert float(r["bpp_estimated"]) > 5 * float(r["bpp_payload"])


@needs_sandbox
@pytest.mark.slow
def test_sandboxed_run_equals_the_in_process_run(tmp_path):
    """Same bytes and the same measurements, whatever the isolation (jpeg, both directions)."""
    a, ra = _run("jpeg", tmp_path / "s", limit=2)
    b, rb = _run("jpeg", tmp_path / "n", isolation="none", limit=2)
    keys = ["image", "rate_point", "bytes", "sha256", "psnr", "ms_ssim"]
    assert [{k: r[k] for k in keys} for r in ra] == [{k: r[k] for k in keys} for r in rb]
    assert a["isolation"] == "sandbox" and b["isolation"] == "none"


@needs_sandbox
@pytest.mark.slow
def test_verify_redecodes_and_catches_a_consistent_forgery(tmp_path):
    """A forgery that keeps JSON and CSV consistent (a better MSE in one row, the means recomputed, the CSV hash
    updated) passes the consistency checks but not `bench verify`, which decodes the kept streams again."""
    from benchmark.results.consistency import check_consistency
    from benchmark.evaluation.rows import CSV_FIELDS, parse_cell, rows_csv_text, aggregate
    from benchmark.contract.codec import Scenario
    from benchmark.results.metrics import psnr_8bit_capped
    from benchmark.evaluation.verify import verify

    path, result = run(RunSpec(method="jpeg", dataset="middlebury_sample", out=tmp_path, limit=2, isolation="sandbox",
                               keep_bitstreams=True, progress=False, method_options={"qualities": [50]}))
    assert verify(path).ok
    csv_path = path.parent / result["per_image_csv"]
    rows = [{k: parse_cell(k, v) for k, v in r.items() if k in CSV_FIELDS} for r in csv.DictReader(open(csv_path))]
    rows[0]["mse"] /= 2
    rows[0]["psnr"] = psnr_8bit_capped(rows[0]["mse"])
    text = rows_csv_text(rows)
    csv_path.write_text(text)
    forged = dict(result, points=aggregate(rows, ["q=50"], Scenario.SEPARATE),
                  per_image_csv_sha256=hashlib.sha256(text.encode()).hexdigest())
    for p, old in zip(forged["points"], result["points"]):
        p.setdefault("n_lossless", old.get("n_lossless"))
    path.write_text(json.dumps(forged))
    assert check_consistency(forged, path) == []  # consistent with itself...
    rep = verify(path)
    assert not rep.ok and any("re-decoded" in p and "psnr" in p for p in rep.problems), rep.problems  # ...but not with its streams
    # a stream swapped in the archive: its hash no longer matches its row
    import zipfile

    arch = path.parent / result["bitstreams"]
    with zipfile.ZipFile(arch) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    names = sorted(entries)
    entries[names[0]], entries[names[1]] = entries[names[1]], entries[names[0]]
    with zipfile.ZipFile(arch, "w") as zf:
        for n, d in entries.items():
            zf.writestr(n, d)
    assert any("does not hash to its name" in p for p in verify(path, decode=False).problems)
