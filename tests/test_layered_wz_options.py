"""layered_wz training options of issue 29: the paper-faithful networks (`faithful=true`), the exact expectation over
codes (`estimator=exact`) checked against a brute-force enumeration, relaxed-then-hard samples (`estimator=anneal`),
the relaxation-leak diagnostic every training records, and weights saved before these options existed."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.contract.registry import get_protocol
from benchmark.errors import ConfigError, WeightsError
from benchmark.results.bounds import wz_distortion_db
from datasets.gaussian import GaussianBlocks, draw_pairs
from methods.layered_wz.codec import LayeredWZCodec
from methods.layered_wz.model import LN2, LayeredWZ, ModelConfig
from methods.layered_wz.train import (
    Annealed,
    make_loss_fn,
    relaxation_leak,
    samples_hard,
)

PROTO = get_protocol("gaussian/wz")


def _pairs(n, s2=0.1, seed=5):
    x, y = draw_pairs(n, s2, seed)
    return torch.from_numpy(x).float(), torch.from_numpy(y).float()


def test_faithful_is_the_papers_network_and_changes_the_model():
    torch.manual_seed(0)
    ours = LayeredWZCodec(PROTO, config="222", hidden=8, sigma2=0.01)
    torch.manual_seed(0)
    paper = LayeredWZCodec(PROTO, config="222", hidden=8, sigma2=0.01, faithful=True)
    assert ours.model.cfg.in_scale == pytest.approx(10.0) and ours.model.cfg.residual
    assert paper.model.cfg.in_scale == 1.0 and not paper.model.cfg.residual and paper.model.cfg.cell == "elman"
    assert ours.variant == "222.cond.s0.01.lam3000.h8" and paper.variant == "222.cond.s0.01.lam3000.faithful.h8"
    # the same parameters (same seed, same shapes), another function: inputs unscaled, x̂ is the decoder's output itself
    for a, b in zip(ours.model.parameters(), paper.model.parameters()):
        assert torch.equal(a, b)
    x, y = _pairs(200, 0.01)
    codes = paper.model.encode(x)
    g = paper.model.reconstruct(codes, y)[-1]
    h = ours.model.reconstruct(codes, y)[-1]
    assert not torch.allclose(g, h)
    with torch.no_grad():  # faithful: x̂ = g(h(y, m)) with y unscaled; ours: y + g(h(y/σ, m))·σ
        st = paper.model.dec.init_state(len(y), y.unsqueeze(-1))
        for m in paper.model.one_hot(codes):
            out, st = paper.model.dec.step(torch.cat([y.unsqueeze(-1), m], -1), st)
        assert torch.allclose(g, paper.model.dec_out(out).squeeze(-1), atol=1e-6)
    for bad in ({"in_scale": 2.0}, {"cell": "gru"}):
        with pytest.raises(ConfigError, match="faithful"):
            LayeredWZCodec(PROTO, faithful=True, **bad)


def _brute_force_loss(m: LayeredWZ, x, y, prior: str, lam: float) -> tuple[torch.Tensor, list[float], list[float]]:
    """Σ over every code path, one sample at a time, of P(path | x) × Σ_k [KL_k/ln2 + λ·(x̂_k − x)² + CE_other_k/ln2]
    (the other prior's cross-entropy with the encoder's probabilities held fixed, as in training)."""
    K, M = m.cfg.K, m.cfg.M
    other = "marginal" if prior == "conditional" else "conditional"
    total, rates, mses = 0.0, [0.0] * K, [0.0] * K
    for i in range(len(x)):
        xi, yi = x[i : i + 1], y[i : i + 1]
        logp = [F.log_softmax(v, -1)[0] for v in m.encoder_logits(xi)]
        for path in torch.cartesian_prod(*[torch.arange(M)] * K).reshape(-1, K).tolist():
            prob = torch.stack([logp[k][path[k]] for k in range(K)]).sum().exp()
            codes = [F.one_hot(torch.tensor([c]), M).float() for c in path]
            xh = m.decode(yi, codes)
            qa = m.prior_logits(codes[:-1], yi, prior, 1, K)
            qb = m.prior_logits(codes[:-1], yi, other, 1, K)
            for k in range(K):
                p = logp[k].exp()
                kl = (p * (logp[k] - qa[k][0])).sum() / LN2
                se = (xh[k][0] - xi[0]) ** 2
                ce = -(p.detach() * qb[k][0]).sum() / LN2
                total = total + (prob * (kl + lam * se) + prob.detach() * ce) / len(x)
                rates[k] += float(prob * kl) / len(x)
                mses[k] += float(prob * se) / len(x)
    return total, rates, mses


@pytest.mark.parametrize("config,prior", [((2, 2, 2), "conditional"), ((4, 4), "marginal"), ((3,), "conditional")])
def test_exact_expectation_equals_brute_force_enumeration_of_code_paths(config, prior):
    torch.manual_seed(2)
    m = LayeredWZ(ModelConfig(config, hidden=5, in_scale=3.0, residual=True))
    x, y = _pairs(4)
    loss, parts = m.loss_exact(x, y, prior=prior, lam=7.0)
    total, rates, mses = _brute_force_loss(m, x, y, prior, 7.0)
    assert float(loss.detach()) == pytest.approx(float(total.detach()), rel=1e-5)
    assert parts["rate"] == pytest.approx(rates, rel=1e-4, abs=1e-7)
    assert parts["mse"] == pytest.approx(mses, rel=1e-4, abs=1e-9)
    # the same gradients too (encoder, decoder and both priors)
    g_tree = torch.autograd.grad(loss, list(m.parameters()), allow_unused=True)
    g_brute = torch.autograd.grad(total, list(m.parameters()), allow_unused=True)
    for a, b in zip(g_tree, g_brute):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, rtol=1e-4, atol=1e-6))


def test_exact_and_anneal_train_with_other_samples_than_gumbel():
    """estimator=exact never samples (the loss is a deterministic function of the batch); gumbel samples relaxed
    codes throughout; anneal relaxed ones until anneal_at, hard (one-hot forward) ones after."""
    torch.manual_seed(0)
    x, y = _pairs(500)
    batch = type("B", (), {"x": x, "side": y})()

    def run(estimator, step, seed):
        torch.manual_seed(0)
        w = Annealed(LayeredWZ(ModelConfig((2, 2), hidden=6, in_scale=3.0, residual=True)), 10, 1.0, 0.2).train()
        w.step.fill_(step)
        torch.manual_seed(seed)
        return float(make_loss_fn(prior="conditional", lam=30.0, estimator=estimator, anneal_at=0.5)(w, batch)["loss"])

    assert run("exact", 0, 1) == run("exact", 0, 2)  # no sampling
    assert run("gumbel", 0, 1) != run("gumbel", 0, 2)
    assert run("anneal", 2, 1) == run("gumbel", 2, 1)  # before anneal_at: the paper's relaxed samples
    assert run("anneal", 7, 1) != run("gumbel", 7, 1)  # after: hard samples of the same noise
    assert [samples_hard("anneal", False, s, 10, 0.5) for s in (0, 4, 5, 9)] == [False, False, True, True]
    assert samples_hard("gumbel", True, 0, 10) and not samples_hard("gumbel", False, 9, 10)
    assert not samples_hard("exact", False, 9, 10)
    c = LayeredWZCodec(PROTO, config="222", estimator="anneal", anneal_at=0.7)
    assert c.variant == "222.cond.s0.1.lam300.anneal.ha0.7"
    assert LayeredWZCodec(PROTO, config="222", estimator="exact").variant == "222.cond.s0.1.lam300.exact"


def test_relaxation_leak_is_zero_for_a_deterministic_encoder_and_defined_by_hand():
    torch.manual_seed(1)
    m = LayeredWZ(ModelConfig((2, 2), hidden=8, in_scale=3.0, residual=True))
    leak = relaxation_leak(m, 0.1, prior="conditional", lam=300.0, tau=0.5, n=2000)
    assert leak["pairs"] == 2000 and len(leak["leak_db"]) == 2
    assert leak["leak_db"] == pytest.approx([h - r for h, r in zip(leak["hard_d_db"], leak["relaxed_d_db"])], abs=2e-4)
    assert leak["relaxed_gap_wz_db"][1] == pytest.approx(leak["relaxed_d_db"][1] - wz_distortion_db(leak["relaxed_rate"][1], 0.1), abs=2e-4)
    with torch.no_grad():  # logits × 10^4: relaxed samples are one-hot already, nothing leaks
        m.enc_out.weight.mul_(1e4)
        m.enc_out.bias.mul_(1e4)
    sharp = relaxation_leak(m, 0.1, prior="conditional", lam=300.0, tau=0.5, n=2000)
    assert sharp["leak_db"] == pytest.approx([0.0, 0.0], abs=1e-3)


def test_training_records_the_leak_and_old_weights_still_load(tmp_path):
    torch.set_num_threads(1)
    train = GaussianBlocks("train", 0.1, block=2000, n_blocks=4)
    c = LayeredWZCodec(PROTO, config="44", hidden=6, steps=4, batch=500, estimator="anneal")
    info = c.fit(train, None, budget="smoke", workdir=tmp_path / "w", seed=1)
    leak = info["leak"]
    assert leak["last_step_samples"] == "hard" and leak["tau"] == pytest.approx(0.2) and len(leak["leak_db"]) == 2
    c.save_weights(tmp_path / "weights")
    man = tmp_path / "weights" / "manifest.json"
    d = json.loads(man.read_text())
    for k in ("faithful", "anneal_at"):  # weights written before these options existed
        d["config"]["train_options"].pop(k)
    man.write_text(json.dumps(d))
    again = LayeredWZCodec(PROTO, config="44", hidden=6, steps=4, batch=500, estimator="anneal")
    assert again.load_weights(tmp_path / "weights")["seed"] == 1
    with pytest.raises(WeightsError, match="faithful"):
        LayeredWZCodec(PROTO, config="44", hidden=6, steps=4, batch=500, estimator="anneal",
                       faithful=True).load_weights(tmp_path / "weights")


def test_training_tracks_the_objectives_gap_to_the_bound_and_resumes_old_checkpoints():
    from methods.layered_wz.train import GAP_WARMUP

    w = Annealed(LayeredWZ(ModelConfig((2, 2), hidden=4)), 400, 1.0, 0.2)
    d_wz = 0.1 * 2 ** (-2 * 0.5)  # D on the bound at 0.5 bit: gap 0 dB
    for step in range(400):
        w.step.fill_(step)
        below = 10 ** (-0.3) if 150 <= step < 250 else 1.0  # 3 dB below the bound for 100 steps
        w.track([0.5, 0.25], [d_wz * below, 0.1 * 2 ** (-1.5)], 0.1)
    rec = w.gap_record()
    low = -3.0 * (1 - 0.99 ** 100)  # the smoothed gap at the end of the dip
    assert rec["ema_steps"] == 100 and rec["lowest"][0] == pytest.approx(low, abs=1e-3)
    assert rec["lowest"][1] == pytest.approx(0.0, abs=1e-4)
    assert rec["at"]["1"] == pytest.approx([low * 0.99 ** 150, 0.0], abs=1e-3)  # recovering, 150 steps later
    assert rec["at"]["0.25"] == pytest.approx([0.0, 0.0], abs=1e-4)  # step 99: before the dip
    assert GAP_WARMUP == 100
    # a checkpoint written before the gap was tracked (no gap buffers) still resumes, untracked
    old = {k: v for k, v in w.state_dict().items() if not k.startswith("gap_")}
    fresh = Annealed(LayeredWZ(ModelConfig((2, 2), hidden=4)), 400, 1.0, 0.2)
    fresh.load_state_dict(old, strict=True)
    assert int(fresh.step) == 399 and fresh.gap_record()["lowest"] == [None, None]
