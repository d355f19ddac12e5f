"""The authors' NDIC / NDIC-CAM weights (ipc-lab/NDIC, ipc-lab/NDIC-CAM) mapped onto the suite's models.

Their training scripts save ``{"model_state_dict": ..., "optimizer_state_dict": ...}`` with ``torch.save``;
the released NDIC checkpoints for "ours+Ballé2017" name the common-information encoder ``*_z`` where the code
says ``*_w`` (the authors' ``map_layers`` renames them; so do we). Three models:

| authors' class | suite model | how it is recognised |
|---|---|---|
| ``DistributedAutoEncoder`` (NDIC + Ballé2017) | ``NDIC(hyperprior=False, variant="authors")`` | ``entropy_bottleneck_hx.*`` |
| ``HyperPriorDistributedAutoEncoder`` (NDIC + Ballé2018) | ``NDIC(hyperprior=True, variant="authors")`` | ``ha_primary_image.*`` |
| ``CADistributedAutoEncoder`` (NDIC-CAM) | ``NDICCAM(hyperprior=False, variant="authors", image_size=...)`` | ``ca1.*`` |

What each mapped tensor needs (the rest is copied as is):
- GDN ``gamma``: transposed (theirs contracts over its first index, CompressAI's over its second);
  ``gamma``/``beta`` use the same square-root reparametrisation with the same offsets, so no other change.
- the last hyper-synthesis layer (a 3x3 stride-1 ``ConvTranspose2d`` in theirs, a ``Conv2d`` in CompressAI's
  layout): kernel flipped and its in/out axes swapped, which computes the same convolution;
- entropy bottlenecks: ``matrix{i}``/``bias{i}`` → ``matrices.{i}``/``biases.{i}``, the stacked ``factors``
  split into ``factors.{i}``; the coding range (CompressAI's ``quantiles``) is found afterwards by bisection
  on the converted density, and the median pinned to 0 (their integer rounding grid).

Checkpoint files are read by baselines/convert.py (``torch.load(weights_only=True)`` only; anything that
would need unpickling is a WeightsError); ``bench run --weights authors:PATH`` converts and evaluates."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

from baselines.balle import RDCodec
from benchmark.errors import WeightsError

from .cam import NDICCAM
from .model import NDIC

KINDS = ("balle2017", "balle2018", "cam")
PAPER_IMAGE_SIZE = (128, 256)  # KITTI / Cityscapes as the authors resize them (configs/config.yaml)

Transform = Callable[[torch.Tensor], torch.Tensor]


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


def _transpose(t: torch.Tensor) -> torch.Tensor:
    return t.t().contiguous()


def _tconv_as_conv(t: torch.Tensor) -> torch.Tensor:
    """A stride-1 ConvTranspose2d kernel (in, out, k, k) as the Conv2d kernel (out, in, k, k) that equals it."""
    return t.transpose(0, 1).flip(-1, -2).contiguous()


def authors_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' ``map_layers``: released Ballé2017 weights call the common-information encoder ``*_z``."""
    if any(re.search(r"_z(\.|$)", k) for k in sd) and not any(re.search(r"_w(\.|$)", k) for k in sd):
        return {k.replace("z", "w"): v for k, v in sd.items()}
    return dict(sd)


def detect_kind(sd: Mapping[str, torch.Tensor]) -> str:
    if any(k.startswith("ca1.") for k in sd):
        return "cam"
    if any(k.startswith("ha_primary_image.") for k in sd):
        return "balle2018"
    if any(k.startswith("entropy_bottleneck_hx.") for k in sd):
        return "balle2017"
    raise WeightsError("not an NDIC checkpoint: none of ca1.*, ha_primary_image.*, entropy_bottleneck_hx.* is in it "
                       f"(first keys: {list(sd)[:4]})")


