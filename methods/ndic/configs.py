"""NDIC settings per protocol and budget.

``paper``: the authors' settings (N. Mital, E. Özyılkan, A. Garjani, D. Gündüz, Neural Distributed Image
Compression Using Common Information, DCC 2022; their repository ipc-lab/NDIC: configs/config.yaml, main.py,
Results.md): Adam with amsgrad, lr 1e-4, batch 1, ReduceLROnPlateau(x0.1, patience 10, min_lr 1e-7) on the
validation loss once per epoch over the whole validation split, no gradient clipping, N = M = 192, whole
128x256 images with a random horizontal flip of x and y together, MSE distortion, α = β = 1 (NDIC) and
α = β = 0 (NDIC-CAM). The training loop is the one the Ballé baselines use on these protocols
(baselines/balle.py: ``ndic_authors_train``), so ``ndic_*`` and ``balle2017/2018`` see the same schedule.

λ lists: the authors' MSE lists of Results.md ("ours+Ballé2017": 15 values 2e-5 … 5.6e-3; "ours+Ballé2018":
10 values 2e-4 … 4.8e-3). NDIC-CAM uses the Ballé2018 list (its base in this suite is the scale-hyperprior
NDIC; the NDIC-CAM authors' README lists MS-SSIM λ only: KITTI Stereo 3e-5 … 3e-4, Cityscapes 4.5e-5 … 6.2e-4).

Not stated in the sources and chosen here (say so when quoting results): the number of steps (500k at
batch 1, ≈317 KITTI epochs; their config runs 50,000 epochs, i.e. until stopped) and the auxiliary
(entropy-bottleneck quantile) learning rate 1e-3.

``smoke`` and ``quick`` are the Ballé baselines' budgets (imported from baselines/balle.py, not copied),
so that ``ndic_*`` and ``balle2017/2018`` trained with the same budget and seed see the same steps, λ,
crops, batches, learning-rate schedule and widths N/M for x's path."""
from __future__ import annotations

from baselines.balle import BUDGETS as BALLE_BUDGETS, NDIC_AUTHORS_SOURCE, ndic_authors_train
from benchmark.contract.budgets import MODEL_STAGE, MethodBudget, checked_table


# the authors' MSE λ lists (ipc-lab/NDIC, Results.md)
LAMBDAS_NDIC_BALLE2018 = (0.0002, 0.0008, 0.0011, 0.0014, 0.002, 0.0026, 0.0032, 0.0038, 0.0044, 0.0048)
LAMBDAS_NDIC_BALLE2017 = (2e-05, 4e-05, 0.0002, 0.0005, 0.0008, 0.0012, 0.0014, 0.0016, 0.002, 0.0026, 0.0032, 0.0038,
                          0.0044, 0.005, 0.0056)

# per protocol: (training samples per epoch, validation samples): the plateau rule validates once per epoch on the
# whole validation split (protocols not listed: KITTI's)
_EPOCH = {"kitti-stereo/ndic": (1576, 790), "cityscapes/ndic": (2975, 500), "middlebury-sample/stereo": (48, 4)}


def paper_budget(protocol: str | None, lambdas: tuple[float, ...]) -> MethodBudget:
    return MethodBudget({MODEL_STAGE: ndic_authors_train(*_EPOCH.get(protocol or "", _EPOCH["kitti-stereo/ndic"]))},
                        {"N": 192, "M": 192, "lambdas": lambdas, "warm_start": False}, source=NDIC_AUTHORS_SOURCE)


def budgets(protocol: str | None, paper_lambdas: tuple[float, ...]) -> dict[str, MethodBudget]:
    """The budget table of an NDIC codec under `protocol` (smoke and quick: the Ballé baselines' own entries)."""
    return checked_table({
        "smoke": BALLE_BUDGETS["smoke"],
        "quick": BALLE_BUDGETS["quick"],
        "paper": paper_budget(protocol, paper_lambdas),
    }, "ndic")


PROTOCOLS = tuple(_EPOCH)
