"""Sweeps: a grid of runs (method x dataset x protocol x seed [x rate point]) as jobs, through submitit, locally or
on Slurm.

Layout of a sweep folder S::

    S/sweep.json                     # budget, device, options: fixed for the folder (a rerun may add jobs)
    S/jobs/<job>/job.json            # what the job runs (a RunSpec)
    S/jobs/<job>/state.json          # pending | running | done | failed, launcher job id, log paths, error
    S/logs/                          # submitit's pickled calls and the jobs' stdout/stderr
    S/results/seed-<k>/<protocol>/<method>.json   # what `bench run --out S/results/seed-<k>` writes
    S/points/seed-<k>/<point>/<protocol>/<method>.json   # a per-point job's own result (merged into S/results)

Every result is written atomically by the runner (and the state file too). A rerun skips jobs that are done
(state done and the result file present) or still alive, and submits the others: an interrupted job resumes
from its trainer checkpoint (S/results/seed-<k>/<protocol>/train/...) and its partial evaluation CSV, because
it runs the same RunSpec into the same folder. On Slurm, submitit's checkpoint()/requeue does the same on
preemption or timeout. `bench leaderboard -r S/results` reads the results folder as it is.

One job per (method, dataset, protocol, seed), and per rate point where the codec's points train independently
(`Codec.independent_points`: e.g. the Ballé family with warm_start off, as at the paper budget; its quick budget
trains the points as a warm-start chain, in one job). A point job trains and evaluates its point only (the codec's
option for it, e.g. ``point=lambda=0.013``), and the points' results are merged into one result file per method
under a lock (benchmark/cluster/sweep_merge.py), which is what S/results holds and the leaderboard reads.
"""
from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from benchmark.cluster.state import env_job_id, job_dir, liveness, read_state, write_state
from benchmark.errors import ConfigError
from benchmark.safety.jsonsafe import jsonable
from benchmark.results.schema import atomic_write_text

LOCAL_TIME_MIN = 7 * 24 * 60
SLURM_KEYS = {"partition": str, "gpus": int, "time": int, "mem": str, "account": str, "cpus": int, "qos": str,
              "constraint": str}


@dataclass(frozen=True)
class Job:
    """One run of the grid."""

    method: str
    dataset: str
    protocol: str
    seed: int
    budget: str
    device: str = "cpu"
    limit: int | None = None
    root: str | None = None
    method_options: dict[str, Any] = field(default_factory=dict)
    point: str | None = None  # a per-point job: this rate point only, with `point_options` added to the options
    point_options: dict[str, Any] = field(default_factory=dict)
    points: list[str] = field(default_factory=list)  # every point of the method, in its order (merged together)
    devices: int = 1  # training processes (one per booked GPU) under torchrun: benchmark/cluster/launch.py

    @property
    def group(self) -> str:
        return f"{self.method}__{self.dataset}__{self.protocol.replace('/', '-')}__seed{self.seed}"

    @property
    def name(self) -> str:
        return self.group + (f"__{_slug(self.point)}" if self.point else "")

    def out(self, sweep: Path) -> Path:
        """Where the job's run writes (`bench run --out`); a point job's own folder."""
        return self.point_out(sweep, self.point) if self.point else self.merged_out(sweep)

    def merged_out(self, sweep: Path) -> Path:
        return Path(sweep) / "results" / f"seed-{self.seed}"

    def point_out(self, sweep: Path, point: str) -> Path:
        return Path(sweep) / "points" / f"seed-{self.seed}" / _slug(point)

    def merge(self, sweep: Path, result: Path) -> Path | None:
        """Merge the results of every point of this job's method (this job's `result` among them) into S/results,
        under the lock; the merged file, or None while a point has no result yet."""
        from benchmark.cluster.sweep_merge import merge

        rel = Path(os.path.relpath(result, self.out(sweep)))
        parts = [(p, self.point_out(sweep, p) / rel) for p in self.points]
        return merge(parts, self.merged_out(sweep) / rel, list(self.point_options))

    def result_path(self, sweep: Path) -> Path | None:
        """The result file the job wrote (recorded in its state), if it exists."""
        state = read_state(sweep, self.name)
        path = state.get("result")
        return Path(path) if path and Path(path).is_file() else None


# ---------------------------------------------------------------- the grid
def _slug(point: str) -> str:
    return point.replace("/", "-").replace(" ", "")


