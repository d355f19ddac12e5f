"""LDMIC (Zhang, Shao, Zhang, ICLR 2023, arXiv:2301.09799): importing registers its codecs."""
from . import codec  # noqa: F401
