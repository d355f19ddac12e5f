"""Parity: the authors' Neural DSC (KITTI stereo VQ-VAEs and latent Transformer) against ours after convert.py.

The authors' models are built from their files with seeded random weights, converted, and both run on random
inputs of the paper's KITTI size (x and side view 3 x 128 x 256, latent grids 64x128 / 32x64 / 16x32):

- VQ-VAE, every layout (their 2x, 4x, 8x and big2 files) in every mode (distributed = ``dec_si`` only, joint,
  separate), at narrow widths through their own hyper-parameter overrides, float64: the same reconstruction
  (max abs difference <= 1e-5), the same codebook indices, the same decoding from indices; at the paper's
  widths (big2: 48 channels, 4 residual layers, 64-dim codes) in float32 (<= 1e-4);
- VQ-VAE in training mode: the same straight-through output, the same EMA codebook update (buffers after the
  step) and the same gradients of their loss (MSE + 0.25 commitment) for every mapped parameter;
- prior (their 8x/big2 KITTI setting: dim 128, 4 blocks, 4 heads, 16x32 latents): the same probabilities for
  every position, the same rate (their ceil(sum -log2 p) + 1 per image, and the summed bits within 1e-6
  relative), the same probabilities from our incremental coding pass, real bytes that decode to the same
  indices; in training mode (dropout 0: the dropout masks of the two implementations draw differently) the
  same cross-entropy gradients.

Shims (the reference files are not edited): ``code/utils.py`` imports ``torch.utils.tensorboard`` (a stub
module stands in; tensorboard is not a dependency); the prior hard-codes ``.to('cuda')``, which the test maps
to the CPU while their model is built and run.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from methods.neural_dsc.convert import (CODEBOOK_KEYS, prior_from_authors, prior_key_map, vqvae_from_authors,
                                        vqvae_key_map, vqvae_layout)
from methods.neural_dsc.prior import decode_indices, encode_indices, ideal_bits, to_float64

from .reference import reference_import, seeded_

STUBS = {"torch.utils.tensorboard": {"SummaryWriter": object}}
FILES = {"2x": ("vqvae_kitti_stereo_2x", "VqvaeKittiStereo2x"), "4x": ("vqvae_kitti_stereo_4x", "VqvaeKittiStereo4x"),
         "8x": ("vqvae_kitti_stereo_8x", "VqvaeKittiStereo8x"), "big": ("vqvae_kitti_stereo_big2", "VqvaeKittiStereoBig2")}
SI_FLAGS = {"distributed": (False, True), "joint": (True, True), "separate": (False, False)}  # (enc_si, dec_si)
NARROW = {"ch_hidden": 8, "ch_residual": 8, "cond_ch_in": 8, "num_residual_layers": 2, "embedding_dim": 16}
SHAPE = (3, 128, 256)  # the paper's KITTI inputs (the top half of a 256 x 256 stacked pair; side: the bottom half)


def _scaled_(module: torch.nn.Module, seed: int) -> None:
    """Seeded weights: N(0, 1) / sqrt(fan-in) for weight tensors, 0.1 N(0, 1) for biases and vectors; codebook
    counts positive (they divide the EMA sums)."""
    seeded_(module, seed, scale=1.0, positive=("counts_ema",))
    with torch.no_grad():
        for name, p in list(module.named_parameters()) + list(module.named_buffers()):
            if not p.is_floating_point() or "emb" in name.split(".")[-1]:
                continue
            if p.dim() > 1:
                fan_in = p.shape[0] * p[0, 0].numel() if isinstance(_owner(module, name), torch.nn.ConvTranspose2d) else p[0].numel()
                p.div_(math.sqrt(fan_in))
            elif "counts" not in name:
                p.mul_(0.1)


def _owner(module: torch.nn.Module, name: str) -> torch.nn.Module:
    return module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module


def _authors_vqvae(layout: str, mode: str, bits: int, dtype=torch.float64, **hp) -> torch.nn.Module:
    module, cls = FILES[layout]
    enc_si, dec_si = SI_FLAGS[mode]
    with reference_import("neural-dsc", f"code.arch.{module}", stubs=STUBS) as mod:
        model = getattr(mod, cls)(image_shape=SHAPE, codebook_bits=bits, ch_latent=1, enc_si=enc_si, dec_si=dec_si, **hp)
    model = model.to(dtype)
    _scaled_(model, seed=7)
    return model.eval()


def _pair(seed: int, n: int = 2, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g, dtype=dtype), torch.rand(n, *SHAPE, generator=g, dtype=dtype)


def _check_eval(theirs, ours, x, side, tol: float) -> None:
    with torch.no_grad():
        x_rec, _, _, _, idx = theirs(x - 0.5, side - 0.5)
        out = ours(x, side)
        assert torch.equal(out.indices, idx[:, 0]), "codebook indices differ"
        diff = (out.x_hat - (x_rec + 0.5)).abs().max().item()
        assert diff <= tol, f"reconstruction: max |diff| {diff:.3g}"
        assert torch.equal(ours.encode_indices(x, side if ours.encoder_uses_side else None), idx[:, 0])
        dec = (ours.decode_indices(idx[:, 0], side) - (theirs.decode_indices(idx, side - 0.5) + 0.5)).abs().max().item()
        assert dec <= tol, f"decoding from indices: max |diff| {dec:.3g}"
    # not vacuous: several codes in use, a reconstruction that depends on the input
    assert idx.unique().numel() > 1 and x_rec.std().item() > 1e-3


@pytest.mark.parametrize("layout", list(FILES))
@pytest.mark.parametrize("mode", list(SI_FLAGS))
def test_vqvae_eval_every_layout_and_mode(layout, mode):
    theirs = _authors_vqvae(layout, mode, bits=3, **NARROW)
    lay = vqvae_layout(theirs.state_dict())
    assert (lay["mode"], lay["layout"], lay["ch"], lay["n_res"], lay["bits"]) == (mode, layout, 8, 2, 3)
    ours = vqvae_from_authors(theirs.state_dict()).double()
    assert ours.down == {"2x": 2, "4x": 4, "8x": 8, "big": 8}[layout]
    x, side = _pair(1, n=1)
    _check_eval(theirs, ours, x, side, 1e-5)


def test_vqvae_paper_widths_float32():
    """big2, the architecture of the paper's 8x KITTI models, at its own widths (48 channels, 4 layers)."""
    theirs = _authors_vqvae("big", "distributed", bits=3, dtype=torch.float32)
    sd = theirs.state_dict()
    mapping = vqvae_key_map("big", "distributed", 4)
    assert set(mapping) | set(CODEBOOK_KEYS) == set(sd)
    ours = vqvae_from_authors(sd)
    assert set(mapping.values()) | set(CODEBOOK_KEYS.values()) | {"vq.initialized"} == set(ours.state_dict())
    x, side = _pair(2, n=1, dtype=torch.float32)
    _check_eval(theirs, ours, x, side, 1e-4)


