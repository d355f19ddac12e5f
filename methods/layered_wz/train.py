"""Glue between the layered Wyner–Ziv model and the suite's trainer (`benchmark.training.trainer.train`).

- `Chunks` cuts the dataset's blocks of (x, y) pairs into chunks of the paper's batch (10³ samples), so one
  trainer item is one optimisation batch; nothing is loaded before it is asked for.
- `Annealed` wraps the model with a step counter kept as a buffer, so the Gumbel-softmax temperature
  (1.0 → 0.2, exponential in the step) is part of every checkpoint and a resumed run continues the schedule.
- `loss_fn` is the trainer's loss closure: Gumbel-softmax training loss (or the exact expectation over
  code paths) in training mode, the deterministic loss of the hard codes (ideal rates) in evaluation."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from benchmark.contract.data import Batch, Sample
from benchmark.errors import ConfigError
from benchmark.results.bounds import wz_distortion_db

from .configs import ANNEAL_AT
from .model import LayeredWZ
from .nested import nested_codes

ESTIMATORS = ("gumbel", "exact", "anneal")
LEAK_PAIRS = 100_000  # pairs of the leak diagnostic (`relaxation_leak`)


class Chunks(Dataset):
    """Item i = chunk i % per of block i // per, `size` consecutive pairs (x, side), 1-D."""

    def __init__(self, blocks: Any, size: int):
        if len(blocks) == 0:
            raise ConfigError("layered_wz: the training split is empty")
        first = blocks[0]
        if first.side is None:
            raise ConfigError("layered_wz trains on (x, side) pairs; the dataset gave no side information")
        n = first.x.numel()
        if n < size:
            raise ConfigError(f"layered_wz: dataset blocks hold {n} samples, fewer than one batch of {size}; "
                              f"use a larger block (dataset option block=...) or a smaller batch")
        self.blocks, self.size, self.per = blocks, int(size), n // int(size)

    def __len__(self) -> int:
        return len(self.blocks) * self.per

    def __getitem__(self, i: int) -> Sample:
        b, c = divmod(int(i), self.per)
        s = self.blocks[b]
        sl = slice(c * self.size, (c + 1) * self.size)
        return Sample(x=s.x.reshape(-1)[sl].float(), side=s.side.reshape(-1)[sl].float(), source=s.source,
                      name=f"{s.name}:{c}")


GAP_EMA = 0.99  # the training objective's gap to the Wyner–Ziv bound is smoothed over about 100 steps
GAP_WARMUP = 100  # steps before its lowest value is tracked
GAP_AT = (0.25, 0.5, 0.75, 1.0)  # fractions of training where the smoothed gap is kept
_GAP_BUFFERS = ("gap_ema", "gap_min", "gap_at")


