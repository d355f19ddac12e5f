"""Weights on disk: safetensors files plus one JSON manifest, reusable by every learned codec.

Layout of a weights directory::

    manifest.json                # format, method, suite version, protocol, config, points, training, files
    <name>.safetensors           # one file per model (e.g. one per rate point), each with its sha256 in the manifest

Loading never unpickles anything. It refuses, with a WeightsError that says what is wrong:
a missing or unreadable manifest, a manifest written for another method, a file that is not safetensors
(e.g. a PyTorch pickle renamed), a file whose sha256 differs from the manifest (tampered or truncated),
and a file name that points outside the directory.

Typical use inside a codec::

    save_weights(d, method=self.meta.name, models={"lambda=0.0067": model}, config=cfg, points=pts,
                 protocol=proto_name, training=info)
    loaded = load_weights(d, method=self.meta.name)
    model.load_state_dict(loaded.tensors["lambda=0.0067"])
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from benchmark.training.weight_checks import check_entropy_tables, check_tensors
from benchmark.errors import WeightsError
from benchmark.safety.jsonsafe import jsonable as _jsonable  # the one JSON sanitiser

MANIFEST = "manifest.json"
FORMAT = "dsc-bench-weights"
FORMAT_VERSION = 1
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._=+-]")


def suite_version() -> str:
    try:
        from importlib.metadata import version

        return version("dsc-bench")
    except Exception:  # not installed (running from a source tree)
        return "0+unknown"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_dict_of(obj: torch.nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A safetensors-ready copy of a state dict (contiguous CPU tensors, no shared storage)."""
    sd = obj.state_dict() if isinstance(obj, torch.nn.Module) else obj
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise WeightsError(f"state entry {k!r} is a {type(v).__name__}, not a tensor; only tensors go into safetensors")
        out[k] = v.detach().to("cpu").contiguous().clone()
    return out


