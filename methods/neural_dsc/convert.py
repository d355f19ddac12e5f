"""The authors' Neural DSC weights -> this suite's `AuthorsVQVAE` and `CausalTransformerPrior(style="authors")`.

Sources (the authors' ``acnagle/neural-dsc`` code): the KITTI stereo VQ-VAEs ``code/arch/vqvae_kitti_stereo_2x.py``,
``_4x.py``, ``_8x.py`` and ``_big.py`` / ``_big2.py`` (one latent channel, ``ch_latent=1``; the codebook is
``VectorQuantizerEMA`` of ``code/vqvae.py``) and the prior ``code/arch/latent_transformer.py``
(``LatentTransformer``). Their state dicts (what their scripts store under ``model_state_dict``) map as:

=====================================================  =====================================================
authors                                                ours (`AuthorsVQVAE`)
=====================================================  =====================================================
``si_net.conv_in`` / ``si_net.res``                    ``si.0`` / ``si.1``
``encoder.conv_in`` / ``encoder.cond_conv_in``         ``encoder.stem`` / ``encoder.side_stem`` (joint)
``encoder.res<i>`` / ``encoder.conv<i>``               ``encoder.res.<i-1>`` / ``encoder.down.<i-1>``
``z_proj``                                             ``pre_vq``
``quantizer.emb`` / ``emb_ema`` (D x K)                ``vq.embed`` / ``vq.embed_avg`` (K x D, transposed)
``quantizer.counts_ema``                               ``vq.cluster_size``
``decoder.conv_in`` / ``decoder.cond_conv_in.<k>``     ``decoder.stem`` / ``decoder.side.<k>``
``decoder.tconv<i>`` / ``decoder.res<i>``              ``decoder.up.<i-1>`` / ``decoder.res.<i-1>``
``decoder.cond_out``                                   ``decoder.out``
``....layers.<j>.1`` / ``....layers.<j>.3``            ``....layers.<j>.conv3`` / ``....layers.<j>.conv1``
``embedding.emb``                                      ``tok``
``blocks.<i>.multi_head_attn.in_proj_*`` / ``out_proj``  ``blocks.<i>.qkv`` / ``blocks.<i>.proj``
``blocks.<i>.layernorm1`` / ``layernorm2``             ``blocks.<i>.ln1`` / ``blocks.<i>.ln2`` (post-norm)
``blocks.<i>.feedforward.0`` / ``.2``                  ``blocks.<i>.mlp.0`` / ``.2``
``linear``                                             ``head``
``encoder.pos_enc`` (buffer)                           computed (`sinusoid_1d`); checked equal, not copied
=====================================================  =====================================================

The layout, widths, codebook size and mode are read from the tensor shapes; the number of attention heads is
not stored in a state dict and must be given (their ``latent_hparams.json``: ``n_heads``). Their checkpoint
files also pickle their statistics and arguments: see :func:`read_authors_checkpoint`.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from benchmark.errors import WeightsError
from benchmark.safety.plain_checkpoint import read_plain_state_dict

from .model import AUTHORS_LAYOUTS, AuthorsVQVAE
from .prior import CausalTransformerPrior, sinusoid_1d

_RES = {"1": "conv3", "3": "conv1"}  # the authors' ResidualBlock Sequential: [act, conv3x3, act, conv1x1]


def _res_keys(theirs: str, ours: str, n_res: int) -> dict[str, str]:
    return {f"{theirs}.layers.{j}.{a}.{p}": f"{ours}.layers.{j}.{b}.{p}"
            for j in range(n_res) for a, b in _RES.items() for p in ("weight", "bias")}


def _conv_keys(theirs: str, ours: str) -> dict[str, str]:
    return {f"{theirs}.{p}": f"{ours}.{p}" for p in ("weight", "bias")}


def vqvae_key_map(layout: str, mode: str, n_res: int) -> dict[str, str]:
    """{authors' name: our name} for the parameters of a KITTI VQ-VAE (the codebook buffers are separate)."""
    spec = AUTHORS_LAYOUTS[layout]
    n = len(spec["enc"]) - 1
    out: dict[str, str] = {}
    if mode != "separate":
        out |= _conv_keys("si_net.conv_in", "si.0") | _res_keys("si_net.res", "si.1", n_res)
        out |= _conv_keys("decoder.cond_conv_in.0", "decoder.side.0")
        for i in range(n):
            out |= _res_keys(f"decoder.cond_conv_in.{2 * i + 1}", f"decoder.side.{2 * i + 1}", n_res)
            out |= _conv_keys(f"decoder.cond_conv_in.{2 * i + 2}", f"decoder.side.{2 * i + 2}")
    out |= _conv_keys("encoder.conv_in", "encoder.stem")
    if mode == "joint":
        out |= _conv_keys("encoder.cond_conv_in", "encoder.side_stem")
    for i in range(n):
        out |= _res_keys(f"encoder.res{i + 1}", f"encoder.res.{i}", n_res) | _conv_keys(f"encoder.conv{i + 1}", f"encoder.down.{i}")
        out |= _conv_keys(f"decoder.tconv{i + 1}", f"decoder.up.{i}") | _res_keys(f"decoder.res{i + 1}", f"decoder.res.{i}", n_res)
    out |= _conv_keys("z_proj", "pre_vq") | _conv_keys("decoder.conv_in", "decoder.stem") | _conv_keys("decoder.cond_out", "decoder.out")
    return out


CODEBOOK_KEYS = {"quantizer.emb": "vq.embed", "quantizer.emb_ema": "vq.embed_avg", "quantizer.counts_ema": "vq.cluster_size"}


def _need(sd: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise WeightsError(f"neural_dsc authors' {what} state dict: no {key!r}")
    return sd[key]


def vqvae_layout(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """mode, layout, ch, n_res, emb_dim and bits of the authors' KITTI VQ-VAE, read from its tensor shapes."""
    what = "VQ-VAE"
    ch = 2 * int(_need(sd, "encoder.conv_in.weight", what).shape[0])
    n = len({k.split(".")[1] for k in sd if re.match(r"encoder\.conv\d+\.weight$", k)})
    n_res = len({k.split(".")[3] for k in sd if k.startswith("encoder.res1.layers.")})
    emb = _need(sd, "quantizer.emb", what)
    emb_dim, K = (int(v) for v in emb.shape)
    bits = int(round(math.log2(K))) if K > 1 else 0
    if 2**bits != K:
        raise WeightsError(f"neural_dsc authors' VQ-VAE: codebook size {K} is not a power of two")
    last = int(_need(sd, f"encoder.conv{n}.weight", what).shape[0]) // ch if n else 0
    layouts = [name for name, spec in AUTHORS_LAYOUTS.items() if len(spec["enc"]) == n + 1 and spec["enc"][-1] == last]
    if len(layouts) != 1:
        raise WeightsError(f"neural_dsc authors' VQ-VAE: {n} stride-2 stages ending at {last} x {ch} channels match none "
                           f"of the KITTI layouts {', '.join(AUTHORS_LAYOUTS)}")
    if int(_need(sd, "encoder.res1.layers.0.1.weight", what).shape[0]) != ch:
        raise WeightsError("neural_dsc authors' VQ-VAE: ch_residual differs from ch_hidden; the suite's layout has them equal")
    if int(_need(sd, "z_proj.weight", what).shape[0]) != emb_dim:
        raise WeightsError("neural_dsc authors' VQ-VAE has ch_latent > 1 (several indices per position); the suite "
                           "codes one latent channel")
    enc_si, dec_si = "encoder.cond_conv_in.weight" in sd, "decoder.cond_conv_in.0.weight" in sd
    if enc_si and not dec_si:
        raise WeightsError("neural_dsc authors' VQ-VAE has side information at the encoder only (enc_si=True, "
                           "dec_si=False), which is none of the suite's modes")
    if dec_si and int(_need(sd, "si_net.conv_in.weight", what).shape[0]) != ch:
        raise WeightsError("neural_dsc authors' VQ-VAE: cond_ch_in differs from ch_hidden; the suite's layout has them equal")
    mode = "joint" if enc_si else "distributed" if dec_si else "separate"
    return {"mode": mode, "layout": layouts[0], "ch": ch, "n_res": n_res, "emb_dim": emb_dim, "bits": bits}


def _load(model: torch.nn.Module, ours: dict[str, torch.Tensor], what: str) -> None:
    """Load ``ours`` into ``model``, whose floating tensors take the dtype of the converted ones."""
    dtypes = {v.dtype for v in ours.values() if v.is_floating_point()}
    if len(dtypes) == 1:
        model.to(dtypes.pop())
    own = model.state_dict()
    missing = sorted(set(own) - set(ours))
    if missing:
        raise WeightsError(f"neural_dsc authors' {what}: nothing maps onto {missing[:5]}")
    for k, v in ours.items():
        if own[k].shape != v.shape:
            raise WeightsError(f"neural_dsc authors' {what}: {k} would get shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in ours.items()}, strict=True)


def _mapped(sd: Mapping[str, torch.Tensor], mapping: Mapping[str, str], what: str, ignore: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    extra = sorted(set(sd) - set(mapping) - set(ignore))
    if extra:
        raise WeightsError(f"neural_dsc authors' {what} state dict has entries this conversion does not know: {extra[:5]}")
    return {ours: _need(sd, theirs, what).detach().clone() for theirs, ours in mapping.items()}


def vqvae_from_authors(sd: Mapping[str, torch.Tensor]) -> AuthorsVQVAE:
    """Our `AuthorsVQVAE` computing the authors' KITTI VQ-VAE, in eval mode (their EMA decay is a
    hyper-parameter, not in the state dict: set ``model.vq.decay`` before training it further)."""
    lay = vqvae_layout(sd)
    model = AuthorsVQVAE(lay["mode"], lay["bits"], lay["layout"], lay["ch"], lay["n_res"], lay["emb_dim"])
    mapping = vqvae_key_map(lay["layout"], lay["mode"], lay["n_res"])
    ours = _mapped(sd, {**mapping, **CODEBOOK_KEYS}, "VQ-VAE")
    ours["vq.embed"], ours["vq.embed_avg"] = ours["vq.embed"].t().contiguous(), ours["vq.embed_avg"].t().contiguous()
    ours["vq.initialized"] = torch.ones((), dtype=torch.long)  # never re-initialise converted codebooks from data
    _load(model, ours, "VQ-VAE")
    return model.eval()


def prior_key_map(layers: int) -> dict[str, str]:
    """{authors' name: our name} for ``LatentTransformer`` with ``layers`` blocks."""
    out = {"embedding.emb.weight": "tok.weight", "linear.weight": "head.weight", "linear.bias": "head.bias"}
    for i in range(layers):
        a, b = f"blocks.{i}.", f"blocks.{i}."
        out |= {a + "multi_head_attn.in_proj_weight": b + "qkv.weight", a + "multi_head_attn.in_proj_bias": b + "qkv.bias"}
        out |= _conv_keys(a + "multi_head_attn.out_proj", b + "proj")
        out |= _conv_keys(a + "layernorm1", b + "ln1") | _conv_keys(a + "layernorm2", b + "ln2")
        out |= _conv_keys(a + "feedforward.0", b + "mlp.0") | _conv_keys(a + "feedforward.2", b + "mlp.2")
    return out


def prior_from_authors(sd: Mapping[str, torch.Tensor], heads: int, dropout: float = 0.1) -> CausalTransformerPrior:
    """Our prior (``style="authors"``) computing the authors' ``LatentTransformer``, in eval mode. ``heads``: their
    ``n_heads`` (not stored in a state dict)."""
    tok = _need(sd, "embedding.emb.weight", "prior")
    K, dim = int(tok.shape[0]) - 1, int(tok.shape[1])
    layers = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    if dim % heads:
        raise WeightsError(f"neural_dsc authors' prior: dim {dim} is not divisible by {heads} heads")
    if int(_need(sd, "blocks.0.feedforward.0.weight", "prior").shape[0]) != 4 * dim:
        raise WeightsError("neural_dsc authors' prior: feed-forward width is not 4 x dim (their dff default); unsupported")
    pe = sd.get("encoder.pos_enc")
    if pe is not None:
        expect = sinusoid_1d(pe.shape[0], dim, torch.float32).double()  # theirs is computed in float32 too
        if pe.shape[1] != dim or (pe.double() - expect).abs().max().item() > 1e-6:
            raise WeightsError("neural_dsc authors' prior: encoder.pos_enc is not the sinusoidal encoding this conversion computes")
    model = CausalTransformerPrior(K, dim, layers, heads, dropout, style="authors")
    _load(model, _mapped(sd, prior_key_map(layers), "prior", ignore=("encoder.pos_enc",)), "prior")
    return model.eval()


def read_authors_checkpoint(path: Path | str, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model state dict in a file of plain tensors (``torch.load(weights_only=True)``, or safetensors).

    Their ``ckpt_ep=..._step=....pt`` files also hold their training statistics and arguments (``stats``,
    ``args``), Python objects that only unpickling restores: such a file is refused with WeightsError; save
    ``ckpt['model_state_dict']`` alone in their environment first."""
    return read_plain_state_dict(path, what=f"neural_dsc authors' {what}", nested=("model_state_dict", "state_dict"))


# our registered arch names for the authors' layouts (configs.KITTI_ARCHS)
ARCH_NAMES = {"big": "authors-8x", "4x": "authors-4x", "2x": "authors-2x"}


def save_suite_weights(points: Mapping[int, tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]]],
                       directory: Path | str, *, heads: int, protocol: str = "kitti-stereo/ndic") -> Path:
    """Convert the authors' models, one (VQ-VAE state dict, prior state dict) per codebook size ``bits``, and save
    them as suite weights for ``bench run --method neural_dsc[_joint|_separate] --option arch=authors-<8x|4x|2x>
    --weights <directory>``. All points must share the mode, layout and widths (one run of their script each)."""
    from .codec import NeuralDSC
    from .configs import Arch

    if not points:
        raise WeightsError("neural_dsc: no models to convert")
    models, layouts = {}, set()
    for bits, (vq_sd, prior_sd) in sorted(points.items()):
        vq = vqvae_from_authors(vq_sd).float()
        prior = prior_from_authors(prior_sd, heads).float()
        lay = vqvae_layout(vq_sd)
        if lay["bits"] != int(bits) or prior.K != 2 ** int(bits):
            raise WeightsError(f"neural_dsc: the models given for bits={bits} have codebooks of {2 ** lay['bits']} and "
                               f"{prior.K} entries")
        layouts.add((lay["mode"], lay["layout"], lay["ch"], lay["n_res"], lay["emb_dim"], prior.dim, len(prior.blocks)))
        models[int(bits)] = (vq, prior)
    if len(layouts) != 1:
        raise WeightsError(f"neural_dsc: the converted models differ in mode / layout / widths: {sorted(layouts)}")
    mode, layout, ch, n_res, emb_dim, prior_dim, prior_layers = layouts.pop()
    if layout not in ARCH_NAMES:
        raise WeightsError(f"neural_dsc: the authors' {layout!r} layout is not one of the suite's architectures "
                           f"({', '.join(ARCH_NAMES)}); it converts (vqvae_from_authors) but has no arch name to run under")
    arch = Arch(down=next(iter(models.values()))[0].down, ch=ch, n_res=n_res, emb_dim=emb_dim, prior_dim=prior_dim,
                prior_layers=prior_layers, prior_heads=heads, family=f"authors-{layout}", prior_style="authors")
    codec = NeuralDSC(protocol, mode=mode, arch=ARCH_NAMES[layout], bits=sorted(models))
    codec._instantiate(arch, tuple(sorted(models)))
    codec.models = {f"bits={b}": m for b, m in sorted(models.items())}
    codec.training_info = {"converted_from": "authors' code/arch/vqvae_kitti_stereo_*.py and latent_transformer.py state dicts"}
    return codec.save_weights(Path(directory))
