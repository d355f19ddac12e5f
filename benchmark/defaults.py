"""What `bench run` with no arguments runs: the main job on the embedded sample."""
from __future__ import annotations

DEFAULT_DATASET = "middlebury_sample"
DEFAULT_BUDGET = "quick"
# Classical codecs, then the learned baselines (trained at the quick budget on the embedded sample).
DEFAULT_METHODS: tuple[str, ...] = (
    "jpeg", "webp", "avif", "jpeg2000",
    "balle2017", "balle2018", "mbt2018_mean", "dsi_balle2018", "joint_balle2018",
)
