"""NDIC-CAM (ipc-lab/NDIC-CAM, CADistributedAutoEncoder) at its paper size against ours.

The authors' cross-attention works at one image size; the paper's is 128x256 with num_filters 192 (their
configs/config.yaml). Their model with seeded random weights is converted into ``NDICCAM(variant="authors")``
and both are run on the same inputs in eval mode and in training mode (identical quantisation noise and,
by reseeding before each forward pass, identical dropout masks)."""
from __future__ import annotations

import pytest
import torch

from methods.ndic import convert

from .ndic_helpers import (NUM_FILTERS, PAPER_SIZE, assert_same, assert_same_bits, bits, inputs, report, run_both,
                           seed_authors_model)
from .reference import reference_import


@pytest.fixture(scope="module")
def pair():
    torch.set_num_threads(1)
    with reference_import("ndic-cam", "models.distributed_models.attention_distributed_model") as ref:
        theirs = ref.CADistributedAutoEncoder(num_filters=NUM_FILTERS, image_size=PAPER_SIZE)
        seed_authors_model(theirs, 21)
    sd = theirs.state_dict()
    assert convert.infer(sd) == ("cam", NUM_FILTERS)
    return theirs, convert.convert(sd, image_size=PAPER_SIZE)


@pytest.fixture(scope="module")
def outputs(pair):
    """Both models' outputs on one input pair, in eval and in training mode (computed once: 128x256 attention
    over 3072 tokens per stage takes seconds on a CPU)."""
    theirs, ours = pair
    x, y = inputs(7)
    return {training: run_both(theirs, ours, x, y, training) for training in (False, True)}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.slow
def test_same_function(outputs, training):
    t, o = outputs[training]
    dx, dy = assert_same("x_hat", t[0], o["x_hat"]), assert_same("y_hat", t[1], o["y_hat"])
    assert_same_bits("x latent", bits(t[2]), bits(o["likelihoods"]))
    assert_same_bits("side latent", bits(t[3]), bits(o["likelihoods_y"]))
    rel_w = assert_same_bits("common information w", bits(t[4]), bits(o["likelihoods_w"]))
    report("ndic_cam", training, dx, dy, bits(t[2]), bits(o["likelihoods"]), rel_w)
    assert bits(o["likelihoods"]) > 1000


@pytest.mark.slow
def test_attention_matters(pair, outputs):
    """The x reconstruction depends on the attention weights (so the attention mapping is really tested)."""
    _, ours = pair
    x, y = inputs(7)
    saved = ours.cam[1].to_qkv_y.weight.detach().clone()
    try:
        with torch.no_grad():
            ours.cam[1].to_qkv_y.weight.mul_(1.5)
            after = ours.eval()(x, y)
    finally:
        with torch.no_grad():
            ours.cam[1].to_qkv_y.weight.copy_(saved)
    assert float((outputs[False][1]["x_hat"] - after["x_hat"]).abs().max()) > 1e-3


@pytest.mark.slow
def test_real_bytes_decode_to_the_authors_reconstruction(pair, outputs):
    _, ours = pair
    x, y = inputs(7)
    t = outputs[False][0]
    with torch.no_grad():
        enc = ours.compress(x)
        dec = ours.decompress(enc["strings"], enc["shape"], y)["x_hat"]
    assert_same("decoded x", t[0].clamp(0, 1), dec)


def test_other_image_size_is_refused(pair):
    _, ours = pair
    x, y = inputs(9, size=(64, 128))
    with torch.no_grad(), pytest.raises(ValueError, match="one image size"):
        ours(x, y)
