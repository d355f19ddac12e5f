"""Training a learned codec: the rate–distortion loop every learned method shares (budgets, schedules,
validation, resumable checkpoints, TensorBoard logs), data-parallel training under torchrun, and weights on disk
(safetensors plus a manifest, checked before they are loaded)."""
