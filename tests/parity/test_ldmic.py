"""LDMIC (Xinjie-Q/LDMIC, models/ldmic.py) against ours (methods/ldmic).

The authors' ``LDMIC``, ``LDMIC_checkboard`` and ``Multi_LDMIC`` are built with seeded weights (every parameter
perturbed, so that no constant-initialised layer hides a wrong mapping), converted by methods/ldmic/convert.py,
and run next to ours: same reconstructions and likelihoods in the forward pass (eval mode), and — where the
authors have ``compress``/``decompress`` (the two-view models) — the same rANS strings per view and the same
decoded images. A converter with two blocks swapped must fail the comparison.

The authors' file imports deepspeed (for a FLOP profiler the model never calls) and ``compressai.ops.ste_round``
(CompressAI 1.2.8 calls it ``quantize_ste``): both are shimmed here; the reference files are not edited."""
from __future__ import annotations

import functools

import compressai.ops
import pytest
import torch

from methods.ldmic import convert

from .reference import reference_import, stub_module

N, M = 48, 64  # unequal, so that an N/M mix-up cannot pass
STUBS = {
    "deepspeed": {},
    "deepspeed.profiling": {},
    "deepspeed.profiling.flops_profiler": {"get_model_profile": None},
}


def _ops_shim():
    return stub_module("compressai.ops", **{k: v for k, v in vars(compressai.ops).items() if not k.startswith("__")},
                       ste_round=compressai.ops.quantize_ste)


def _perturb_(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "quantiles" in name:  # the bottleneck's quantiles must stay ordered
                continue
            p.add_(0.02 * torch.randn(p.shape, generator=g))


def _authors(cls_name: str, seed: int):
    with reference_import("ldmic", "ldmic", path="models", stubs={**STUBS, "compressai.ops": _ops_shim()}) as ref:
        torch.manual_seed(seed)
        model = getattr(ref, cls_name)(N=N, M=M)
        _perturb_(model, seed)
        model.eval()
    return model


def _views(k: int, seed: int, h: int = 128, w: int = 192) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h, w + 16 * k, generator=g)
    # overlapping crops of one picture: correlated views, as a camera array sees them
    return [(base[..., 16 * i:16 * i + w] + 0.02 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1) for i in range(k)]


def _bits(lik: torch.Tensor) -> float:
    return float(-torch.log2(lik).sum())


def _same(what: str, a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> float:
    d = float((a - b).abs().max())
    assert d <= tol, f"{what}: max |difference| {d:.3g} > {tol}"
    return d


@functools.lru_cache(maxsize=None)
def _pair(name: str):
    torch.set_num_threads(1)
    theirs = _authors(name, seed=5)
    views = 3 if name.startswith("Multi") else 2
    with torch.no_grad():
        theirs(_views(views, 0))  # their masked convolutions mask their kernels in place on the first forward
    theirs.update(force=True)  # CompressAI's default tables, stored in the state dict, hence in ours too
    ours = convert.convert(theirs.state_dict())
    return name, views, theirs, ours


@pytest.fixture(params=["LDMIC", "LDMIC_checkboard", "Multi_LDMIC"])
def pair(request):
    return _pair(request.param)


def test_same_forward(pair):
    name, views, theirs, ours = pair
    xs = _views(views, 1)
    with torch.no_grad():
        t, o = theirs(xs), ours(xs)
    for v in range(views):
        _same(f"{name} x_hat view {v}", t["x_hat"][v], o["x_hat"][v])
        for key in ("y", "z"):
            bt, bo = _bits(t["likelihoods"][v][key]), _bits(o["likelihoods"][v][key])
            assert abs(bt - bo) <= 1e-4 * bt, f"{name} {key} bits of view {v}: {bt} (theirs) vs {bo} (ours)"
    # the comparison is not trivial: the latents cost real bits and the views are reconstructed differently
    assert _bits(o["likelihoods"][0]["y"]) > 1000
    assert float((o["x_hat"][0] - o["x_hat"][1]).abs().max()) > 1e-3


@pytest.mark.parametrize("model", ["LDMIC", "LDMIC_checkboard"])  # Multi_LDMIC has no compress/decompress
def test_same_strings_and_decoded_images(model):
    name, views, theirs, ours = _pair(model)
    xs = _views(2, 2)
    with torch.no_grad():
        left, right = theirs.compress(xs)
        t_hat = theirs.decompress(left, right)["x_hat"]
        ours_strings = [ours.encode_view(x) for x in xs]
        z_shape = tuple(left["shape"])
        o_hat = ours.decode_views(ours_strings, [z_shape, z_shape])
    for v, d in enumerate((left, right)):
        their_strings = [s[0] for s in d["strings"]]  # one image per batch: [y] + [z] or [a], [b], [c], [d], [z]
        assert [len(s) for s in ours_strings[v]] == [len(s) for s in their_strings], f"{name} view {v}: string lengths"
        assert ours_strings[v] == their_strings, f"{name} view {v}: the rANS strings differ"
        _same(f"{name} decoded view {v}", t_hat[v].clamp(0, 1), o_hat[v].clamp(0, 1))
    assert sum(len(s) for s in ours_strings[0]) > 100


def test_a_swapped_mapping_fails(pair):
    """The two residual blocks of each JCT module swapped in the converter: the forward comparison must fail."""
    name, views, theirs, ours = pair
    swapped = tuple((t, o.replace("rb.0", "rb.X").replace("rb.1", "rb.0").replace("rb.X", "rb.1"))
                    for t, o in convert.RULES)
    if name.startswith("Multi"):  # the authors' multi-view JCT names them rb.0/rb.1 already
        swapped = (("atten_3.rb.0.", "jct_latent.rb.1."), ("atten_3.rb.1.", "jct_latent.rb.0."), *convert.RULES)
    wrong = convert.convert(theirs.state_dict(), rules=swapped)
    xs = _views(views, 1)
    with torch.no_grad():
        t, o = theirs(xs), wrong(xs)
    with pytest.raises(AssertionError):
        _same(f"{name} x_hat view 0 (swapped)", t["x_hat"][0], o["x_hat"][0])


def test_a_foreign_state_dict_is_refused(pair):
    from benchmark.errors import WeightsError

    _, _, theirs, _ = pair
    sd = dict(theirs.state_dict())
    sd["unknown.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="unknown.weight"):
        convert.convert(sd)
    sd.pop("unknown.weight")
    sd.pop("decoder_2.0.weight")
    with pytest.raises(WeightsError, match="g_s2.0.weight"):
        convert.convert(sd)
