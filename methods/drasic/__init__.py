"""DRASIC: distributed recurrent autoencoder for scalable image compression (M encoders, one decoder)."""
from . import codec  # noqa: F401  (registers the `drasic` method)
