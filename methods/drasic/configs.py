"""DRASIC budgets and per-protocol settings.

- paper: the paper's widths (7.1 M parameters per encoder, 24.8 M decoder) and training: Adam lr 1e-3, batch 100,
  200 epochs, lr x0.5 every 50 epochs (milestones at 1/4, 2/4, 3/4 of the steps). Steps = ceil(epochs * N / 100).
- quick: narrow widths sized for a few CPU minutes on the embedded ``digits`` set with M = 4; the paper's schedule
  shape (x0.5 at each quarter) over a fixed number of steps.
- smoke: tiny widths, a handful of steps (seconds): for tests and CI only.

No gradient clipping (the paper mentions none, and it would couple the independent pairs of `separate`). The
weights after the last step are kept (the paper selects no checkpoint by validation); validation is logged.
"""
from __future__ import annotations

from benchmark.contract.budgets import MODEL_STAGE, MethodBudget, TrainConfig, checked_table

from .model import PAPER_WIDTHS, Widths

ITERATIONS = 16  # T: 16 iterations x 0.125 bpp = 2 bpp at 32x32
CONFIGS = ("distributed", "separate", "joint")
PAPER_EPOCHS = 200
PAPER_BATCH = 100

SMOKE_WIDTHS = Widths(enc_stem=4, enc_hidden=8, dec_stem=8, dec_hidden=(8, 8, 8))
QUICK_WIDTHS = Widths(enc_stem=8, enc_hidden=16, dec_stem=32, dec_hidden=(32, 32, 16))

_COMMON = dict(crop=None, lr=1e-3, clip_grad=None, hflip=False, restore="last", keep_best=False)

# one MethodBudget per budget (benchmark/contract/budgets.py): stage "model"; model: widths; the paper budget gives epochs
# (its steps are derived from the training-set size in fit())
BUDGETS: dict[str, MethodBudget] = checked_table({
    "smoke": MethodBudget(
        {MODEL_STAGE: TrainConfig(steps=6, batch_size=8, schedule="constant", val_samples=8, checkpoint_every=50,
                                  **_COMMON)},
        {"widths": SMOKE_WIDTHS}),
    "quick": MethodBudget(
        {MODEL_STAGE: TrainConfig(steps=300, batch_size=16, schedule="step", milestones=(0.25, 0.5, 0.75), gamma=0.5,
                                  val_every=100, val_samples=64, checkpoint_every=100, **_COMMON)},
        {"widths": QUICK_WIDTHS}),
    "paper": MethodBudget(
        {MODEL_STAGE: TrainConfig(steps=1, batch_size=PAPER_BATCH, schedule="step", milestones=(0.25, 0.5, 0.75),
                                  gamma=0.5, val_samples=1000, checkpoint_every=1000, num_workers=4, **_COMMON)},
        {"widths": PAPER_WIDTHS},
        epochs={MODEL_STAGE: PAPER_EPOCHS},
        source="DRASIC paper (E. Diao, J. Ding, V. Tarokh, DCC 2020, arXiv:1903.09887): Adam lr 1e-3, batch 100, 200 "
               "epochs, lr x0.5 every 50 epochs, whole 32x32 images, the paper's widths (the authors' src/config.py "
               "differs: batch 10, plateau x0.1; the paper is followed); ours: no clipping, last weights kept"),
}, "drasic")

# Per-protocol notes (all DRASIC protocols use the same settings; M comes from the dataset's `sources`).
PROTOCOLS = {
    "mnist/drasic-class": {"image_size": 32, "channels": 1},
    "mnist/drasic-random": {"image_size": 32, "channels": 1},
}
