"""A few-hundred-parameter rate-distortion model for trainer tests (no CompressAI import, so subprocesses start fast).

It has what the trainer must handle for a real learned codec: additive uniform noise drawn from the global
RNG in training (so resuming must restore the RNG), likelihoods for the rate term, and `quantiles`
parameters with an `aux_loss()` stepped by the separate auxiliary optimizer."""
from __future__ import annotations

import torch
from torch import nn


class TinyRD(nn.Module):
    def __init__(self, channels: int = 4):
        super().__init__()
        self.enc = nn.Conv2d(3, channels, 4, stride=2, padding=1)
        self.dec = nn.ConvTranspose2d(channels, 3, 4, stride=2, padding=1)
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.quantiles = nn.Parameter(torch.tensor([[-3.0, 0.0, 3.0]]).repeat(channels, 1))

    def forward(self, x: torch.Tensor) -> dict:
        y = self.enc(x)
        y_hat = y + (torch.rand_like(y) - 0.5) if self.training else torch.round(y)
        s = self.log_scale.exp()[None, :, None, None]
        normal = torch.distributions.Normal(0.0, 1.0)
        lik = (normal.cdf((y_hat + 0.5) / s) - normal.cdf((y_hat - 0.5) / s)).clamp_min(1e-9)
        return {"x_hat": self.dec(y_hat), "likelihoods": {"y": lik}}

    def aux_loss(self) -> torch.Tensor:
        # pull the outer quantiles towards +-2 scales (a stand-in for CompressAI's quantile loss)
        target = 2.0 * self.log_scale.detach().exp()
        return (self.quantiles[:, 0] + target).abs().sum() + (self.quantiles[:, 2] - target).abs().sum()