class Annealed(nn.Module):
    """The model plus the number of optimisation steps taken, and the training objective's distance to the
    Wyner–Ziv bound per stage (`track`): buffers, checkpointed and restored on resume."""

    def __init__(self, net: LayeredWZ, steps: int, tau0: float, tau1: float):
        super().__init__()
        self.net = net
        self.steps, self.tau0, self.tau1 = int(steps), float(tau0), float(tau1)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        K = net.cfg.K
        self.register_buffer("gap_ema", torch.full((K,), math.nan))
        self.register_buffer("gap_min", torch.full((K,), math.inf))
        self.register_buffer("gap_at", torch.full((len(GAP_AT), K), math.nan))

    def tau(self) -> float:
        t = min(1.0, int(self.step) / max(1, self.steps - 1))
        return self.tau0 * (self.tau1 / self.tau0) ** t

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        for name in _GAP_BUFFERS:  # checkpoints written before the gap was tracked resume with it untracked
            state_dict.setdefault(prefix + name, getattr(self, name).clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def track(self, rates: list[float], mses: list[float], sigma2: float) -> None:
        """Fold one training step's objective into the smoothed gap 10·log10 D_k − D_WZ(Σ_{j≤k} R_j) per stage (the
        rates and MSEs of the samples training decodes: relaxed, hard or the exact expectation), its lowest value
        after the warm-up, and its value at the fractions `GAP_AT` of training."""
        cum = [sum(rates[: k + 1]) for k in range(len(rates))]
        g = torch.tensor([10 * math.log10(max(m, 1e-30)) - wz_distortion_db(max(r, 0.0), sigma2) for m, r in zip(mses, cum)],
                         dtype=self.gap_ema.dtype)
        self.gap_ema.copy_(g if bool(torch.isnan(self.gap_ema).any()) else GAP_EMA * self.gap_ema + (1 - GAP_EMA) * g)
        step = int(self.step)
        if step >= GAP_WARMUP:
            self.gap_min.copy_(torch.minimum(self.gap_min, self.gap_ema))
        for i, f in enumerate(GAP_AT):
            if step == max(0, math.ceil(f * self.steps) - 1):
                self.gap_at[i].copy_(self.gap_ema)

    def gap_record(self) -> dict[str, Any]:
        """The tracked gaps as JSON (None where never reached)."""
        fin = lambda t: [round(float(v), 4) if math.isfinite(float(v)) else None for v in t]  # noqa: E731
        return {"ema_steps": round(1 / (1 - GAP_EMA)), "lowest": fin(self.gap_min),
                "at": {f"{f:g}": fin(self.gap_at[i]) for i, f in enumerate(GAP_AT)}}


def samples_hard(estimator: str, hard: bool, step: int, steps: int, anneal_at: float = ANNEAL_AT) -> bool:
    """Whether training step `step` (0-based, of `steps`) uses hard (straight-through one-hot) Gumbel samples:
    always with hard=true; with estimator=anneal from step ⌈anneal_at·steps⌉ on (relaxed samples before)."""
    return hard or (estimator == "anneal" and step >= math.ceil(anneal_at * steps))


def make_loss_fn(*, prior: str, lam: float, hard: bool = False, estimator: str = "gumbel", other: bool = False,
                 anneal_at: float = ANNEAL_AT, sigma2: float | None = None) -> Callable[[Annealed, Batch], Mapping[str, Any]]:
    """The trainer's loss closure; with `sigma2`, every training step's gap to the Wyner–Ziv bound is tracked
    (`Annealed.track`)."""
    if estimator not in ESTIMATORS:
        raise ConfigError(f"layered_wz: estimator must be one of {ESTIMATORS} ('gumbel': the paper), got {estimator!r}")

    def loss_fn(model: Annealed, batch: Batch) -> dict[str, Any]:
        x = batch.x.reshape(-1)
        y = batch.side.reshape(-1)
        net = model.net
        if model.training:
            tau = model.tau()
            if estimator == "exact":
                loss, parts = net.loss_exact(x, y, prior=prior, lam=lam)
            else:
                h = samples_hard(estimator, hard, int(model.step), model.steps, anneal_at)
                loss, parts = net.loss(x, y, prior=prior, lam=lam, tau=tau, hard=h, other=other)
            if sigma2 is not None:
                model.track(parts["rate"], parts["mse"], sigma2)
            model.step += 1
            out = {"loss": loss, "tau": tau}
        else:  # hard codes, ideal rate of the training prior: what the codec reaches
            codes = net.encode(x)
            xh = net.reconstruct(codes, y)
            bits = net.code_lengths(codes, y if prior == "conditional" else None, prior).mean(0)
            parts = {"rate": [float(b) for b in bits], "mse": [float(((h - x) ** 2).mean()) for h in xh]}
            out = {"loss": torch.tensor(float(bits.sum()) + lam * sum(parts["mse"]))}
        out["bits"] = sum(parts["rate"])
        for k, (r, m) in enumerate(zip(parts["rate"], parts["mse"]), 1):
            out[f"rate{k}"] = r
            out[f"mse_db{k}"] = 10.0 * math.log10(max(m, 1e-12))
        return out

    return loss_fn



def fit_encoder_to_nested(net: LayeredWZ, sigma2: float, delta: float, steps: int, *, batch: int, seed: int,
                          lr: float = 1e-3) -> list[float]:
    """Initialisation (not in the paper): fit the encoder's logits to the nested-quantizer digits of step
    delta·σ (`nested.nested_codes`) by cross-entropy on fresh samples, so training starts from binning.
    Returns the cross-entropy (bits) every 100 steps."""
    g = torch.Generator().manual_seed(10_007 + int(seed))
    opt = torch.optim.Adam(list(net.enc.parameters()) + list(net.enc_out.parameters()), lr=lr)
    step_len = float(delta) * math.sqrt(float(sigma2))
    K, M = net.cfg.K, net.cfg.M
    log = []
    for i in range(int(steps)):
        x = torch.randn(batch, generator=g, dtype=torch.float64) * math.sqrt(1.0 + float(sigma2))
        target = torch.from_numpy(nested_codes(x.numpy(), step_len, K, M))
        logits = torch.stack(net.encoder_logits(x.float()), dim=1)  # (B, K, M)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, M), target.reshape(-1)) / math.log(2.0)
        opt.zero_grad(set_to_none=True)
        ce.backward()
        opt.step()
        if i % 100 == 0 or i == steps - 1:
            log.append(round(float(ce.detach()), 4))
    return log


@torch.no_grad()
def relaxation_leak(net: LayeredWZ, sigma2: float, *, prior: str, lam: float, tau: float, n: int = LEAK_PAIRS,
                    seed: int = 0) -> dict[str, Any]:
    """The "relaxed-below-bound leak" of trained weights: how much better the Gumbel-softmax relaxation makes the
    objective look than discrete codes can be.

    On n pairs drawn from the source (seed family 5: none of the splits) and one draw G of Gumbel noise, at
    temperature tau, per stage k:
      relaxed: codes softmax((log p_k + G)/tau) (what Gumbel-softmax training decodes); D̃_k their MSE, R̃_k the
               cumulative rate term of the loss (Σ_{j≤k} E KL(p_j ‖ q_j(·|codes_<j[, y])), bits);
      hard:    the one-hot argmax of the same perturbed logits (a sample of p(m | x)); D_k, R_k likewise.
    leak_db_k = 10·log10 D_k − 10·log10 D̃_k (> 0: the relaxation passes analog information the rate term does not
    charge for); relaxed_gap_wz_db_k = 10·log10 D̃_k − D_WZ(R̃_k) in dB (< 0: the relaxed point lies below the
    Wyner–Ziv bound, which no code can reach)."""
    from datasets.gaussian import draw_pairs

    xs, ys = draw_pairs(int(n), float(sigma2), (5, 0))
    x, y = torch.from_numpy(xs).float(), torch.from_numpy(ys).float()
    out: dict[str, Any] = {"pairs": int(n), "tau": round(float(tau), 6)}
    for name, h in (("relaxed", False), ("hard", True)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the same noise G for both
            _, parts = net.loss(x, y, prior=prior, lam=lam, tau=tau, hard=h)
        out[f"{name}_rate"] = [round(sum(parts["rate"][: k + 1]), 6) for k in range(net.cfg.K)]
        out[f"{name}_d_db"] = [round(10 * math.log10(max(m, 1e-30)), 4) for m in parts["mse"]]
    out["leak_db"] = [round(h - r, 4) for h, r in zip(out["hard_d_db"], out["relaxed_d_db"])]
    out["relaxed_gap_wz_db"] = [round(d - wz_distortion_db(r, sigma2), 4)
                                for d, r in zip(out["relaxed_d_db"], out["relaxed_rate"])]
    return out
