"""Read a PyTorch ``.pt`` / ``.pth`` file as a plain state dict, never unpickling Python objects.

The authors' training scripts save checkpoints with ``torch.save`` of a dict that may also hold Python
objects (loggers, argument namespaces, numpy scalars, configuration objects). The suite reads such files only
with ``torch.load(weights_only=True)``, which restores tensors, numbers, strings and plain containers and
refuses anything else; a file it refuses is reported with :class:`~benchmark.errors.WeightsError` and the
way out (load it in the authors' own environment, keep only the model's ``state_dict()``, save that).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch

from benchmark.errors import WeightsError

# Where the authors' scripts put the model's state dict inside a checkpoint dict (first match wins).
NESTED_KEYS = ("model_state_dict", "model_dict", "state_dict", "model")

HOW_TO_EXTRACT = (
    "load it in the authors' own environment (where unpickling their objects is your decision), keep only the "
    "model's tensors and save them, e.g. `torch.save(ckpt['{key}'], 'plain.pt')` or "
    "`safetensors.torch.save_file(ckpt['{key}'], 'plain.safetensors')`, then convert that file")


def plain_state_dict(obj: object, *, what: str, nested: Sequence[str] = NESTED_KEYS,
                     strip: Sequence[str] = ("module.",)) -> dict[str, torch.Tensor]:
    """``obj`` (a state dict, or a checkpoint dict holding one under a key of ``nested``) as {name: tensor}.

    Leading prefixes in ``strip`` (``module.`` from DataParallel) are removed. Anything but string keys and
    tensor values is refused with WeightsError."""
    if isinstance(obj, Mapping):
        for key in nested:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{what}: expected a state dict (name -> tensor) or a checkpoint dict holding one under "
                           f"{', '.join(repr(k) for k in nested)}; got {type(obj).__name__}")
    out: dict[str, torch.Tensor] = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"{what}: entry {name!r} is a {type(value).__name__}, not a tensor; a state dict holds "
                               "tensors only")
        for prefix in strip:
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = value.detach().cpu()
    return out


def read_plain_state_dict(path: Path | str, *, what: str, nested: Sequence[str] = NESTED_KEYS) -> dict[str, torch.Tensor]:
    """Read ``path`` with ``torch.load(weights_only=True)`` (safetensors files with safetensors) as a state dict."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what}: no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return plain_state_dict(load_file(str(path)), what=what, nested=nested)
        except WeightsError:
            raise
        except Exception as exc:  # safetensors raises its own error types for malformed files
            raise WeightsError(f"{what}: {path} is not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for Python objects, RuntimeError for files torch cannot read
        hint = HOW_TO_EXTRACT.format(key=nested[0])
        raise WeightsError(f"{what}: {path} cannot be read as plain tensors with torch.load(weights_only=True): it "
                           f"holds Python objects (or is not a PyTorch file), and the suite never unpickles. To use "
                           f"it, {hint}. ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return plain_state_dict(obj, what=what, nested=nested)
