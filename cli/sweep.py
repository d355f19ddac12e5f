"""`bench sweep run` and `bench sweep status` (see benchmark/cluster/sweep.py for the folder layout)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from benchmark.contract.options import Budget, Device
from benchmark.errors import BenchError
from cli.defaults import DEFAULT_BUDGET

sweep_app = typer.Typer(help="Grids of runs as jobs (submitit): locally or on Slurm.")
console = Console()
err_console = Console(stderr=True)


@sweep_app.command("run")
def sweep_run(
    method: Optional[List[str]] = typer.Option(None, "--method", "-m", help="method (repeatable)"),
    dataset: Optional[List[str]] = typer.Option(None, "--dataset", "-d", help="dataset (repeatable)"),
    grid_file: Optional[Path] = typer.Option(None, "--grid", help="a declared grid (YAML/JSON: methods x protocols x seeds "
                                             "x points, budget; docs/grid.md) instead of --method/--dataset"),
    estimate_only: bool = typer.Option(False, "--estimate-only", help="print each job's GPU-hour estimate and stop"),
    devices: Optional[int] = typer.Option(None, "--devices", help="training processes per job, one per booked GPU "
                                          "(torchrun; on Slurm: GPUs booked per job)"),
    protocol: Optional[List[str]] = typer.Option(None, "--protocol", help="protocol (repeatable); default: each dataset's first"),
    budget: Budget = typer.Option(Budget(DEFAULT_BUDGET), "--budget", help="training budget"),
    seeds: str = typer.Option("0", "--seeds", help="seeds: '0', '0,1,2' or '0-4'"),
    out: Path = typer.Option(..., "--out", "-o", help="sweep folder"),
    launcher: Optional[str] = typer.Option(None, "--launcher", help="local | slurm (default: the grid's, else local)"),
    jobs: int = typer.Option(1, "--jobs", "-j", help="local launcher: jobs at a time"),
    device: Device = typer.Option(Device.cpu, "--device", help="where learned codecs train and run"),
    limit: Optional[int] = typer.Option(None, "--limit", help="evaluate only the first N test samples"),
    root: Optional[Path] = typer.Option(None, "--root", help="local copy of the dataset(s)"),
    option: Optional[List[str]] = typer.Option(None, "--option", help="method option key=value (repeatable)"),
    slurm_config: Optional[Path] = typer.Option(None, "--slurm-config", help="TOML/JSON file with Slurm settings"),
    partition: Optional[str] = typer.Option(None, "--partition"),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="GPUs per job"),
    time_min: Optional[int] = typer.Option(None, "--time", help="time limit per job, minutes"),
    mem: Optional[str] = typer.Option(None, "--mem", help="memory per job, e.g. 32G"),
    account: Optional[str] = typer.Option(None, "--account"),
    cpus: Optional[int] = typer.Option(None, "--cpus", help="CPUs per job"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Slurm: wait until every job has ended"),
    log_every: Optional[float] = typer.Option(None, "--log-every", help="seconds between the jobs' progress lines"),
) -> None:
    """Run every (method, dataset, protocol, seed) not done yet, or every job of a declared `--grid`; a rerun
    resumes interrupted jobs."""
    from benchmark.cluster.launch import resolve_devices
    from benchmark.cluster.sweep import expand
    from benchmark.progress import set_log_every
    from cli.app import _parse_kv

    budget, device = Budget(budget).value, Device(device).value  # plain strings in the sweep's records
    flags = {"partition": partition, "gpus": gpus, "time": time_min, "mem": mem, "account": account, "cpus": cpus}
    try:
        set_log_every(log_every)
        if grid_file is not None:
            if method or dataset:
                raise BenchError("--grid declares the methods and datasets: drop --method/--dataset")
            grid, budget, device, launcher, slurm_file = _from_grid(grid_file, out, devices, launcher, flags,
                                                                    estimate_only)
            if grid is None:
                return
        else:
            if not method or not dataset:
                raise BenchError("give --method and --dataset (repeatable), or a --grid file")
            n, flags["gpus"] = resolve_devices(devices, gpus, device)
            grid = expand(method, dataset, protocol, parse_seeds(seeds), budget=budget, device=device, limit=limit,
                          root=str(root) if root else None, method_options=_parse_kv(option, "--option"), devices=n)
            slurm_file, launcher = {}, launcher or "local"
        _submit(out, grid, budget, device, launcher, slurm_config, slurm_file, flags, jobs, wait)
    except BenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2)


def _submit(out: Path, grid: list, budget: str, device: str, launcher: str, slurm_config: Optional[Path],
            slurm_file: dict, flags: dict, jobs: int, wait: bool) -> None:
    """Submit the jobs (flags over the Slurm config file over the grid's settings); exit 1 naming failed jobs."""
    from benchmark.cluster.sweep import record_settings, slurm_settings, status, submit

    given = {k: v for k, v in flags.items() if v is not None}
    slurm = {**slurm_settings(None, slurm_file), **slurm_settings(slurm_config, given)} if launcher == "slurm" \
        else {"time": flags.get("time")}
    record_settings(out, budget, device)
    started = submit(out, grid, launcher=launcher, parallel=jobs, slurm=slurm, wait=wait, say=console.print)
    console.print(f"{len(grid)} jobs in the grid, {len(started)} started; `bench sweep status {out}` shows them")
    failed = [r["job"] for r in status(out) if r["state"] == "failed" and r["job"] in started]
    if failed:
        err_console.print(f"[bold red]{len(failed)} job(s) failed[/]: {', '.join(failed)}")
        raise typer.Exit(code=1)


def _from_grid(path: Path, out: Path, devices: Optional[int], launcher: str, flags: dict, estimate_only: bool):
    """The jobs of a grid file, each job's GPU-hour estimate printed (and recorded in S/grid.json) before anything is
    submitted: (jobs or None when only estimating, budget, device, launcher, the grid's Slurm settings)."""
    from benchmark.cluster.grid import estimates, grid_jobs, load_grid, record_grid
    from benchmark.cluster.launch import resolve_devices

    grid = load_grid(path)
    n, gpus = resolve_devices(devices or grid.devices, flags.get("gpus") or grid.slurm.get("gpus"), grid.device)
    if n != grid.devices:
        grid = dataclasses.replace(grid, devices=n)
    jobs = grid_jobs(grid)
    found = estimates(grid, jobs)
    typer.echo(f"GPU-hour estimate per job ({len(jobs)} jobs, budget {grid.budget}, {n} GPU(s) per job):")
    for e in found:  # one line per job, however narrow the terminal
        typer.echo(e.line())
    total = sum(e.gpu_hours or 0.0 for e in found)
    unknown = sum(e.gpu_hours is None for e in found)
    typer.echo(f"total: {total:,.1f} GPU-hours" + (f" (+ {unknown} job(s) without an estimate)" if unknown else ""))
    record_grid(out, grid, found)
    slurm = {**grid.slurm, **({"gpus": gpus} if gpus else {})}
    return (None if estimate_only else jobs), grid.budget, grid.device, launcher or grid.launcher or "local", slurm


@sweep_app.command("status")
def sweep_status(sweep: Path = typer.Argument(..., help="sweep folder")) -> None:
    """pending / running / done / failed / interrupted per job, with the log path of each failure."""
    from benchmark.cluster.sweep import status

    try:
        rows = status(sweep)
    except BenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
        typer.echo(f"{r['state']:<12} {r['job']}" + (f"  log: {r['stderr']}" if r["state"] == "failed" else "")
                   + (f"  ({r['error']})" if r["state"] == "failed" and r.get("error") else ""))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("group"):
            groups.setdefault(r["group"], []).append(r)
    for name, members in groups.items():  # per-point jobs: one merged result per method
        merged = next((r["merged"] for r in members if r.get("merged")), None)
        done = sum(r["state"] == "done" for r in members)
        typer.echo(f"{'merged' if merged else 'unmerged':<12} {name}: {done}/{len(members)} point jobs done"
                   + (f" -> {merged}" if merged else ""))
    typer.echo(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs")
    if counts.get("failed"):
        raise typer.Exit(code=1)


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise typer.BadParameter(f"--seeds must look like 0 or 0,1,2 or 0-4, got {text!r}")
    return out



