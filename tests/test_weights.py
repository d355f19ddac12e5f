"""Weights are safetensors + a JSON manifest; loading never unpickles; foreign or tampered files are refused;
`bench run --weights DIR` evaluates trained weights without retraining."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from benchmark.errors import WeightsError
from benchmark.training.weights import MANIFEST, load_into, load_weights, read_safetensors, save_weights, state_dict_sha256

runner = CliRunner(env={"COLUMNS": "250"})




def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))


@pytest.fixture
def saved(tmp_path) -> tuple[Path, dict[str, torch.nn.Module]]:
    models = {"lambda=0.01": _model(0), "lambda=0.1": _model(1)}
    save_weights(tmp_path / "w", method="tiny", models=models, config={"N": 4, "lambdas": [0.01, 0.1]},
                 points=list(models), protocol="middlebury-sample/stereo", training={"budget": "smoke", "seed": 0, "steps": 3})
    return tmp_path / "w", models


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any attempt to unpickle during the test fails it. The libraries the loader uses are imported first (torch's
    compiler subclasses pickle.Unpickler when compressai is first imported): only what loading does is guarded."""
    import compressai.entropy_models  # noqa: F401

    def boom(*a, **k):
        raise AssertionError("weights loading tried to unpickle")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    monkeypatch.setattr(torch, "load", boom)


def test_round_trip_with_manifest(saved, no_unpickling):
    d, models = saved
    manifest = json.loads((d / MANIFEST).read_text())
    assert manifest["method"] == "tiny" and manifest["protocol"] == "middlebury-sample/stereo"
    assert manifest["config"]["N"] == 4 and manifest["training"]["steps"] == 3
    assert set(manifest["files"]) == set(models)
    assert all(len(e["sha256"]) == 64 and e["file"].endswith(".safetensors") for e in manifest["files"].values())
    loaded = load_weights(d, method="tiny")
    for key, m in models.items():
        fresh = _model(99)
        load_into(fresh, loaded.tensors[key], key)
        assert state_dict_sha256(fresh) == state_dict_sha256(m)
    s = loaded.summary()
    assert s["budget"] == "smoke" and s["seed"] == 0 and s["points"] == list(models)


def _file(d: Path, key: str = "lambda=0.01") -> Path:
    return d / json.loads((d / MANIFEST).read_text())["files"][key]["file"]


def _rehash(d: Path) -> None:
    """Make the manifest agree with the files again (an attacker who edits both)."""
    from benchmark.training.weights import sha256_file

    m = json.loads((d / MANIFEST).read_text())
    for e in m["files"].values():
        e["sha256"] = sha256_file(d / e["file"])
    (d / MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_renamed_to_safetensors_is_refused_without_unpickling(saved, no_unpickling, legacy):
    d, models = saved
    f = _file(d)
    with open(f, "wb") as fh:  # torch.save is not patched: only loading is
        torch.serialization.save(models["lambda=0.01"].state_dict(), fh, _use_new_zipfile_serialization=not legacy)
    _rehash(d)  # even with a matching hash, a pickle is never loaded
    with pytest.raises(WeightsError, match="never unpickles"):
        load_weights(d, method="tiny")
    with pytest.raises(WeightsError, match="never unpickles"):
        read_safetensors(f)


def test_arbitrary_bytes_are_refused(saved):
    d, _ = saved
    _file(d).write_bytes(b"GIF89a not weights at all" * 10)
    _rehash(d)
    with pytest.raises(WeightsError, match="safetensors header"):
        load_weights(d, method="tiny")


def test_tampered_file_is_refused(saved):
    d, _ = saved
    f = _file(d)
    raw = bytearray(f.read_bytes())
    raw[-3] ^= 0x01  # one bit of one weight
    f.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="modified or damaged"):
        load_weights(d, method="tiny")


def test_truncated_file_is_refused(saved):
    d, _ = saved
    f = _file(d)
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="modified or damaged"):
        load_weights(d, method="tiny")


