"""Complexity of a codec as the leaderboard reports it: parameters, and multiply–accumulates per pixel of the
encoder and of the decoder, counted on what `compress` and `decompress` actually run.

MACs are counted with a global forward hook on every convolution, transposed convolution and linear layer
that runs while one sample is coded at one rate point (so an encoder that also runs a hyper-decoder, as the
Ballé 2018 family does, is charged for it). Entropy coding, GDN and other element-wise layers are not
counted (they are O(pixels) with small constants). Classical codecs (no torch modules) have no MAC count."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from benchmark.safety.limits import expected_shape


def _macs(module: nn.Module, inp: Any, out: Any) -> int:
    if not isinstance(out, torch.Tensor):
        return 0
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        return int(out.numel() * k)
    if isinstance(module, nn.ConvTranspose2d):
        x = inp[0] if isinstance(inp, tuple) and inp else None
        if not isinstance(x, torch.Tensor):
            return 0
        k = module.kernel_size[0] * module.kernel_size[1] * (module.out_channels // module.groups)
        return int(x.numel() * k)
    if isinstance(module, nn.Linear):
        return int(out.numel() * module.in_features)
    return 0


@contextlib.contextmanager
def count_macs() -> Iterator[list[int]]:
    """`with count_macs() as n:` — n[0] holds the MACs of every conv/linear forward run inside the block."""
    total = [0]

    def hook(module, inp, out):
        total[0] += _macs(module, inp, out)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield total
    finally:
        handle.remove()


def parameters(codec: Any) -> int | None:
    """Parameters of every torch module the codec holds (each counted once); None when it holds none."""
    seen: dict[int, nn.Parameter] = {}
    found = False
    for value in vars(codec).values():
        mods = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for m in mods:
            if isinstance(m, nn.Module):
                found = True
                for p in m.parameters():
                    seen[id(p)] = p
    return sum(p.numel() for p in seen.values()) if found else None


def measure(codec: Any, sample: Any, point: str, *, encoder_sees_side: bool, decoder_sees_side: bool,
            pixels: int) -> dict[str, Any]:
    """{"params", "enc_kmac_per_pixel", "dec_kmac_per_pixel", "point"} for one sample at one rate point."""
    x, side = sample.x, sample.side
    with torch.no_grad():
        with count_macs() as enc:
            data = codec.compress(x, side=side if encoder_sees_side else None, source=sample.source, point=point)
        with count_macs() as dec:
            with expected_shape(tuple(x.shape)):
                codec.decompress(bytes(data), side=side if decoder_sees_side else None, source=sample.source)
    params = parameters(codec)
    learned = params is not None
    return {"params": params, "point": point,
            "enc_kmac_per_pixel": round(enc[0] / pixels / 1000, 3) if learned else None,
            "dec_kmac_per_pixel": round(dec[0] / pixels / 1000, 3) if learned else None,
            "counted": "conv, transposed conv and linear layers run by compress / decompress on the first test "
                       "sample; entropy coding and element-wise layers not counted"}


def of_run(codec: Any, test: Any, protocol: Any) -> dict[str, Any] | None:
    """The `complexity` record of a result file: `measure` on the first test sample at the highest rate point.
    None for distributed codecs (several encoders) and when the sample cannot be read; never raises."""
    from benchmark.contract.codec import Scenario

    scenario = codec.meta.scenario
    if scenario is Scenario.DISTRIBUTED or len(test) == 0:
        return None
    try:
        sample = test[0]
        pixels = sample.x.shape[-2] * sample.x.shape[-1] if protocol.rate_unit == "bpp" else sample.x.numel()
        return measure(codec, sample, codec.rate_points()[-1], encoder_sees_side=scenario.encoder_sees_side,
                       decoder_sees_side=scenario.decoder_sees_side, pixels=pixels)
    except Exception as exc:  # a measurement aid must not fail a run; the file says why it is missing
        return {"params": None, "enc_kmac_per_pixel": None, "dec_kmac_per_pixel": None,
                "error": f"{type(exc).__name__}: {exc}"[:300]}
