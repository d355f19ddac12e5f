"""LDMIC budgets, read from the authors' ``train.py`` (github.com/Xinjie-Q/LDMIC) where it states them.

``paper`` (the authors' settings): Adam, lr 1e-4 for the networks and 1e-4 for CompressAI's auxiliary
(entropy-bottleneck quantile) optimizer, batch 16, random 256x256 crops of both views at the same place, 400
epochs with the learning rate halved at epochs 100, 200 and 300 (``MultiStepLR([100, 200, 300, 400], 0.5)``; the
milestone 400 never fires in 400 epochs), gradient clipping at norm 1, N = M = 192, validation every 10 epochs
with the best validation loss kept. Loss (``MSE_Loss``): λ·(MSE_1 + MSE_2)/2 + (bpp_1 + bpp_2)/2 with MSE on
[0, 1] images (no 255² factor), so λ is on the authors' scale: ``train.py``'s default is λ = 2048; MS-SSIM:
λ·((1 − MS-SSIM_1) + (1 − MS-SSIM_2))/2 + mean bpp.

What ``train.py`` does not state and is chosen here (say so when quoting results): the λ list (the default
2048 and three halvings below it; the MS-SSIM list likewise is not in train.py and must be given with
``--option lambdas=...``), and the steps per epoch (``epochs x ceil(n_train / batch)``, derived in ``fit`` from
the training set it is handed). Augmentation as the authors' ``lib/utils.py`` (``StereoImageDataset`` and
``MultiCameraImageDataset``: ``RandomCrop``, ``RandomHorizontalFlip(p=0.5)``, ``RandomVerticalFlip(p=0.5)`` on the
views stacked along channels, so every view of a sample flips alike): the trainer crops and flips horizontally
(``hflip``), the LDMIC loss flips vertically (model setting ``vflip``, on in every budget; ``--option vflip=false``
turns it off). The view order comes from the protocol's pairs in both directions (the authors swap the two views
with probability 1/2).

``smoke`` and ``quick`` are small CPU budgets on the same loss."""
from __future__ import annotations

from benchmark.contract.budgets import MODEL_STAGE, MethodBudget, TrainConfig, checked_table

PAPER_EPOCHS = 400
PAPER_LAMBDAS_MSE = (256.0, 512.0, 1024.0, 2048.0)  # 2048: train.py's default; the others chosen here
# MultiStepLR milestones 100, 200, 300 (and 400) of 400 epochs, as fractions of the steps
PAPER_MILESTONES = (0.25, 0.5, 0.75)

_SMALL = dict(lr=1e-3, aux_lr=1e-2, schedule="cosine", clip_grad=1.0, hflip=True, val_samples=2,
              checkpoint_every=100, restore="last")

BUDGETS: dict[str, MethodBudget] = checked_table({
    "smoke": MethodBudget({MODEL_STAGE: TrainConfig(steps=20, batch_size=2, crop=64, **_SMALL)},
                          {"N": 32, "M": 48, "lambdas": (256.0, 2048.0), "warm_start": False, "vflip": True},
                          source="ours (CPU seconds)"),
    "quick": MethodBudget({MODEL_STAGE: TrainConfig(steps=400, batch_size=4, crop=128, val_every=200, **_SMALL)},
                          {"N": 48, "M": 72, "lambdas": (256.0, 1024.0, 4096.0), "warm_start": True, "vflip": True},
                          source="ours (CPU minutes)"),
    "paper": MethodBudget({MODEL_STAGE: TrainConfig(steps=1, batch_size=16, crop=256, lr=1e-4, aux_lr=1e-4,
                                                    schedule="step", milestones=PAPER_MILESTONES, gamma=0.5,
                                                    clip_grad=1.0, hflip=True, val_every=0, val_samples=64,
                                                    checkpoint_every=1000, restore="best", num_workers=4)},
                          {"N": 192, "M": 192, "lambdas": PAPER_LAMBDAS_MSE, "warm_start": False, "vflip": True},
                          epochs={MODEL_STAGE: PAPER_EPOCHS},
                          source="the authors' train.py (lr, batch, crop, epochs, schedule, clipping, N/M) and lib/utils.py "
                                 "(horizontal and vertical flips); λ list partly ours"),
}, "ldmic")


# protocols whose training samples are at least 256 pixels on a side (the authors' crop); elsewhere (the 128x256
# NDIC-style protocols) the paper budget crops 128, the samples' height (ours)
FULL_RESOLUTION = ("stereo/kitti-ldmic", "multiview/wildtrack-ldmic", "instereo2k/ldmic", "cityscapes/ldmic", "kitti/ldmic",
                   "stereo/pairs", "images/full")


def budgets(protocol: str | None) -> dict[str, MethodBudget]:
    """The budget table under `protocol`: the authors' 256 crop where the samples allow it, else 128."""
    if protocol is None or protocol in FULL_RESOLUTION:
        return BUDGETS
    paper = BUDGETS["paper"]
    small = MethodBudget({MODEL_STAGE: paper.stage().replace(crop=128)}, paper.model, paper.epochs,
                         source=paper.source + "; crop 128 (ours) for this protocol's 128-pixel-high samples")
    return checked_table({"smoke": BUDGETS["smoke"], "quick": BUDGETS["quick"], "paper": small}, "ldmic")
