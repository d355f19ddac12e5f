"""`bench verify`: re-check a result from its bitstreams."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from benchmark.errors import BenchError
from cli.app import _fail, app, console, err_console


@app.command()
def verify(
    result: Path = typer.Argument(..., help="a result JSON (its per-image CSV and bitstream archive beside it)"),
    root: Optional[Path] = typer.Option(None, "--root", help="local copy of the dataset (to re-decode and re-encode)"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="the method's weights (default: the result's)"),
    reencode: int = typer.Option(0, "--reencode", help="also encode N randomly chosen test images again and compare bytes"),
    no_decode: bool = typer.Option(False, "--no-decode", help="only JSON <-> CSV <-> archive consistency"),
    isolation: Optional[str] = typer.Option(None, "--isolation", help="sandbox (default) or process"),
    lenient: bool = typer.Option(False, "--lenient", help="where the method cannot be re-run here (weights not given, "
                                 "dataset not on this machine), say so and check consistency only (CI on a pull request)"),
) -> None:
    """Re-check a result from its bitstreams: consistency with its CSV, every stream's sha256, every stream decoded
    again in the sandbox and every metric recomputed; with --reencode N, N images encoded again."""
    from rich.markup import escape

    from benchmark.evaluation.verify import verify as run_verify

    try:
        rep = run_verify(result, root=root, weights=weights, reencode=reencode, isolation=isolation, decode=not no_decode,
                         lenient=lenient)
    except BenchError as exc:
        _fail(exc)
        return
    for note in rep.notes:
        console.print(f"note: {escape(note)}")
    for problem in rep.problems:
        err_console.print(f"[red]FAIL[/] {escape(str(result))}: {escape(problem)}")
    if rep.problems:
        raise typer.Exit(code=1)
    console.print(f"[green]verified[/] {escape(str(result))}")
