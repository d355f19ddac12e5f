"""Hostile-input probes run in a child process, so that a crash (SIGSEGV, SIGFPE) or a hang inside a native coder
fails the calling test instead of killing pytest. Run by tests/test_hostile_round2.py as

    python -m tests.hostile_round2_worker weights MODE[,MODE] DIR  # int8, nan, cdf_length, quantiles, constant, ok
    python -m tests.hostile_round2_worker header SIDE [NAME ...]    # forged-header cost (tests/hostile_round2_header.py)

Prints one JSON line: what happened."""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")


def weights(mode: str, directory: str) -> dict:
    """Write untrained balle2018 weights to DIR, tamper with every tensor file as MODE says (sha256s in the manifest
    updated, as an attacker would), then load them and code one image."""
    from pathlib import Path

    import torch

    from benchmark.contract.conformance import contract_codec, contract_inputs
    from benchmark.errors import BenchError
    from benchmark.training.weights import read_safetensors, write_safetensors

    torch.set_num_threads(1)
    d = Path(directory)
    codec = contract_codec("balle2018")
    x = contract_inputs(type(codec))[0]
    codec._require_models()
    codec.save_weights(d)
    manifest = json.loads((d / "manifest.json").read_text())
    for entry in manifest["files"].values():
        t = read_safetensors(d / entry["file"])
        if mode == "int8":
            t = {k: v.to(torch.int8) for k, v in t.items()}
        elif mode == "nan":
            t = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in t.items()}
        elif mode == "cdf_length":  # right dtype, finite, tables no longer those of the parameters
            t["entropy_bottleneck._cdf_length"] = t["entropy_bottleneck._cdf_length"] * 4
        elif mode == "quantiles":  # finite but absurd: a coder table of 1e9 symbols
            q = t["entropy_bottleneck.quantiles"].clone()
            q[:, 0, 2] = 1e9
            t["entropy_bottleneck.quantiles"] = q
        elif mode == "constant":  # the scale lower bound set to 0: division by zero in the coder's scales
            t["gaussian_conditional.lower_bound_scale.bound"] = torch.zeros_like(t["gaussian_conditional.lower_bound_scale.bound"])
        entry["sha256"] = write_safetensors(d / entry["file"], t)
    (d / "manifest.json").write_text(json.dumps(manifest))
    fresh = contract_codec("balle2018")
    try:
        fresh.load_weights(d)
        data = fresh.compress(x, point=fresh.rate_points()[0])
        fresh.decompress(data)
        return {"outcome": "coded"}
    except BenchError as exc:
        return {"outcome": type(exc).__name__, "message": str(exc)}


def main(argv: list[str]) -> int:
    if argv[0] == "weights":  # MODE[,MODE...]: one line per mode, flushed, so a crash names the mode it hit
        from pathlib import Path

        for mode in argv[1].split(","):
            print(json.dumps({"mode": mode, **weights(mode, str(Path(argv[2]) / mode))}), flush=True)
        return 0
    elif argv[0] == "header":
        import torch

        from benchmark.contract.registry import METHODS
        from tests.hostile_round2_header import measure

        torch.set_num_threads(1)
        out = [r for name in (argv[2:] or METHODS.names()) for r in measure(name, int(argv[1]))]
    else:
        raise SystemExit(f"unknown probe {argv[0]!r}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
