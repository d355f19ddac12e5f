"""Sweeps: many runs (methods × datasets × budgets) as local processes or Slurm jobs through submitit, resumable,
their results merged into one tree."""
