"""The mean of per-view PSNRs (points[].extra.psnr_view_mean) under every LDMIC protocol — WildTrack's, whose number
of views is the run's dataset option, included — and after a resume: a run killed with rows in its partial CSV and
resumed writes the value an uninterrupted run writes."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from benchmark.contract.registry import PROTOCOLS, get_protocol
from benchmark.evaluation.rows import PARTIAL_FIELDS, measure, read_partial
from benchmark.evaluation.setup import RunSpec, resolve
from fixtures_real import make_kitti_tree
from test_ldmic import wildtrack_layout

WILDTRACK = "multiview/wildtrack-ldmic"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    q = lambda t: torch.round(t.double().clamp(0, 1) * 255)
    return 10 * math.log10(255.0 ** 2 / float(((q(a) - q(b)) ** 2).mean()))


def test_every_ldmic_protocol_splits_its_frames_into_its_views():
    import datasets.cityscapes  # noqa: F401  (registers cityscapes/ldmic)
    import datasets.kitti  # noqa: F401
    import datasets.multiview  # noqa: F401

    ldmic = [p for name, p in PROTOCOLS.items() if "ldmic" in name]
    assert {p.name for p in ldmic} >= {"kitti/ldmic", "cityscapes/ldmic", "stereo/kitti-ldmic", "instereo2k/ldmic", WILDTRACK}
    for p in ldmic:
        assert p.views_per_frame == p.options["views"] >= 2, p.name
        assert "psnr_view_mean" in p.psnr, p.name
    assert get_protocol(WILDTRACK).views_per_frame == 7  # the authors' seven cameras


def test_a_runs_views_option_sets_the_views_per_frame():
    info, proto = resolve("multiview", WILDTRACK, {"views": "3"})  # --dataset-option views=3 arrives as text
    assert proto.views_per_frame == 3 and proto.name == WILDTRACK
    assert resolve("multiview", WILDTRACK)[1].views_per_frame == 7
    assert resolve("multiview", WILDTRACK, {"views": 5})[1].views_per_frame == 5
    assert resolve("multiview", WILDTRACK, {"views": "many"})[1].views_per_frame == 7  # the dataset refuses it
    assert get_protocol(WILDTRACK).views_per_frame == 7  # the registered protocol is left as it is
    # a protocol without frames of views never gains one
    assert get_protocol("kitti-stereo/ndic").for_run({"views": 3}).views_per_frame == 0


def test_the_mean_over_three_camera_views_of_their_psnrs():
    proto = get_protocol(WILDTRACK).for_run({"views": 3})
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 64, 3 * 64, generator=g)
    x_hat = x.clone()
    for v, d in enumerate((0.03, 0.01, 0.004)):  # each view distorted by another amount
        x_hat[..., 64 * v:64 * (v + 1)] = (x_hat[..., 64 * v:64 * (v + 1)] + d).clamp(0, 1)
    m = measure(x, x_hat, proto)
    per = [_psnr(x[..., 64 * v:64 * (v + 1)], x_hat[..., 64 * v:64 * (v + 1)]) for v in range(3)]
    assert len(set(round(p, 3) for p in per)) == 3
    assert m["_psnr_view_mean"] == pytest.approx(sum(per) / 3, abs=1e-9)
    assert m["_psnr_view_mean"] > m["psnr"]  # Jensen: the mean of PSNRs is above the PSNR of the mean MSE
    # read as seven views (the protocol's default), the same frame would be cut wrongly: it is not divisible
    assert "_psnr_view_mean" not in measure(x, x_hat, get_protocol(WILDTRACK))


def _layouts(tmp_path: Path) -> dict[str, tuple[str, Path, dict[str, str]]]:
    return {
        WILDTRACK: ("multiview", wildtrack_layout(tmp_path / "wt", frames=(1995, 2005, 2015, 2025), w=70, h=64),
                    {"views": "3"}),
        "kitti/ldmic": ("kitti", make_kitti_tree(tmp_path / "kitti", scenes_2012=2, scenes_2015=1, size=(70, 130)), {}),
    }


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class _Killed(Exception):
    pass


@pytest.mark.parametrize("protocol", [WILDTRACK, "kitti/ldmic"])
def test_a_killed_and_resumed_run_writes_the_same_per_view_psnr(tmp_path, monkeypatch, protocol):
    """`bench run` of jpeg on a generated layout: once uninterrupted; once killed after its first rows reached the
    partial CSV, then resumed. Both results hold the same psnr_view_mean at every rate point, and the resumed run
    read its first rows back (their timings are the killed run's)."""
    from benchmark.evaluation import runner

    dataset, root, options = _layouts(tmp_path)[protocol]
    spec = lambda out: RunSpec(method="jpeg", dataset=dataset, root=root, protocol=protocol, out=out, progress=False,
                               isolation="none", dataset_options=dict(options))
    _, whole = runner.run(spec(tmp_path / "whole"))
    assert whole["points"] and all(p["n_images"] >= 2 for p in whole["points"])
    for p in whole["points"]:
        assert p["extra"]["psnr_view_mean"] >= p["psnr"] - 1e-9

    out = tmp_path / "killed"
    real_finish = runner._finish

    def kill(spec, protocol, test, outcome, partial):
        lines = partial.read_text(encoding="utf-8").splitlines(keepends=True)
        partial.write_text("".join(lines[:3]), encoding="utf-8")  # the header and the first two rows survive
        raise _Killed

    monkeypatch.setattr(runner, "_finish", kill)
    with pytest.raises(_Killed):
        runner.run(spec(out))
    partial = next(out.rglob(".jpeg*.partial.csv"))
    kept = _csv_rows(partial)
    assert len(kept) == 2 and list(kept[0]) == PARTIAL_FIELDS and all(float(r["psnr_view_mean"]) > 0 for r in kept)
    monkeypatch.setattr(runner, "_finish", real_finish)
    path, resumed = runner.run(spec(out))
    assert [p["extra"] for p in resumed["points"]] == [p["extra"] for p in whole["points"]]  # exactly the same value
    assert [p["psnr"] for p in resumed["points"]] == [p["psnr"] for p in whole["points"]]
    rows = {(r["image"], r["rate_point"]): r for r in _csv_rows(path.with_suffix(".csv"))}
    for k in kept:  # read back, not coded again
        assert rows[(k["image"], k["rate_point"])]["encode_s"] == k["encode_s"]
    assert json.loads(path.read_text())["points"][0]["extra"]["psnr_view_mean"] == whole["points"][0]["extra"]["psnr_view_mean"]


def test_a_partial_csv_of_an_older_runner_is_rewritten_with_the_column(tmp_path):
    """A partial CSV written before the psnr_view_mean column resumes (its rows kept, no value for them: the result
    then records none) and is rewritten with the column, so rows appended after it line up with the header."""
    path = tmp_path / ".jpeg.partial.csv"
    old_fields = PARTIAL_FIELDS[:-1]
    row = {"fingerprint": "fp", "image": "00002005", "source": "0", "rate_point": "q30", "bytes": "100",
           "payload_bytes": "90", "bpp": "0.1", "bpp_payload": "0.09", "bpp_estimated": "", "mse": "0.001",
           "psnr": "30.0", "ms_ssim": "0.9", "ms_ssim_db": "10.0", "encode_s": "0.01", "decode_s": "0.01",
           "height": "64", "width": "192", "sha256": "ab" * 32}
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=old_fields)
        w.writeheader()
        w.writerow(row)
    done = read_partial(path, "fp")
    assert list(done) == [("00002005", 0, "q30")] and "_psnr_view_mean" not in done[("00002005", 0, "q30")]
    rewritten = _csv_rows(path)
    assert list(rewritten[0]) == PARTIAL_FIELDS and rewritten[0]["psnr_view_mean"] == ""
    with open(path, "a", newline="", encoding="utf-8") as f:  # a value read back as it was written
        csv.DictWriter(f, fieldnames=PARTIAL_FIELDS).writerow({**row, "rate_point": "q80", "psnr_view_mean": repr(31.25)})
    again = read_partial(path, "fp")
    assert again[("00002005", 0, "q80")]["_psnr_view_mean"] == 31.25
    # a damaged cell is a damaged row: dropped and coded again
    with open(path, "a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, fieldnames=PARTIAL_FIELDS).writerow({**row, "rate_point": "q90", "psnr_view_mean": "x"})
    assert ("00002005", 0, "q90") not in read_partial(path, "fp")


@pytest.mark.slow
def test_a_sandboxed_run_records_the_per_view_psnr_under_wildtrack(tmp_path):
    """The isolated evaluation (role processes code, this process measures) records it as the in-process one does."""
    from benchmark.evaluation import runner

    _, root, options = _layouts(tmp_path)[WILDTRACK]
    spec = lambda out, iso: RunSpec(method="jpeg", dataset="multiview", root=root, protocol=WILDTRACK, out=out,
                                    progress=False, isolation=iso, dataset_options=dict(options))
    _, inproc = runner.run(spec(tmp_path / "a", "none"))
    _, isolated = runner.run(spec(tmp_path / "b", "process"))
    assert [p["extra"] for p in isolated["points"]] == [p["extra"] for p in inproc["points"]]
    assert all(p["extra"]["psnr_view_mean"] > 0 for p in isolated["points"])
