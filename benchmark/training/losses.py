"""The losses a learned codec trains with: bits from an entropy model's likelihoods, the rate–distortion loss
(MSE or MS-SSIM) and its closure for `train`, CompressAI's auxiliary quantile loss, and the split of a model's
parameters between the main and the auxiliary optimizer."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from benchmark.contract.budgets import BUDGETS, MethodBudget, TrainConfig, resolve_budget  # noqa: F401  (re-exported)
from benchmark.training.checkpoint import (CHECKPOINT_FORMAT, optim_from_tensors, optim_to_tensors, publish, read_checkpoint,  # noqa: F401
                         rng_state, set_rng_state)
from benchmark.contract.data import Batch
from benchmark.errors import ConfigError, TrainingError
from benchmark.progress import Reporter, progress_enabled  # noqa: F401  (progress_enabled: re-exported)


LossFn = Callable[[torch.nn.Module, Batch], Mapping[str, Any]]


def bits_from_likelihoods(likelihoods: Any) -> torch.Tensor:
    """Total -log2 likelihood over a dict / list (possibly nested) of likelihood tensors."""
    if isinstance(likelihoods, torch.Tensor):
        return -torch.log2(likelihoods).sum()
    if isinstance(likelihoods, Mapping):
        likelihoods = list(likelihoods.values())
    total = None
    for item in likelihoods:
        b = bits_from_likelihoods(item)
        total = b if total is None else total + b
    if total is None:
        raise TrainingError("model returned no likelihoods")
    return total


def rd_loss(output: Mapping[str, Any], x: torch.Tensor, lmbda: float, metric: str = "mse", ms_ssim_win: int = 11) -> dict[str, torch.Tensor]:
    """The standard rate-distortion loss of CompressAI's models.

    mse:     loss = lambda * 255^2 * MSE(x, x_hat) + bpp
    ms-ssim: loss = lambda * (1 - MS-SSIM(x, x_hat)) + bpp
    bpp = total -log2 likelihood / (batch * H * W)."""
    n, _, h, w = x.shape
    bpp = bits_from_likelihoods(output["likelihoods"]) / float(n * h * w)
    x_hat = output["x_hat"]
    mse = F.mse_loss(x_hat, x)
    logs: dict[str, torch.Tensor] = {}
    if metric == "mse":
        loss = lmbda * 255.0**2 * mse + bpp
    elif metric in ("ms-ssim", "ms_ssim", "msssim"):
        from pytorch_msssim import ms_ssim

        m = ms_ssim(x_hat, x, data_range=1.0, win_size=ms_ssim_win)
        loss = lmbda * (1.0 - m) + bpp
        logs["ms_ssim"] = m.detach()
    else:
        raise ConfigError(f"unknown distortion metric {metric!r}; use 'mse' or 'ms-ssim'")
    psnr = -10.0 * torch.log10(mse.detach().clamp_min(1e-10))
    return {"loss": loss, "bpp": bpp.detach(), "mse": mse.detach(), "psnr": psnr, **logs}


def compressai_aux_loss(model: torch.nn.Module) -> torch.Tensor | None:
    """CompressAI's auxiliary loss (entropy-bottleneck quantiles), or None for a model without one."""
    fn = getattr(model, "aux_loss", None)
    if fn is None:
        return None
    val = fn()
    return val if isinstance(val, torch.Tensor) else None


def rd_loss_fn(lmbda: float, metric: str = "mse", forward: Callable[[torch.nn.Module, Batch], Mapping[str, Any]] | None = None,
               ms_ssim_win: int = 11) -> LossFn:
    """A loss closure for CompressAI-style models: ``forward(model, batch)`` (default ``model(batch.x)``)
    must return ``x_hat`` and ``likelihoods``; the closure adds the RD loss and the aux loss."""

    def loss_fn(model: torch.nn.Module, batch: Batch) -> dict[str, Any]:
        out = forward(model, batch) if forward is not None else model(batch.x)
        res = rd_loss(out, batch.x, lmbda, metric, ms_ssim_win)
        res["aux_loss"] = compressai_aux_loss(model)
        return res

    return loss_fn


def split_parameters(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(main, aux) parameters as CompressAI separates them: aux = every '*.quantiles' parameter."""
    main, aux = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (aux if name.endswith("quantiles") else main).append(p)
    return main, aux
