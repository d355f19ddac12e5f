"""Learned successive refinement for Wyner–Ziv coding (paper 004_*), its scalar reference and the `scalar_sw` anchor.

Importing the package registers the codecs `layered_wz` and `scalar_sw`."""
from . import codec, scalar_codec  # noqa: F401  (registration)
