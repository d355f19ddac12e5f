"""`bench`: the application with every command registered, and the commands that run methods: `bench run`,
`bench train` and `bench leaderboard`. `main` is the console script."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

import typer
from rich.table import Table

from benchmark.contract.options import Budget, Device, Direction
from benchmark.errors import BenchError
from cli.app import _fail, _parse_kv, app, console, err_console  # noqa: F401
from cli.defaults import DEFAULT_BUDGET, DEFAULT_DATASET
from cli.sweep import sweep_app

app.add_typer(sweep_app, name="sweep")


def _dataset_options(sources, direction, skip_bad, dataset_option, variant) -> dict[str, Any]:
    opts = _parse_kv(dataset_option, "--dataset-option")
    if sources is not None:
        opts["sources"] = sources
    if direction is not None:
        opts["direction"] = direction
    if skip_bad:
        opts["skip_bad"] = True
    if variant is not None:
        opts["variant"] = variant
    return opts


@app.command()
def run(
    method: Optional[List[str]] = typer.Option(None, "--method", "-m", help="method name (repeatable); default: the main-job set"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="dataset name; default middlebury_sample"),
    root: Optional[Path] = typer.Option(None, "--root", help="local copy of the dataset"),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="protocol; default: the dataset's first"),
    limit: Optional[int] = typer.Option(None, "--limit", help="evaluate only the first N test samples"),
    out: Path = typer.Option(Path("results"), "--out", "-o", help="results folder"),
    budget: Optional[Budget] = typer.Option(None, "--budget", help="training budget (default: quick)"),
    device: Device = typer.Option(Device.cpu, "--device", help="where learned codecs train and run"),
    seed: int = typer.Option(0, "--seed"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="evaluate these trained weights instead of training"),
    retrain: bool = typer.Option(False, "--retrain", help="train even if weights from an earlier run exist in --out"),
    sources: Optional[int] = typer.Option(None, "--sources", help="number of sources M (distributed protocols)"),
    direction: Optional[Direction] = typer.Option(None, "--direction", help="stereo direction"),
    variant: Optional[str] = typer.Option(None, "--variant", help="dataset variant, e.g. wrong_side"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="skip unreadable images with a warning"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="refuse images and bitstreams whose header "
                                             "announces more pixels (H*W) than this; default 2**25 (benchmark/safety/limits.py)"),
    option: Optional[List[str]] = typer.Option(None, "--option", help="method option key=value (repeatable)"),
    dataset_option: Optional[List[str]] = typer.Option(None, "--dataset-option", help="dataset option key=value (repeatable)"),
    leaderboard: Optional[bool] = typer.Option(None, "--leaderboard/--no-leaderboard", help="regenerate the leaderboard afterwards (default: on for the main job)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    log_every: Optional[float] = typer.Option(None, "--log-every", help="seconds between progress lines when stderr "
                                              "is not a terminal (batch jobs; default 10)"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="methods run side by side in worker processes, "
                                       "each with cpu_count/jobs torch threads (default: 2 for the main job, else 1)"),
    isolation: Optional[str] = typer.Option(None, "--isolation", help="where the method's code runs: sandbox (bubblewrap, "
                                            "one process per role; the default where it works), process (plain child "
                                            "processes; not ranked) or none (in this process; debugging)"),
    keep_bitstreams: bool = typer.Option(False, "--keep-bitstreams", help="store every bitstream beside the result "
                                         "(<method>.bitstreams.zip) so `bench verify` can re-decode it"),
    plugin: Optional[List[str]] = typer.Option(None, "--plugin", help="module that registers a method not installed as a "
                                               "plugin (imported only inside the method's role processes; repeatable)"),
    devices: int = typer.Option(1, "--devices", min=1, help="processes training each learned method data-parallel in its "
                                "train sandbox (torchrun, one node; one per GPU with --device cuda)"),
    eval_workers: int = typer.Option(1, "--eval-workers", min=1, help="encoder, then decoder roles coding side by side"),
) -> None:
    """Train or load, code every test image to real bytes, measure, write <out>/<protocol>/<method>.json."""
    import dataclasses

    from benchmark.evaluation.setup import RunSpec
    from cli.defaults import DEFAULT_METHODS

    main_job = not method and dataset is None
    _progress_settings(quiet, log_every)
    spec = RunSpec(method="", dataset=dataset or DEFAULT_DATASET, root=root, protocol=protocol, limit=limit, out=out,
                   budget=budget.value if budget else DEFAULT_BUDGET, device=device.value, seed=seed, weights=weights,
                   retrain=retrain, method_options=_parse_kv(option, "--option"), eval_workers=eval_workers,
                   dataset_options=_dataset_options(sources, direction.value if direction else None, skip_bad,
                                                    dataset_option, variant),
                   progress=False if quiet else None, max_pixels=max_pixels,  # None: a bar on a terminal, else log lines
                   isolation=isolation, keep_bitstreams=keep_bitstreams, plugins=tuple(plugin or ()), devices=devices)
    methods = list(method) if method else list(DEFAULT_METHODS)
    jobs = (min(2, os.cpu_count() or 1) if main_job else 1) if jobs is None else jobs
    t_start, written = time.perf_counter(), _run_methods([dataclasses.replace(spec, method=m) for m in methods], jobs, quiet)
    if main_job if leaderboard is None else leaderboard:
        _build_leaderboard([out], out / "leaderboard")
    if len(methods) > 1:
        console.print(f"[bold]done[/]: {len(written)} result files in {time.perf_counter() - t_start:.1f} s")


def _run_methods(specs: list[Any], jobs: int, quiet: bool) -> list[Path]:
    """Run each spec (side by side in `jobs` worker processes when there are several); the result files written."""
    from benchmark.evaluation.runner import run as run_one

    if jobs > 1 and len(specs) > 1:
        return _run_parallel(specs, jobs, quiet)
    written = []
    for spec in specs:
        try:
            t0 = time.perf_counter()
            path, result = run_one(spec, console=console)
        except BenchError as exc:
            _fail(exc)
        written.append(path)
        _print_result(path, result, time.perf_counter() - t0)
    return written


def _run_worker(spec: Any, threads: int) -> tuple[str, Any, float]:
    """One method in a worker process: returns ("ok", (path, result), s) or ("error", message, s)."""
    import dataclasses

    import torch

    from benchmark.evaluation.runner import run as run_one

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        path, result = run_one(dataclasses.replace(spec, progress=False if sys.stderr.isatty() else spec.progress), console=None)
    except BenchError as exc:  # sent back as text: exception types with extra fields need not pickle
        return "error", f"{spec.method}: {exc}", time.perf_counter() - t0
    return "ok", (str(path), result), time.perf_counter() - t0


def _run_parallel(specs: list[Any], jobs: int, quiet: bool) -> list[Path]:
    """Run several methods side by side (trainable ones first, as they take longest); one overall progress bar."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from benchmark.progress import Reporter

    # in the order given (the main job lists its learned methods first: they take longest); this process never
    # imports a method's code, which runs only in the workers' sandboxed role processes
    order = list(specs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    written: list[Path] = []
    errors: list[str] = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool, \
            Reporter(f"{len(specs)} methods, {jobs} at a time", len(specs), enabled=False if quiet else None,
                     unit="methods", transient=True, console=console) as bar:
        futures = {pool.submit(_run_worker, s, threads): s for s in order}
        for fut in as_completed(futures):
            status, payload, seconds = fut.result()
            bar.advance()
            if status == "error":
                errors.append(payload)
                err_console.print(f"[bold red]error:[/] {payload}")
                continue
            path, result = payload
            written.append(Path(path))
            bar.print(f"[green]done[/] {futures[fut].method} ({seconds:.0f} s)")
            _print_result(Path(path), result, seconds)
    if errors:
        raise typer.Exit(code=2)
    return written


def _progress_settings(quiet: bool, log_every: float | None) -> None:
    """--quiet and --log-every for this process and the workers it starts (through the environment)."""
    from benchmark.progress import set_log_every

    if quiet:
        os.environ["BENCH_PROGRESS"] = "0"
    try:
        set_log_every(log_every)
    except BenchError as exc:
        _fail(exc)


def _print_result(path: Path, result: dict[str, Any], seconds: float) -> None:
    unit = result["rate_unit"]
    t = Table(title=f"{result['method']}{'.' + result['variant'] if result.get('variant') else ''} on {result['protocol']} ({result['scenario']})")
    pts = result["points"]
    cols = [("point", "rate_point", None), (unit, "bpp", 4), (f"{unit} payload", "bpp_payload", 4),
            (f"{unit} estimate", "bpp_estimated", 4), ("PSNR dB", "psnr", 2), ("PSNR min", "psnr_min", 2),
            ("PSNR max", "psnr_max", 2), ("MS-SSIM", "ms_ssim", 4), ("enc s", "encode_s", 3), ("dec s", "decode_s", 3)]
    cols = [c for c in cols if any(p.get(c[1]) is not None for p in pts)]  # hide columns with no values
    for name, key, _ in cols:
        t.add_column(name, justify="right", no_wrap=key == "rate_point", min_width=12 if key == "rate_point" else None)
    f = lambda v, prec: "—" if v is None else (v if prec is None else f"{v:.{prec}f}")
    for p in pts:
        t.add_row(*[f(p.get(key), prec) for _, key, prec in cols])
    console.print(t)
    console.print(f"wrote [bold]{path}[/] ({seconds:.1f} s)")


@app.command()
def train(
    method: str = typer.Option(..., "--method", "-m"),
    dataset: str = typer.Option(DEFAULT_DATASET, "--dataset", "-d"),
    root: Optional[Path] = typer.Option(None, "--root"),
    protocol: Optional[str] = typer.Option(None, "--protocol"),
    out: Path = typer.Option(Path("results"), "--out", "-o"),
    budget: Budget = typer.Option(Budget(DEFAULT_BUDGET), "--budget"),
    device: Device = typer.Option(Device.cpu, "--device"),
    seed: int = typer.Option(0, "--seed"),
    sources: Optional[int] = typer.Option(None, "--sources"),
    direction: Optional[Direction] = typer.Option(None, "--direction"),
    option: Optional[List[str]] = typer.Option(None, "--option"),
    dataset_option: Optional[List[str]] = typer.Option(None, "--dataset-option"),
    devices: int = typer.Option(1, "--devices", min=1, help="processes training one model data-parallel on this node "
                                "(torchrun; one per GPU: process r takes cuda:r with --device cuda)"),
    nnodes: Optional[str] = typer.Option(None, "--nnodes", help="nodes training together (N or MIN:MAX); start the same "
                                         "command on every node, with --rdzv-endpoint"),
    rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint", help="host:port of the rendezvous of a "
                                                "multi-node run (a node every node reaches)"),
    log_every: Optional[float] = typer.Option(None, "--log-every", help="seconds between progress lines (batch jobs)"),
) -> None:
    """Train a learned method and save its weights (safetensors + manifest) under <out>/<protocol>/weights/."""
    from benchmark.evaluation.runner import train_only
    from benchmark.evaluation.setup import RunSpec
    from benchmark.training import distributed

    _progress_settings(False, log_every)
    budget, device, direction = budget.value, device.value, direction.value if direction else None
    if (devices > 1 or nnodes or rdzv_endpoint) and distributed.group().world == 1 and "WORLD_SIZE" not in os.environ:
        try:
            raise typer.Exit(code=_relaunch(devices, sys.argv[1:], nnodes, rdzv_endpoint))
        except BenchError as exc:
            _fail(exc)
    try:
        distributed.init_from_env(device)
    except BenchError as exc:
        _fail(exc)
    spec = RunSpec(method=method, dataset=dataset, root=root, protocol=protocol, out=out, budget=budget, device=device,
                   seed=seed, retrain=True, method_options=_parse_kv(option, "--option"),
                   dataset_options=_dataset_options(sources, direction, False, dataset_option, None))
    try:
        path, info = train_only(spec, console=console)
    except BenchError as exc:
        _fail(exc)
        return
    if not distributed.is_main():
        return
    console.print(f"weights in [bold]{path}[/]; evaluate with `bench run --method {method} --dataset {dataset} --weights {path}`")


