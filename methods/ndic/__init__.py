"""NDIC (DCC 2022) and NDIC-CAM (WACV 2023): decoder-only side information through common information."""
from . import codec  # noqa: F401  (registers ndic_balle2017, ndic_balle2018, ndic_cam)
