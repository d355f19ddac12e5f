"""One row per coded (image, source, rate point): its distortion, the per-image CSV, the partial CSV an
interrupted run resumes from, and the mean over rows that becomes a result's rate points."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable

import torch

from benchmark.contract.codec import Scenario
from benchmark.contract.protocol import Protocol
from benchmark.results import metrics
from benchmark.results.per_image_csv import CSV_FIELDS, INT_COLUMNS, cell_number
from benchmark.results.schema import (
    atomic_write_text,
)
from benchmark.safety.csvsafe import safe_row


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resume_fingerprint(spec: Any, protocol: Any, key: str, codec_info: dict[str, Any], training: Any,
                       rate_points: list[str]) -> str:
    """What the rows of a partial CSV depend on: a run resumes only rows coded by the same method, options,
    weights (the training record), data and protocol."""
    return fingerprint({"method": key, "options": codec_info, "training": training, "dataset": spec.dataset,
                        "dataset_options": spec.dataset_options, "root": str(spec.root), "protocol": protocol.name,
                        "points": rate_points})


def measure(x: torch.Tensor, x_hat: torch.Tensor, protocol: Protocol, image_protocol: bool = True) -> dict[str, Any]:
    """Distortion of the decoded output as the protocol states (8-bit rounded images, or raw MSE)."""
    if image_protocol:
        a, b = metrics.to_8bit(x), metrics.to_8bit(x_hat)
        m = metrics.mse_8bit(x, x_hat)  # exact: integer code values, then / 255^2
    else:
        a, b = x.double(), x_hat.detach().double()
        m = metrics.mse(a, b)
    psnr = metrics.psnr_8bit_capped(m) if image_protocol else metrics.psnr_from_mse(m)  # lossless: 60 dB, not inf
    out: dict[str, Any] = {"mse": m, "psnr": psnr, "ms_ssim": None, "ms_ssim_db": None}
    views = getattr(protocol, "views_per_frame", 0)
    if image_protocol and views > 1 and x.shape[-1] % views == 0:  # a frame of views side by side: per-view PSNRs
        out["_psnr_view_mean"] = sum(metrics.psnr_8bit_capped(metrics.mse_8bit(a, b)) for a, b in
                                     zip(x.chunk(views, dim=-1), x_hat.chunk(views, dim=-1))) / views
    if image_protocol:
        v, reason = metrics.msssim(a, b, protocol.ms_ssim_win)
        out["ms_ssim"] = v
        out["ms_ssim_db"] = metrics.ms_ssim_db(v)
        out["_ms_ssim_reason"] = reason
    return out


# The partial CSV's columns: the per-image CSV's, then what a resumed run needs beyond them to write the same result
# (the mean of per-view PSNRs of a frame of views, row key `_psnr_view_mean`; empty where not measured).
PARTIAL_FIELDS = ["fingerprint"] + CSV_FIELDS + ["psnr_view_mean"]


def partial_record(fingerprint: str, row: dict[str, Any]) -> dict[str, Any]:
    """One line of a partial CSV for a measured row."""
    return {"fingerprint": fingerprint, **row, "psnr_view_mean": row.get("_psnr_view_mean")}


def read_partial(path: Path, fingerprint: str) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Rows of an interrupted run. A damaged tail (a row cut off by a crash or a full disk: no final newline,
    missing or unparseable fields) is dropped and the file rewritten without it, so those rows are coded again.
    A file an older runner wrote (without the later columns) is rewritten with them, its rows kept."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}  # unreadable: start over (the file is rewritten from scratch)
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    done = {}
    reader = csv.DictReader(io.StringIO(complete, newline=""))
    for rec in reader:
        if rec.get("fingerprint") != fingerprint:
            return {}  # another configuration: start over
        if None in rec or any(rec.get(k) is None for k in CSV_FIELDS if k != "sha256"):
            break  # a short or overlong row: damaged from here on
        try:
            row = {k: parse_cell(k, rec.get(k) or "") for k in CSV_FIELDS}
            view_mean = cell_number(rec.get("psnr_view_mean") or "", float)
            if view_mean is not None:  # measured only on frames of views (`measure`)
                row["_psnr_view_mean"] = view_mean
            done[(row["image"], int(row["source"]), row["rate_point"])] = row
        except (ValueError, TypeError):
            break
    if len(done) != complete.count("\n") - 1 or complete != text or (done and reader.fieldnames != PARTIAL_FIELDS):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=PARTIAL_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in done.values():
            w.writerow(partial_record(fingerprint, row))
        atomic_write_text(path, buf.getvalue())
    return done


def parse_cell(key: str, val: str) -> Any:
    """One cell of a partial CSV (the run's own file), typed by the per-image CSV's column tables
    (`benchmark.results.per_image_csv`); empty numbers are None here, a partial row is checked as a whole later."""
    if key in ("image", "rate_point"):
        return val
    if key == "sha256":
        return val or None
    return cell_number(val, int if key in INT_COLUMNS else float)


def _mean(vals: Iterable[Any]) -> float | None:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return float(sum(vals) / len(vals))


def aggregate(rows: list[dict[str, Any]], points: list[str], scenario: Scenario) -> list[dict[str, Any]]:
    out = []
    for p in points:
        rs = [r for r in rows if r["rate_point"] == p]
        if not rs:
            continue
        ms = [r["ms_ssim"] for r in rs]
        ms_mean = _mean(ms) if all(v is not None for v in ms) else None
        psnrs = [r["psnr"] for r in rs]
        point = {
            "rate_point": p,
            "bpp": _mean(r["bpp"] for r in rs),
            "bpp_payload": _mean(r["bpp_payload"] for r in rs),
            "bpp_estimated": _mean(r["bpp_estimated"] for r in rs) if all(r["bpp_estimated"] is not None for r in rs) else None,
            "psnr": _mean(psnrs) if all(math.isfinite(v) for v in psnrs) else None,
            "mse": _mean(r["mse"] for r in rs),
            "ms_ssim": ms_mean,
            "ms_ssim_db": metrics.ms_ssim_db(ms_mean),
            "encode_s": _mean(r["encode_s"] for r in rs),
            "decode_s": _mean(r["decode_s"] for r in rs),
            "n_images": len({r["image"] for r in rs}),
            "n_lossless": sum(1 for r in rs if r["mse"] == 0),  # their PSNR is capped (metrics.PSNR_MAX_8BIT)
        }
        if rs and all(r.get("_psnr_view_mean") is not None for r in rs):  # absent on rows of a pre-column partial CSV
            point["extra"] = {"psnr_view_mean": _mean(r["_psnr_view_mean"] for r in rs)}
        if ms_mean is None:
            reasons = {r.get("_ms_ssim_reason") for r in rs if r.get("_ms_ssim_reason")}
            if reasons:
                point["ms_ssim_null_reason"] = sorted(reasons)[0]
        if scenario is Scenario.DISTRIBUTED:
            per = []
            for s in sorted({r["source"] for r in rs}):
                srs = [r for r in rs if r["source"] == s]
                per.append({"source": s, "bpp": _mean(r["bpp"] for r in srs), "psnr": _mean(r["psnr"] for r in srs),
                            "ms_ssim": _mean(r["ms_ssim"] for r in srs)})
            point["per_source"] = per
            vals = [s["psnr"] for s in per if s["psnr"] is not None]
            if vals:
                point["psnr_min"], point["psnr_max"] = min(vals), max(vals)
        out.append(point)
    return out


def rows_csv_text(rows: list[dict[str, Any]]) -> str:
    """The per-image CSV of a run."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(safe_row(r))  # text cells a spreadsheet would run as formulas are neutralised
    return buf.getvalue()


def write_rows_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """The per-image CSV of a run (atomic)."""
    atomic_write_text(path, rows_csv_text(rows))


def estimate_check(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How far the codec's likelihood estimate lies from its real bytes (payload): an estimate that disagrees
    is legal, and shown. None where the codec gives no estimate."""
    pairs = [(r["bpp_estimated"], r["bpp_payload"]) for r in rows if r.get("bpp_estimated") is not None and r.get("bpp_payload")]
    if not pairs:
        return None
    rel = [abs(e - b) / b for e, b in pairs if b > 0]
    worst = max(rel) if rel else 0.0
    return {"max_relative_gap": worst, "rows": len(pairs), "agrees": worst <= 0.25,
            "note": "estimate vs payload bytes per image; over 25 % apart is flagged (the estimate is not the rate)"}


class PartialCSV:
    """The rows of a run as they are coded, one line each, so an interrupted run resumes (``with PartialCSV(...)``).

    `done` holds the rows an earlier attempt left under the same fingerprint (`read_partial`); `add` appends a
    fresh row and flushes it. With a protocol, resumed rows get back why their MS-SSIM is null (the CSV has no
    column for it), as a fresh row has it."""

    def __init__(self, path: Path, fingerprint: str, protocol: Any = None):
        self.path, self.fingerprint = Path(path), fingerprint
        self.done = read_partial(self.path, fingerprint)
        if protocol is not None and protocol.rate_unit == "bpp":
            for row in self.done.values():
                if row.get("ms_ssim") is None and row.get("height") and row.get("width"):
                    row["_ms_ssim_reason"] = metrics.ms_ssim_supported(row["height"], row["width"], protocol.ms_ssim_win)[1]
        self._fh: Any = None
        self._writer: Any = None

    def __enter__(self) -> "PartialCSV":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.done
        self._fh = open(self.path, "w" if fresh else "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=PARTIAL_FIELDS, extrasaction="ignore")
        if fresh:
            self._writer.writeheader()
        return self

    def add(self, row: dict[str, Any]) -> None:
        self._writer.writerow(partial_record(self.fingerprint, row))
        self._fh.flush()

    def __exit__(self, *exc: Any) -> None:
        self._fh.close()
