"""Learned successive refinement for Wyner–Ziv coding (B. Joukovsky, B. De Weerd, N. Deligiannis, "Learned layered
coding for successive refinement in the Wyner-Ziv problem"), its scalar reference and the `scalar_sw` anchor.

Importing the package registers the codecs `layered_wz` and `scalar_sw`."""
from . import codec, scalar_codec  # noqa: F401  (registration)