@pytest.mark.parametrize("mode", ["distributed", "joint"])
def test_vqvae_training_step_same_update_and_gradients(mode):
    theirs = _authors_vqvae("big", mode, bits=4, **NARROW)
    ours = vqvae_from_authors(theirs.state_dict()).double()
    theirs.train()
    ours.train()
    x, side = _pair(3)
    x_rec, z_q, _, z_e, idx = theirs(x - 0.5, side - 0.5)
    loss_theirs = (x_rec - (x - 0.5)).pow(2).mean() + 0.25 * (z_q.detach() - z_e).pow(2).mean()  # their train loss
    loss_theirs.backward()
    out = ours(x, side)
    loss_ours = F.mse_loss(out.x_hat, x) + 0.25 * out.commitment
    loss_ours.backward()
    assert torch.equal(out.indices, idx[:, 0])
    assert (out.x_hat - (x_rec + 0.5)).abs().max().item() <= 1e-5
    assert abs(loss_ours.item() - loss_theirs.item()) <= 1e-6 * loss_theirs.item()
    q = theirs.quantizer
    for a, b in ((q.emb.t(), ours.vq.embed), (q.emb_ema.t(), ours.vq.embed_avg), (q.counts_ema, ours.vq.cluster_size)):
        assert (a - b).abs().max().item() <= 1e-8, "EMA codebook update differs"
    theirs_p, ours_p = dict(theirs.named_parameters()), dict(ours.named_parameters())
    for a, b in vqvae_key_map("big", mode, NARROW["num_residual_layers"]).items():
        ga, gb = theirs_p[a].grad, ours_p[b].grad
        assert ga is not None and gb is not None, a
        assert ga.abs().max().item() > 0, f"{a}: no gradient (vacuous)"
        assert (ga - gb).abs().max().item() <= 1e-8 + 1e-6 * ga.abs().max().item(), f"gradient of {a} differs"


