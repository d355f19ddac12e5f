"""layered_wz: configs, real bytes that decode to the encoder's codes, scalable truncation, ideal rates,
training through the shared trainer (temperature schedule survives a resume), weights round trip."""
import math

import numpy as np
import pytest
import torch

from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ConfigError, WeightsError
from benchmark.contract.registry import get_protocol
from datasets.gaussian import GaussianBlocks, draw_pairs
from methods.layered_wz.codec import LayeredWZCodec, parse_config
from methods.layered_wz.configs import BUDGETS, lr_milestones
from methods.layered_wz.model import LayeredWZ, ModelConfig
from methods.layered_wz.scalar_codec import ScalarSWCodec
from methods.layered_wz.train import Annealed, Chunks

PROTO = get_protocol("gaussian/wz")


def _pairs(n=4000, s2=0.1, seed=5):
    x, y = draw_pairs(n, s2, seed)
    return torch.from_numpy(x).float(), torch.from_numpy(y).float()


def _codec(**kw):
    torch.manual_seed(0)
    kw.setdefault("hidden", 8)
    return LayeredWZCodec(PROTO, **kw)


def test_configs():
    assert parse_config("222") == (2, 2, 2) and parse_config("44") == (4, 4) and parse_config("mono16") == (16,)
    for bad in ("24", "mono1", "mono17", "2222222", "abc"):
        with pytest.raises(ConfigError):
            parse_config(bad)
    with pytest.raises(ConfigError):
        _codec(prior="joint")
    with pytest.raises(ConfigError):
        _codec(estimator="reinforce")
    c = _codec(config="222")
    assert c.rate_points() == ["stage=1", "stage=2", "stage=3"] and c.variant == "222.cond.s0.1.lam300.h8"
    # the paper's lr decays: every 40 of 180 epochs (conditional), every 80 (marginal)
    assert lr_milestones("conditional") == pytest.approx((40 / 180, 80 / 180, 120 / 180, 160 / 180))
    assert lr_milestones("marginal") == pytest.approx((80 / 180, 160 / 180))
    assert c.train_config("quick").milestones == lr_milestones("conditional")


@pytest.mark.parametrize("config", ["222", "44", "mono8"])
def test_real_bytes_decode_to_the_same_codes(config):
    """Random weights give unbalanced, history-dependent tables: the range coder must still be exact."""
    c = _codec(config=config)
    x, y = _pairs()
    codes = c.model.encode(x)
    for k in range(1, c.K + 1):
        data = c.compress(x, point=f"stage={k}")
        got, shape = c.decode_codes(data)
        assert shape == tuple(x.shape) and torch.equal(got, codes[:, :k])
        # scalable: truncating the full stream gives exactly the stage-k stream
        full = c.compress(x, point=c.rate_points()[-1])
        assert c.truncate(full, f"stage={k}") == data
    with pytest.raises(BitstreamError):
        c.truncate(c.compress(x, point="stage=1"), c.rate_points()[-1]) if c.K > 1 else c.decompress(b"", side=y)


def test_bytes_match_the_ideal_marginal_code_length():
    """Range coding under the frozen q_m costs the cross-entropy −Σ log2 q_m plus a few words per stage."""
    c = _codec(config="222", prior="marginal")
    x, _ = _pairs(20000)
    data = c.compress(x, point="stage=3")
    ideal = c.estimate_bits(x, point="stage=3")
    payload_bits = 8 * Container.from_bytes(data, "layered_wz").payload_bytes
    assert ideal <= payload_bits + 1 and payload_bits <= ideal * 1.002 + 3 * 64 + 64  # 16-bit tables, 32-bit words
    # the conditional variant's estimate is the q_c (Slepian–Wolf) cross-entropy: it needs y
    cc = _codec(config="222")
    assert cc.estimate_bits(x, point="stage=2") is None
    # its bytes use the frozen integer table q_m: Σ −log2(freq / total) looked up here by hand, plus a few words
    xs, ys = _pairs(5000)
    codes = cc.model.encode(xs).numpy()
    freq = cc.model.qm_freq.double().numpy()
    M, table_bits = cc.M, 0.0
    for n in range(codes.shape[0]):
        row = 0
        for k in range(codes.shape[1]):
            r = sum(M**i for i in range(k)) + row  # rows of stage k follow those of the earlier stages
            table_bits -= math.log2(freq[r, codes[n, k]] / freq[r].sum())
            row = row * M + int(codes[n, k])
    payload_bits = 8 * Container.from_bytes(cc.compress(xs, point="stage=3"), "layered_wz").payload_bytes
    assert table_bits <= payload_bits + 1 and payload_bits <= table_bits * 1.002 + 3 * 64 + 64


