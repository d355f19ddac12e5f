"""Fixtures for the parity tests; the machinery is in reference.py (importable as ``from .reference import``)."""
import pytest

from .reference import reference_root


@pytest.fixture
def reference_code():
    """The reference-code folder (skips the test when it is absent)."""
    root = reference_root()
    if root is None:
        pytest.skip("reference code not found: set BENCH_REFERENCE_CODE")
    return root
