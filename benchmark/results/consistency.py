"""A result file against its per-image CSV: every number the JSON reports must follow from the CSV's rows.

`bench run` writes `<method>[.variant].json` and, beside it, one CSV row per (image, source, rate point) with the
bitstream's length and sha256 and the distortion measured on the decoded image. The JSON's points are means of
those rows (`benchmark.evaluation.rows.aggregate`). A hand-edited file breaks that relation somewhere; this module finds
where and names the field:

- the CSV: `per_image_csv` names a regular file in the JSON's own folder (a bare ``*.csv`` name, never a path or a
  symbolic link), at most `MAX_CSV_BYTES`, UTF-8, the runner's columns (`CSV_FIELDS`); its sha256 equals the
  JSON's `per_image_csv_sha256` where the JSON records one (results written by the sandboxed runner);
- each row: ``bpp = 8·bytes/(height·width)``, ``bpp_payload = 8·payload_bytes/(height·width)`` (a 1-D block of
  the `gaussian` protocol has height 1), ``payload_bytes <= bytes``, PSNR from the row's own MSE
  (`benchmark.results.metrics`: capped at 60 dB on the 8-bit grid for image protocols, ``10·log10(1/MSE)`` otherwise),
  ``ms_ssim_db`` from ``ms_ssim``, a 64-hex-digit sha256; no (image, source, rate point) twice;
- each JSON point: its rows (matched by `rate_point`; every CSV rate point has a JSON point and vice versa),
  ``n_images``, ``n_lossless`` and the means the runner writes (bpp, bpp_payload, bpp_estimated, psnr, mse,
  ms_ssim, ms_ssim_db, encode_s, decode_s; per source and the PSNR band for distributed results);
- ``coverage.samples``: the number of distinct images in the CSV (every source of a distributed sample is a row
  of the same image).

Nothing here raises on a hostile CSV: every failure is a `Problem`. Used by `bench validate`, `bench submit`
and `bench verify`."""
from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from benchmark.results.per_image_csv import (
    CSV_FIELDS,
    Problem,
    locate_csv,
    parse_row,
    read_csv_bytes,
)

MAX_PROBLEMS = 20  # reported per file; the rest are counted
ROW_REL_TOL = 1e-9  # a row's bpp and PSNR are recomputed from values printed with full precision
MEAN_REL_TOL, MEAN_ABS_TOL = 1e-6, 1e-9  # a point's means, summed in another order than the runner's

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Consistency:
    """What `inspect` found: the problems, and the CSV it read (for `bench submit` to copy exactly those bytes)."""

    problems: list[Problem] = field(default_factory=list)
    csv_path: Path | None = None
    csv_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_consistency(result: dict[str, Any], json_path: Path) -> list[Problem]:
    """Every disagreement between a validated result dict and the per-image CSV beside `json_path` (empty: none)."""
    return inspect(result, json_path).problems


def inspect(result: dict[str, Any], json_path: Path) -> Consistency:
    """`check_consistency`, also returning the CSV's path and sha256 when it could be read."""
    out = Consistency()
    path, problem = locate_csv(result, json_path)
    if problem is not None:
        out.problems.append(problem)
        return out
    data, problem = read_csv_bytes(path)
    if problem is not None:
        out.problems.append(problem)
        return out
    out.csv_path, out.csv_sha256 = path, hashlib.sha256(data).hexdigest()
    recorded = result.get("per_image_csv_sha256")
    if recorded is not None and recorded != out.csv_sha256:
        out.problems.append(Problem("per_image_csv_sha256", f"{recorded} in the JSON, but {path.name} hashes to "
                                    f"{out.csv_sha256}: the CSV was changed after the result was written (or the JSON "
                                    "belongs to another CSV); rerun, or restore the CSV the run wrote"))
    out.problems.extend(check_csv_text(result, data, path.name))
    if len(out.problems) > MAX_PROBLEMS:
        extra = len(out.problems) - MAX_PROBLEMS
        out.problems = out.problems[:MAX_PROBLEMS] + [Problem("per_image_csv", f"... and {extra} more problems")]
    return out


# ---------------------------------------------------------------- finding and reading the CSV


