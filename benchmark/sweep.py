"""Sweeps: a grid of runs (method x dataset x protocol x seed) as jobs, through submitit, locally or on Slurm.

Layout of a sweep folder S::

    S/sweep.json                     # budget, device, options: fixed for the folder (a rerun may add jobs)
    S/jobs/<job>/job.json            # what the job runs (a RunSpec)
    S/jobs/<job>/state.json          # pending | running | done | failed, launcher job id, log paths, error
    S/logs/                          # submitit's pickled calls and the jobs' stdout/stderr
    S/results/seed-<k>/<protocol>/<method>.json   # what `bench run --out S/results/seed-<k>` writes

Every result is written atomically by the runner (and the state file too). A rerun skips jobs that are done
(state done and the result file present) or still alive, and submits the others: an interrupted job resumes
from its trainer checkpoint (S/results/seed-<k>/<protocol>/train/...) and its partial evaluation CSV, because
it runs the same RunSpec into the same folder. On Slurm, submitit's checkpoint()/requeue does the same on
preemption or timeout. `bench leaderboard -r S/results` reads the results folder as it is.

One job per (method, dataset, protocol, seed): the rate points of a method are trained inside its job
(the Ballé family's quick budget trains them as a warm-start chain, so they cannot be split into jobs).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError
from .jsonsafe import jsonable
from .results import atomic_write_text

LOCAL_TIME_MIN = 7 * 24 * 60
STATES = ("pending", "running", "done", "failed", "interrupted")
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

    @property
    def name(self) -> str:
        return f"{self.method}__{self.dataset}__{self.protocol.replace('/', '-')}__seed{self.seed}"

    def out(self, sweep: Path) -> Path:
        return Path(sweep) / "results" / f"seed-{self.seed}"

    def result_path(self, sweep: Path) -> Path | None:
        """The result file the job wrote (recorded in its state), if it exists."""
        state = read_state(sweep, self.name)
        path = state.get("result")
        return Path(path) if path and Path(path).is_file() else None


# ---------------------------------------------------------------- the grid
def expand(methods: Iterable[str], datasets: Iterable[str], protocols: Iterable[str] | None, seeds: Iterable[int], *,
           budget: str, device: str = "cpu", limit: int | None = None, root: str | None = None,
           method_options: dict[str, Any] | None = None) -> list[Job]:
    """One job per (method, dataset, protocol, seed); protocols default to each dataset's default one."""
    from .registry import get_dataset, get_method

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
                for s in seeds:
                    jobs.append(Job(m, d, p, int(s), budget, device, limit, root, dict(method_options or {})))
    return jobs


# ---------------------------------------------------------------- state files
def job_dir(sweep: Path, name: str) -> Path:
    return Path(sweep) / "jobs" / name


def read_state(sweep: Path, name: str) -> dict[str, Any]:
    path = job_dir(sweep, name) / "state.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def write_state(sweep: Path, name: str, **fields: Any) -> dict[str, Any]:
    state = {**read_state(sweep, name), **fields, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_text(job_dir(sweep, name) / "state.json", json.dumps(jsonable(state), indent=1) + "\n")
    return state


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

        from .runner import RunSpec, run

        if self.threads:
            torch.set_num_threads(self.threads)
        j = self.job
        write_state(self.sweep, j.name, state="running", host=socket.gethostname(), pid=os.getpid(), job_id=_env_job_id())
        spec = RunSpec(method=j.method, dataset=j.dataset, root=Path(j.root) if j.root else None, protocol=j.protocol,
                       limit=j.limit, out=j.out(self.sweep), budget=j.budget, device=j.device, seed=j.seed,
                       method_options=dict(j.method_options), progress=None)
        try:
            path, _ = run(spec)
        except Exception as exc:  # recorded for `bench sweep status`, then re-raised (a requeue is a SystemExit: not caught)
            write_state(self.sweep, j.name, state="failed", error=f"{type(exc).__name__}: {exc}",
                        traceback=traceback.format_exc()[-4000:])
            raise
        write_state(self.sweep, j.name, state="done", result=str(path), error=None)
        return str(path)

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on preemption/timeout: requeue the same job; it resumes from the trainer's
        last checkpoint and the partial evaluation CSV in its results folder."""
        import submitit

        write_state(self.sweep, self.job.name, state="pending", requeued=True)
        return submitit.helpers.DelayedSubmission(SweepJob(self.sweep, self.job, self.threads))


def _env_job_id() -> str | None:
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not inside a submitit job (run directly)
        return None


# ---------------------------------------------------------------- status
def liveness(state: dict[str, Any]) -> str:
    """The state of a job as it is now: a pending/running job whose process or Slurm job is gone is
    `interrupted` (a rerun resumes it)."""
    s = state.get("state", "pending")
    if s not in ("pending", "running"):
        return s
    if state.get("launcher") == "slurm":
        return s if _slurm_alive(state.get("job_id")) else "interrupted"
    pid = state.get("pid") if s == "running" else state.get("launcher_pid")
    return s if _pid_alive(pid) else "interrupted"


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _slurm_alive(job_id: Any) -> bool:
    if not job_id:
        return False
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: do not resubmit a job that may still run
    return bool(out.stdout.strip())


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
                     "stderr": st.get("stderr"), "error": st.get("error"), "result": st.get("result")})
    return rows


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
