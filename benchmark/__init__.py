"""The suite's core: everything between a codec's bytes and the numbers in a result file, and nothing that names a
method, a dataset or the leaderboard.

Sub-packages, each importing only those listed before it (``tests/test_layering.py``):

- ``safety`` — reading what strangers send (JSON, CSV, names, checkpoints, image sizes) and writing durably;
- ``contract`` — what a method and a dataset agree to: the codec interface, samples, protocols, options, budgets,
  the bitstream container and the registry;
- ``results`` — what a number means: the result and published-curve schemas, metrics formulas, consistency and
  provenance checks, BD metrics, ranking and submission;
- ``training`` — the shared rate–distortion loop, checkpoints, data-parallel training and weights on disk;
- ``evaluation`` — the runner: codes every test sample to bytes, in sandboxed role processes, measures and writes
  the result; and `bench verify`, which does it again from a result's bitstreams;
- ``cluster`` — sweeps of runs as local processes or Slurm jobs.

``errors`` (the exception hierarchy) and ``progress`` (progress bars) sit below all of them. The command line is
the separate package ``cli``, the only code that imports upward."""