def expand(methods: Iterable[str], datasets: Iterable[str], protocols: Iterable[str] | None, seeds: Iterable[int], *,
           budget: str, device: str = "cpu", limit: int | None = None, root: str | None = None,
           method_options: dict[str, Any] | None = None, devices: int = 1) -> list[Job]:
    """One job per (method, dataset, protocol, seed), and per rate point where the points train independently;
    protocols default to each dataset's default one."""
    from benchmark.contract.registry import get_dataset, get_method

    methods, seeds, wanted = list(methods), list(seeds), list(protocols or [])
    for m in methods:  # unknown names, unknown or wrongly typed options fail before anything is submitted
        get_method(m).check_options(dict(method_options or {}))
    jobs = []
    for d in datasets:
        info = get_dataset(d)
        protos = [p for p in wanted if p in info.protocols] if wanted else [info.default_protocol]
        if not protos:
            raise ConfigError(f"dataset {d!r} supports none of the protocols {', '.join(wanted)}; "
                              f"it supports {', '.join(info.protocols)}")
        for p in protos:
            for m in methods:
                split = independent_points(m, d, p, budget, dict(method_options or {}), root)
                for s in seeds:
                    base = Job(m, d, p, int(s), budget, device, limit, root, dict(method_options or {}), devices=devices)
                    jobs.extend([replace(base, point=pt, point_options=opts, points=[q for q, _ in split])
                                 for pt, opts in split] or [base])
    return jobs