def test_decoded_output_and_estimate_agree_with_the_exact_training_objective():
    """With a deterministic encoder (logits scaled up: p(m_k | x) one-hot), the exact objective `loss_exact` —
    every code path decoded in one batch and weighted by P(path | x) — gives per stage the MSE of what the
    bitstream decodes to, and the q_c cross-entropy that estimate_bits reports (summed over stages 1..k)."""
    c = _codec(config="222")
    with torch.no_grad():
        c.model.enc_out.weight.mul_(1e4)
        c.model.enc_out.bias.mul_(1e4)
    x, y = _pairs(400)
    _, parts = c.model.loss_exact(x, y, prior="conditional", lam=10.0)
    for k in range(1, c.K + 1):
        p = f"stage={k}"
        x_hat = c.decompress(c.compress(x, point=p), side=y)
        assert float(((x_hat.double() - x.double()) ** 2).mean()) == pytest.approx(parts["mse"][k - 1], rel=1e-4)
        assert c.estimate_bits(x, side=y, point=p) / x.numel() == pytest.approx(sum(parts["rate"][:k]), rel=1e-3, abs=1e-4)
    # the decoder uses y: another side view gives another output from the same bytes
    data = c.compress(x, point="stage=3")
    assert not torch.equal(c.decompress(data, side=y), c.decompress(data, side=torch.roll(y, 1)))


def test_decoder_refuses_bad_streams():
    c = _codec(config="44")
    x, y = _pairs(500)
    data = c.compress(x, point="stage=2")
    with pytest.raises(ConfigError):
        c.decompress(data)  # a Wyner–Ziv decoder needs y
    with pytest.raises(BitstreamError):  # a stream for other data than the side view
        c.decompress(data, side=y[:10])
    cont = Container.from_bytes(data, "layered_wz")
    for streams, point in ((cont.streams[:1], 1), ([cont.streams[0][:-1], cont.streams[1]], 1), (cont.streams * 2, 3)):
        bad = Container("layered_wz", point, cont.shape, list(streams)).to_bytes()
        with pytest.raises(BitstreamError):
            c.decompress(bad, side=y)


def test_exact_loss_equals_hard_codes_when_the_encoder_is_deterministic():
    torch.manual_seed(1)
    m = LayeredWZ(ModelConfig((2, 2), hidden=8))
    with torch.no_grad():
        m.enc_out.weight.mul_(1e4)  # p(m_k | x) becomes one-hot
        m.enc_out.bias.mul_(1e4)
    x, y = _pairs(300)
    _, parts = m.loss_exact(x, y, prior="conditional", lam=10.0)
    codes = m.encode(x)
    xh = m.reconstruct(codes, y)
    bits = m.code_lengths(codes, y, "conditional").mean(0)
    for k in range(2):
        assert parts["mse"][k] == pytest.approx(float(((xh[k] - x) ** 2).mean()), rel=1e-4)
        assert parts["rate"][k] == pytest.approx(float(bits[k]), rel=1e-3, abs=1e-4)


def test_chunks_and_temperature_schedule():
    ds = GaussianBlocks("train", 0.1, block=2500, n_blocks=3)
    ch = Chunks(ds, 1000)
    assert len(ch) == 6  # 2 whole chunks per block, the tail of 500 is skipped
    assert torch.equal(ch[3].x, ds[1].x[1000:2000]) and torch.equal(ch[3].side, ds[1].side[1000:2000])
    with pytest.raises(ConfigError):
        Chunks(ds, 5000)
    a = Annealed(LayeredWZ(ModelConfig((2,), hidden=4)), steps=11, tau0=1.0, tau1=0.2)
    assert a.tau() == pytest.approx(1.0)
    a.step.fill_(5)
    assert a.tau() == pytest.approx(math.sqrt(0.2))  # exponential: geometric mean halfway
    a.step.fill_(10)
    assert a.tau() == pytest.approx(0.2)
    assert "step" in a.state_dict()  # part of every checkpoint, so a resumed run continues the schedule


