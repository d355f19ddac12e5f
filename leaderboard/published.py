"""Published curves: rate–quality points taken from papers and authors' repositories, one JSON file per curve.

A curve file says what was measured (metric, rate type), under which protocol, and where the numbers came
from (`source`, `provenance` exact|digitized, `accuracy`). The leaderboard shows these beside the suite's
own measurements but never mixes the two. `bench validate` checks a curve file through `validate_published`.

Format (schema version 1)::

    {"kind": "published_curve", "schema_version": 1,
     "method": "ndic.balle2018", "label": "NDIC (ours+Ballé2018)", "protocol": "kitti-stereo/ndic",
     "scenario": "decoder_side_info", "metric": "psnr", "rate": "bpp_estimated",
     "points": [{"bpp": 0.1, "value": 23.4}, ...],
     "source": "paper / figure / repository file", "provenance": "exact",
     "accuracy": "...", "notes": "...",            # optional strings
     "sources": 4}                                 # optional: number of distributed sources (M)
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmark.errors import ResultSchemaError
from benchmark.results.published import is_compressai_json, validate_published

from .curves import RDCurve, published_from_compressai

DEFAULT_DIR = Path(__file__).resolve().parent / "published"

# Per protocol, the shipped published curve that the BD numbers of every row are also given against: the method
# key of a curve file under `published/`, where "{M}" stands for a distributed curve's number of sources.
PUBLISHED_ANCHORS = {
    "kitti-stereo/ndic": "balle2018",
    "cityscapes/ndic": "balle2018",
    "mnist/drasic-random": "drasic.separate.m{M}",
    "mnist/drasic-class": "drasic.separate.m{M}",
}


def load_published_file(path: Path) -> dict[str, Any]:
    from benchmark.results.schema import load_untrusted

    return validate_published(load_untrusted(path))


def curve_files(dirs: Iterable[Path] | Path | None = None) -> list[Path]:
    """Every `*.json` under the given folders (recursively), sorted; the package's folder by default."""
    if dirs is None:
        dirs = [DEFAULT_DIR]
    elif isinstance(dirs, (str, Path)):
        dirs = [dirs]
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(sorted(p for p in d.rglob("*.json") if not p.name.startswith(".")))
    return files


def scan_published(dirs: Iterable[Path] | Path | None = None) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[Path, str]]]:
    """Load every curve file (published-curve or CompressAI result JSON); return ([(path, curve)], [(path, why it
    was skipped)]) without raising."""
    from benchmark.safety.untrusted import load_json_file

    good, bad = [], []
    for path in curve_files(dirs):
        try:
            obj = load_json_file(path, error=lambda msg: ResultSchemaError("<file>", msg))
            if is_compressai_json(obj):  # CompressAI's result format (eval_model, the leaderboard's export)
                good.extend((path, validate_published(c)) for c in published_from_compressai(obj, str(path)))
            else:
                good.append((path, validate_published(obj)))
        except ResultSchemaError as exc:
            bad.append((path, str(exc)))
    return good, bad


def load_published(dirs: Iterable[Path] | Path | None = None) -> list[dict[str, Any]]:
    """Load and validate every curve file under `dirs` (default: the package's `leaderboard/published`).

    Raises ResultSchemaError naming the file and the offending field at the first invalid file."""
    out = []
    for path in curve_files(dirs):
        try:
            out.append(load_published_file(path))
        except ResultSchemaError as exc:
            raise ResultSchemaError(exc.field, f"in {path}: {str(exc).split(': ', 1)[-1]}") from exc
    return out


def published_anchor_for(protocol: str, curves: Sequence[RDCurve], sources: int | None) -> RDCurve | None:
    """The curve among `curves` that `PUBLISHED_ANCHORS` names for `protocol` (with `sources` for "{M}")."""
    key = PUBLISHED_ANCHORS.get(protocol)
    if key is None:
        return None
    if "{M}" in key:
        if sources is None:
            return None
        key = key.replace("{M}", str(sources))
    cands = [c for c in curves if c.method == key and c.psnr]
    return cands[0] if cands else None
