"""Weights the suite did not write are refused before a coder sees them: every stored tensor checked against the
freshly built module's own (dtype, shape class, finiteness, the architecture's constants), and the entropy coder's
tables rebuilt from the other parameters and compared with the stored ones, within bounds that keep the native
coder's tables small."""

from __future__ import annotations

import hashlib
from typing import Mapping

import torch

from benchmark.errors import WeightsError


# Buffers that are constants of the architecture (CompressAI's lower bounds, GDN pedestals, the entropy
# bottleneck's target): stored values must equal the freshly built model's own.
_CONSTANT_SUFFIXES = (".bound", ".pedestal", "scale_bound", "entropy_bottleneck.target", ".target")


MAX_PMF_LENGTH = 1 << 14  # symbols per coder table: CompressAI's own tables stay near 3000 (scale 256, tail 1e-9)


MAX_SCALE = 1 << 10  # largest entry of a Gaussian conditional's scale table (CompressAI's default range ends at 256)


def _refuse(what: str, key: str, why: str) -> WeightsError:
    return WeightsError(f"refusing the weights for {what}: tensor {key!r} {why}; these are not weights the suite "
                        "wrote (crafted or damaged): retrain, or restore the original weights folder")


def check_tensors(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """WeightsError unless every stored tensor has the dtype of the module's own tensor of that name, floating
    tensors hold only finite values, and the architecture's constants equal the module's own. Names and shapes
    are left to load_state_dict (which names them)."""
    own = module.state_dict()
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise _refuse(what, key, f"is a {type(value).__name__}, not a tensor")
        ref = own.get(key)
        if ref is None:
            continue
        if value.dtype != ref.dtype:
            raise _refuse(what, key, f"has dtype {value.dtype}, the model's is {ref.dtype}")
        if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise _refuse(what, key, f"holds {bad} NaN or infinite value(s) of {value.numel()}")
        if key.endswith(_CONSTANT_SUFFIXES) and value.shape == ref.shape and not torch.equal(value, ref):
            raise _refuse(what, key, f"is a constant of the architecture ({ref.reshape(-1)[:3].tolist()}...), "
                                     f"stored as {value.reshape(-1)[:3].tolist()}...")


def _entropy_modules(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    try:
        from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    except ImportError:  # no CompressAI: no such modules
        return []
    return [(n, m) for n, m in module.named_modules() if isinstance(m, (EntropyBottleneck, GaussianConditional))]


def entropy_range_problem(m: torch.nn.Module) -> str | None:
    """Why CompressAI's `update()` must not run on entropy model `m` (a table it would build too large, or from
    values it cannot handle); None when it may. Checked in float64 before any table is allocated."""
    from compressai.entropy_models import EntropyBottleneck

    if isinstance(m, EntropyBottleneck):
        q = m.quantiles.detach().double()
        if not bool(torch.isfinite(q).all()):
            return "quantiles hold NaN or infinite values"
        lo, med, hi = q[:, 0, 0], q[:, 0, 1], q[:, 0, 2]
        if bool((lo > med).any()) or bool((med > hi).any()):
            return "quantiles are not ordered (lower <= median <= upper)"
        length = (torch.ceil(hi - med).clamp(min=0) + torch.ceil(med - lo).clamp(min=0) + 1).max()
        if float(length) > MAX_PMF_LENGTH:
            return f"quantiles span {float(length):.3g} symbols, more than the {MAX_PMF_LENGTH} a coder table may hold"
        return None
    table = m.scale_table.detach().double()
    if table.numel() == 0:
        return None
    if not bool(torch.isfinite(table).all()) or bool((table <= 0).any()) or float(table.max()) > MAX_SCALE:
        return f"scale table must hold finite scales in (0, {MAX_SCALE}], got [{float(table.min()):.3g}, {float(table.max()):.3g}]"
    if table.numel() > 1 and not bool((table[1:] > table[:-1]).all()):
        return "scale table is not strictly increasing"
    if float(m.tail_mass) <= 0 or float(m.tail_mass) >= 0.5:
        return f"tail mass {float(m.tail_mass)} is not in (0, 0.5)"
    return None


_REBUILT: dict[tuple, tuple[torch.Tensor, ...]] = {}  # Gaussian conditional tables by (scale table, tail, precision)
_TABLES = ("_quantized_cdf", "_offset", "_cdf_length")


def rebuilt_tables(m: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    """The coder tables CompressAI's `update()` computes for entropy model `m` from its other parameters, on a copy
    (`m` is unchanged). The Gaussian conditional's depend only on its scale table: cached per table."""
    import copy

    from compressai.entropy_models import EntropyBottleneck

    key = None
    if not isinstance(m, EntropyBottleneck):
        table = m.scale_table.detach().cpu()
        key = (hashlib.sha256(table.numpy().tobytes()).hexdigest(), float(m.tail_mass), int(m.entropy_coder_precision))
        if key in _REBUILT:
            return _REBUILT[key]
    twin = copy.deepcopy(m).cpu()
    with torch.no_grad():
        if isinstance(twin, EntropyBottleneck):
            twin.update(force=True, update_quantiles=False)
        else:
            twin.update()
    out = tuple(getattr(twin, t).detach().clone() for t in _TABLES)
    if key is not None:
        _REBUILT[key] = out
    return out


def check_entropy_tables(module: torch.nn.Module, what: str) -> None:
    """WeightsError unless the coder tables stored in `module`'s CompressAI entropy models equal the ones the suite
    rebuilds from their other parameters (empty tables are left for the codec to build)."""
    for name, m in _entropy_modules(module):
        where = name or type(m).__name__
        why = entropy_range_problem(m)
        if why:
            raise _refuse(what, where, why)
        stored = tuple(getattr(m, t) for t in _TABLES)
        if any(t.numel() == 0 for t in stored):
            continue
        try:
            rebuilt = rebuilt_tables(m)
        except Exception as exc:  # CompressAI's table builder refused the parameters (domain_error, ...)
            raise _refuse(what, where, f"gives no valid coder table ({type(exc).__name__}: {str(exc)[:200]})") from exc
        for t, a, b in zip(_TABLES, stored, rebuilt):
            if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a.cpu(), b):
                raise _refuse(what, f"{where}.{t}", "differs from the table the suite rebuilds from the other "
                                                    "parameters (CompressAI's update()); stored bitstreams could not "
                                                    "be trusted to decode")
