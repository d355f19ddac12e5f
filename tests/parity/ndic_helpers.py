"""Shared by the NDIC and NDIC-CAM parity tests: seeded weights for the authors' models, the comparison."""
from __future__ import annotations

import math

import torch
from torch import nn

from .noise import fixed_noise

PAPER_SIZE = (128, 256)  # the authors' resize for KITTI and Cityscapes
NUM_FILTERS = 192  # the authors' num_filters
RECON_TOL = 1e-4  # float32: the authors' entropy models cast to float32, so float64 is not available
BITS_RTOL = 1e-4


def seed_authors_model(model: nn.Module, seed: int) -> None:
    """Seeded weights with no symmetry a wrong mapping could hide behind: PyTorch's default init for the
    convolutions and linear layers, then non-symmetric GDN matrices, random entropy-model densities, and
    final encoder layers scaled so that latents span several quantisation bins."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if hasattr(m, "reset_parameters") and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.LayerNorm)):
            m.reset_parameters()
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "gamma":
                c = p.shape[0]
                p.copy_((0.1 * torch.eye(c) + 0.02 * torch.rand(c, c, generator=g)).sqrt())
            elif leaf == "beta":
                p.copy_((1.0 + 0.5 * torch.rand(p.shape, generator=g)).sqrt())
            elif leaf.startswith("matrix"):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            elif leaf.startswith("bias") and "entropy_bottleneck" in name:
                p.copy_(torch.rand(p.shape, generator=g) * 2 - 1)
            elif leaf == "factors":
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.startswith("norm") or ".norm." in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        for name in ("conv4", "conv4_cor", "conv4_w"):
            getattr(model, name).weight.mul_(8.0)


def bits(liks) -> float:
    if isinstance(liks, dict):
        return sum(bits(v) for v in liks.values())
    return float(-torch.log2(liks.double()).sum())


def inputs(seed: int, size=PAPER_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, *size, generator=g)
    y = (x + 0.1 * torch.randn(1, 3, *size, generator=g)).clamp(0, 1)  # a correlated side view
    return x, y


def run_both(theirs: nn.Module, ours: nn.Module, x: torch.Tensor, y: torch.Tensor, training: bool, dropout_seed: int = 0):
    theirs.train(training)
    ours.train(training)
    with torch.no_grad(), fixed_noise():
        torch.manual_seed(dropout_seed)  # only dropout (NDIC-CAM) still draws from the global generator
        t = theirs(x, y)
        torch.manual_seed(dropout_seed)
        o = ours(x, y)
    return t, o


def assert_same(name: str, a: torch.Tensor, b: torch.Tensor, tol: float = RECON_TOL) -> float:
    assert a.shape == b.shape, f"{name}: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    diff = float((a.double() - b.double()).abs().max())
    assert diff <= tol, f"{name}: max abs difference {diff:.3g} > {tol}"
    return diff


def assert_same_bits(name: str, theirs_bits: float, ours_bits: float, rtol: float = BITS_RTOL) -> float:
    rel = abs(theirs_bits - ours_bits) / max(abs(theirs_bits), 1e-12)
    assert math.isfinite(ours_bits) and rel <= rtol, f"{name}: {ours_bits:.6g} bits vs the authors' {theirs_bits:.6g} (rel {rel:.3g})"
    return rel


def report(name: str, training: bool, dx: float, dy: float, theirs_x_bits: float, ours_x_bits: float, rel_w: float) -> None:
    """One line of measured agreement (shown with ``pytest -s``; quoted in methods/ndic/README.md)."""
    rel_x = abs(theirs_x_bits - ours_x_bits) / theirs_x_bits
    print(f"\nparity {name} {'train' if training else 'eval'}: max|x_hat diff| {dx:.2e}, max|y_hat diff| {dy:.2e}, "
          f"x bits {ours_x_bits:.1f} vs authors' {theirs_x_bits:.1f} (rel {rel_x:.1e}), w bits rel {rel_w:.1e}")
