"""GPU-hour estimates of sweep jobs before they are submitted: the training steps of each job's budget times a
per-step cost, and which of two bases that cost has.

- **measured**: a rate in steps/s of one stage of one method on one protocol, measured on the GPU the grid will use
  (the grid file's ``cost.rates``: {method: {protocol: {stage: steps_per_s}}}, per job of ``devices`` GPUs).
- **FLOPs**: the FLOPs of one training sample forward + backward, counted on CPU by perf/step_flops.py with
  torch's FlopCounterMode (convolutions and matmuls; the table step_flops.json beside this module), times the
  stage's batch, divided by an assumed sustained GPU throughput (``cost.tflops``, default 10 TFLOP/s).

Steps per stage come from the method's own budget table under the job's protocol (benchmark/contract/budgets.py):
a stage given in epochs takes ceil(epochs x training samples / batch), the training-set size being the dataset's
declared one (its module's ``EXPECTED["train"]``) unless the grid gives ``cost.train_samples``. A job that trains
one rate point trains one model; a job of all the points trains one per point. Codecs without training cost 0.
Evaluation (CPU coding of the test split) is not included."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

FLOPS_TABLE = Path(__file__).with_name("step_flops.json")
DEFAULT_TFLOPS = 10.0


@dataclass(frozen=True)
class Estimate:
    """One job's estimate: GPU-hours (None: no cost model), steps per stage, models trained, and its basis."""

    job: str
    gpu_hours: float | None
    basis: str  # "measured", "FLOPs", "not trained" or "no estimate: <why>"
    steps: dict[str, int] = field(default_factory=dict)
    models: int = 0

    def line(self) -> str:
        hours = "-" if self.gpu_hours is None else f"{self.gpu_hours:,.1f}"
        steps = ", ".join(f"{k} {v:,}" for k, v in self.steps.items())
        return f"{hours:>10} GPU-h  {self.job}  ({self.models} model(s); {steps or 'no training'}; {self.basis})"


def flops_table(path: Path = FLOPS_TABLE) -> dict[str, Any]:
    """perf/step_flops.py's table: {method: {protocol: {stage: FLOPs per training sample}}} (empty if absent)."""
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("flops_per_sample", {}))


def declared_train_samples(dataset: str) -> int | None:
    """The training-set size a dataset module declares (``EXPECTED["train"]``), if it declares one."""
    from benchmark.contract.registry import get_dataset

    module = sys.modules.get(get_dataset(dataset).factory.__module__)
    expected = getattr(module, "EXPECTED", None)
    return int(expected["train"]) if isinstance(expected, Mapping) and "train" in expected else None


def stage_steps(entry: Any, options: Mapping[str, Any], n_train: int | None) -> dict[str, int] | str:
    """Steps per stage of a budget entry with the job's options (``steps``/``batch_size`` override the first
    stage, ``<stage>_steps``/``<stage>_batch_size`` the others); a reason string when a stage's epochs cannot
    be turned into steps."""
    out = {}
    for i, (stage, tc) in enumerate(entry.train.items()):
        prefix = "" if i == 0 else f"{stage}_"
        batch = int(options.get(f"{prefix}batch_size", tc.batch_size))
        if f"{prefix}steps" in options:
            out[stage] = int(options[f"{prefix}steps"])
        elif stage in entry.epochs:
            if not n_train:
                return f"no estimate: stage {stage} is {entry.epochs[stage]} epochs and the training-set size is " \
                       "unknown (give cost.train_samples in the grid)"
            out[stage] = math.ceil(entry.epochs[stage] * n_train / batch)
        else:
            out[stage] = int(tc.steps)
    return out


def _models(codec: Any, budget: str, job: Any) -> int:
    """Models one job trains: one for a per-point job, else one per rate point of the budget."""
    if job.point:
        return 1
    resolve = getattr(codec, "resolve_config", None)
    if resolve is not None:
        cfg = resolve(budget)[0]
        if "lambdas" in cfg:
            return len(cfg["lambdas"])
    return len(codec.rate_points())


def estimate(job: Any, *, rates: Mapping[str, Any] | None = None, tflops: float = DEFAULT_TFLOPS,
             train_samples: Mapping[str, int] | None = None, flops: Mapping[str, Any] | None = None) -> Estimate:
    """The GPU-hour estimate of one sweep job (benchmark/cluster/sweep.py's Job)."""
    from benchmark.contract.codec import LearnedCodec
    from benchmark.evaluation.setup import RunSpec, make_codec, resolve

    _, proto = resolve(job.dataset, job.protocol)
    options = {**job.method_options, **job.point_options}
    codec = make_codec(RunSpec(method=job.method, dataset=job.dataset, protocol=job.protocol, budget=job.budget,
                               method_options=options), proto)
    if not isinstance(codec, LearnedCodec):
        return Estimate(job.name, 0.0, "not trained")
    entry = codec.budget_table(proto.name)[job.budget]
    n_train = (train_samples or {}).get(proto.name) or declared_train_samples(job.dataset)
    steps = stage_steps(entry, options, n_train)
    models = _models(codec, job.budget, job)
    if isinstance(steps, str):
        return Estimate(job.name, None, steps, {}, models)
    measured = ((rates or {}).get(job.method) or {}).get(proto.name) or {}
    if all(stage in measured for stage in steps):
        seconds = sum(n / float(measured[stage]) for stage, n in steps.items())
        return Estimate(job.name, models * seconds * job.devices / 3600.0, "measured", steps, models)
    per_sample = ((flops if flops is not None else flops_table()).get(job.method) or {}).get(proto.name) or {}
    missing = [stage for stage in steps if stage not in per_sample]
    if missing:
        return Estimate(job.name, None, f"no estimate: no measured rate and no FLOP count for {job.method} on "
                                        f"{proto.name} (perf/step_flops.py)", steps, models)
    total = sum(n * per_sample[stage] * _batch(entry, options, stage) for stage, n in steps.items())
    return Estimate(job.name, models * total / (tflops * 1e12) / 3600.0,
                    f"FLOPs counted on CPU at an assumed {tflops:g} TFLOP/s", steps, models)


def _batch(entry: Any, options: Mapping[str, Any], stage: str) -> int:
    prefix = "" if stage == next(iter(entry.train)) else f"{stage}_"
    return int(options.get(f"{prefix}batch_size", entry.train[stage].batch_size))