def test_smoke_training_weights_roundtrip(tmp_path):
    torch.set_num_threads(1)
    train = GaussianBlocks("train", 0.1, block=2000, n_blocks=20)
    val = GaussianBlocks("val", 0.1, block=2000, n_blocks=1)
    c = _codec(config="44", steps=40)
    before = c.evaluate_ideal(val)
    info = c.fit(train, val, budget="smoke", workdir=tmp_path / "w", seed=3)
    assert info["budget"] == "smoke" and info["seed"] == 3 and info["steps"] == 40
    assert info["steps_taken"] == 40 and info["tau_final"] == pytest.approx(0.2)  # annealed 1.0 -> 0.2
    assert len(info["val"]) == 2 and info["val"][1]["mse"] < before[1]["mse"]  # 40 tiny steps: a start
    x, y = _pairs(3000)
    data = c.compress(x, point="stage=2")
    c.save_weights(tmp_path / "weights")
    d = LayeredWZCodec(PROTO, config="44", hidden=8, steps=40)
    loaded = d.load_weights(tmp_path / "weights")
    assert loaded["budget"] == "smoke" and loaded["seed"] == 3
    assert d.compress(x, point="stage=2") == data
    assert torch.equal(d.decompress(data, side=y), c.decompress(data, side=y))
    for other in ({"config": "222"}, {"lam": 123.0}, {"tau1": 0.5}, {"steps": None}):  # trained with steps=40
        with pytest.raises(WeightsError):
            LayeredWZCodec(PROTO, **{"config": "44", "hidden": 8, "steps": 40, **other}).load_weights(tmp_path / "weights")
    with pytest.raises(ConfigError):  # data of another source than the codec was built for
        LayeredWZCodec(PROTO, sigma2=0.01, hidden=8).fit(train, None, budget="smoke", workdir=tmp_path / "v")
    assert BUDGETS["smoke"].stage().steps < BUDGETS["quick"].stage().steps < BUDGETS["paper"].stage().steps


def test_figure_data_describes_the_quantizer():
    c = _codec(config="222")
    f = c.info()["figure"]
    assert len(f["codes"]) == 3 and all(len(s) == f["x"][2] for s in f["codes"])
    assert sorted(f["recon"]) == sorted(["0", "1"] + [a + b for a in "01" for b in "01"]
                                        + [a + b + d for a in "01" for b in "01" for d in "01"])
    x = torch.linspace(f["x"][0], f["x"][1], f["x"][2])
    assert [int(ch) for ch in f["codes"][1]] == c.model.encode(x)[:, 1].tolist()


def test_scalar_reference_codec_bytes_and_estimate():
    c = ScalarSWCodec(PROTO, sigma2=0.1, rates=(0.5, 1.0))
    x, y = _pairs(20000)
    for p, r in zip(c.rate_points(), (0.5, 1.0)):
        data = c.compress(x, point=p)
        q, delta, _ = c.decode_indices(data)
        assert np.array_equal(q, np.floor(x.double().numpy() / delta + 0.5).astype(np.int64))
        # ideal Slepian–Wolf rate close to its target; bytes pay I(Q;Y) on top (no binning)
        est = c.estimate_bits(x, side=y, point=p) / x.numel()
        assert est == pytest.approx(r, abs=0.03)
        assert 8 * len(data) / x.numel() > est + 0.5


def test_runner_reports_the_ideal_slepian_wolf_rate():
    """The runner hands y to estimate_bits (not to compress) for these codecs: bpp_estimated is H(M|Y)-like."""
    from benchmark.contract.data import Sample
    from benchmark.evaluation.inprocess import evaluate

    x, y = _pairs(3000)
    c = _codec(config="44")
    rows = evaluate(c, [Sample(x=x, side=y, name="b")], PROTO, progress=False)
    want = float(c.model.code_lengths(c.model.encode(x), y, "conditional")[:, :1].sum()) / x.numel()
    r1 = next(r for r in rows if r["rate_point"] == "stage=1")
    assert r1["bpp_estimated"] == pytest.approx(want, rel=1e-6)
    s = ScalarSWCodec(PROTO, sigma2=0.1, rates=(1.0,))
    (row,) = evaluate(s, [Sample(x=x, side=y, name="b")], PROTO, progress=False)
    assert row["bpp_estimated"] == pytest.approx(1.0, abs=0.05)


def test_a_run_with_another_lambda_never_reuses_the_first_runs_weights(tmp_path):
    """λ and every training option are in the weights/result key, and load_weights refuses other λ's weights."""
    import json

    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec

    def spec(lam):
        return RunSpec(method="layered_wz", dataset="gaussian", out=tmp_path, budget="smoke", progress=False,
                       method_options={"config": "222", "hidden": 8, "lam": lam},
                       dataset_options={"block": 1000, "n_blocks": 2})

    p1, r1 = run(spec(10.0))
    p2, r2 = run(spec(1000.0))
    assert p1 != p2 and "lam10" in p1.name and "lam1000" in p2.name
    assert r1["training"]["lam"] == 10.0 and r2["training"]["lam"] == 1000.0  # both trained, none loaded
    assert "loaded_from" not in r2["training"]
    wdir = p1.parent / "weights"
    assert sorted(d.name for d in wdir.iterdir()) == sorted([p1.stem, p2.stem])
    manifests = [json.loads(next((wdir / p.stem).glob("*.json")).read_text()) for p in (p1, p2)]
    assert manifests[0] != manifests[1]
    # the codec refuses the first run's weights when built with the second λ
    with pytest.raises(WeightsError, match="lam"):
        LayeredWZCodec(PROTO, config="222", hidden=8, lam=1000.0).load_weights(wdir / p1.stem)
    # a third run with the first λ loads (does not retrain) the first run's weights
    _, r3 = run(spec(10.0))
    assert r3["training"].get("loaded_from", "").endswith(p1.stem)