# ---------------------------------------------------------------- prior
@pytest.fixture
def cuda_on_cpu(monkeypatch):
    """Their LatentTransformer calls .to('cuda') in __init__ and forward: send those to the CPU."""
    original = torch.Tensor.to

    def to(self, *args, **kwargs):
        args = tuple("cpu" if (isinstance(a, str) and a.startswith("cuda")) else a for a in args)
        if isinstance(kwargs.get("device"), str) and kwargs["device"].startswith("cuda"):
            kwargs["device"] = "cpu"
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)


H, W, BITS, HEADS = 16, 32, 3, 4  # the big2 (8x) KITTI prior: latent 1x16x32, dim 128, 4 blocks, 4 heads


def _authors_prior(dropout: float):
    with reference_import("neural-dsc", "code.arch.latent_transformer", stubs=STUBS) as mod:
        model = mod.LatentTransformer(latent_shape=(1, H, W), codebook_bits=BITS, dropout=dropout, dim=128, n_blocks=4,
                                      n_heads=HEADS, dk=32, dv=32)
    model = model.double()
    pos_enc = model.encoder.pos_enc.clone()  # a fixed buffer, not a weight: keep it
    _scaled_(model, seed=5)
    with torch.no_grad():
        model.encoder.pos_enc.copy_(pos_enc)
        model.embedding.emb.weight.mul_(0.5)
    return model


def _indices(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 2**BITS, (n, H * W), generator=torch.Generator().manual_seed(seed))


def test_prior_same_probabilities_rate_and_bytes(cuda_on_cpu):
    theirs = _authors_prior(0.1).eval()
    sd = theirs.state_dict()
    assert set(prior_key_map(4)) | {"encoder.pos_enc"} == set(sd)
    ours = prior_from_authors(sd, heads=HEADS)
    p64 = to_float64(ours)
    idx = _indices(3, 1)
    with torch.no_grad():
        _, prob = theirs(idx)
        mine = torch.softmax(p64(idx, H, W), -1)
    assert (mine - prob).abs().max().item() <= 1e-6
    assert prob.max().item() - prob.min().item() > 0.05  # not uniform: the test would be vacuous
    got = prob.gather(-1, idx[..., None])[..., 0]
    rate_theirs = ((-got.log2()).sum(dim=1).ceil() + 1)  # their evaluation: bits per image
    for i in range(len(idx)):
        assert ideal_bits(p64, idx[i].numpy(), H, W) == rate_theirs[i].item()
        ours_bits = float(p64.nll_bits(idx[i:i + 1], H, W).sum())
        assert abs(ours_bits - float((-got[i].log2()).sum())) <= 1e-6 * ours_bits
    # the coding path: the incremental float64 pass gives their probabilities, and real bytes decode back
    data, inc = encode_indices(p64, idx[0].numpy(), H, W)  # inc: the probabilities the range coder used
    assert np.abs(inc - prob[0].numpy()).max() <= 1e-6
    assert 8 * len(data) <= rate_theirs[0].item() + 40
    assert np.array_equal(decode_indices(p64, data, H, W), idx[0].numpy())