# ---------------------------------------------------------------- rows
@dataclass
class _Mean:
    """A running mean (compensated sum) that remembers whether every value was present and finite."""

    n: int = 0
    total: float = 0.0
    comp: float = 0.0
    missing: int = 0
    nonfinite: int = 0

    def add(self, v: float | None) -> None:
        if v is None:
            self.missing += 1
            return
        if not math.isfinite(v):
            self.nonfinite += 1
            return
        self.n += 1
        t = self.total + v
        self.comp += (self.total - t) + v if abs(self.total) >= abs(v) else (v - t) + self.total
        self.total = t

    def mean(self) -> float | None:
        return (self.total + self.comp) / self.n if self.n else None

    def runner_mean(self, *, need_all: bool = False, need_finite: bool = False) -> float | None:
        """The mean `benchmark.evaluation.rows.aggregate` writes: None when a needed value is missing; an infinite value
        (an exactly decoded block's PSNR) makes the mean infinite, which the JSON stores as null."""
        if (need_all and self.missing) or (need_finite and self.nonfinite) or (self.n + self.nonfinite == 0):
            return None
        return math.inf if self.nonfinite else self.mean()


_POINT_MEANS = ("bpp", "bpp_payload", "bpp_estimated", "psnr", "mse", "ms_ssim", "encode_s", "decode_s")


@dataclass
class _PointRows:
    keys: set = field(default_factory=set)  # (image, source)
    rows: int = 0
    lossless: int = 0
    means: dict = field(default_factory=lambda: {k: _Mean() for k in _POINT_MEANS})
    per_source: dict = field(default_factory=dict)  # source -> {"bpp"|"psnr"|"ms_ssim": _Mean}


def _close(a: float, b: float, rel: float, abs_tol: float = 0.0) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def _row_problems(row: dict[str, Any], image_protocol: bool) -> Iterable[tuple[str, str]]:
    """(column, message) for each value of a row that does not follow from the row's other values."""
    from benchmark.results import metrics

    if not row["image"]:
        yield "image", "empty image name"
    if not row["rate_point"]:
        yield "rate_point", "empty rate point"
    for key in ("source", "bytes", "payload_bytes"):
        if row[key] < 0:
            yield key, f"{row[key]} is negative"
    h, w = row["height"], row["width"]
    if h <= 0 or w <= 0:
        yield "height", f"coded image of {h}x{w} pixels; both must be positive"
        return
    if row["payload_bytes"] > row["bytes"]:
        yield "payload_bytes", f"{row['payload_bytes']} payload bytes in a bitstream of {row['bytes']} bytes"
    pixels = h * w
    for key, n_bytes in (("bpp", row["bytes"]), ("bpp_payload", row["payload_bytes"])):
        want = metrics.bpp(n_bytes, pixels)
        if not _close(row[key], want, ROW_REL_TOL):
            what = "bytes" if key == "bpp" else "payload_bytes"
            yield key, (f"{row[key]!r} does not follow from {what}={n_bytes} over height x width = {h}x{w}: "
                        f"8*{what}/(height*width) = {want!r}")
    for key in ("mse", "encode_s", "decode_s", "bpp_estimated"):
        v = row[key]
        if v is not None and not (math.isfinite(v) and v >= 0):
            yield key, f"{v!r} must be a finite number >= 0"
    m = row["mse"]
    if math.isfinite(m) and m >= 0:
        want = metrics.psnr_8bit_capped(m) if image_protocol else metrics.psnr_from_mse(m)
        if not _close(row["psnr"], want, ROW_REL_TOL):
            formula = "min(60, 10*log10(1/mse))" if image_protocol else "10*log10(1/mse)"
            yield "psnr", f"{row['psnr']!r} does not match the row's mse {m!r}: {formula} = {want!r}"
    ms, ms_db = row["ms_ssim"], row["ms_ssim_db"]
    if ms is not None and not (0.0 <= ms <= 1.0):
        yield "ms_ssim", f"{ms!r} must lie in [0, 1]"
    elif (ms is None) != (ms_db is None):
        yield "ms_ssim_db", f"{ms_db!r} beside ms_ssim {ms!r}: both are given or neither"
    elif ms is not None and not _close(ms_db, metrics.ms_ssim_db(ms), ROW_REL_TOL):
        want = metrics.ms_ssim_db(ms)
        yield "ms_ssim_db", f"{ms_db!r} does not match the row's ms_ssim {ms!r}: -10*log10(1 - ms_ssim) = {want!r}"
    if row["sha256"] is not None and not _SHA256.fullmatch(row["sha256"]):
        yield "sha256", f"{row['sha256']!r:.80} is not 64 lower-case hex digits"