# ---- the mapping ---------------------------------------------------------------------------------------
def _gdn(theirs: str, ours: str) -> list[tuple[str, str, Transform]]:
    return [(f"{theirs}.gamma", f"{ours}.gamma", _transpose), (f"{theirs}.beta", f"{ours}.beta", _same)]


def _layer(theirs: str, ours: str, bias: bool = True, fn: Transform = _same) -> list[tuple[str, str, Transform]]:
    return [(f"{theirs}.weight", f"{ours}.weight", fn)] + ([(f"{theirs}.bias", f"{ours}.bias", _same)] if bias else [])


def _eb(theirs: str, ours: str, layers: int = 4) -> list[tuple[str, str, Transform]]:
    out = []
    for i in range(layers):
        out += [(f"{theirs}.matrix{i}", f"{ours}.matrices.{i}", _same), (f"{theirs}.bias{i}", f"{ours}.biases.{i}", _same)]
    for i in range(layers - 1):
        out.append((f"{theirs}.factors", f"{ours}.factors.{i}", lambda t, i=i: t[i]))
    return out


def _analysis(sfx: str, ours: str) -> list[tuple[str, str, Transform]]:
    out = []
    for k in range(4):
        out += _layer(f"conv{k + 1}{sfx}", f"{ours}.{2 * k}")
        if k < 3:
            out += _gdn(f"gdn{k + 1}{sfx}", f"{ours}.{2 * k + 1}")
    return out


def _synthesis(sfx: str, ours: str) -> list[tuple[str, str, Transform]]:
    out = []
    for k in range(3):
        out += _layer(f"deconv{k + 1}{sfx}", f"{ours}.{k}.0") + _gdn(f"igdn{k + 1}{sfx}", f"{ours}.{k}.1")
    return out + _layer(f"deconv4{sfx}", f"{ours}.3")


def _hyper(theirs_a: str, theirs_s: str, ours: str) -> list[tuple[str, str, Transform]]:
    return (_layer(f"{theirs_a}.conv_h1", f"{ours}.h_a.0") + _layer(f"{theirs_a}.conv_h2", f"{ours}.h_a.2")
            + _layer(f"{theirs_a}.conv_h3", f"{ours}.h_a.4", bias=False)
            + _layer(f"{theirs_s}.conv_h4", f"{ours}.h_s.0") + _layer(f"{theirs_s}.conv_h5", f"{ours}.h_s.2")
            + _layer(f"{theirs_s}.conv_h6", f"{ours}.h_s.4", fn=_tconv_as_conv))


def _cross_attention(theirs: str, ours: str) -> list[tuple[str, str, Transform]]:
    return (_layer(f"{theirs}.to_patch_embedding_x.1", f"{ours}.embed_x")
            + _layer(f"{theirs}.to_patch_embedding_y.1", f"{ours}.embed_y")
            + _layer(f"{theirs}.norm", f"{ours}.norm")
            + _layer(f"{theirs}.attn.to_qkv_x", f"{ours}.to_qkv_x", bias=False)
            + _layer(f"{theirs}.attn.to_qkv_y", f"{ours}.to_qkv_y", bias=False)
            + _layer(f"{theirs}.attn.to_out.0", f"{ours}.to_out.0")
            + _layer(f"{theirs}.unpack_embedding_y.0", f"{ours}.unembed"))


