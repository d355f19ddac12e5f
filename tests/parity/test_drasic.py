"""Parity: the authors' DRASIC (src/models/dist_codec.py, MNIST configuration) against ours after convert.py.

One set of seeded random weights in the authors' model, converted; on random 32x32 one-channel images of M = 4
sources (batch order mixed, so routing to each source's encoder is exercised) both give the same
reconstruction after every iteration and the same code bits, in eval mode (sign binarizer) and in training
mode with the binarizer's uniform draws recorded from the authors' run and replayed in ours, where the
gradients of their loss reach every mapped parameter identically (straight-through estimator).

Shims (the reference files are not edited): ``models/__init__.py`` imports ``.magick`` but the file is
``Magick.py`` (a stub module stands in); their forward scatters with ``encoded[node_indices] = encoded``, which
today's torch refuses (the right-hand side aliases the target), so the test clones the right-hand side of an
aliasing ``Tensor.__setitem__`` (the assignment's intended meaning); ``Model()`` creates ``./output/tmp``, so
it is built inside ``tmp_path``.
"""
from __future__ import annotations

import math

import pytest
import torch

from methods.drasic.convert import authors_key_map, convert_state_dict, from_authors

from .reference import reference_import, seeded_

M = 4  # encoders (the paper uses M in {2, 4, 8, 10})
T = 16  # iterations (the paper's 16 x 0.125 bpp)
LABELS = torch.tensor([2, 0, 3, 1, 0, 2])  # mixed order; every source present


def _clone_aliasing_setitem(monkeypatch):
    original = torch.Tensor.__setitem__

    def setitem(self, index, value):
        if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() == self.untyped_storage().data_ptr():
            value = value.clone()
        return original(self, index, value)

    monkeypatch.setattr(torch.Tensor, "__setitem__", setitem)


def _fan_in_scaled_(module: torch.nn.Module, seed: int) -> None:
    """Seeded N(0, 1) weights divided by sqrt(fan-in), so gates and tanh stay out of saturation."""
    seeded_(module, seed, scale=1.0)
    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else p.numel()
            p.div_(math.sqrt(fan_in))


# Narrow widths for the long runs (all 16 iterations, gradients): the authors' own builder with the sizes of its
# cell list rewritten (the same code path; the paper's widths cost ~1.8 GMAC per image and iteration).
SMALL = {"enc_stem": 4, "enc_hidden": 8, "dec_stem": 8, "dec_hidden": (16, 16, 8)}