def state_dict_sha256(obj: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """A digest of a state dict's names, dtypes, shapes and values (independent of file layout)."""
    h = hashlib.sha256()
    for k, v in sorted(state_dict_of(obj).items()):
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_name(key: str) -> str:
    """A portable file name for a model key such as 'lambda=0.0067'."""
    name = _SAFE_NAME.sub("_", key).strip(".") or "model"
    return f"{name}.safetensors"


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> str:
    """Write tensors atomically (umask permissions); return the file's sha256.

    safetensors stores metadata as a hash map whose order varies between runs, so the metadata goes in as
    one entry (sorted JSON): bitwise-identical tensors give a bitwise-identical file and sha256."""
    from safetensors.torch import save

    from benchmark.safety.atomicio import atomic_write_bytes

    meta = {"dsc-bench": json.dumps(dict(metadata), sort_keys=True)} if metadata else None
    data = save(dict(tensors), metadata=meta)
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def _sniff(path: Path) -> str | None:
    """Why `path` is not a safetensors file, or None if its header looks like one."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = path.stat().st_size
    except OSError as exc:
        return f"cannot be read ({exc})"
    # the safetensors layout first: its 8-byte header length can begin with any byte (0x80 included)
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 0 < n and 8 + n <= size and head[8:9] == b"{":
            return None
    if head.startswith(b"PK\x03\x04"):
        return "is a zip archive (a PyTorch torch.save checkpoint?); the suite never unpickles weights"
    if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head.startswith(b"\x8a\x0al\xfc"):
        return "is a Python pickle (a PyTorch .pt/.pth file?); the suite never unpickles weights"
    if len(head) < 9:
        return f"is too short to be safetensors ({size} bytes)"
    return "does not start with a safetensors header"


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file to CPU tensors; anything else raises WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} is missing")
    why = _sniff(path)
    if why:
        raise WeightsError(f"refusing {str(path)!r}: it {why}. Weights must be safetensors files written by `bench`")
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises SafetensorError / others on a damaged header
        raise WeightsError(f"refusing {str(path)!r}: not a valid safetensors file ({exc})") from exc


@dataclass
class LoadedWeights:
    manifest: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.manifest.get("config") or {})

    @property
    def points(self) -> list[str]:
        return list(self.manifest.get("points") or [])

    @property
    def training(self) -> dict[str, Any]:
        return dict(self.manifest.get("training") or {})

    def summary(self) -> dict[str, Any]:
        """What a codec's load_weights returns to the runner (budget and seed included for reuse checks)."""
        t = self.training
        return {
            "method": self.manifest.get("method"),
            "budget": t.get("budget"),
            "seed": t.get("seed"),
            "steps": t.get("steps"),
            "points": self.points,
            "config": self.config,
            "suite_version": self.manifest.get("suite_version"),
            "files": {k: v.get("sha256") for k, v in (self.manifest.get("files") or {}).items()},
            "training": t,
        }


def _with_processes(training: Mapping[str, Any] | None) -> dict[str, Any]:
    """The training record with the number of processes that trained the weights together (data-parallel under
    torchrun: the process group's size; 1 otherwise). Weights are saved by rank 0 of the group that trained them."""
    record = dict(training or {})
    if record and not record.get("untrained"):
        from benchmark.training import distributed

        record.setdefault("processes", distributed.group().world)
    return record


def save_weights(
    directory: Path,
    *,
    method: str,
    models: Mapping[str, torch.nn.Module | Mapping[str, torch.Tensor]],
    config: Mapping[str, Any] | None = None,
    points: list[str] | None = None,
    protocol: str | None = None,
    training: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write one safetensors file per entry of `models` and the manifest (written last); return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not models:
        raise WeightsError(f"nothing to save for {method}: no models given")
    files: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for key, obj in models.items():
        fname = file_name(key)
        if fname in used:
            raise WeightsError(f"two model keys of {method} map to the same file name {fname!r}")
        used.add(fname)
        tensors = state_dict_of(obj)
        digest = write_safetensors(directory / fname, tensors, {"method": method, "key": key})
        files[key] = {"file": fname, "sha256": digest, "tensors": len(tensors)}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": method,
        "suite_version": suite_version(),
        "protocol": protocol,
        "config": _jsonable(dict(config or {})),
        "points": list(points or []),
        "training": _jsonable(_with_processes(training)),
        "files": files,
        **({"extra": _jsonable(dict(extra))} if extra else {}),
    }
    from benchmark.results.schema import atomic_write_text

    path = directory / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    return path


def read_manifest(directory: Path, *, method: str | None = None) -> dict[str, Any]:
    directory = Path(directory)
    if directory.is_file():
        raise WeightsError(
            f"{str(directory)!r} is a file; pass the weights directory (with {MANIFEST} and .safetensors files)"
        )
    path = directory / MANIFEST
    if not path.is_file():
        raise WeightsError(f"no {MANIFEST} in {str(directory)!r}: not a weights directory written by `bench`")
    from benchmark.safety.untrusted import load_json_file

    manifest = load_json_file(path, error=WeightsError)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise WeightsError(f"{str(path)!r} is not a dsc-bench weights manifest (format {str(manifest.get('format') if isinstance(manifest, dict) else None)!r:.60})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise WeightsError(f"{str(path)!r}: format_version must be a positive integer, got {version!r:.40}; "
                           "the manifest is damaged: retrain or restore it")
    if version > FORMAT_VERSION:
        raise WeightsError(f"{str(path)!r} has weights format version {version}; this suite reads up to {FORMAT_VERSION}: upgrade the suite")
    if method is not None and manifest.get("method") != method:
        raise WeightsError(
            f"weights in {str(directory)!r} belong to method {manifest.get('method')!r}, not {method!r}; "
            f"pass the weights directory of {method}"
        )
    if not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        raise WeightsError(f"{str(path)!r} lists no weights files")
    for key, kinds in (("config", (dict,)), ("training", (dict,)), ("extra", (dict,)), ("points", (list,)),
                       ("method", (str,)), ("suite_version", (str,)), ("protocol", (str,))):
        if manifest.get(key) is not None and not isinstance(manifest[key], kinds):
            raise WeightsError(f"{str(path)!r}: field {key!r} must be a {kinds[0].__name__} or null, got "
                               f"{type(manifest[key]).__name__}; the manifest is damaged: retrain or restore it")
    return manifest


def load_weights(directory: Path, *, method: str, keys: list[str] | None = None) -> LoadedWeights:
    """Verify and load a weights directory written by `save_weights` for `method`."""
    directory = Path(directory)
    manifest = read_manifest(directory, method=method)
    root = directory.resolve()
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, entry in manifest["files"].items():
        if keys is not None and key not in keys:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
            raise WeightsError(f"manifest entry {key!r} in {str(directory)!r} lacks 'file' or 'sha256'")
        path = (directory / entry["file"]).resolve()
        if root not in path.parents:
            raise WeightsError(f"manifest entry {key!r} points outside {str(directory)!r} ({entry['file']!r}); refusing")
        if not path.name.endswith(".safetensors"):
            raise WeightsError(f"manifest entry {key!r} names {entry['file']!r}, not a .safetensors file; refusing")
        if not path.is_file():
            raise WeightsError(f"weights file {str(path)!r} listed in the manifest is missing")
        why = _sniff(path)
        if why:
            raise WeightsError(f"refusing {str(path)!r}: it {why}")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise WeightsError(
                f"weights file {str(path)!r} was modified or damaged: sha256 {digest[:16]}... differs from the "
                f"manifest's {entry['sha256'][:16]}...; retrain or restore the original file"
            )
        out[key] = read_safetensors(path)
    if keys is not None:
        missing = [k for k in keys if k not in out]
        if missing:
            raise WeightsError(f"weights in {str(directory)!r} have no model for {', '.join(missing)}; they hold {', '.join(manifest['files'])}")
    return LoadedWeights(manifest, out)


def load_into(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """load_state_dict with a WeightsError (naming `what`) when the tensors do not fit the module.

    Before anything is copied, every tensor is checked against the module's own (`check_tensors`: dtype,
    finiteness, the fixed constants); after, the entropy coder's tables stored with the weights are rebuilt from
    the other parameters and must equal the stored ones (`check_entropy_tables`). The native coder is never
    handed tables it did not compute itself."""
    check_tensors(module, tensors, what)
    try:
        module.load_state_dict(dict(tensors), strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        msg = str(exc).splitlines()
        raise WeightsError(f"weights for {what} do not fit the model: {' '.join(msg[:3])[:400]}") from exc
    check_entropy_tables(module, what)
