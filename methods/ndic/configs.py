"""NDIC settings per protocol and budget.

``paper``: the authors' settings (from the authors' repository, ipc-lab/NDIC): Adam with amsgrad, lr 1e-4,
batch 1, learning rate decayed on a validation-loss plateau, N = M = 192, whole 128x256 images with a
random horizontal flip of x and y together, MSE distortion, α = β = 1 (NDIC) and α = β = 0 (NDIC-CAM).

λ lists: the sources give only the end points and the count ("ours+Ballé2018: 2e-4 … 4.8e-3, 10 values";
"ours+Ballé2017: 2e-5 … 5.6e-3, 15 values"). The lists below are **geometric interpolations** between the
end points, rounded to two significant digits (end points exact); they are not the authors' exact values.
NDIC-CAM uses the Ballé2018 list (its base is the scale-hyperprior NDIC).

Not stated in the sources and chosen here (say so when quoting results): the number of steps (500k at
batch 1, ≈317 KITTI epochs), the plateau rule (PyTorch ReduceLROnPlateau defaults: ×0.1 after 10
validations without improvement, validating once per epoch on 200 validation samples) and the auxiliary
(entropy-bottleneck quantile) learning rate 1e-3.

``smoke`` and ``quick`` are the Ballé baselines' budgets (imported from baselines/balle.py, not copied),
so that ``ndic_*`` and ``balle2017/2018`` trained with the same budget and seed see the same steps, λ,
crops, batches, learning-rate schedule and widths N/M for x's path."""
from __future__ import annotations

from baselines.balle import BUDGETS as BALLE_BUDGETS
from benchmark.contract.budgets import MODEL_STAGE, MethodBudget, TrainConfig, checked_table


def geometric_lambdas(lo: float, hi: float, n: int, digits: int = 2) -> tuple[float, ...]:
    """n values from lo to hi equally spaced in log scale, rounded to `digits` significant digits."""
    out = []
    for i in range(n):
        v = lo * (hi / lo) ** (i / (n - 1))
        if 0 < i < n - 1:
            v = float(f"{v:.{digits - 1}e}")
        out.append(lo if i == 0 else hi if i == n - 1 else v)
    return tuple(out)


LAMBDAS_NDIC_BALLE2018 = geometric_lambdas(2e-4, 4.8e-3, 10)
LAMBDAS_NDIC_BALLE2017 = geometric_lambdas(2e-5, 5.6e-3, 15)

def _paper_train(epoch: int) -> TrainConfig:
    return TrainConfig(steps=500_000, batch_size=1, crop=None, lr=1e-4, aux_lr=1e-3, amsgrad=True, schedule="plateau",
                       gamma=0.1, plateau_patience=10, clip_grad=1.0, hflip=True, val_every=epoch, val_samples=200,
                       checkpoint_every=2000, restore="best", num_workers=4)


# per protocol: training samples per epoch (the plateau rule validates once per epoch)
_EPOCH = {"kitti-stereo/ndic": 1576, "cityscapes/ndic": 2975, "middlebury-sample/stereo": 48}


def paper_budget(protocol: str | None, lambdas: tuple[float, ...]) -> MethodBudget:
    return MethodBudget({MODEL_STAGE: _paper_train(_EPOCH.get(protocol or "", 1576))},
                        {"N": 192, "M": 192, "lambdas": lambdas, "warm_start": False})


def budgets(protocol: str | None, paper_lambdas: tuple[float, ...]) -> dict[str, MethodBudget]:
    """The budget table of an NDIC codec under `protocol` (smoke and quick: the Ballé baselines' own entries)."""
    return checked_table({
        "smoke": BALLE_BUDGETS["smoke"],
        "quick": BALLE_BUDGETS["quick"],
        "paper": paper_budget(protocol, paper_lambdas),
    }, "ndic")


PROTOCOLS = tuple(_EPOCH)