def _narrow(cells: dict, channels: int, w: dict) -> None:
    """Rewrite the sizes in the authors' ``config.PARAM['model']`` (positions as in ``dist_codec()``)."""
    s, h, ds, (h1, h2, h3) = w["enc_stem"], w["enc_hidden"], w["dec_stem"], w["dec_hidden"]
    enc = {0: (channels, s), 2: (4 * s, h), 4: (4 * h, h), 6: (4 * h, h), 7: (h, None)}
    dec = {0: (None, ds), 1: (ds, h1), 3: (h1 // 4, h2), 5: (h2 // 4, h3), 7: (h3 // 4, channels)}
    for m, cell_list in enumerate(cells["encoder"]):
        cell_list = [dict(c) for c in cell_list]
        for i, (cin, cout) in enc.items():
            cell_list[i]["input_size"] = cin
            if cout is not None:
                cell_list[i]["output_size"] = cout
        cells["encoder"][m] = tuple(cell_list)
    dec_list = [dict(c) for c in cells["decoder"]]
    for i, (cin, cout) in dec.items():
        if cin is not None:
            dec_list[i]["input_size"] = cin
        dec_list[i]["output_size"] = cout
    cells["decoder"] = tuple(dec_list)


@pytest.fixture
def build_authors(tmp_path, monkeypatch):
    """build(widths=None | SMALL, dtype) -> the authors' distributed MNIST codec with M encoders, seeded weights."""
    _clone_aliasing_setitem(monkeypatch)
    previous = torch.get_default_dtype()

    def build(widths: dict | None = None, dtype: torch.dtype = torch.float64):
        torch.set_default_dtype(dtype)  # their hidden states are created with the default dtype
        with reference_import("drasic", "config", "utils", "models.dist_codec", path="src",
                              stubs={"models.magick": {}}) as (config, utils, dist_codec):
            config.init()
            config.PARAM["control"]["num_node"] = str(M)
            utils.process_control_name()  # MNIST: 1 channel, code_size 8, tanh, no normalization, 16 iterations
            config.PARAM["device"] = "cpu"
            assert config.PARAM["num_iter"] == T and config.PARAM["num_channel"] == 1
            monkeypatch.chdir(tmp_path)  # after the import (BENCH_REFERENCE_CODE may be relative): Model() makes ./output
            if widths is None:
                model = dist_codec.dist_codec()  # the paper's widths
            else:  # fill config.PARAM['model'] without building the paper-width model, narrow it, build
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(dist_codec, "Model", lambda: None)
                    dist_codec.dist_codec()
                _narrow(config.PARAM["model"], 1, widths)
                model = dist_codec.Model()
            _fan_in_scaled_(model, seed=11)
            return model, config

    yield build
    torch.set_default_dtype(previous)


def _ours(model, dtype=torch.float64) -> torch.nn.Module:
    return from_authors(model.state_dict()).to(dtype)


def _capture_codes(model) -> list[torch.Tensor]:
    codes: list[torch.Tensor] = []
    model.model["quantizer"].register_forward_hook(lambda mod, inp, out: codes.append(out.detach().clone()))
    return codes


def _images(n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_paper_widths_mapping_and_eval_float32(build_authors):
    """The paper's widths (7.1 M parameters per encoder, 24.8 M decoder): every tensor mapped, and two
    iterations in float32 give the same reconstruction."""
    authors, config = build_authors(dtype=torch.float32)
    theirs = authors.state_dict()
    assert set(authors_key_map(M)) == set(theirs)
    widths, n, _ = convert_state_dict(theirs)
    assert n == M and widths.authors and (widths.enc_stem, widths.enc_hidden, widths.dec_stem) == (32, 128, 128)
    assert widths.dec_hidden == (512, 512, 128)
    ours = _ours(authors, torch.float32)
    assert set(ours.state_dict()) == set(authors_key_map(M).values())
    config.PARAM["num_iter"] = 2
    labels = torch.tensor([1, 3, 0, 2])
    img = _images(len(labels), 3, torch.float32)
    authors.eval()
    with torch.no_grad():
        out = authors({"img": img, "label": labels})
        mine = ours(2 * img - 1, labels, 2)
    for t in range(2):
        diff = ((mine[t] + 1) / 2 - out["img"][t]).abs().max().item()
        assert diff <= 1e-4, f"iteration {t + 1}: max |diff| {diff:.3g}"
    assert out["img"][-1].std().item() > 1e-3


def test_eval_same_reconstruction_and_code_bits(build_authors):
    authors, _ = build_authors(SMALL)
    ours = _ours(authors)
    img = _images(len(LABELS), 3)
    authors.eval()
    codes = _capture_codes(authors)
    with torch.no_grad():
        out = authors({"img": img, "label": LABELS})
        mine = ours(2 * img - 1, LABELS, T)
    assert len(out["img"]) == len(mine) == T
    for t in range(T):
        diff = ((mine[t] + 1) / 2 - out["img"][t]).abs().max().item()
        assert diff <= 1e-5, f"iteration {t + 1}: max |diff| {diff:.3g}"
    # the code bits (the rate: 8 bits per 8x8 block and iteration), per image through its source's encoder,
    # on the coding path (one image at a time, the encoder running the decoder for its residuals)
    for i, m in enumerate(LABELS.tolist()):
        with torch.no_grad():
            bits, recons = ours.encode(2 * img[i:i + 1] - 1, m, T)
            decoded = ours.decode(bits, m)
        for t in range(T):
            assert torch.equal(bits[t][0], codes[t][i]), f"image {i} (source {m}) iteration {t + 1}: code bits differ"
        assert ((recons[-1][0] + 1) / 2 - out["img"][-1][i]).abs().max().item() <= 1e-5
        assert ((decoded[0] + 1) / 2 - out["img"][-1][i]).abs().max().item() <= 1e-5
    # not vacuous: the codes vary, the reconstruction is not constant and improves over the iterations
    assert 0.2 < (torch.stack(codes) > 0).double().mean().item() < 0.8
    assert out["img"][-1].std().item() > 1e-3


def test_training_mode_same_reconstruction_and_gradients_with_noise_replayed(build_authors):
    authors, _ = build_authors(SMALL)
    ours = _ours(authors)
    noise: list[torch.Tensor] = []

    def record(mod, inputs):  # the draws their Quantize makes next: same generator state, same size and dtype
        state = torch.get_rng_state()
        noise.append(torch.empty_like(inputs[0]).uniform_())
        torch.set_rng_state(state)

    authors.model["quantizer"].register_forward_pre_hook(record)
    codes = _capture_codes(authors)
    authors.train()
    ours.train()
    img = _images(len(LABELS), 5)
    torch.manual_seed(0)
    out = authors({"img": img, "label": LABELS})
    out["loss"].backward()
    mine = ours(2 * img - 1, LABELS, T, noise=noise)
    assert len(noise) == T and len(mine) == T
    loss = sum(((r + 1) / 2 - img).abs().mean() for r in mine) / T  # their loss: L1 in [0, 1], mean over t
    loss.backward()
    for t in range(T):
        assert ((mine[t] + 1) / 2 - out["img"][t]).abs().max().item() <= 1e-5
    assert abs(loss.item() - out["loss"].item()) <= 1e-5 * abs(out["loss"].item())
    # the stochastic binarizer really is stochastic here: some codes differ from the sign of z
    with torch.no_grad():
        signs = []
        for i, m in enumerate(LABELS.tolist()):
            signs.append(ours.eval().encode(2 * img[i:i + 1] - 1, m, 1)[0][0][0])
        ours.train()
    assert not torch.equal(torch.stack(signs), codes[0])
    theirs_p, ours_p = dict(authors.named_parameters()), dict(ours.named_parameters())
    for a, b in authors_key_map(M).items():
        ga, gb = theirs_p[a].grad, ours_p[b].grad
        assert ga is not None and gb is not None, a
        scale = ga.abs().max().item()
        assert scale > 0, f"{a}: no gradient (vacuous)"
        assert (ga - gb).abs().max().item() <= 1e-5 * max(1.0, scale), f"gradient of {a} differs"


def test_authors_checkpoint_file_to_suite_weights_and_pickle_refused(tmp_path):
    """Without the reference code: a plain-tensor file in the authors' layout becomes suite weights that code
    real bytes; a checkpoint that pickles a Python object (as theirs does: config, logger) is refused."""
    import argparse

    from benchmark.errors import WeightsError
    from methods.drasic.codec import DRASICCodec
    from methods.drasic.convert import read_authors_checkpoint, save_suite_weights
    from methods.drasic.model import DRASIC, Widths

    torch.manual_seed(0)
    model = DRASIC(Widths(**SMALL, authors=True), 2, 1)
    theirs = {a: model.state_dict()[b] for a, b in authors_key_map(2).items()}
    torch.save({"model_dict": theirs, "epoch": 3}, tmp_path / "plain.pt")
    save_suite_weights(read_authors_checkpoint(tmp_path / "plain.pt"), tmp_path / "weights")
    codec = DRASICCodec("mnist/drasic-class", sources=2)
    codec.load_weights(tmp_path / "weights")
    x = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(1))
    data = codec.compress(x, source=1, point="iter=16")
    with torch.no_grad():
        _, recons = model.encode(2 * x[None] - 1, 1, 16)
    assert torch.equal(codec.decompress(data, source=1), ((recons[-1][0] + 1) / 2).clamp(0, 1))
    torch.save({"model_dict": theirs, "config": argparse.Namespace(lr=1e-3)}, tmp_path / "pickled.pt")
    with pytest.raises(WeightsError, match="never unpickles"):
        read_authors_checkpoint(tmp_path / "pickled.pt")
