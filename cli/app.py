"""The `bench` application object and what every command module shares: the consoles, the one way a command
fails, and the key=value option parser. The command modules (`cli.main`, `cli.contrib`, `cli.convert`,
`cli.sweep`) register on `app`; `cli.main` imports them all."""
from __future__ import annotations

import json
from typing import Any, List

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Benchmark suite for learned distributed image compression.")
console = Console()
err_console = Console(stderr=True)


def _parse_kv(items: List[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"{what} must look like key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip().replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip().replace("-", "_")] = v
    return out


def _fail(exc: Exception) -> None:
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(str(exc))}")  # messages hold [..] (list[float]): not markup
    raise typer.Exit(code=2)
