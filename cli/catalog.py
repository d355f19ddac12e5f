"""`bench list`, `bench validate` and `bench datasets check`: what is registered, whether files are valid
results or published curves, and whether a local dataset copy is complete."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table

from benchmark.errors import BenchError, ConfigError
from cli.app import _fail, _parse_kv, app, console, err_console

datasets_app = typer.Typer(help="Inspect local dataset copies.")


@app.command("list")
def list_cmd(
    what: str = typer.Argument("methods", help="methods | datasets | protocols"),
    pattern: Optional[str] = typer.Option(None, "--pattern", "-p", help="wildcard filter, e.g. 'balle*'"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="methods: each method's options (type, default, choices)"),
) -> None:
    """List registered methods, datasets or protocols."""
    from benchmark.contract.registry import DATASETS, METHODS, PROTOCOLS

    what = what.lower().rstrip("s") + "s"
    # one line per entry, however narrow the terminal (a table wraps long titles into unreadable columns)
    if what == "methods":
        typer.echo(f"{'method':<20} {'scenario':<18} {'trainable':<9} {'scalable':<8} paper")
        for name in METHODS.names(pattern):
            m = METHODS.get(name).meta
            typer.echo(f"{name:<20} {m.scenario.value:<18} {'yes' if m.trainable else 'no':<9} "
                       f"{'yes' if m.scalable else 'no':<8} {m.paper}")
            if verbose:
                _echo_options(METHODS.get(name))
                _echo_budgets(METHODS.get(name))
        return
    elif what == "datasets":
        typer.echo(f"{'dataset':<18} {'embedded':<12} {'protocols':<46} description")
        for name in DATASETS.names(pattern):
            d = DATASETS.get(name)
            typer.echo(f"{name:<18} {'yes' if d.embedded else 'no (--root)':<12} {', '.join(d.protocols):<46} {d.description}")
        return
    elif what == "protocols":
        # one line per protocol, however narrow the terminal
        for name in PROTOCOLS.names(pattern):
            p = PROTOCOLS.get(name)
            typer.echo(f"{name:<26} {p.description} [anchor: {p.anchor}]")
        return
    else:
        _fail(BenchError(f"cannot list {what!r}; choose methods, datasets or protocols"))


def _echo_options(cls: Any) -> None:
    from benchmark.contract.options import describe_rows

    spec = getattr(cls, "options_spec", None)
    if spec is None:
        typer.echo("    (options not declared)")
        return
    for name, kind, default, text in describe_rows(spec):
        typer.echo(f"    --option {name:<18} {kind:<34} default {default:<10} {text}")


def _echo_budgets(cls: Any) -> None:
    """A learned method's budget table (benchmark/contract/budgets.py): smoke and quick under its default protocol,
    then its paper budgets per protocol (protocols sharing one on one line), each with its source."""
    from benchmark.contract.budgets import paper_by_protocol
    from benchmark.contract.registry import PROTOCOLS

    table = cls.budget_table()
    for name, entry in (table or {}).items():
        if name != "paper":
            typer.echo(f"    --budget {name:<6} {entry.describe()}")
    for protocols, entry in paper_by_protocol(cls, PROTOCOLS.names()):
        typer.echo(f"    --budget paper  on {', '.join(protocols)}: {entry.describe()}")
        typer.echo(f"                    source: {entry.source or 'not stated'}")


@app.command()
def validate(paths: List[Path] = typer.Argument(..., help="result or published-curve files, or folders to scan")) -> None:
    """Check result and published-curve files against the schema, and each result against its per-image CSV;
    exit non-zero naming the offending field."""
    from rich.markup import escape

    from benchmark.errors import ResultSchemaError
    from benchmark.results.consistency import check_consistency
    from benchmark.results.files import result_candidates, validate_file
    from benchmark.results.schema import RESULT_KIND

    files: list[Path] = []
    for p in paths:
        files.extend(result_candidates(p) if p.is_dir() else [p])
    bad = 0
    for f in files:
        try:
            kind, obj = validate_file(f)
        except ResultSchemaError as exc:
            bad += 1
            err_console.print(f"[red]FAIL[/] {escape(str(f))}: field {escape(str(exc))}")
            continue
        # published curves and CompressAI JSON have no per-image rows; a result must agree with its CSV
        problems = check_consistency(obj, f) if kind == RESULT_KIND else []
        if problems:
            bad += 1
            err_console.print(f"[red]FAIL[/] {escape(str(f))} ({kind}): {escape(str(problems[0]))}")
            for problem in problems[1:]:
                err_console.print(f"       {escape(str(problem))}")
        else:
            console.print(f"[green]ok[/]   {escape(str(f))} ({kind})")
    if not files:
        err_console.print("no files to validate")
        raise typer.Exit(code=2)
    if bad:
        raise typer.Exit(code=1)


@datasets_app.command("check")
def datasets_check(
    name: str = typer.Argument(..., help="dataset name"),
    root: Optional[Path] = typer.Option(None, "--root"),
    dataset_option: Optional[List[str]] = typer.Option(None, "--dataset-option"),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="only the splits of this protocol (default: all "
                                           "the dataset's protocols the checker reports)"),
) -> None:
    """Report per split what was found and what is missing; exit non-zero if a split is incomplete."""
    from rich.markup import escape

    from benchmark.contract.registry import get_dataset

    try:
        info = get_dataset(name)
        if protocol is not None and protocol not in info.protocols:
            raise ConfigError(f"dataset {name!r} has no protocol {protocol!r}; its protocols: {', '.join(info.protocols)}")
        if info.check is None:
            console.print(f"{name}: embedded dataset, nothing to check" if info.embedded else f"{name}: no checker")
            return
        reports = info.check(root, **_parse_kv(dataset_option, "--dataset-option"))
    except BenchError as exc:
        _fail(exc)
        return
    if protocol is not None:  # reports that name no protocol are of every protocol the dataset has
        reports = [r for r in reports if r.protocol in ("", protocol)]
    by_protocol = any(r.protocol for r in reports)
    t = Table(*(["protocol"] if by_protocol else []), "split", "found", "expected", "missing", "first missing", "note")
    for r in reports:
        t.add_row(*([r.protocol] if by_protocol else []), r.split, str(r.found),
                  "?" if r.expected is None else str(r.expected), str(r.n_missing),
                  escape(", ".join((r.missing or [])[:3])), escape(r.note))
    console.print(t)
    bad = [r for r in reports if not r.ok]
    if bad:
        incomplete = sorted({r.protocol for r in bad if r.protocol})
        console.print("[yellow]incomplete[/]" + (f" for {', '.join(incomplete)}" if incomplete else "")
                      + f": {info.how_to_obtain}")
        raise typer.Exit(code=1)
    console.print("[green]complete[/]")
