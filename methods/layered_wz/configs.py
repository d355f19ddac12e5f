"""Settings of the layered Wyner–Ziv coder per budget and per source (paper 004_*, Sec. 4).

The paper: Adam, lr 1e-3, 180 epochs of 2·10⁵ samples in batches of 10³ (36,000 steps), lr × 0.3 every
80 epochs (marginal prior) or every 40 epochs (conditional prior), Gumbel-softmax temperature 1.0 → 0.2
exponentially over training, no gradient clipping stated. Budgets keep that shape and shorten it; the
decay points stay at the same fractions of training."""
from __future__ import annotations

from benchmark.trainer import TrainConfig

PAPER_STEPS = 180 * 200  # epochs x (2e5 samples / batch 1e3)
SAMPLES_PER_STEP = 1000  # the paper's batch (samples of x per optimisation step)
TAU0, TAU1 = 1.0, 0.2


def lr_milestones(prior: str) -> tuple[float, ...]:
    """Fractions of training where the lr is multiplied by 0.3 (every 80 or 40 of 180 epochs)."""
    every = 80 if prior == "marginal" else 40
    return tuple(e / 180 for e in range(every, 180, every))


# batch_size counts chunks of SAMPLES_PER_STEP samples (the trainer batches dataset items), so one
# optimisation step sees 1000 (x, y) pairs as in the paper.
BUDGETS: dict[str, TrainConfig] = {
    "smoke": TrainConfig(steps=30, batch_size=1, crop=None, lr=1e-3, schedule="step", gamma=0.3, clip_grad=None,
                         val_samples=1, checkpoint_every=0, checkpoint_seconds=0, keep_best=False, restore="last"),
    "quick": TrainConfig(steps=2000, batch_size=1, crop=None, lr=1e-3, schedule="step", gamma=0.3, clip_grad=None,
                         val_samples=10, checkpoint_every=500, keep_best=False, restore="last"),
    "paper": TrainConfig(steps=PAPER_STEPS, batch_size=1, crop=None, lr=1e-3, schedule="step", gamma=0.3, clip_grad=None,
                         val_samples=10, checkpoint_every=2000, keep_best=False, restore="last"),
}

# λ of the loss Σ_k [rate_k (bits) + λ·MSE_k]; the paper does not state it. λ·σ² = 30 puts the slope of
# the Wyner–Ziv curve, dR/dD = −1/(2·ln2·D), at D ≈ σ²/42 (≈ 2.7 bits): every stage of "222" and "44" then
# has more to gain from a finer bin than it pays in rate, so all stages fill their alphabet (measured).
LAM_TIMES_SIGMA2 = 30.0


def default_lam(sigma2: float) -> float:
    return LAM_TIMES_SIGMA2 / float(sigma2)
