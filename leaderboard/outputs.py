"""The leaderboard's files besides README.md and index.html: leaderboard.csv (every row of every table),
points.csv (every point of every curve) and compressai/ (each measured result in CompressAI's JSON format).
Text cells never start a spreadsheet formula (`benchmark.safety.csvsafe`); nothing written depends on the machine
(paths are relative to the leaderboard folder)."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from benchmark.results.files import to_compressai_json
from benchmark.results.schema import write_json
from benchmark.safety.csvsafe import safe_cell, safe_row
from benchmark.safety.safenames import safe_path

from .formatting import csv_text, or_empty
from .inputs import Curve, Measured, file_stem
from .page import Table

POINTS_FIELDS = ["origin", "protocol", "method", "variant", "label", "scenario", "provenance", "rate_type", "rate_point",
                 "bpp", "bpp_estimated", "psnr", "psnr_min", "psnr_max", "ms_ssim", "ms_ssim_db", "file"]
_MEASURED_VALUES = ("rate_point", "bpp", "bpp_estimated", "psnr", "psnr_min", "psnr_max", "ms_ssim", "ms_ssim_db")


def rows_csv(tables: dict[str, Table]) -> str:
    """leaderboard.csv: every row of every table (all protocols), every column, values as index.html's data-value."""
    import pandas as pd

    frames = [t.df.assign(table=t.kind) for t in tables.values() if not t.df.empty]
    if not frames:
        return "id\n"
    df = pd.concat(frames, ignore_index=True, sort=False)
    df = df[["id"] + [c for c in df.columns if c != "id"]]
    df = df.astype(object).where(df.notna(), None).map(csv_text).map(safe_cell)  # text cells never run as formulas
    df.columns = [safe_cell(c) for c in df.columns]
    return df.to_csv(index=False, lineterminator="\n")


def points_csv(measured: list[Measured], curves: list[Curve], out_dir: Path | None = None) -> str:
    """points.csv: one row per point of every measured result and published curve."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=POINTS_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for m in measured:
        r = m.result
        for p in r["points"]:
            w.writerow(safe_row({"origin": "measured", "protocol": r["protocol"], "method": r["method"],
                                 "variant": r.get("variant") or "", "label": m.label, "scenario": r["scenario"],
                                 "provenance": "measured", "rate_type": r.get("rate_unit", "bpp"),
                                 "file": _relpath(m.path, out_dir), **{k: or_empty(p.get(k)) for k in _MEASURED_VALUES}}))
    for c in curves:
        cv = c.curve
        for p in cv["points"]:
            w.writerow(safe_row({"origin": "published", "protocol": cv["protocol"], "method": cv["method"], "variant": "",
                                 "label": cv["label"], "scenario": cv["scenario"], "provenance": cv["provenance"],
                                 "rate_type": cv["rate"], "rate_point": p.get("rate_point", ""), "bpp": or_empty(p["bpp"]),
                                 cv["metric"]: or_empty(p["value"]), "file": c.path.name}))
    return buf.getvalue()


def _relpath(path: Path, start: Path | None) -> str:
    """A path as seen from the leaderboard folder (the same on every machine for a committed tree)."""
    if start is None:
        return str(path)
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path)


def compressai_exports(measured: list[Measured], out_dir: Path) -> list[Path]:
    written = []
    for m in measured:
        path = safe_path(out_dir / "compressai", f"{file_stem(m.protocol)}__{m.key}.json")
        write_json(path, to_compressai_json(m.result))
        written.append(path)
    return written
