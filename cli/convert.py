"""`bench convert`: checkpoints from outside the suite (CompressAI zoo, the NDIC authors' releases) into suite
weights (safetensors + manifest) that `bench run --weights DIR` evaluates (registered by cli/main.py).
`bench run --weights PREFIX:FILE` does the same conversion in memory and evaluates at once."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from benchmark.errors import BenchError
from cli.app import _fail, _parse_kv, app, console


@app.command()
def convert(
    method: str = typer.Option(..., "--method", "-m", help="the suite method the weights are for"),
    weights: str = typer.Option(..., "--weights", help="compressai:FILE[,FILE...] or authors:FILE[,FILE...]"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the suite weights (safetensors + manifest.json)"),
    option: Optional[List[str]] = typer.Option(None, "--option", help="method option key=value, e.g. lambdas=0.0018"),
) -> None:
    """Convert external checkpoints (read with torch.load(weights_only=True); pickles refused) into suite weights."""
    from baselines.convert import foreign_spec
    from benchmark.contract.registry import get_method

    try:
        if not foreign_spec(weights):
            raise BenchError(f"--weights {weights!r}: expected compressai:FILE or authors:FILE")
        codec = get_method(method)(None, **_parse_kv(option, "--option"))
        summary = codec.load_weights(Path(weights))
        path = codec.save_weights(out)
    except BenchError as exc:
        _fail(exc)
        return
    console.print(f"{method}: {len(summary['points'])} rate point(s) converted into [bold]{path}[/]; evaluate with "
                  f"`bench run --method {method} --dataset ... --weights {path}`")
