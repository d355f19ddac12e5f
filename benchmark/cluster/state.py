"""A sweep job's state file (``S/jobs/<job>/state.json``: pending | running | done | failed, launcher job id, logs,
error), written atomically, and whether a pending or running job is still alive (its process, or its Slurm job)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmark.safety.jsonsafe import jsonable
from benchmark.results.schema import atomic_write_text


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


def env_job_id() -> str | None:
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not inside a submitit job (run directly)
        return None


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
