"""safetensors + JSON manifest for the layered Wyner–Ziv coder (never pickle).

manifest.json: {"format", "method", "config", "file", "sha256", "training"}. Loading checks that the file
exists, that its SHA-256 matches the manifest and that the manifest names this method; anything else raises
WeightsError saying what to do. (Kept local until the suite has a shared weights module.)"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from benchmark.errors import WeightsError

FORMAT = "dsc-bench-weights/1"
MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(directory: Path, method: str, state: dict[str, torch.Tensor], config: dict[str, Any], training: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fname = f"{method}.safetensors"
    wpath = directory / fname
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(wpath))
    manifest = {"format": FORMAT, "method": method, "config": config, "file": fname, "sha256": sha256_file(wpath),
                "training": training}
    mpath = directory / MANIFEST
    mpath.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return mpath


def load(directory: Path, method: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, manifest) after checking method and hash."""
    directory = Path(directory)
    mpath = directory if directory.is_file() else directory / MANIFEST
    if not mpath.is_file():
        raise WeightsError(f"no weights manifest at {str(mpath)!r}; train first (bench train) or pass the folder holding {MANIFEST}")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"unreadable weights manifest {str(mpath)!r}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise WeightsError(f"{str(mpath)!r} is not a {FORMAT} manifest")
    if manifest.get("method") != method:
        raise WeightsError(f"weights in {str(mpath.parent)!r} belong to method {manifest.get('method')!r}, not {method!r}")
    fname = manifest.get("file")
    if not isinstance(fname, str) or Path(fname).name != fname or not fname.endswith(".safetensors"):
        raise WeightsError(f"manifest {str(mpath)!r} names no .safetensors file in its own folder")
    wpath = mpath.parent / fname
    if not wpath.is_file():
        raise WeightsError(f"weights file {str(wpath)!r} is missing")
    digest = sha256_file(wpath)
    if digest != manifest.get("sha256"):
        raise WeightsError(f"weights file {str(wpath)!r} does not match its manifest (sha256 {digest[:12]}…, expected "
                           f"{str(manifest.get('sha256'))[:12]}…): it was modified or replaced; retrain or restore it")
    try:
        state = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{str(wpath)!r} is not a readable safetensors file: {exc}") from exc
    return state, manifest