def mapping(kind: str) -> list[tuple[str, str, Transform]]:
    """(authors' key, suite key, transform) for every tensor of the authors' model of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    out = (_analysis("", "x_branch.g_a") + _analysis("_cor", "y_branch.g_a") + _analysis("_w", "g_a_w")
           + _synthesis("", "g_s_x") + _synthesis("_cor", "g_s_y"))
    if kind == "balle2018":
        out += (_hyper("ha_primary_image", "hs_primary_image", "x_branch") + _hyper("ha_cor_image", "hs_cor_image", "y_branch")
                + _eb("entropy_bottleneck_sigma_x", "x_branch.entropy_bottleneck")
                + _eb("entropy_bottleneck_sigma_y", "y_branch.entropy_bottleneck")
                + _eb("entropy_bottleneck_common_info", "w_bottleneck"))
    else:
        out += (_eb("entropy_bottleneck_hx", "x_branch.entropy_bottleneck") + _eb("entropy_bottleneck_hy", "y_branch.entropy_bottleneck")
                + _eb("entropy_bottleneck", "w_bottleneck"))
    if kind == "cam":
        out += [e for k in range(3) for e in _cross_attention(f"ca{k + 1}", f"cam.{k}")]
    return out


# ---- conversion ----------------------------------------------------------------------------------------
def build_model(kind: str, N: int, image_size: tuple[int, int] = PAPER_IMAGE_SIZE, heads: int = 8) -> torch.nn.Module:
    """The suite's model with the authors' graph (``variant="authors"``), N = M = num_filters."""
    if kind == "cam":
        return NDICCAM(N, N, hyperprior=False, heads=heads, variant="authors", image_size=image_size)
    return NDIC(N, N, hyperprior=kind == "balle2018", variant="authors")


def convert_state_dict(theirs: Mapping[str, torch.Tensor], model: torch.nn.Module, kind: str) -> None:
    """Copy the authors' tensors into ``model`` (built by ``build_model``); every tensor on both sides is used
    exactly once, or WeightsError names what is missing or left over."""
    theirs = authors_keys(theirs)
    ours = model.state_dict()
    table = mapping(kind)
    missing = sorted({t for t, _, _ in table if t not in theirs})
    extra = sorted(set(theirs) - {t for t, _, _ in table})
    learnable = {k for k, _ in model.named_parameters()}
    unfilled = sorted(learnable - {o for _, o, _ in table} - {k for k in learnable if k.endswith("quantiles")})
    if missing or extra or unfilled:
        raise WeightsError(f"the authors' NDIC ({kind}) weights do not match: missing {missing[:6]}, unexpected "
                           f"{extra[:6]}, suite parameters not covered {unfilled[:6]}")
    new = dict(ours)
    for t, o, fn in table:
        value = fn(theirs[t].detach().to(torch.float32))
        if o not in ours or tuple(value.shape) != tuple(ours[o].shape):
            raise WeightsError(f"{t} {tuple(theirs[t].shape)} does not fit {o} "
                               f"{tuple(ours[o].shape) if o in ours else '(absent)'}: built with other sizes?")
        new[o] = value.to(ours[o].dtype)
    model.load_state_dict(new)
    model.eval()
    # coding tables: each converted density's range found by bisection (its median pinned to the integer grid)
    RDCodec._update(model, quantiles=True)


def infer(sd: Mapping[str, torch.Tensor]) -> tuple[str, int]:
    sd = authors_keys(sd)
    kind = detect_kind(sd)
    if "conv1.weight" not in sd:
        raise WeightsError("not an NDIC checkpoint: conv1.weight is missing")
    return kind, int(sd["conv1.weight"].shape[0])


def convert(sd: Mapping[str, torch.Tensor], image_size: tuple[int, int] = PAPER_IMAGE_SIZE) -> torch.nn.Module:
    """The authors' state dict → a suite model (eval mode, coding tables built)."""
    kind, N = infer(sd)
    if kind == "cam":
        pix = int(authors_keys(sd)["ca1.to_patch_embedding_x.1.weight"].shape[1])
        if pix != (image_size[0] // 32) * (image_size[1] // 32):
            raise WeightsError(f"this NDIC-CAM checkpoint was trained at another image size: its first attention "
                               f"embeds patches of {pix} pixels, {image_size[0]}x{image_size[1]} images give "
                               f"{(image_size[0] // 32) * (image_size[1] // 32)}; pass image_size=HxW")
    model = build_model(kind, N, image_size)
    convert_state_dict(sd, model, kind)
    return model