def check_csv_text(result: dict[str, Any], data: bytes, name: str = "per_image_csv") -> list[Problem]:
    """The problems of a per-image CSV's bytes against a validated result (no file access)."""
    problems: list[Problem] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Problem("per_image_csv", f"{name!r} is not UTF-8 text ({exc}); it is not the CSV `bench run` writes")]
    image_protocol = result.get("rate_unit") == "bpp"
    points: dict[str, _PointRows] = {}
    seen: set[tuple[str, int, str]] = set()
    unreadable = 0
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            return [Problem("per_image_csv", f"{name!r} is empty; it holds one row per image and rate point")]
        if header not in (CSV_FIELDS, CSV_FIELDS[:-1]):
            missing = [c for c in CSV_FIELDS if c not in header]
            extra = [c for c in header if c not in CSV_FIELDS]
            return [Problem("per_image_csv", f"{name!r} has the columns {header!r:.200}"
                            + (f" (missing {missing})" if missing else "")
                            + (f" (unexpected {extra!r:.100})" if extra else "")
                            + f"; the runner writes exactly {CSV_FIELDS}")]
        for values in reader:
            line = reader.line_num
            where = f"per_image_csv[line {line}]"
            if len(values) != len(header):
                problems.append(Problem(where, f"{len(values)} values, the header has {len(header)} columns"))
                unreadable += 1
                continue
            try:
                row = parse_row(dict(zip(header, values)))
            except ValueError as exc:
                problems.append(Problem(where, str(exc)))
                unreadable += 1
                continue
            for column, msg in _row_problems(row, image_protocol):
                problems.append(Problem(f"{where}.{column}", f"{msg} (image {row['image']!r:.60}, rate point "
                                        f"{row['rate_point']!r:.40})"))
            key = (row["image"], row["source"], row["rate_point"])
            if key in seen:
                problems.append(Problem(where, f"a second row for image {key[0]!r:.60}, source {key[1]}, rate point "
                                        f"{key[2]!r:.40}"))
            seen.add(key)
            _add(points.setdefault(row["rate_point"], _PointRows()), row)
    except csv.Error as exc:
        return problems + [Problem("per_image_csv", f"{name!r} cannot be read as CSV: {exc}")]
    if unreadable:
        return problems + [Problem("points", f"not compared with the CSV: {unreadable} of its rows cannot be read")]
    return problems + _point_problems(result, points)


def _add(acc: _PointRows, row: dict[str, Any]) -> None:
    acc.keys.add((row["image"], row["source"]))
    acc.rows += 1
    acc.lossless += row["mse"] == 0
    for k in _POINT_MEANS:
        acc.means[k].add(row[k])
    src = acc.per_source.setdefault(row["source"], {k: _Mean() for k in ("bpp", "psnr", "ms_ssim")})
    for k in src:
        src[k].add(row[k])


def _expected_means(acc: _PointRows) -> dict[str, float | None]:
    """A point's means exactly as `benchmark.evaluation.rows.aggregate` defines them (inf: stored as null)."""
    from benchmark.results import metrics

    m = acc.means
    out = {k: m[k].runner_mean() for k in ("bpp", "bpp_payload", "mse", "encode_s", "decode_s")}
    out["bpp_estimated"] = m["bpp_estimated"].runner_mean(need_all=True)
    out["psnr"] = m["psnr"].runner_mean(need_finite=True)
    out["ms_ssim"] = m["ms_ssim"].runner_mean(need_all=True)
    out["ms_ssim_db"] = metrics.ms_ssim_db(out["ms_ssim"])
    return out


def _compare(where: str, recorded: Any, expected: float | None, rows: str) -> Problem | None:
    """A JSON number against the value its rows give (an infinite expected value is stored as null)."""
    if expected is not None and math.isinf(expected):
        expected = None
    if expected is None and recorded is None:
        return None
    if expected is None:
        return Problem(where, f"{recorded!r} in the JSON, but no value from {rows} (expected null)")
    if recorded is None:
        return Problem(where, f"null in the JSON, but {expected!r} from {rows}")
    if not _close(float(recorded), expected, MEAN_REL_TOL, MEAN_ABS_TOL):
        return Problem(where, f"{recorded!r} in the JSON, but {expected!r} from {rows}")
    return None