def test_range_coded_bytes_within_1_percent_of_the_ideal_marginal_rate_on_a_million_samples():
    """Marginal-prior coder: the real range-coded bytes of 10^6 samples cost at most 1 % more than the ideal rate
    Σ −log2 q_m(m_k | m_<k) (Eq. 12), at every stage."""
    from benchmark.contract.container import Container

    c = _codec(config="222", prior="marginal")
    x, _ = _pairs(1_000_000, seed=11)
    data = c.compress(x, point="stage=3")  # one sub-stream per stage
    streams = Container.from_bytes(data, "layered_wz").streams
    ideal = c.model.code_lengths(c._codes(x, 3), None, "marginal").double().sum(0)  # bits per stage
    for k in range(3):
        real = 8 * len(streams[k])
        assert ideal[k] > 0.05 * x.numel()  # the coder has something to code
        assert ideal[k] * 0.999 <= real <= ideal[k] * 1.01, (k, real / x.numel(), float(ideal[k]) / x.numel())


def test_slepian_wolf_planes_decode_or_report_failure():
    from methods.layered_wz import slepian_wolf as sw

    rng = np.random.default_rng(3)
    n = 3000
    p = rng.beta(0.3, 0.3, n)  # confident and uncertain bits, as q_c gives
    u = (rng.random(n) < p).astype(np.uint8)
    H = float(-np.where(u == 1, np.log2(p), np.log2(1 - p)).mean())
    data = sw.encode_plane(u, H, 0.25)
    got, ok = sw.decode_plane(data, p)
    assert ok and np.array_equal(got, u) and 8 * (len(data) - 8) < n * (H + 0.26) + 8
    # far below the conditional entropy no decoder can succeed: the failure is reported, never silent
    bad, ok = sw.decode_plane(sw.encode_plane(u, H, -0.3), p)
    assert not ok and not np.array_equal(bad, u)
    with pytest.raises(BitstreamError):
        sw.decode_plane(data[:5], p)
    # bit planes of a 4-ary symbol and their conditional probabilities
    probs = rng.dirichlet(np.ones(4), n)
    sym = np.array([rng.choice(4, p=q) for q in probs])
    hi, lo = sw.plane_bits(sym, 4)
    assert np.array_equal(2 * hi + lo, sym)
    assert np.allclose(sw.plane_probability(probs, [], 0, 4), probs[:, 2] + probs[:, 3])
    assert np.allclose(sw.plane_probability(probs, [hi], 1, 4),
                       np.where(hi == 1, probs[:, 3] / (probs[:, 2] + probs[:, 3]), probs[:, 1] / (probs[:, 0] + probs[:, 1])))


def test_slepian_wolf_coder_counts_failures_and_falls_back_to_the_last_decoded_stage():
    x, y = _pairs(3000)
    ok = _codec(config="44", coder="ldpc", sw_margin=0.5)
    assert ok.variant.endswith(".ldpc0.5")
    xh = ok.decompress(ok.compress(x, point="stage=2"), side=y)
    assert torch.equal(xh, ok.model.reconstruct(ok.model.encode(x), y)[-1])
    assert ok.info()["slepian_wolf"]["decoding"]["stage=2"] == {"blocks": 1, "failed": 0, "failed_at_stage1": 0,
                                                                "failed_at_stage2": 0}
    bad = _codec(config="44", coder="ldpc", sw_margin=-0.9)
    xb = bad.decompress(bad.compress(x, point="stage=2"), side=y)
    st = bad.info()["slepian_wolf"]["decoding"]["stage=2"]
    assert st["failed"] == 1 and st["failed_at_stage1"] + st["failed_at_stage2"] == 1
    if st["failed_at_stage1"]:
        assert torch.equal(xb, y)  # nothing decoded: E[X | y] = y
    with pytest.raises(ConfigError):
        _codec(config="44", prior="marginal", coder="ldpc")
