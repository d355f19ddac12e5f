"""A training run's metrics as a CSV in its run folder: one row per (step, split, metric).

The long layout holds whatever scalars a loss closure logs (they differ between methods) and reads back
with pandas::

    df = pd.read_csv("run-.../metrics.csv")
    curves = df.pivot_table(index=["step", "split"], columns="metric", values="value")

Training rows are the logged scalars of a step (at most ~2000 steps per run are written); validation rows
are the validation means. A resumed run first drops the rows written after its checkpoint, so the file of an
interrupted and resumed run equals that of an uninterrupted one (same device and thread count).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Mapping

from benchmark.results.schema import atomic_write_text

METRICS_FILE = "metrics.csv"
METRICS_ROWS = 2000  # at most this many training steps are written per run (every steps // 2000-th step)
HEADER = ["step", "split", "metric", "value"]


class MetricsLog:
    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def truncate_after(self, step: int) -> None:
        """Drop the rows of steps after `step` (written before a crash, after the last checkpoint)."""
        if not self.enabled or not self.path.is_file():
            return
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f)][1:]
        kept = [r for r in rows if len(r) == 4 and r[0].isdigit() and int(r[0]) <= step]
        if len(kept) != len(rows):
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(HEADER)
            w.writerows(kept)
            atomic_write_text(self.path, buf.getvalue())

    def write(self, step: int, split: str, logs: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        fresh = not self.path.is_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            if fresh:
                w.writerow(HEADER)
            for k in sorted(logs):
                v = logs[k]
                if isinstance(v, (int, float)) and math.isfinite(v):
                    w.writerow([step, split, k, repr(float(v))])