def _point_problems(result: dict[str, Any], points: dict[str, _PointRows]) -> list[Problem]:
    problems: list[Problem] = []
    json_points = result.get("points") or []
    seen: dict[str, int] = {}
    for i, p in enumerate(json_points):
        rp = p.get("rate_point")
        if rp in seen:
            problems.append(Problem(f"points[{i}].rate_point", f"{rp!r:.40} is also points[{seen[rp]}]"))
            continue
        seen[rp] = i
        acc = points.get(rp)
        if acc is None:
            problems.append(Problem(f"points[{i}]", f"no CSV row has rate point {rp!r:.40}: the point is not backed "
                                    "by per-image rows"))
            continue
        problems.extend(_one_point(f"points[{i}]", p, acc, result.get("scenario") == "distributed"))
    for rp in points:
        if rp not in seen:
            problems.append(Problem("points", f"the CSV has rows at rate point {rp!r:.40}, which the JSON has no "
                                    "point for"))
    every = set().union(*(acc.keys for acc in points.values())) if points else set()
    for rp, acc in points.items():
        if acc.keys != every:
            lacking = sorted(every - acc.keys)
            problems.append(Problem("per_image_csv", f"rate point {rp!r:.40} has no row for {len(lacking)} (image, "
                                    f"source) pairs coded at other points, e.g. {lacking[0]!r:.80}"))
    problems.extend(_coverage_problems(result, {img for img, _ in every}))
    return problems


def _one_point(where: str, p: dict[str, Any], acc: _PointRows, distributed: bool) -> list[Problem]:
    problems: list[Problem] = []
    rows = f"its {acc.rows} CSV rows"
    images = {img for img, _ in acc.keys}
    if p.get("n_images") != len(images):
        problems.append(Problem(f"{where}.n_images", f"{p.get('n_images')!r} in the JSON, but {rows} hold "
                                f"{len(images)} distinct images"))
    if "n_lossless" in p and p["n_lossless"] != acc.lossless:
        problems.append(Problem(f"{where}.n_lossless", f"{p['n_lossless']!r} in the JSON, but {acc.lossless} of "
                                f"{rows} have mse 0"))
    expected = _expected_means(acc)
    for key, want in expected.items():
        if key in p:
            problems.append(_compare(f"{where}.{key}", p[key], want, f"the mean of {rows}"
                                     if key != "ms_ssim_db" else f"-10*log10(1 - mean ms_ssim) of {rows}"))
    if distributed and "per_source" in p:
        problems.extend(_per_source_problems(where, p, acc))
    return [x for x in problems if x is not None]


def _per_source_problems(where: str, p: dict[str, Any], acc: _PointRows) -> list[Problem | None]:
    problems: list[Problem | None] = []
    listed = {s.get("source"): (j, s) for j, s in enumerate(p.get("per_source") or []) if isinstance(s, dict)}
    if set(listed) != set(acc.per_source):
        problems.append(Problem(f"{where}.per_source", f"sources {sorted(listed, key=str)} in the JSON, "
                                f"{sorted(acc.per_source)} in the CSV"))
    psnrs = []
    for source, means in sorted(acc.per_source.items()):
        psnr = means["psnr"].runner_mean()
        if psnr is not None:
            psnrs.append(psnr)
        if source not in listed:
            continue
        j, s = listed[source]
        rows = f"the mean of the CSV rows of source {source}"
        for key in ("bpp", "psnr", "ms_ssim"):
            if key in s:
                problems.append(_compare(f"{where}.per_source[{j}].{key}", s[key], means[key].runner_mean(), rows))
    for key, want in (("psnr_min", min(psnrs, default=None)), ("psnr_max", max(psnrs, default=None))):
        if key in p:
            problems.append(_compare(f"{where}.{key}", p[key], want, "the per-source PSNR means of the CSV"))
    return problems


def _coverage_problems(result: dict[str, Any], images: set[str]) -> list[Problem]:
    cov = result.get("coverage")
    if not isinstance(cov, dict) or not isinstance(cov.get("samples"), int):
        return []
    samples, skipped = cov["samples"], cov.get("skipped") or 0
    low = samples - skipped  # a sample skipped as unreadable while it was coded has no row
    if not (low <= len(images) <= samples):
        want = f"{samples}" if not skipped else f"between {low} and {samples} ({skipped} skipped)"
        return [Problem("coverage.samples", f"{samples} in the JSON, but the CSV holds {len(images)} distinct images "
                        f"(expected {want})")]
    return []