def independent_points(method: str, dataset: str, protocol: str, budget: str, options: dict[str, Any],
                       root: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The codec's `independent_points` as the runner would build it (empty: one job for all the points)."""
    from benchmark.contract.codec import Codec
    from benchmark.contract.registry import get_method
    from benchmark.evaluation.setup import RunSpec, make_codec, resolve

    if get_method(method).independent_points is Codec.independent_points:
        return []  # the default: no need to build the codec
    _, proto = resolve(dataset, protocol)
    spec = RunSpec(method=method, dataset=dataset, root=Path(root) if root else None, protocol=protocol, budget=budget,
                   method_options=options)
    return list(make_codec(spec, proto).independent_points(budget) or [])


# ---------------------------------------------------------------- state files


def load_jobs(sweep: Path) -> list[Job]:
    out = []
    for path in sorted((Path(sweep) / "jobs").glob("*/job.json")):
        out.append(Job(**json.loads(path.read_text(encoding="utf-8"))))
    return out


def record_settings(sweep: Path, budget: str, device: str) -> None:
    """The budget and device of a sweep folder are fixed: results of two budgets must not share a folder."""
    path = Path(sweep) / "sweep.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if (old.get("budget"), old.get("device")) != (budget, device):
            raise ConfigError(f"{sweep} holds a sweep at budget {old.get('budget')!r} on {old.get('device')!r}; "
                              f"use another --out for budget {budget!r} on {device!r}")
        return
    atomic_write_text(path, json.dumps({"budget": budget, "device": device}, indent=1) + "\n")


# ---------------------------------------------------------------- one job (runs in the launched process)
class SweepJob:
    """The callable submitit runs: one RunSpec into the sweep's results folder; checkpoint() requeues it."""

    def __init__(self, sweep: Path, job: Job, threads: int | None = None):
        self.sweep, self.job, self.threads = Path(sweep), job, threads

    def __call__(self) -> str:
        import torch

        from benchmark.evaluation.runner import run
        from benchmark.evaluation.setup import RunSpec

        if self.threads:
            torch.set_num_threads(self.threads)
        j = self.job
        write_state(self.sweep, j.name, state="running", host=socket.gethostname(), pid=os.getpid(), job_id=env_job_id())
        spec = RunSpec(method=j.method, dataset=j.dataset, root=Path(j.root) if j.root else None, protocol=j.protocol,
                       limit=j.limit, out=j.out(self.sweep), budget=j.budget, device=j.device, seed=j.seed,
                       method_options={**j.method_options, **j.point_options}, progress=None)
        try:
            if j.devices > 1:  # one training process per booked GPU (torchrun), then the evaluation here
                from benchmark.cluster.launch import train_data_parallel

                train_data_parallel(j, j.out(self.sweep))
            path, _ = run(spec)
            merged = j.merge(self.sweep, path) if j.point else None  # once every point of the method is done
        except Exception as exc:  # recorded for `bench sweep status`, then re-raised (a requeue is a SystemExit: not caught)
            write_state(self.sweep, j.name, state="failed", error=f"{type(exc).__name__}: {exc}",
                        traceback=traceback.format_exc()[-4000:])
            raise
        write_state(self.sweep, j.name, state="done", result=str(path), error=None, merged=merged and str(merged))
        return str(path)

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on preemption/timeout: requeue the same job; it resumes from the trainer's
        last checkpoint and the partial evaluation CSV in its results folder."""
        import submitit

        write_state(self.sweep, self.job.name, state="pending", requeued=True)
        return submitit.helpers.DelayedSubmission(SweepJob(self.sweep, self.job, self.threads))




def status(sweep: Path) -> list[dict[str, Any]]:
    """One row per job: name, state (now), log paths, error."""
    sweep = Path(sweep)
    if not (sweep / "jobs").is_dir():
        raise ConfigError(f"{sweep} is not a sweep folder (no jobs/ inside); start one with `bench sweep run --out {sweep}`")
    rows = []
    for job in load_jobs(sweep):
        st = read_state(sweep, job.name)
        now = liveness(st)
        if now == "done" and job.result_path(sweep) is None:
            now = "interrupted"  # the result file is gone: a rerun makes it again
        rows.append({"job": job.name, "state": now, "launcher_id": st.get("job_id"), "stdout": st.get("stdout"),
                     "stderr": st.get("stderr"), "error": st.get("error"), "result": st.get("result"),
                     "group": job.group if job.point else None, "merged": _merged_path(sweep, job, st)})
    return rows


def _merged_path(sweep: Path, job: Job, state: dict[str, Any]) -> str | None:
    """A point job's merged result file, where it exists."""
    result = state.get("result")
    if not job.point or not result:
        return None
    target = job.merged_out(sweep) / os.path.relpath(result, job.out(sweep))
    return str(target) if target.is_file() else None


def merge_ready(sweep: Path, jobs: list[Job]) -> list[Path]:
    """Merge every method whose point jobs are all done but whose merged result is missing (a job that died between
    its result and the merge, a deleted file); the merged files written."""
    groups: dict[str, list[Job]] = {}
    for j in jobs:
        if j.point:
            groups.setdefault(j.group, []).append(j)
    written = []
    for members in groups.values():
        states = [read_state(sweep, j.name) for j in members]
        if any(liveness(st) != "done" or j.result_path(sweep) is None for j, st in zip(members, states)) or \
                any(_merged_path(sweep, j, st) for j, st in zip(members, states)):
            continue
        merged = members[0].merge(sweep, Path(states[0]["result"]))
        if merged is not None:
            written.append(merged)
    return written


def slurm_settings(config: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    """Slurm options from a TOML/JSON file (keys: partition, gpus, time [minutes], mem, account, cpus, qos,
    constraint), overridden by the flags that were given."""
    settings: dict[str, Any] = {}
    if config is not None:
        text = Path(config).read_text(encoding="utf-8")
        if Path(config).suffix == ".json":
            settings = json.loads(text)
        else:
            import tomllib

            settings = tomllib.loads(text)
        settings = settings.get("slurm", settings)
    settings.update({k: v for k, v in flags.items() if v is not None})
    unknown = set(settings) - set(SLURM_KEYS)
    if unknown:
        raise ConfigError(f"unknown Slurm setting(s) {', '.join(sorted(unknown))}; known: {', '.join(SLURM_KEYS)}")
    try:
        return {k: SLURM_KEYS[k](v) for k, v in settings.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad Slurm setting: {exc}") from exc


# ---------------------------------------------------------------- submission
def needs_run(sweep: Path, job: Job) -> bool:
    """False for a job that is done (result present) or still pending/running somewhere."""
    now = liveness(read_state(sweep, job.name))
    if now == "done":
        return job.result_path(sweep) is None
    return now not in ("pending", "running")


def _executor(sweep: Path, launcher: str, slurm: dict[str, Any]):
    import submitit

    logs = Path(sweep) / "logs"
    if launcher == "local":  # submitit's local default is a 2-minute time limit: use --time, else a week
        ex = submitit.LocalExecutor(folder=logs)
        ex.update_parameters(timeout_min=int(slurm.get("time") or LOCAL_TIME_MIN), signal_delay_s=30)
        return ex
    if launcher != "slurm":
        raise ConfigError(f"unknown launcher {launcher!r}; use local or slurm")
    ex = submitit.SlurmExecutor(folder=logs, max_num_timeout=10)
    names = {"partition": "partition", "gpus": "gpus_per_node", "time": "time", "mem": "mem", "account": "account",
             "cpus": "cpus_per_task", "qos": "qos", "constraint": "constraint"}
    ex.update_parameters(signal_delay_s=120, **{names[k]: v for k, v in slurm.items()})
    return ex


def _submit_one(ex: Any, sweep: Path, job: Job, launcher: str, threads: int | None) -> Any:
    if launcher == "slurm":  # squeue/sacct show what the job runs: method, dataset, protocol, seed and point
        ex.update_parameters(job_name=job.name)
    sub = ex.submit(SweepJob(sweep, job, threads))
    write_state(sweep, job.name, state="pending", launcher=launcher, job_id=str(sub.job_id), launcher_pid=os.getpid(),
                stdout=str(sub.paths.stdout), stderr=str(sub.paths.stderr), error=None, result=None)
    return sub


def submit(sweep: Path, jobs: list[Job], *, launcher: str = "local", parallel: int = 1, slurm: dict[str, Any] | None = None,
           wait: bool = True, poll_s: float = 1.0, say=print) -> list[str]:
    """Submit the jobs of the grid that need to run; return their names. Local jobs run `parallel` at a
    time and are always waited for; Slurm jobs are waited for when `wait`."""
    sweep = Path(sweep)
    for job in jobs:
        path = job_dir(sweep, job.name) / "job.json"
        if not path.is_file():
            atomic_write_text(path, json.dumps(jsonable(asdict(job)), indent=1) + "\n")
    todo = [j for j in jobs if needs_run(sweep, j)]
    for j in jobs:
        if j not in todo:
            say(f"skip {j.name}: {liveness(read_state(sweep, j.name))}")
    for path in merge_ready(sweep, jobs):
        say(f"merged {path}")
    if not todo:
        return []
    ex = _executor(sweep, launcher, slurm or {})
    if launcher == "local":
        threads = max(1, (os.cpu_count() or 1) // max(1, parallel))
        for j in todo:
            write_state(sweep, j.name, state="pending", launcher="local", launcher_pid=os.getpid(), job_id=None, error=None)
        _run_local(ex, sweep, todo, max(1, parallel), threads, poll_s, say)
    else:
        for j in todo:
            sub = _submit_one(ex, sweep, j, launcher, None)
            say(f"submitted {j.name} as Slurm job {sub.job_id}")
        if wait:
            wait_for(sweep, [j.name for j in todo], poll_s=max(poll_s, 2.0), say=say)
    for path in merge_ready(sweep, jobs):  # normally done by the last point job itself
        say(f"merged {path}")
    return [j.name for j in todo]


def _run_local(ex: Any, sweep: Path, todo: list[Job], parallel: int, threads: int, poll_s: float, say) -> None:
    queue, running = list(todo), {}
    while queue or running:
        while queue and len(running) < parallel:
            j = queue.pop(0)
            running[j.name] = (j, _submit_one(ex, sweep, j, "local", threads))
            say(f"started {j.name} (pid {running[j.name][1].job_id})")
        time.sleep(poll_s)
        for name, (j, sub) in list(running.items()):
            if not sub.done():
                continue
            del running[name]
            try:
                sub.result()
            except Exception as exc:  # the job wrote its own state unless it was killed
                if read_state(sweep, name).get("state") != "failed":
                    write_state(sweep, name, state="failed", error=str(exc)[-2000:])
                say(f"failed {name}: see {sub.paths.stderr}")
            else:
                say(f"done {name}")


def wait_for(sweep: Path, names: list[str], *, poll_s: float = 5.0, timeout_s: float | None = None, say=print) -> None:
    """Until every named job is done, failed or gone (state files + the launcher's queue)."""
    t0 = time.monotonic()
    left = set(names)
    while left:
        for name in sorted(left):
            now = liveness(read_state(sweep, name))
            if now in ("done", "failed", "interrupted"):
                left.discard(name)
                say(f"{now} {name}")
        if left:
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                raise ConfigError(f"{len(left)} sweep job(s) still running after {timeout_s:.0f} s: {', '.join(sorted(left))}")
            time.sleep(poll_s)
