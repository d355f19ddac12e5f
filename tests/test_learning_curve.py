"""stereo/kitti-ndic on a stereo folder; extendable training: a learning-curve point trained in segments equals a
run of the same steps from scratch (same bytes per image), and saved weights are never reused for other settings."""
import csv

import pytest
import torch

from benchmark.contract.registry import get_dataset, get_protocol
from benchmark.evaluation.runner import run
from benchmark.evaluation.setup import RunSpec
from benchmark.training.trainer import extendable
from benchmark.contract.budgets import TrainConfig
from tests.helpers import write_stereo

PROTO = "stereo/kitti-ndic"
# tiny and fast; the curve's own settings otherwise (constant lr, last weights, no warm start)
OPTS = {"N": 8, "M": 8, "lambdas": "[0.0035,0.013]", "crop": 64, "batch_size": 2, "lr": "5e-4", "schedule": "constant",
        "restore": "last", "warm_start": "false", "val_every": 1000, "val_samples": 1}


@pytest.fixture(scope="module")
def kitti_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti_pairs")
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        write_stereo(root / split, n=n, size=(376, 744))  # KITTI-like: larger than the 370x740 centre crop
    return root


def test_protocol_crops_resizes_and_codes_both_directions(kitti_like):
    info = get_dataset("stereo")
    proto = get_protocol(PROTO)
    test = info.factory(kitti_like, proto, "test")
    assert len(test) == 2 and [s.name for s in test] == ["000000_left", "000000_right"]
    assert test[0].x.shape == (3, 128, 256) and torch.equal(test[0].x, test[1].side)
    assert len(info.factory(kitti_like, proto, "train")) == 6
    plain = info.factory(kitti_like, get_protocol("stereo/pairs"), "test")
    assert plain[0].x.shape == (3, 376, 744)  # the plain protocol leaves the images alone


def test_extendable_only_with_constant_lr_and_last_weights():
    assert extendable(TrainConfig(steps=10, schedule="constant", restore="last"))
    assert not extendable(TrainConfig(steps=10, schedule="cosine", restore="last"))
    assert not extendable(TrainConfig(steps=10, schedule="constant", restore="best"))


def _rows(result_path):
    with open(result_path.with_suffix(".csv"), encoding="utf-8") as f:
        return {(r["image"], r["rate_point"]): (r["bytes"], float(r["psnr"])) for r in csv.DictReader(f)}


def _run(root, out, steps, method="balle2018", retrain=False):
    return run(RunSpec(method=method, dataset="stereo", protocol=PROTO, root=root, out=out, budget="quick",
                       method_options={**OPTS, "steps": steps}, progress=False, retrain=retrain))


@pytest.mark.slow
def test_segments_equal_a_run_from_scratch(kitti_like, tmp_path):
    seg = tmp_path / "seg"
    p2, r2 = _run(kitti_like, seg, 2)
    rows2 = _rows(p2)
    p4, r4 = _run(kitti_like, seg, 4, retrain=True)  # the trainer continues the 2-step checkpoint
    assert r4["training"]["steps"] == 4 and r4["training"].get("loaded_from") is None
    assert all(pt["resumed_at"] == [2] for pt in r4["training"]["points"].values())
    # training CPU seconds summed over both segments, per point (the equal-CPU comparison of the learning curves)
    cpu2 = {k: v["cpu_s"] for k, v in r2["training"]["points"].items()}
    assert all(isinstance(v["cpu_s"], float) and v["cpu_s"] > cpu2[k] > 0 for k, v in r4["training"]["points"].items())
    p4s, r4s = _run(kitti_like, tmp_path / "scratch", 4)
    assert all(pt["resumed_at"] == [] for pt in r4s["training"]["points"].values())
    assert _rows(p4) == _rows(p4s)
    assert {k: v["weights_sha256"] for k, v in r4["training"]["points"].items()} == \
           {k: v["weights_sha256"] for k, v in r4s["training"]["points"].items()}
    assert rows2 != _rows(p4)
    # asking again for 2 steps after the run reached 4: a separate run of 2 steps, same as the first one
    p2b, r2b = _run(kitti_like, seg, 2, retrain=True)
    assert _rows(p2b) == rows2
    assert r2b["coverage"]["complete"] and r2b["coverage"]["split_samples"] == 2
