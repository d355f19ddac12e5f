
import torch

from benchmark.results import metrics


def test_psnr_known_value():
    a = torch.zeros(3, 8, 8)
    b = torch.full((3, 8, 8), 0.1)
    assert abs(metrics.psnr_from_mse(metrics.mse(a, b)) - 20.0) < 1e-6


def test_to_8bit_rounds_and_clamps():
    x = torch.tensor([-0.2, 0.5, 1.3, 0.0021])
    y = metrics.to_8bit(x)
    assert torch.allclose(y, torch.tensor([0.0, 128 / 255, 1.0, 1 / 255]))


def test_ms_ssim_null_with_reason_when_small():
    x = torch.rand(3, 64, 64)
    v, reason = metrics.msssim(x, x, win_size=7)
    assert v is None and "too small" in reason
    x = torch.rand(3, 128, 128)
    v, reason = metrics.msssim(x, x, win_size=7)
    assert reason is None and abs(v - 1.0) < 1e-5
    assert abs(metrics.ms_ssim_db(0.99) - 20.0) < 1e-9


def test_bpp():
    assert metrics.bpp(1000, 8000) == 1.0
