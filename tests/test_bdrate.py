import bjontegaard as bj
import numpy as np
import pytest

from benchmark.bdrate import NoOverlapError, bd_psnr, bd_rate, quality_at_rate

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
    assert quality_at_rate(RA, PA, 0.2) == pytest.approx(31.0)
    assert quality_at_rate(RA, PA, 5.0) is None
