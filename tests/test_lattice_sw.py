"""The LDPC Slepian–Wolf stage of the lattice Wyner–Ziv codes (methods/layered_wz/lattice_sw.py) and the codec
`lattice_wz` (methods/layered_wz/lattice_codec.py): bytes decode to the reconstruction the codec returns, the
rate is the bytes', BP decodes an easy case exactly, wrong side information breaks decoding, and the sub-plane
conditional entropies add up to the ideal Slepian–Wolf rate H(Q|Y)."""
import math

import numpy as np
import pytest
import torch

from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ConfigError
from benchmark.results.bounds import conditional_code_length
from datasets.gaussian import draw_pairs
from methods.layered_wz import slepian_wolf as sw
from methods.layered_wz.lattice import METHOD_TAG, ideal_point
from methods.layered_wz.lattice_codec import LatticeWZCodec
from methods.layered_wz.lattice_sw import LatticeSW, plane_bits, residues


def _pairs(n, sigma2, seed=0):
    x, y = draw_pairs(n, sigma2, (9, seed))  # seed family 9: neither a split nor the design draws
    return x, y


def _codec(**kw):
    return LatticeWZCodec(None, **{"sigma2": 0.1, "lattice": "Z", "scales": [2.5], "planes": 3, **kw})


def test_round_trip_bytes_decode_to_the_codecs_reconstruction_and_the_encoders_points():
    codec = _codec()
    x, y = _pairs(20_000, 0.1)
    data = codec.compress(torch.from_numpy(x).float(), point="scale=2.5")
    xh = codec.decompress(data, side=torch.from_numpy(y).float()).double().numpy()
    code = codec.code(0)
    xs = torch.from_numpy(x).float().double().numpy()  # what the codec saw
    q, _ = code.coords(xs)
    qh, decoded = code.decode(list(Container.from_bytes(data, METHOD_TAG).streams), torch.from_numpy(y).float().double().numpy())
    assert decoded == code.planes and np.array_equal(qh, q)  # every label bit recovered by BP
    assert np.allclose(xh, code.reconstruct(qh, torch.from_numpy(y).float().double().numpy()), atol=1e-6)
    assert codec.sw_stats == {"scale=2.5": {"blocks": 1, "failed": 0}}
    mse = float(((xh - x) ** 2).mean())
    assert mse < 0.4 * 0.1  # far below σ² = E|X − Y|² (−14.7 dB at this step): the label and y are both used


def test_rate_is_the_bytes_of_the_designed_syndromes():
    codec = _codec()
    x, _ = _pairs(20_000, 0.1, seed=1)
    data = codec.compress(torch.from_numpy(x).float(), point="scale=2.5")
    c = Container.from_bytes(data, METHOD_TAG)
    code = codec.code(0)
    N = x.size // code.n
    expected = []
    for j in range(code.planes):
        subs = [sw.syndrome_length(N, float(code.design[j, i]) * (1 + code.rel_margin), code.margin)
                for i in range(code.n) if code.sent()[j, i]]
        expected.append(sum(4 + 8 + (r + 7) // 8 for r in subs))  # length prefix, header (r, CRC-32), syndrome
    assert [len(s) for s in c.streams] == expected
    bits = 8 * len(data)
    assert bits > 8 * sum(expected)  # the container's header is counted too
    assert abs(sum(expected) * 8 / x.size - code.design_rate()) < 0.01  # bytes follow the design rate


def test_bp_decodes_an_easy_e8_case_exactly():
    # easy: 2,000-bit sub-planes with a generous syndrome (1.5·H + 0.03 bits per bit)
    code = LatticeSW("E8", 5.0 * math.sqrt(0.01), 0.01, planes=2, margin=0.03, rel_margin=0.5, calib_samples=16_000)
    x, y = _pairs(16_000, 0.01, seed=2)
    q, _ = code.coords(x)
    qh, decoded = code.decode(code.encode(x), y)
    assert decoded == 2
    assert np.mean(np.any(qh != q, axis=-1)) < 0.005  # only skipped-bit / above-plane errors remain


def test_wrong_side_information_breaks_decoding():
    code = LatticeSW("Z", 2.5 * math.sqrt(0.1), 0.1, planes=3, calib_samples=20_000)
    x, y = _pairs(20_000, 0.1, seed=3)
    streams = code.encode(x)
    _, wrong = _pairs(20_000, 0.1, seed=4)  # side information of other data
    qh_ok, dec_ok = code.decode(streams, y)
    qh_bad, dec_bad = code.decode(streams, wrong)
    assert dec_ok == 3 and dec_bad < 3  # BP does not converge (or the CRC refuses it) without the right y
    mse_ok = float(((code.reconstruct(qh_ok, y) - x) ** 2).mean())
    mse_bad = float(((code.reconstruct(qh_bad, wrong) - x) ** 2).mean())
    assert mse_bad > 10 * mse_ok


def test_z_plane_entropies_sum_to_the_exact_conditional_entropy():
    delta = 1.5 * math.sqrt(0.1)
    code = LatticeSW("Z", delta, 0.1, planes=5, calib_samples=1000)
    x, y = _pairs(40_000, 0.1, seed=5)
    q, a = code.coords(x)
    per_plane = code.code_lengths(a, y.reshape(-1, 1) / code.s) / x.size
    exact = conditional_code_length(q.reshape(-1), y, delta, 0.1) / x.size  # Σ −log2 P(Q = q | y), closed form
    assert per_plane.sum() == pytest.approx(exact, abs=0.005)
    assert per_plane[0, 0] > per_plane[1, 0] > per_plane[2, 0]  # the low planes carry the uncertainty


def test_e8_sub_plane_entropies_sum_to_the_ideal_rate():
    delta = 3.5 * math.sqrt(0.1)
    code = LatticeSW("E8", delta, 0.1, planes=3, calib_samples=24_000)
    ideal = ideal_point("E8", delta, 0.1, n_blocks=3000, m=256)
    assert code.design.sum() / 8 == pytest.approx(ideal["rate"], abs=4 * ideal["rate_se"] + 0.02)


def test_residues_and_bits():
    assert residues(2).tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    a = np.array([[5, -3]])
    assert plane_bits(a, 0).tolist() == [[1, 1]] and plane_bits(a, 1).tolist() == [[0, 0]]  # −3 ≡ 1 (mod 4)
    assert plane_bits(a, 2).tolist() == [[1, 1]]


def test_nested_coder_round_trip_and_bad_input():
    codec = _codec(coder="nested", planes=2, lattice="D4", scales=[3.0], decoder="point")
    x, y = _pairs(4_000, 0.1, seed=6)
    data = codec.compress(torch.from_numpy(x).float(), point="scale=3")
    assert 8 * len(Container.from_bytes(data, METHOD_TAG).streams[0]) == pytest.approx(2 * x.size, abs=8)
    xh = codec.decompress(data, side=torch.from_numpy(y).float()).numpy()
    assert float(((xh - x) ** 2).mean()) < 0.1
    with pytest.raises(BitstreamError):
        codec.decompress(data, side=torch.from_numpy(y[:-4]).float())
    with pytest.raises(ConfigError):
        codec.compress(torch.zeros(6), point="scale=3")  # not whole D4 blocks
    with pytest.raises(ConfigError):
        codec.compress(torch.zeros(8), point="scale=9")
    assert _codec(margin=0.05).variant == "Z.s0.1.ldpc.m0.05.r0.2.k0.002" and _codec().variant == "Z.s0.1.ldpc"
