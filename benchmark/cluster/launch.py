"""Sweep jobs on several GPUs: one training process per booked GPU through torchrun, then the evaluation in the
job's own process.

A job with ``devices`` N > 1 (``bench sweep run --devices N``; on Slurm it books N GPUs on one node) first runs
``bench train`` for its (method, dataset, protocol, seed[, point]) under torchrun with N processes
(benchmark/training/distributed.py: data-parallel training, one process per GPU, gloo processes on CPU), writing
the weights into the job's own results folder; the job then runs its `RunSpec` in-process, which finds and loads
those weights (benchmark/evaluation/setup.py: ensure_trained) and codes the test split. A job requeued after its
weights were written does not train again; one requeued during training resumes from the trainer's checkpoint
(the same run folder)."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError, TrainingError


def option_args(options: dict[str, Any]) -> list[str]:
    """`--option key=value` arguments for the command line (lists comma-joined, booleans true/false)."""
    out = []
    for key, value in options.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        out += ["--option", f"{key}={text}"]
    return out


def train_argv(job: Any, out: Path) -> list[str]:
    """`bench train ...` arguments (without the program) that train what `job` evaluates, into `out`."""
    argv = ["train", "--method", job.method, "--dataset", job.dataset, "--protocol", job.protocol, "--out", str(out),
            "--budget", job.budget, "--device", job.device, "--seed", str(job.seed),
            *option_args({**job.method_options, **job.point_options})]
    return argv + (["--root", str(job.root)] if job.root else [])


def weights_dir(job: Any, out: Path) -> Path | None:
    """Where `bench train`/`bench run` keep the job's weights in `out`; None for a codec without training."""
    from benchmark.contract.codec import LearnedCodec
    from benchmark.evaluation.setup import RunSpec, make_codec, protocol_dir, resolve, result_key

    _, proto = resolve(job.dataset, job.protocol)
    spec = RunSpec(method=job.method, dataset=job.dataset, root=Path(job.root) if job.root else None,
                   protocol=job.protocol, budget=job.budget, seed=job.seed,
                   method_options={**job.method_options, **job.point_options})
    codec = make_codec(spec, proto)
    if not isinstance(codec, LearnedCodec):
        return None
    key, _ = result_key(codec, spec)
    return protocol_dir(out, proto.name) / "weights" / key


def train_data_parallel(job: Any, out: Path) -> bool:
    """Train `job`'s model with `job.devices` processes under torchrun unless its weights are already in `out`;
    True when it trained. A TrainingError names the torchrun command when a process fails."""
    from benchmark.training.distributed import launch_command

    if job.devices < 2:
        raise ConfigError(f"a data-parallel job needs devices >= 2, got {job.devices}")
    target = weights_dir(job, out)
    if target is None or any(target.glob("*.json")):
        return False  # nothing to train, or trained before a requeue: the run loads the weights
    cmd = launch_command(job.devices, train_argv(job, out))
    res = subprocess.run(cmd)
    if res.returncode != 0:
        raise TrainingError(f"data-parallel training exited with status {res.returncode}: {' '.join(cmd)}")
    return True


def resolve_devices(devices: int | None, gpus: int | None, device: str) -> tuple[int, int | None]:
    """(training processes per job, GPUs to book per job): one process per booked GPU. `--devices` alone books as
    many GPUs on cuda; `--gpus` alone starts as many processes; both must agree."""
    if devices is not None and devices < 1:
        raise ConfigError(f"--devices must be at least 1, got {devices}")
    if devices is None:
        devices = gpus if gpus and gpus > 1 else 1
    if device.startswith("cuda"):
        if gpus is None:
            gpus = devices
        elif gpus != devices:
            raise ConfigError(f"--devices {devices} and --gpus {gpus} differ: a job starts one training process per "
                              "booked GPU; give one of them")
    return devices, gpus
