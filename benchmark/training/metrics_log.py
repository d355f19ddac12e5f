"""A training run's metrics as a CSV in its run folder: one row per (step, split, metric).

The long layout holds whatever scalars a loss closure logs (they differ between methods) and reads back
with pandas::

    df = pd.read_csv("run-.../metrics.csv")
    curves = df.pivot_table(index=["step", "split"], columns="metric", values="value")

Training rows are the logged scalars of a step (at most ~2000 steps per run are written); validation rows
are the validation means. A resumed run first drops the rows written after its checkpoint, so the file of an
interrupted and resumed run equals that of an uninterrupted one (same device and thread count).

The same scalars go to TensorBoard event files (`events.out.tfevents.*`) beside `metrics.csv`, tagged
`train/<name>` and `val/<name>` (loss, bpp, mse or psnr, lr, aux_loss: whatever the loss closure logs), when the
`tensorboard` package is installed (`pip install -e ".[tensorboard]"`; `torch.utils.tensorboard` writes them).
Without it, or with `BENCH_TENSORBOARD=0`, only the CSV is written, and the first run that could have written
events says so once. A resumed run's writer purges the events after its checkpoint, as the CSV drops its rows.
Open them with `tensorboard --logdir <out>` (every run folder below it is one run).
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Mapping

from benchmark.results.schema import atomic_write_text

METRICS_FILE = "metrics.csv"
METRICS_ROWS = 2000  # at most this many training steps are written per run (every steps // 2000-th step)
HEADER = ["step", "split", "metric", "value"]
TENSORBOARD_ENV = "BENCH_TENSORBOARD"  # "0": no event files even when tensorboard is installed
_told: list[str] = []  # why event files are not written, said once per process


def tensorboard_off() -> str | None:
    """Why no TensorBoard event files are written (None: they are)."""
    if os.environ.get(TENSORBOARD_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return f"{TENSORBOARD_ENV}=0"
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        return 'the tensorboard package is not installed (pip install -e ".[tensorboard]")'
    return None


class MetricsLog:
    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self._writer: Any = None  # torch.utils.tensorboard.SummaryWriter, opened at the first write
        self._purge_step: int | None = None

    def truncate_after(self, step: int) -> None:
        """Drop the rows of steps after `step` (written before a crash, after the last checkpoint)."""
        if not self.enabled or not self.path.is_file():
            return
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f)][1:]
        self._purge_step = step + 1  # TensorBoard drops the events of later steps of earlier files
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
        self._events(step, split, logs)

    def _events(self, step: int, split: str, logs: Mapping[str, float]) -> None:
        """The row's scalars as TensorBoard events `split/name` (flushed at once: a killed run keeps them)."""
        if self._writer is None:
            why = tensorboard_off()
            if why:
                if not _told:
                    _told.append(why)
                    from benchmark.progress import logger

                    logger().info(f"training metrics: {self.path.name} only, no TensorBoard event files ({why})")
                self._writer = False
                return
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path.parent), purge_step=self._purge_step)
        if self._writer is False:
            return
        for k in sorted(logs):
            v = logs[k]
            if isinstance(v, (int, float)) and math.isfinite(v):
                self._writer.add_scalar(f"{split}/{k}", float(v), step)
        self._writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer (its thread and file); a later write opens a new one."""
        if self._writer:
            self._writer.close()
        self._writer = None
