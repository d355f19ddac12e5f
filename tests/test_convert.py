"""CompressAI zoo checkpoints (plain state dicts) evaluated by `bench run --weights compressai:PATH`, real bytes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from baselines.convert import foreign_spec, load_checkpoint
from cli.main import app
from benchmark.errors import WeightsError
from benchmark.contract.registry import METHODS

runner = CliRunner(env={"COLUMNS": "250"})
ZOO_CLASSES = ("FactorizedPrior", "ScaleHyperprior", "MeanScaleHyperprior")


def zoo_method(model_class: str) -> str:
    """The registered zoo method built on a CompressAI model class (names come from the registry; methods that
    build on a zoo member, e.g. balle2018_per_view, are not zoo rows)."""
    from baselines.balle import ZOO

    rows = {r.name for r in ZOO}
    names = [name for name, cls in METHODS.items() if getattr(cls, "model_class", None) == model_class and name in rows]
    assert len(names) == 1, names
    return names[0]


def zoo_checkpoint(tmp_path: Path, model_class: str, quality: int = 3, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    """A small CompressAI model with seeded weights saved as the zoo saves it: ``torch.save(state_dict)`` (its
    entropy tables included) under the zoo's file-name pattern ``<arch>-<quality>-<hash>.pth.tar``."""
    import compressai.models as cm

    torch.manual_seed(seed)
    model = getattr(cm, model_class)(N=16, M=24).eval()
    with torch.no_grad():  # densities that are not the initial ones
        for name, p in model.named_parameters():
            if "entropy_bottleneck" in name and "quantiles" not in name:
                p.add_(0.2 * torch.randn_like(p))
    model.update(force=True)
    path = tmp_path / f"{model_class.lower()}-{quality}-0123abcd.pth.tar"
    torch.save(model.state_dict(), path)
    return path, model


@pytest.mark.parametrize("model_class", ZOO_CLASSES)
def test_zoo_checkpoint_codes_as_compressai_does(tmp_path, model_class):
    from baselines import COMPRESSAI_LAMBDAS
    from benchmark.contract.coding import pad_to

    path, reference = zoo_checkpoint(tmp_path, model_class)
    codec = METHODS.get(zoo_method(model_class))()
    info = codec.load_weights(Path(f"compressai:{path}"))
    assert info["budget"] is None and info["training"]["sources"][0]["file"] == path.name
    assert codec.lambdas == (COMPRESSAI_LAMBDAS[2],)  # quality 3 of the zoo, read from the file name
    x = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(1))
    data = codec.compress(x, point=codec.rate_points()[0])
    ours = codec.decompress(data)
    with torch.no_grad():
        xp = pad_to(x[None], codec.stride)
        enc = reference.compress(xp)
        ref = reference.decompress(enc["strings"], enc["shape"])["x_hat"][0, :, :64, :80].clamp(0, 1)
    assert float((ours - (ref * 255).round() / 255).abs().max()) <= 1 / 255 + 1e-6
    payload = sum(len(s[0]) for s in enc["strings"])
    assert payload <= len(data) <= payload + 64  # the same rANS strings inside the suite's container


def test_bench_run_evaluates_a_zoo_checkpoint_with_real_bytes(tmp_path):
    path, _ = zoo_checkpoint(tmp_path, "ScaleHyperprior", quality=2)
    method = zoo_method("ScaleHyperprior")
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--method", method, "--dataset", "middlebury_sample", "--weights", f"compressai:{path}",
                              "--limit", "1", "--out", str(out), "-q", "--no-leaderboard"])
    assert res.exit_code == 0, res.output
    result = json.loads(next((out / "middlebury-sample").rglob(f"{method}.json")).read_text())
    (point,) = result["points"]
    assert point["bpp"] > 0 and point["bpp"] >= point["bpp_payload"] > 0
    assert result["training"]["loaded_from"] == f"compressai:{path}"
    assert len(result["training"]["files"][path.name]) == 64  # the source checkpoint's sha256


def test_pickled_object_is_refused(tmp_path):
    import compressai.models as cm

    path = tmp_path / "model-3-0123abcd.pth.tar"
    torch.save({"state_dict": cm.FactorizedPrior(8, 8).state_dict(), "model": cm.FactorizedPrior(8, 8)}, path)
    with pytest.raises(WeightsError, match="never unpickles"):
        load_checkpoint(path)
    res = runner.invoke(app, ["run", "--method", zoo_method("FactorizedPrior"), "--dataset", "middlebury_sample",
                              "--weights", f"compressai:{path}", "--limit", "1", "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code != 0 and "never unpickles" in " ".join(res.output.split())


def test_wrong_model_class_and_unknown_rate_point_are_refused(tmp_path):
    path, _ = zoo_checkpoint(tmp_path, "FactorizedPrior")
    with pytest.raises(WeightsError, match="ScaleHyperprior"):
        METHODS.get(zoo_method("ScaleHyperprior"))().load_weights(Path(f"compressai:{path}"))
    plain = tmp_path / "weights.pt"
    plain.write_bytes(path.read_bytes())
    with pytest.raises(WeightsError, match="lambdas"):
        METHODS.get(zoo_method("FactorizedPrior"))().load_weights(Path(f"compressai:{plain}"))
    assert foreign_spec(Path("results/weights/balle2018")) is None


def test_bench_convert_writes_suite_weights_that_code_identically(tmp_path):
    path, _ = zoo_checkpoint(tmp_path, "MeanScaleHyperprior")
    method = zoo_method("MeanScaleHyperprior")
    res = runner.invoke(app, ["convert", "--method", method, "--weights", f"compressai:{path}", "--out", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "w" / "manifest.json").exists() and not list((tmp_path / "w").glob("*.pt*"))
    direct, saved = METHODS.get(method)(), METHODS.get(method)()
    direct.load_weights(Path(f"compressai:{path}"))
    saved.load_weights(tmp_path / "w")
    (point,) = saved.rate_points()
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(4))
    assert saved.compress(x, point=point) == direct.compress(x, point=point)
