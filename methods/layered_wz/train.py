"""Training loop of the layered Wyner–Ziv coder: Adam, step-decayed learning rate, exponential Gumbel
temperature annealing (paper 004_*, Sec. 4), with budgets scaled from the paper's schedule."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator

import torch

from benchmark.errors import ConfigError, TrainingError

from .model import LayeredWZ

# The paper: 180 epochs x 2e5 samples, batch 1e3 -> 36,000 steps; lr x0.3 every 80 (marginal) / 40
# (conditional) epochs; tau 1.0 -> 0.2 exponentially.
PAPER_STEPS = 180 * 200
BUDGET_STEPS = {"smoke": 150, "quick": 6000, "paper": PAPER_STEPS}


@dataclass
class Schedule:
    steps: int
    batch: int = 1000
    lr: float = 1e-3
    lr_decay: float = 0.3
    lr_every: int = 0  # steps between decays; 0 = the paper's fraction of `steps`
    tau0: float = 1.0
    tau1: float = 0.2

    def lr_period(self, prior: str) -> int:
        if self.lr_every > 0:
            return self.lr_every
        frac = (80 if prior == "marginal" else 40) / 180
        return max(1, round(self.steps * frac))

    def tau(self, step: int) -> float:
        t = min(1.0, step / max(1, self.steps - 1))
        return self.tau0 * (self.tau1 / self.tau0) ** t


def schedule_for(budget: str, *, steps: int | None = None, **over) -> Schedule:
    if steps is None:
        if budget not in BUDGET_STEPS:
            raise ConfigError(f"unknown budget {budget!r}; use smoke, quick or paper")
        steps = BUDGET_STEPS[budget]
    return Schedule(steps=int(steps), **{k: v for k, v in over.items() if v is not None})


def batches_from_blocks(blocks: Iterable, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Cut blocks of Samples (1-D x, side) into (x, y) batches, cycling over the dataset."""
    while True:
        n_seen = 0
        for s in blocks:
            if s.side is None:
                raise ConfigError("layered_wz trains on (x, side) pairs; the dataset gave no side information")
            x, y = s.x.reshape(-1).float(), s.side.reshape(-1).float()
            for i in range(0, x.numel() - batch + 1, batch):
                yield x[i : i + batch], y[i : i + batch]
                n_seen += 1
        if n_seen == 0:
            raise ConfigError(f"training data too small for one batch of {batch}")


def train_model(model: LayeredWZ, data: Iterator[tuple[torch.Tensor, torch.Tensor]], sched: Schedule, *, prior: str,
                lam: float, hard: bool = False, log: Callable[[dict], None] | None = None, log_every: int = 500,
                max_seconds: float | None = None) -> dict:
    opt = torch.optim.Adam(model.parameters(), lr=sched.lr)
    period = sched.lr_period(prior)
    model.train()
    t0 = time.time()
    hist = []
    last: dict = {}
    step = 0
    for step in range(sched.steps):
        if max_seconds is not None and time.time() - t0 > max_seconds:
            break
        lr = sched.lr * sched.lr_decay ** (step // period)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = next(data)
        tau = sched.tau(step)
        loss, parts = model.loss(x, y, prior=prior, lam=lam, tau=tau, hard=hard)
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss at step {step} (lr {lr:g}, tau {tau:.3f}); lower lam or lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = {"step": step + 1, "loss": float(loss.detach()), "tau": tau, "lr": lr, **parts}
        if log_every and (step + 1) % log_every == 0:
            hist.append(last)
            if log:
                log(last)
    model.eval()
    return {"steps": last.get("step", 0), "seconds": time.time() - t0, "schedule": asdict(sched), "last": last, "log": hist}
