"""Neural DSC (Whang et al.): conditional VQ-VAE + causal-Transformer latent prior, range-coded bytes."""
from . import codec  # noqa: F401  (registers neural_dsc, neural_dsc_joint, neural_dsc_separate)
