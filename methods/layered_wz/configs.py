"""Settings of the layered Wyner–Ziv coder per budget and per source (Joukovsky et al., Sec. 4; the citation is methods/layered_wz/codec.py's PAPER).

The paper: Adam, lr 1e-3, 180 epochs of 2·10⁵ samples in batches of 10³ (36,000 steps), lr × 0.3 every
80 epochs (marginal prior) or every 40 epochs (conditional prior), Gumbel-softmax temperature 1.0 → 0.2
exponentially over training, no gradient clipping stated. Budgets keep that shape and shorten it; the
decay points stay at the same fractions of training."""
from __future__ import annotations

from benchmark.contract.budgets import MODEL_STAGE, MethodBudget, TrainConfig, checked_table
from benchmark.contract.options import Option

PAPER_STEPS = 180 * 200  # epochs x (2e5 samples / batch 1e3)
SAMPLES_PER_STEP = 1000  # the paper's batch (samples of x per optimisation step)
TAU0, TAU1 = 1.0, 0.2
ANNEAL_AT = 0.5  # estimator=anneal: relaxed (Gumbel-softmax) samples for this fraction of training, then hard ones


def lr_milestones(prior: str) -> tuple[float, ...]:
    """Fractions of training where the lr is multiplied by 0.3 (every 80 or 40 of 180 epochs)."""
    every = 80 if prior == "marginal" else 40
    return tuple(e / 180 for e in range(every, 180, every))


# one MethodBudget per budget (benchmark/contract/budgets.py): stage "model"; nothing else fixed by the budget (the lr
# milestones depend on the prior: the codec passes them as an override). batch_size counts chunks of
# SAMPLES_PER_STEP samples (the trainer batches dataset items), so one optimisation step sees 1000 (x, y) pairs
# as in the paper.
_STEP = dict(batch_size=1, crop=None, lr=1e-3, schedule="step", gamma=0.3, clip_grad=None, keep_best=False, restore="last")
BUDGETS: dict[str, MethodBudget] = checked_table({
    "smoke": MethodBudget({MODEL_STAGE: TrainConfig(steps=30, val_samples=1, checkpoint_every=0, checkpoint_seconds=0,
                                                    **_STEP)}),
    "quick": MethodBudget({MODEL_STAGE: TrainConfig(steps=2000, val_samples=10, checkpoint_every=500, **_STEP)}),
    "paper": MethodBudget({MODEL_STAGE: TrainConfig(steps=PAPER_STEPS, val_samples=10, checkpoint_every=2000, **_STEP)},
                          source="B. Joukovsky, B. De Weerd, N. Deligiannis, Learned layered coding for successive "
                                 "refinement in the Wyner-Ziv problem (Sec. 4): Adam lr 1e-3, 180 epochs of 2e5 samples "
                                 "in batches of 1e3 (36,000 steps), lr x0.3 every 80 (marginal) / 40 (conditional) "
                                 "epochs; ours: λ (not stated)"),
}, "layered_wz")

# λ of the loss Σ_k [rate_k (bits) + λ·MSE_k]; the paper does not state it. λ·σ² = 30 puts the slope of
# the Wyner–Ziv curve, dR/dD = −1/(2·ln2·D), at D ≈ σ²/42 (≈ 2.7 bits): every stage of "222" and "44" then
# has more to gain from a finer bin than it pays in rate, so all stages fill their alphabet (measured).
LAM_TIMES_SIGMA2 = 30.0


def default_lam(sigma2: float) -> float:
    return LAM_TIMES_SIGMA2 / float(sigma2)


# the options of layered_wz, declared once (benchmark/contract/options.py): checked and cast before the codec's __init__ runs
_TRAIN_HELP = "changes what training produces (part of the weights key)"
OPTIONS: tuple[Option, ...] = (
    Option("config", str, "222", "alphabets of the K stages: digits (222, 44) or monoN"),
    Option("prior", str, "conditional", "decoder's model of the indices: q_c (with y) or q_m", choices=("conditional", "marginal")),
    Option("lam", float, None, "rate-distortion trade-off λ (default: per sigma2)", minimum=0, exclusive=True),
    Option("sigma2", float, None, "side-information noise variance (default: the protocol's, else 0.1)", minimum=0,
           exclusive=True),
    Option("hidden", int, 100, "hidden units per RNN layer", minimum=1),
    Option("layers", int, 2, "RNN layers", minimum=1),
    Option("cell", str, "elman", "RNN cell", choices=("elman", "gru")),
    Option("in_scale", float, None, "input scale (default: 1/sqrt(sigma2))", minimum=0, exclusive=True),
    Option("residual", bool, True, "stages code the residual of the previous ones"),
    Option("hard", bool, False, "straight-through hard samples in training"),
    Option("tau1", float, TAU1, "final Gumbel-softmax temperature", minimum=0, exclusive=True),
    Option("steps", int, None, "training steps (default: the budget's)", minimum=0),
    Option("lr", float, None, "learning rate (default: the budget's)", minimum=0, exclusive=True),
    Option("batch", int, SAMPLES_PER_STEP, "samples per optimisation step", minimum=1),
    Option("estimator", str, "gumbel", "expectation over codes: Gumbel-softmax samples (the paper), exact sum over "
           "all code paths, or anneal (Gumbel-softmax, then straight-through hard samples from anneal_at on)",
           choices=("gumbel", "exact", "anneal")),
    Option("anneal_at", float, ANNEAL_AT, "estimator=anneal: fraction of training after which samples are hard",
           minimum=0, exclusive=True, maximum=1),
    Option("faithful", bool, False, "the paper's networks: inputs unscaled (in_scale=1), decoder outputs x̂ directly "
           "(residual=false), Elman LeakyReLU cell"),
    Option("lr_decay_at", list[float], None, "fractions of training where lr *= 0.3 (default: the paper's)", minimum=0),
    Option("train_other", bool, False, _TRAIN_HELP),
    Option("init", str, "random", "encoder initialisation", choices=("random", "nested")),
    Option("init_delta", float, 1.0, "nested-quantiser step of init=nested", minimum=0, exclusive=True),
    Option("init_steps", int, 500, "steps of the init=nested fit", minimum=0),
    Option("coder", str, "range", "bytes: q_m range coder or Slepian–Wolf LDPC syndromes", choices=("range", "ldpc")),
    Option("sw_margin", float, 0.08, "LDPC syndrome rate margin, bits per plane bit (< 0: forced failures)", minimum=-1),
)
