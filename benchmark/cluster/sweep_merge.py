"""Per-rate-point sweep jobs merged into one result file per method (benchmark/cluster/sweep.py makes the jobs).

Where a codec's rate points train independently (`Codec.independent_points`), `bench sweep run` makes one job per
point; each writes an ordinary result (one point) under ``S/points/seed-<k>/<point>/``. Every point job, once its
own result is written, takes an exclusive ``fcntl.flock`` on ``S/results/seed-<k>/<protocol>/.<method>.lock`` and,
when every point of its method has a result, writes the merged result and per-image CSV there (atomically). The job
that finishes last therefore always sees all the others' results (each wrote its own before asking for the lock),
and the launcher merges again any complete method whose merged file is missing (`merge_ready`).

The merged result is the one-point results combined: the points in the codec's order, the per-image CSV rows in
the order a run of all the points writes them (image, source, point), the training records of the points side by
side, the per-point options left out of the recorded options; it names its parts in ``merged_from``."""
from __future__ import annotations

import hashlib

import copy
import csv
import fcntl
import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError
from benchmark.results.schema import atomic_write_text, load_result, validate_result, write_json
from benchmark.safety.safenames import safe_path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.stem}.lock")


def merge(parts: Sequence[tuple[str, Path]], target: Path, point_keys: Sequence[str]) -> Path | None:
    """Under the lock of `target`: when every (point, result file) of `parts` exists, write the merged result to
    `target` and its CSV beside it; return `target`, or None while some point has no result yet."""
    with locked(lock_path(target)):
        if not all(Path(p).is_file() for _, p in parts):
            return None
        # point results are files like any other (a shared sweep folder): read them as untrusted input
        results = [load_result(Path(p)) for _, p in parts]
        texts = [safe_path(Path(p).parent, r["per_image_csv"]).read_text(encoding="utf-8")
                 for (_, p), r in zip(parts, results)]
        merged = merged_result([pt for pt, _ in parts], results, point_keys)
        merged["merged_from"] = {"points": [pt for pt, _ in parts],
                                 "results": [os.path.relpath(p, target.parent) for _, p in parts]}
        csv_text = merged_rows([pt for pt, _ in parts], texts)
        merged["per_image_csv_sha256"] = hashlib.sha256(csv_text.encode("utf-8")).hexdigest()  # of the merged CSV
        validate_result(merged)
        atomic_write_text(target.parent / merged["per_image_csv"], csv_text)
        write_json(target, merged)
    return target


def merged_result(points: Sequence[str], results: Sequence[dict[str, Any]], point_keys: Sequence[str]) -> dict[str, Any]:
    """One result of several one-point results of the same method and settings."""
    out = copy.deepcopy(results[0])
    merged_points = []
    for point, r in zip(points, results):
        own = [pt for pt in r["points"] if pt["rate_point"] == point]
        if len(own) != 1 or len(r["points"]) != 1:
            raise ConfigError(f"the result of the {point} job of {r.get('method')} holds the points "
                              f"{[pt['rate_point'] for pt in r['points']]}, expected only {point}; rerun that job")
        merged_points.append(own[0])
        for key in ("method", "variant", "dataset", "protocol", "coverage"):
            if r.get(key) != out.get(key):
                raise ConfigError(f"the point results of {out.get('method')} differ in {key}: {out.get(key)!r} and "
                                  f"{r.get(key)!r}; they cannot be merged")
    out["points"] = merged_points
    out["complexity"] = copy.deepcopy(results[-1].get("complexity"))  # a run of all points counts at its last one
    out["training"] = _merged_training(points, [r.get("training") for r in results], point_keys)
    if any("decoding" in r for r in results):
        out["decoding"] = _merged_decoding([r.get("decoding") for r in results])
    info = out.get("codec_info") or {}
    for key in ("options", "config"):
        if isinstance(info.get(key), dict):
            info[key] = {k: v for k, v in info[key].items() if k not in point_keys}
    out["created"] = max(str(r.get("created", "")) for r in results)  # a re-merge writes the same bytes
    return out


def _merged_training(points: Sequence[str], trainings: Sequence[Any], point_keys: Sequence[str]) -> Any:
    """The first point's training record with every point's own entry under `points` (a codec's own per-point
    records where it keeps them, else each whole record) and the wall time summed."""
    if not any(isinstance(t, dict) for t in trainings):
        return trainings[0]
    out = copy.deepcopy(next(t for t in trainings if isinstance(t, dict)))
    per_point: dict[str, Any] = {}
    for point, t in zip(points, trainings):
        own = t.get("points") if isinstance(t, dict) else None
        per_point.update(own if isinstance(own, dict) and own else {point: t})
    out["points"] = per_point
    for key, digits in (("wall_s", 3), ("models", 0)):  # summed over the points where each record has one
        vals = [t.get(key) for t in trainings if isinstance(t, dict)]
        if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out[key] = round(sum(vals), 3) if digits else sum(vals)
    if isinstance(out.get("config"), dict):
        out["config"] = {k: v for k, v in out["config"].items() if k not in point_keys}
    return out


def _merged_decoding(records: Sequence[Any]) -> dict[str, Any] | None:
    """What the decoders of every point job counted, summed (null unless every point job recorded counts)."""
    from benchmark.evaluation.record import add_counts

    if not records or not all(isinstance(r, dict) for r in records):
        return None
    out = copy.deepcopy(records[0])
    for r in records[1:]:
        add_counts(out["counts"], r["counts"], "the merged point results", ConfigError)
        for key in ("streams_decoded", "streams_resumed", "decoders"):
            out[key] += r[key]
    return out


def merged_rows(points: Sequence[str], texts: Sequence[str]) -> str:
    """The per-image CSVs of the points as one, rows ordered as a run of all the points writes them."""
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    for text in texts:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = header or list(reader.fieldnames or [])
        rows.extend(reader)
    images: dict[str, int] = {}
    for r in rows:
        images.setdefault(r["image"], len(images))
    order = {p: i for i, p in enumerate(points)}
    rows.sort(key=lambda r: (images[r["image"]], int(r["source"] or 0), order.get(r["rate_point"], len(order))))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header or [], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
