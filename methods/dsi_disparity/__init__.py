"""dsi_disparity: balle2018's encoder with a stereo-aware decoder (disparity, warp, fusion); decoder-only side information."""
from . import codec  # noqa: F401  (registers dsi_disparity)
