"""What `bench run` with no arguments runs: the main job on the embedded sample."""
from __future__ import annotations

DEFAULT_DATASET = "middlebury_sample"
DEFAULT_BUDGET = "quick"
# The learned baselines (trained at the quick budget on the embedded sample; listed first because they take
# longest and `bench run` starts methods in this order), then the classical codecs.
DEFAULT_METHODS: tuple[str, ...] = (
    "balle2017", "balle2018", "mbt2018_mean", "dsi_balle2018", "joint_balle2018",
    "jpeg", "webp", "avif", "jpeg2000",
)
