import bjontegaard as bj
import numpy as np
import pytest

from benchmark.results.bdrate import NoOverlapError, bd_psnr, bd_rate, quality_at_rate

RA = [0.1, 0.2, 0.4, 0.8, 1.2]
PA = [28.0, 31.0, 34.0, 37.0, 38.5]
RT = [0.09, 0.18, 0.35, 0.7, 1.1]
PT = [28.3, 31.5, 34.2, 37.4, 38.9]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_agrees_with_bjontegaard_package(method):
    assert bd_rate(RA, PA, RT, PT, method) == pytest.approx(bj.bd_rate(RA, PA, RT, PT, method=method), rel=1e-9, abs=1e-9)
    assert bd_psnr(RA, PA, RT, PT, method) == pytest.approx(bj.bd_psnr(RA, PA, RT, PT, method=method), rel=1e-9, abs=1e-9)


def test_sign_and_identity():
    assert bd_rate(RA, PA, RT, PT) < 0  # the test curve saves bits
    assert bd_psnr(RA, PA, RT, PT) > 0
    assert bd_rate(RA, PA, RA, PA) == pytest.approx(0.0, abs=1e-12)
    # halving every rate at the same quality is exactly -50 %
    assert bd_rate(RA, PA, np.array(RA) / 2, PA) == pytest.approx(-50.0, abs=1e-9)


def test_no_overlap():
    with pytest.raises(NoOverlapError, match="no overlap"):
        bd_rate([0.1, 0.2], [20, 22], [0.5, 0.6], [30, 32])


def test_quality_at_rate():
    # on a curve straight in log-rate, PCHIP in log-rate is that straight line: quality = 30 + 6 log2(r / 0.1)
    rates = [0.1, 0.2, 0.4, 0.8]
    quality = [30.0, 36.0, 42.0, 48.0]
    assert quality_at_rate(rates, quality, 0.3) == pytest.approx(30.0 + 6.0 * np.log2(3.0), abs=1e-9)  # 39.51, not 39.0
    assert quality_at_rate(rates, quality, 0.5) == pytest.approx(30.0 + 6.0 * np.log2(5.0), abs=1e-9)  # 43.93, not 43.5
    assert quality_at_rate(rates, quality, 0.2) == pytest.approx(36.0)  # a measured point
    assert quality_at_rate(RA, PA, 5.0) is None and quality_at_rate(RA, PA, 0.05) is None  # outside the range


def test_duplicate_rates_are_averaged():
    # two measurements at the same rate count as their mean (31 dB), not as the first or the last of them
    assert quality_at_rate([0.1, 0.2, 0.2, 0.4], [30.0, 30.0, 32.0, 34.0], 0.2) == pytest.approx(31.0)
    assert quality_at_rate([0.1, 0.2, 0.2, 0.4], [30.0, 32.0, 30.0, 34.0], 0.2) == pytest.approx(31.0)
    # in BD numbers too: a duplicated abscissa counts as the mean of its pair (BD-PSNR integrates over
    # log-rate: two PSNRs at one rate; BD-rate over PSNR: two rates, r*1.1 and r/1.1, at one PSNR)
    dup_r, dup_p = RT[:2] + [RT[2], RT[2]] + RT[3:], PT[:2] + [PT[2] - 0.4, PT[2] + 0.4] + PT[3:]
    assert bd_psnr(RA, PA, dup_r, dup_p) == pytest.approx(bd_psnr(RA, PA, RT, PT), abs=1e-12)
    dup_r, dup_p = RT[:2] + [RT[2] * 1.1, RT[2] / 1.1] + RT[3:], PT[:2] + [PT[2], PT[2]] + PT[3:]
    assert bd_rate(RA, PA, dup_r, dup_p) == pytest.approx(bd_rate(RA, PA, RT, PT), abs=1e-12)
