"""Training checkpoints on disk: publish and read, with the optimizer and RNG state, never pickled.

Layout of a run folder (one per training setup, `run-<fingerprint>`)::

    last.json                  # pointer {"dir": "last-000000500", "step": 500}, replaced atomically
    last-000000500/            # a complete checkpoint, written into a hidden temporary folder first
        model.safetensors      # the model's state dict
        optim.safetensors      # every optimizer's tensor state ("<optimizer>.<param id>.<key>")
        state.json             # step, LR schedule, RNG states, best validation, data position, config, file sha256s
    best.json, best-.../       # the same for the best validation loss (model only)

A reader follows the pointer, checks each file's sha256 against state.json and refuses anything else
with TrainingError; a crash at any moment leaves either the old or the new checkpoint published.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from benchmark.errors import TrainingError
from benchmark.safety.jsonsafe import jsonable
from benchmark.training.weights import read_safetensors, sha256_file, write_safetensors

CHECKPOINT_FORMAT = "dsc-bench-checkpoint"


# ---------------------------------------------------------------- RNG state as JSON
def rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py[0], list(py[1]), py[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ---------------------------------------------------------------- optimizer state <-> safetensors + JSON
def optim_to_tensors(opts: Mapping[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, opt in opts.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"{name}.{pid}.{k}"] = v.detach().to("cpu").contiguous().clone()
                else:
                    scalars.setdefault(str(pid), {})[k] = v
        groups = []
        for g in sd["param_groups"]:
            groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
        meta[name] = {"param_groups": groups, "scalars": scalars, "tuple_keys": sorted({k for g in sd["param_groups"] for k, v in g.items() if isinstance(v, tuple)})}
    return tensors, meta


def optim_from_tensors(opts: Mapping[str, torch.optim.Optimizer], tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    for name, opt in opts.items():
        m = meta[name]
        state: dict[int, dict[str, Any]] = {}
        prefix = f"{name}."
        for key, v in tensors.items():
            if not key.startswith(prefix):
                continue
            pid, k = key[len(prefix):].split(".", 1)
            state.setdefault(int(pid), {})[k] = v
        for pid, sc in m.get("scalars", {}).items():
            state.setdefault(int(pid), {}).update(sc)
        tuple_keys = set(m.get("tuple_keys", []))
        groups = [{k: (tuple(v) if k in tuple_keys else v) for k, v in g.items()} for g in m["param_groups"]]
        opt.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------- checkpoints
def _write_json_atomic(path: Path, obj: Any) -> None:
    from benchmark.results.schema import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def publish(run_dir: Path, kind: str, step: int, files: Mapping[str, Mapping[str, torch.Tensor]], state: dict[str, Any]) -> Path:
    """Write a complete checkpoint folder, then atomically point `<kind>.json` at it; drop older folders."""
    final = run_dir / f"{kind}-{step:09d}"
    tmp = run_dir / f".{kind}-{step:09d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    hashes = {}
    for fname, tensors in files.items():
        hashes[fname] = write_safetensors(tmp / fname, tensors)
    state = {**state, "files": hashes}
    _write_json_atomic(tmp / "state.json", jsonable(state))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_json_atomic(run_dir / f"{kind}.json", {"dir": final.name, "step": step})
    for old in run_dir.glob(f"{kind}-*"):
        if old.is_dir() and old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(run_dir: Path, kind: str = "last") -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]] | None:
    """(state, {file: tensors}) of the published `kind` checkpoint, or None if there is none."""
    pointer = run_dir / f"{kind}.json"
    if not pointer.is_file():
        return None
    try:
        ref = json.loads(pointer.read_text())
        folder = run_dir / ref["dir"]
        state = json.loads((folder / "state.json").read_text())
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise TrainingError(f"checkpoint pointer {pointer} is unreadable ({exc}); delete {run_dir} to start over") from exc
    if state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{folder} is not a dsc-bench checkpoint")
    tensors = {}
    for fname, digest in state.get("files", {}).items():
        path = folder / fname
        if not path.is_file() or sha256_file(path) != digest:
            raise TrainingError(f"checkpoint file {path} is missing or damaged (sha256 mismatch); delete {run_dir} to start over")
        tensors[fname] = read_safetensors(path)
    return state, tensors