def _build_leaderboard(results: list[Path], out: Path, **options: Any) -> None:
    from benchmark.evaluation.record import suite_facts
    from leaderboard.build import build

    written = build(results, out, suite=suite_facts(), **options)
    console.print(f"leaderboard: {len(written)} files in [bold]{out}[/] (open {out / 'README.md'} or {out / 'index.html'})")


@app.command("leaderboard")
def leaderboard_cmd(
    results: List[Path] = typer.Option([Path("results")], "--results", "-r", help="folders of result files"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default: <first results folder>/leaderboard)"),
    published: Optional[List[Path]] = typer.Option(None, "--published", help="folder or file of curves (published-curve "
                                                   "or CompressAI JSON) ADDED to the shipped ones (repeatable)"),
    protocol: Optional[List[str]] = typer.Option(None, "--protocol", help="only this protocol (repeatable)"),
    figsize: Optional[Tuple[float, float]] = typer.Option(None, "--figsize", help="figure width and height in inches"),
    axes: Optional[Tuple[float, float, float, float]] = typer.Option(None, "--axes", help="xmin xmax ymin ymax of every figure"),
    rank_all: bool = typer.Option(False, "--rank-all", help="rank partial (--limit) and short-budget results too; "
                                  "each row still says why it would not be ranked"),
) -> None:
    """Regenerate the leaderboard (tables, BD-rate, plots, published curves) from result files."""
    try:
        _build_leaderboard(list(results), out or results[0] / "leaderboard", extra_published=list(published or []),
                           protocols=protocol or None, figsize=figsize, axes=axes, rank_all=rank_all)
    except BenchError as exc:
        _fail(exc)





_LAUNCH_OPTIONS = ("--devices", "--nnodes", "--rdzv-endpoint")


def _relaunch(nproc: int, argv: list[str], nnodes: str | None = None, rdzv_endpoint: str | None = None) -> int:
    """Run `bench <argv>` (without the launch options) under torchrun: `nproc` processes on this node, one node
    (--standalone) or several (--nnodes, --rdzv-endpoint); return its exit code."""
    import subprocess

    from benchmark.training.distributed import launch_command

    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in _LAUNCH_OPTIONS:
            skip = True
            continue
        if a.startswith(tuple(f"{o}=" for o in _LAUNCH_OPTIONS)):
            continue
        args.append(a)
    return subprocess.call(launch_command(nproc, args, nnodes, rdzv_endpoint))


# the other command modules register on `app` when imported: after this module's, so `bench --help` lists run first
from cli import catalog, contrib, convert, verify_cmd  # noqa: E402,F401

app.add_typer(catalog.datasets_app, name="datasets")


def main() -> None:
    import warnings

    # compressai's import triggers torch's TorchScript deprecation notice; it says nothing about the user's run
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    app()


if __name__ == "__main__":
    main()
