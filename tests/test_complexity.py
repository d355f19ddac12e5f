"""Complexity columns: MACs counted on what compress/decompress run, parameters of the codec's modules."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.evaluation.complexity import count_macs, measure, parameters
from benchmark.contract.data import Sample


def test_count_macs_conv_deconv_linear():
    conv = nn.Conv2d(3, 8, 5, stride=2, padding=2)
    deconv = nn.ConvTranspose2d(8, 3, 5, stride=2, padding=2, output_padding=1)
    lin = nn.Linear(10, 4)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad(), count_macs() as n:
        y = conv(x)
        deconv(y)
        lin(torch.rand(2, 10))
    assert n[0] == 8 * 8 * 8 * (5 * 5 * 3) + 8 * 8 * 8 * (5 * 5 * 3) + 2 * 4 * 10
    with count_macs() as outside:
        pass
    assert outside[0] == 0


def test_learned_codec_complexity_and_classical_has_none():
    from benchmark.contract.registry import get_method

    balle = get_method("balle2018")(**get_method("balle2018").test_options)
    s = Sample(torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)))
    c = measure(balle, s, balle.rate_points()[0], encoder_sees_side=False, decoder_sees_side=False, pixels=64 * 64)
    model_params = parameters(balle)
    assert c["params"] == model_params and model_params > 1000
    # the encoder runs g_a, h_a and h_s (for the scales); the decoder h_s and g_s: both are real work
    assert c["enc_kmac_per_pixel"] > 0 and c["dec_kmac_per_pixel"] > 0

    jpeg = get_method("jpeg")()
    c = measure(jpeg, s, jpeg.rate_points()[0], encoder_sees_side=False, decoder_sees_side=False, pixels=64 * 64)
    assert c["params"] is None and c["enc_kmac_per_pixel"] is None


def test_of_run_record_as_the_runner_writes_it():
    from benchmark.evaluation.complexity import of_run
    from benchmark.contract.registry import get_method, get_protocol

    proto = get_protocol("middlebury-sample/stereo")
    x = torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(1))
    dsi = get_method("ndic_balle2018")
    rec = of_run(dsi(**dsi.test_options), [Sample(x, side=x.flip(-1))], proto)
    assert rec["params"] > 0 and rec["dec_kmac_per_pixel"] > 0 and "error" not in rec
    assert of_run(get_method("jpeg")(), [], proto) is None