def test_prior_training_gradients(cuda_on_cpu):
    theirs = _authors_prior(0.0).train()
    ours = prior_from_authors(theirs.state_dict(), heads=HEADS, dropout=0.0).double().train()
    idx = _indices(2, 2)
    logits, _ = theirs(idx)
    F.cross_entropy(logits.permute(0, 2, 1), idx).backward()  # their training loss
    mine = ours(idx, H, W)
    F.cross_entropy(mine.reshape(-1, 2**BITS), idx.reshape(-1)).backward()
    assert (mine - logits).abs().max().item() <= 1e-6
    theirs_p, ours_p = dict(theirs.named_parameters()), dict(ours.named_parameters())
    for a, b in prior_key_map(4).items():
        ga, gb = theirs_p[a].grad, ours_p[b].grad
        assert ga is not None and gb is not None and ga.abs().max().item() > 0, a
        assert (ga - gb).abs().max().item() <= 1e-8 + 1e-6 * ga.abs().max().item(), f"gradient of {a} differs"


def test_authors_checkpoints_to_suite_weights_real_bytes(cuda_on_cpu, tmp_path):
    """Their checkpoint layout (``model_state_dict``) as plain tensors -> suite weights -> the `neural_dsc` codec
    codes real bytes, and decodes what their model decodes from the same indices; a checkpoint that pickles a
    Python object (as theirs does: ``args``, ``stats``) is refused."""
    import argparse

    from benchmark.errors import WeightsError
    from methods.neural_dsc.codec import NeuralDSC
    from methods.neural_dsc.convert import read_authors_checkpoint, save_suite_weights

    hp = {**NARROW, "embedding_dim": 16}
    theirs = _authors_vqvae("big", "distributed", bits=BITS, dtype=torch.float32, **hp)
    with reference_import("neural-dsc", "code.arch.latent_transformer", stubs=STUBS) as mod:
        prior = mod.LatentTransformer(latent_shape=(1, H, W), codebook_bits=BITS, dim=32, n_blocks=2, n_heads=2, dk=16, dv=16,
                                     dff=128)  # their dff default is 512 whatever the dim; ours is 4 x dim
    torch.save({"model_state_dict": theirs.state_dict(), "epoch": 1}, tmp_path / "vq.pt")
    torch.save({"model_state_dict": prior.state_dict(), "step": 1}, tmp_path / "prior.pt")
    save_suite_weights({BITS: (read_authors_checkpoint(tmp_path / "vq.pt"), read_authors_checkpoint(tmp_path / "prior.pt"))},
                       tmp_path / "weights", heads=2)
    codec = NeuralDSC("kitti-stereo/ndic", arch="authors-8x")
    codec.load_weights(tmp_path / "weights")
    x, side = _pair(4, n=1, dtype=torch.float32)
    data = codec.compress(x[0], side=side[0], point=f"bits={BITS}")
    got = codec.decompress(data, side=side[0])
    idx = codec.decode_symbols(data)
    with torch.no_grad():
        _, _, _, _, their_idx = theirs(x - 0.5, side - 0.5)
        want = (theirs.decode_indices(their_idx, side - 0.5) + 0.5).clamp(0, 1)[0]
    assert np.array_equal(idx, their_idx.reshape(-1).numpy())
    assert (got - want).abs().max().item() <= 1e-4
    torch.save({"model_state_dict": theirs.state_dict(), "args": argparse.Namespace(lr=2e-4)}, tmp_path / "pickled.pt")
    with pytest.raises(WeightsError, match="never unpickles"):
        read_authors_checkpoint(tmp_path / "pickled.pt")
