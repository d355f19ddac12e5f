"""`bench compare`, `bench submit`, `bench new-method`: comparing with published curves and contributing by
pull request (registered on the `bench` app by cli/main.py)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

from benchmark.errors import BenchError
from cli.app import _fail, app, console, err_console


@app.command()
def compare(
    curves: List[str] = typer.Argument(..., help="curves: result / published-curve / CompressAI JSON files, or names "
                                       "(label or method key) of curves of the protocol"),
    protocol: str = typer.Option(..., "--protocol", "-p", help="the protocol all curves belong to"),
    anchor: Optional[str] = typer.Option(None, "--anchor", "-a", help="curve the others are compared with (default: the first)"),
    published: Optional[List[Path]] = typer.Option(None, "--published", help="more curve files or folders (repeatable)"),
    results: Optional[List[Path]] = typer.Option(None, "--results", "-r", help="folders of result files to name curves from "
                                                 "(default: measured and results, where they exist)"),
    out: Path = typer.Option(Path("compare.png"), "--out", "-o", help="RD figure (PSNR; MS-SSIM beside it as *_msssim.png)"),
    log_rate: bool = typer.Option(False, "--log-rate", help="logarithmic rate axis in the figure"),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="write the BD table as CSV (one row per curve)"),
    latex_out: Optional[Path] = typer.Option(None, "--latex", help="write the BD table as a LaTeX table (booktabs)"),
    scenario: Optional[str] = typer.Option(None, "--scenario", help="scenario of a CompressAI JSON that does not state it"),
    rate: Optional[str] = typer.Option(None, "--rate", help="rate type of a CompressAI JSON that does not state it "
                                       "(bpp = real bytes, bpp_estimated = likelihood estimate, ...)"),
    provenance: Optional[str] = typer.Option(None, "--provenance", help="provenance of a CompressAI JSON that does not "
                                             "state it (exact | digitized)"),
    figsize: Optional[Tuple[float, float]] = typer.Option(None, "--figsize", help="figure width and height in inches"),
    axes: Optional[Tuple[float, float, float, float]] = typer.Option(None, "--axes", help="xmin xmax ymin ymax"),
) -> None:
    """BD-rate and BD-PSNR / BD-MS-SSIM of curves against one of them, with the leaderboard's overlap flags, rate
    types, left-out points and (two measured results with per-image CSVs) its 95 % bootstrap interval."""
    from benchmark.safety.atomicio import atomic_write_text
    from leaderboard.compare_cmd import bd_csv, bd_frame, bd_latex, report_lines, write_figure
    from leaderboard.compare_cmd import compare as run_compare

    try:
        a, rows = run_compare(curves, protocol, anchor, published or [], results or [Path("measured"), Path("results")],
                              scenario=scenario, rate=rate, provenance=provenance)
        for line in report_lines(a, rows):
            typer.echo(line)
        df = bd_frame(a, rows)
        if csv_out is not None:
            atomic_write_text(csv_out, bd_csv(df))
            typer.echo(f"wrote {csv_out}")
        if latex_out is not None:
            atomic_write_text(latex_out, bd_latex(df, f"{protocol}: BD numbers against {a.label}"))
            typer.echo(f"wrote {latex_out}")
        drawn = [a] + [r.curve for r in rows if r.curve is not a]
        for path in write_figure(protocol, "bpp", drawn, out, figsize, axes, anchor=a, log_rate=log_rate):
            typer.echo(f"wrote {path}")
    except BenchError as exc:
        _fail(exc)


@app.command()
def submit(
    files: List[Path] = typer.Argument(..., help="result files (<out>/<protocol>/<method>.json) to submit"),
    into: Optional[Path] = typer.Option(None, "--into", help="the committed results tree (default: measured)"),
    check_only: bool = typer.Option(False, "--check", help="only check; copy nothing"),
    replace: bool = typer.Option(False, "--replace", help="overwrite a result already in the tree"),
) -> None:
    """Check result files for a pull request (schema, per-image CSV, whole test split, provenance, sandbox, method
    code of this commit) and copy them, with their CSV, into the tree."""
    from rich.markup import escape

    from benchmark.results.submit import DEFAULT_TREE, check_result, place

    refused = 0
    for f in files:
        chk = check_result(f, into)
        if not chk.ok:
            refused += 1
            err_console.print(f"[red]refused[/] {escape(str(f))}:")
            for why in chk.refused:
                err_console.print(f"  - {escape(why)}")
            continue
        for w in chk.warnings:
            console.print(f"[yellow]note[/] {escape(str(f))}: {escape(w)}")
        if check_only:
            console.print(f"[green]ok[/] {f}")
            continue
        try:
            written = place(chk, into or DEFAULT_TREE, replace)
        except BenchError as exc:
            refused += 1
            err_console.print(f"[red]refused[/] {escape(str(f))}: {escape(str(exc))}")
            continue
        console.print(f"[green]accepted[/] {escape(str(f))} -> {escape(str(written[0]))}")
    if refused:
        raise typer.Exit(code=1)
    if not check_only:
        tree = into or DEFAULT_TREE
        console.print(f"next: `bench leaderboard --results {tree} --out docs/leaderboard`, then commit {tree}/ and "
                      "docs/leaderboard/ in one pull request (CONTRIBUTING.md)")


@app.command("new-method")
def new_method(
    name: str = typer.Argument(..., help="method name (lower case, letters, digits, _)"),
    paper: str = typer.Option("TODO: authors, title, venue, arXiv id", "--paper", help="the paper the method comes from"),
    root: Path = typer.Option(Path("methods"), "--root", help="folder the method's package is created in"),
) -> None:
    """Scaffold a method: codec, config, README naming the paper, and a test (see docs/adding_a_method.md)."""
    from cli.scaffold import scaffold

    try:
        for p in scaffold(name, paper, root, Path("tests")):
            console.print(f"created {p}")
    except BenchError as exc:
        _fail(exc)
