"""Checkpoints in the NDIC authors' released format, evaluated by the suite with real bytes.

The authors' training scripts save ``torch.save({"model_state_dict", "optimizer_state_dict"}, path)``; their
released "ours+Ballé2017" weights call the common-information encoder ``*_z`` (their ``map_layers`` renames it).
The test writes such files from the authors' models (seeded random weights, small width), evaluates them with
``bench run --weights authors:PATH`` and checks that the codec's bytes decode to the authors' reconstruction."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from benchmark.errors import ConfigError, WeightsError
from benchmark.contract.registry import get_method

from .ndic_helpers import PAPER_SIZE, inputs, seed_authors_model
from .reference import reference_import

runner = CliRunner(env={"COLUMNS": "250"})
CASES = {  # kind: (reference tree, module, class, suite method)
    "balle2017": ("ndic", "models.distributed_model", "DistributedAutoEncoder", "ndic_balle2017"),
    "balle2018": ("ndic", "models.distributed_model", "HyperPriorDistributedAutoEncoder", "ndic_balle2018"),
    "cam": ("ndic-cam", "models.distributed_models.attention_distributed_model", "CADistributedAutoEncoder", "ndic_cam"),
}


def released_checkpoint(tmp_path: Path, kind: str, lmbda: float = 0.0018):
    tree, module, cls, _ = CASES[kind]
    # small widths where the authors' code allows them (their hyper-synthesis always outputs 192 channels)
    N = 192 if kind == "balle2018" else 16
    with reference_import(tree, module) as ref:
        kwargs = {"image_size": PAPER_SIZE} if kind == "cam" else {}
        model = getattr(ref, cls)(num_filters=N, **kwargs)
        seed_authors_model(model, 5)
    sd = model.state_dict()
    if kind == "balle2017":  # the released Ballé2017 files name the w encoder "*_z"
        sd = {k.replace("_w.", "_z."): v for k, v in sd.items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    path = tmp_path / f"ours+{kind}_MSE_lambda{lmbda}.pt"
    torch.save({"model_state_dict": sd, "optimizer_state_dict": optimizer.state_dict()}, path)
    return path, model.eval()


@pytest.mark.parametrize("kind", list(CASES))
def test_codec_bytes_decode_to_the_authors_reconstruction(tmp_path, kind):
    path, theirs = released_checkpoint(tmp_path, kind)
    codec = get_method(CASES[kind][3])()
    codec.load_weights(Path(f"authors:{path}"))
    assert codec.lambdas == (0.0018,)  # read from the authors' file name
    x, y = inputs(2, size=PAPER_SIZE)
    data = codec.compress(x[0], point=codec.rate_points()[0])
    decoded = codec.decompress(data, side=y[0])
    with torch.no_grad():
        reference = theirs(x, y)[0][0].clamp(0, 1)
    assert float((decoded - (reference * 255).round() / 255).abs().max()) <= 1 / 255 + 1e-6
    assert len(data) > 16


def test_bench_run_evaluates_a_released_checkpoint(tmp_path):
    path, _ = released_checkpoint(tmp_path, "balle2017")
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--method", "ndic_balle2017", "--dataset", "middlebury_sample", "--weights",
                              f"authors:{path}", "--limit", "1", "--out", str(out), "-q", "--no-leaderboard"])
    assert res.exit_code == 0, res.output
    result = json.loads(next(out.rglob("ndic_balle2017.json")).read_text())
    (point,) = result["points"]
    assert point["rate_point"].startswith("lambda=0.0018") and point["bpp"] >= point["bpp_payload"] > 0
    assert result["training"]["loaded_from"] == f"authors:{path}"


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path, _ = released_checkpoint(tmp_path, "balle2018")
    with pytest.raises(WeightsError, match="ndic_balle2018"):
        get_method("ndic_balle2017")().load_weights(Path(f"authors:{path}"))


def test_bench_convert_then_run_codes_identically(tmp_path):
    """`bench convert` writes suite weights (safetensors) that reload into the same codec, bytes included."""
    path, _ = released_checkpoint(tmp_path, "cam")
    res = runner.invoke(app, ["convert", "--method", "ndic_cam", "--weights", f"authors:{path}", "--out", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    direct, saved = get_method("ndic_cam")(), get_method("ndic_cam")()
    direct.load_weights(Path(f"authors:{path}"))
    saved.load_weights(tmp_path / "w")
    x, y = inputs(4, size=PAPER_SIZE)
    (point,) = saved.rate_points()
    data = saved.compress(x[0], point=point)
    assert data == direct.compress(x[0], point=point)
    assert torch.equal(saved.decompress(data, side=y[0]), direct.decompress(data, side=y[0]))
    small_x, small_y = inputs(4, size=(64, 128))
    with pytest.raises(ConfigError, match="128x256 images only"):
        saved.decompress(saved.compress(small_x[0], point=point), side=small_y[0])
