"""NDIC + Ballé2017 and NDIC + Ballé2018 (ipc-lab/NDIC, models/distributed_model.py) against ours.

The authors' model is built with seeded random weights at the paper's size (num_filters 192, 128x256
inputs), converted by methods/ndic/convert.py into our model's "authors" variant, and both are run on the same
inputs: same reconstructions of x and y, same rate terms (x's transmitted latents, the side view's private
latent, the common information w), in eval mode and in training mode with identical noise."""
from __future__ import annotations

import pytest
import torch

from methods.ndic import convert

from .ndic_helpers import NUM_FILTERS, assert_same, assert_same_bits, bits, inputs, report, run_both, seed_authors_model
from .reference import reference_import


def _authors(kind: str, seed: int):
    with reference_import("ndic", "models.distributed_model") as ref:
        cls = ref.HyperPriorDistributedAutoEncoder if kind == "balle2018" else ref.DistributedAutoEncoder
        model = cls(num_filters=NUM_FILTERS)
        seed_authors_model(model, seed)
    return model


@pytest.fixture(scope="module", params=["balle2017", "balle2018"])
def pair(request):
    kind = request.param
    torch.set_num_threads(1)
    theirs = _authors(kind, seed=11)
    sd = theirs.state_dict()
    assert convert.infer(sd) == (kind, NUM_FILTERS)
    ours = convert.convert(sd)
    return kind, theirs, ours


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_same_function(pair, training):
    kind, theirs, ours = pair
    x, y = inputs(3)
    t, o = run_both(theirs, ours, x, y, training)
    dx, dy = assert_same("x_hat", t[0], o["x_hat"]), assert_same("y_hat", t[1], o["y_hat"])
    if kind == "balle2018":
        x_lik, y_lik, z_lik, z_cor_lik, w_lik = t[2:]
        assert_same_bits("x latent", bits(x_lik), bits(o["likelihoods"]["y"]))
        assert_same_bits("x hyper-latent", bits(z_lik), bits(o["likelihoods"]["z"]))
        assert_same_bits("side latent", bits(y_lik), bits(o["likelihoods_y"]["y"]))
        assert_same_bits("side hyper-latent", bits(z_cor_lik), bits(o["likelihoods_y"]["z"]))
    else:
        x_lik, y_lik, w_lik = t[2:]
        assert_same_bits("x latent", bits(x_lik), bits(o["likelihoods"]))
        assert_same_bits("side latent", bits(y_lik), bits(o["likelihoods_y"]))
    rel_w = assert_same_bits("common information w", bits(w_lik), bits(o["likelihoods_w"]))
    report(f"ndic {kind}", training, dx, dy, bits(t[2]) + (bits(t[4]) if kind == "balle2018" else 0.0),
           bits(o["likelihoods"]), rel_w)
    # the test must be able to fail: x's latent is spread over many quantisation bins, so the rate is not trivial
    assert bits(o["likelihoods"]) > 1000


def test_real_bytes_decode_to_the_authors_reconstruction(pair):
    """Our rANS bytes of x decode to the authors' eval-mode reconstruction (clamped to [0, 1])."""
    kind, theirs, ours = pair
    x, y = inputs(5)
    t, _ = run_both(theirs, ours, x, y, training=False)
    with torch.no_grad():
        enc = ours.compress(x)
        dec = ours.decompress(enc["strings"], enc["shape"], y)["x_hat"]
    assert_same("decoded x", t[0].clamp(0, 1), dec)
    assert all(len(s[0]) > 0 for s in enc["strings"])


def test_wrong_checkpoint_is_refused(pair):
    from benchmark.errors import WeightsError

    kind, theirs, _ = pair
    sd = dict(theirs.state_dict())
    sd.pop("conv2.weight")
    with pytest.raises(WeightsError, match="conv2.weight"):
        convert.convert(sd)
