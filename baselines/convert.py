"""Checkpoints from outside the suite, as ``--weights PREFIX:PATH[,PATH...]`` (one file per rate point).

    bench run --method balle2018 --dataset kitti --root ~/data/kitti --weights compressai:bmshj2018-hyperprior-3-5c6f152b.pth.tar
    bench run --method ndic_balle2017 --dataset kitti --root ~/data/kitti \\
              --weights authors:ours+balle17_MSE_lambda0.0018.pt --option lambdas=0.0018

``compressai:`` — CompressAI's zoo files (``.pth.tar``) or any plain state dict of ``FactorizedPrior``,
``ScaleHyperprior`` or ``MeanScaleHyperprior`` (what ``model.state_dict()`` gives, or CompressAI's training
checkpoint with ``state_dict``), for the codecs built on those classes (``balle2017``, ``balle2018`` and the
mean-scale model). ``authors:`` — the authors' own released format, for the methods that have a converter
(NDIC: methods/ndic/convert.py). The converted models are evaluated exactly like trained ones: real rANS
bytes from the codec's own entropy coder.

Files are read with ``torch.load(weights_only=True)``; a file that needs unpickling is refused (WeightsError).
The rate point of each file is ``--option lambdas=...`` (in file order) or, without it, read from the file
name: CompressAI's zoo quality ``<name>-<q>-<hash>.pth.tar`` (λ of that quality for MSE) or the authors'
``lambda<λ>``. The result file's training field records the source files and their sha256."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import WeightsError
from benchmark.training.weights import sha256_file
from benchmark.training.weight_checks import check_tensors

from . import COMPRESSAI_LAMBDAS

PREFIXES = ("compressai", "authors")


def foreign_spec(spec: Any) -> tuple[str, list[Path]] | None:
    """(prefix, files) when ``spec`` is ``PREFIX:PATH[,PATH...]``, None for a suite weights directory."""
    text = str(spec)
    prefix, sep, rest = text.partition(":")
    if not sep or prefix not in PREFIXES:
        return None
    files = [Path(p).expanduser() for p in rest.split(",") if p]
    if not files:
        raise WeightsError(f"--weights {text}: no checkpoint file after '{prefix}:'")
    return prefix, files


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ``torch.save`` checkpoint read without unpickling arbitrary objects (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError and friends: the file holds Python objects beyond tensors
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        what = f"it references {found.group(1)}" if found else f"{type(exc).__name__}"
        raise WeightsError(
            f"checkpoint {path} cannot be read with torch.load(weights_only=True): it holds Python objects other "
            f"than tensors and plain containers ({what}), and the suite never unpickles them. Re-save it as a "
            f"plain state dict where you trust it: torch.save(model.state_dict(), 'plain.pt')") from exc
    if not isinstance(obj, Mapping):
        raise WeightsError(f"checkpoint {path} holds a {type(obj).__name__}, expected a state dict (a mapping of tensors)")
    return dict(obj)


def model_state(obj: Mapping[str, Any], where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model's state dict inside a checkpoint: ``model_state_dict`` (the NDIC authors' scripts),
    ``state_dict`` (CompressAI's training script) or the mapping itself."""
    for key in ("model_state_dict", "state_dict"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    sd = {str(k): v for k, v in obj.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad or not sd:
        raise WeightsError(f"{where}: expected a state dict of tensors; "
                           + (f"entries {bad[:3]} are not tensors" if bad else "it is empty"))
    if any(k.startswith("module.") for k in sd):  # saved from nn.DataParallel
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


def _lambda_from_name(path: Path, metric: str) -> float | None:
    m = re.search(r"lambda[:=_]?([0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)", path.name)
    if m:
        return float(m.group(1))
    m = re.search(r"-([1-8])-[0-9a-f]{8}\.pth", path.name)
    if m and metric == "mse" and "ms-ssim" not in path.name:
        return COMPRESSAI_LAMBDAS[int(m.group(1)) - 1]
    return None


def compressai_model(codec: Any, sd: dict[str, torch.Tensor], where: str) -> torch.nn.Module:
    """A CompressAI model of the codec's class from a plain state dict (widths read from the tensors)."""
    import compressai.models as cm

    cls_name = getattr(codec, "model_class", None)
    if cls_name is None:
        raise WeightsError(f"{codec.meta.name} is not built on a CompressAI zoo model; compressai: checkpoints load into "
                           f"balle2017, balle2018 and the mean-scale model")
    try:
        model = getattr(cm, cls_name).from_state_dict(sd)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise WeightsError(f"{where} is not a CompressAI {cls_name} state dict: {str(exc).splitlines()[0][:300]}") from exc
    return model


def import_checkpoint(codec: Any, spec: Any) -> dict[str, Any]:
    """Convert the checkpoint files of ``spec`` into ``codec.models`` (one per rate point); returns the summary
    the runner records (``budget`` None: the suite did not train these weights)."""
    prefix, files = foreign_spec(spec)
    lambdas = list(codec._opt_lambdas) if getattr(codec, "_opt_lambdas", None) else []
    if lambdas and len(lambdas) != len(files):
        raise WeightsError(f"--weights has {len(files)} checkpoint file(s), --option lambdas has {len(lambdas)}; give one λ per file")
    models, sources = [], []
    for i, path in enumerate(files):
        sd = model_state(load_checkpoint(path), str(path))
        lmbda = lambdas[i] if lambdas else _lambda_from_name(path, codec.metric)
        if lmbda is None:
            raise WeightsError(f"cannot tell the rate point of {path.name}; pass --option lambdas=<λ per file>")
        if prefix == "compressai":
            model = compressai_model(codec, sd, str(path))
            model.eval()
            check_tensors(model, model.state_dict(), f"{codec.meta.name} {path.name}")  # finite, the constants
            codec._update(model)  # coding tables from the learned densities and quantiles
            cfg_extra = {"N": int(model.g_a[0].weight.shape[0]), "M": int(model.g_a[-1].weight.shape[0])}  # as from_state_dict reads them
        else:
            convert = getattr(codec, "convert_authors", None)
            if convert is None:
                raise WeightsError(f"{codec.meta.name} has no converter for the authors' checkpoints (authors: works for "
                                   f"ndic_balle2017, ndic_balle2018, ndic_cam)")
            model, cfg_extra = convert(sd, str(path))
        models.append((float(lmbda), model))
        sources.append({"file": path.name, "sha256": sha256_file(path), "format": prefix})
    models.sort(key=lambda m: m[0])
    cfg, _ = codec.resolve_config("paper")
    cfg.update({k: v for k, v in cfg_extra.items() if v is not None})
    cfg["lambdas"] = [l for l, _ in models]
    cfg["budget"] = None
    cfg["converted_from"] = prefix
    codec.config = cfg
    codec.lambdas = tuple(cfg["lambdas"])
    codec.models = [m for _, m in models]
    points = codec.rate_points()
    codec.training_info = {"budget": None, "seed": None, "steps": None, "converted": True, "sources": sources,
                           "note": f"weights converted from {prefix} checkpoints; not trained by the suite"}
    return {"method": codec.meta.name, "budget": None, "seed": None, "steps": None, "points": points, "config": cfg,
            "files": {s["file"]: s["sha256"] for s in sources}, "training": codec.training_info}