def test_foreign_manifest_is_refused(saved):
    d, _ = saved
    with pytest.raises(WeightsError, match="belong to method 'tiny', not 'balle2018'"):
        load_weights(d, method="balle2018")


def test_manifest_pointing_outside_is_refused(saved, tmp_path):
    d, models = saved
    save_weights(tmp_path / "other", method="tiny", models={"x": models["lambda=0.1"]})
    m = json.loads((d / MANIFEST).read_text())
    m["files"]["lambda=0.01"]["file"] = "../other/x.safetensors"
    (d / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(WeightsError, match="points outside"):
        load_weights(d, method="tiny")


def test_missing_or_wrong_directory_is_a_clear_error(saved, tmp_path):
    d, _ = saved
    with pytest.raises(WeightsError, match="not a weights directory"):
        load_weights(tmp_path, method="tiny")
    with pytest.raises(WeightsError, match="is a file"):
        load_weights(_file(d), method="tiny")
    (d / MANIFEST).write_text("{not json")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(d, method="tiny")


def test_weights_that_do_not_fit_the_model_are_refused(saved):
    d, _ = saved
    loaded = load_weights(d, method="tiny")
    with pytest.raises(WeightsError, match="do not fit"):
        load_into(torch.nn.Conv2d(3, 3, 1), loaded.tensors["lambda=0.01"], "tiny")


# ---------------------------------------------------------------- through the CLI, on a real codec
TINY = ["--option", "N=8", "--option", "M=8", "--option", "lambdas=[0.0035,0.0483]", "--option", "steps=3",
        "--option", "batch_size=2", "--option", "val_samples=1"]


def test_bench_run_weights_evaluates_without_retraining(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    r = runner.invoke(app, ["train", "--method", "balle2018", "--dataset", "middlebury_sample", "--budget", "smoke",
                            "--out", str(a), *TINY])
    assert r.exit_code == 0, r.output
    wdir = a / "middlebury-sample" / "stereo" / "weights" / "balle2018"
    manifest = json.loads((wdir / MANIFEST).read_text())
    assert manifest["method"] == "balle2018" and manifest["protocol"] == "middlebury-sample/stereo"
    assert manifest["config"]["lambdas"] == [0.0035, 0.0483] and manifest["training"]["steps"] == 3
    assert manifest["training"]["budget"] == "smoke" and manifest["training"]["seed"] == 0

    # no options needed: widths and lambdas come from the manifest; no training happens in b
    r = runner.invoke(app, ["run", "--method", "balle2018", "--dataset", "middlebury_sample", "--weights", str(wdir),
                            "--out", str(b), "--limit", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    pdir = b / "middlebury-sample" / "stereo"
    assert not (pdir / "train").exists() and not (pdir / "weights").exists()
    result = json.loads((pdir / "balle2018.json").read_text())
    assert result["training"]["loaded_from"] == str(wdir)
    assert result["training"]["steps"] == 3 and result["training"]["budget"] == "smoke"
    assert [p["rate_point"] for p in result["points"]] == ["lambda=0.0035", "lambda=0.0483"]
    assert all(p["bpp"] > 0 and p["psnr"] > 0 for p in result["points"])  # 3 steps: bytes, not quality

    # the same weights through another method, or tampered, are refused with a clear message and exit code 2
    r = runner.invoke(app, ["run", "--method", "mbt2018_mean", "--dataset", "middlebury_sample", "--weights", str(wdir),
                            "--out", str(b), "--limit", "1", "--quiet"])
    assert r.exit_code == 2 and "belong to method 'balle2018', not 'mbt2018_mean'" in " ".join(r.output.split())
    f = wdir / manifest["files"]["lambda=0.0035"]["file"]
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    f.write_bytes(bytes(raw))
    r = runner.invoke(app, ["run", "--method", "balle2018", "--dataset", "middlebury_sample", "--weights", str(wdir),
                            "--out", str(b), "--limit", "1", "--quiet"])
    assert r.exit_code == 2 and "modified or damaged" in " ".join(r.output.split())
