"""The one progress reporter of the suite: the runner, the trainer and the parallel runner all use it.

Three modes, chosen once per reporter:
- ``bar``: a rich progress bar, when stderr is a terminal;
- ``log``: plain `logging` lines on stderr at a fixed interval (``--log-every SECONDS``, env ``BENCH_LOG_EVERY``,
  default 10 s), when stderr is not a terminal (a batch job, ``> log 2>&1``), e.g.::

      2026-11-30 03:10:00 train balle2018 lambda=0.0018: step 120/500 (24%) loss 1.234 bpp 0.456 PSNR 28.10 | 3.21 it/s ETA 1m58s
      2026-11-30 03:10:10 jpeg on stereo/middlebury: images 12/40 (30%) | 1.10 it/s ETA 25s

  a line is printed when the reporter starts, every interval (a timer thread, so a long step still leaves
  lines), and when it ends;
- ``off``: nothing (``enabled=False``, ``BENCH_PROGRESS=0``, or inside pytest unless asked for explicitly).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

LOGGER_NAME = "bench"
DEFAULT_LOG_EVERY = 10.0
# fields shown after the count, with their format (others given to update() are shown with .4g)
FIELD_FORMATS = {"loss": ("loss", ".4g"), "bpp": ("bpp", ".3f"), "psnr": ("PSNR", ".2f")}


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is at emit time (pytest and workers swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def logger() -> logging.Logger:
    """The suite's logger: INFO lines with a timestamp on stderr, unless the application configured it."""
    log = logging.getLogger(LOGGER_NAME)
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def log_every() -> float:
    """Seconds between two log lines (BENCH_LOG_EVERY, set by --log-every; default 10)."""
    try:
        value = float(os.environ.get("BENCH_LOG_EVERY", DEFAULT_LOG_EVERY))
    except ValueError:
        value = DEFAULT_LOG_EVERY
    return value if value > 0 else DEFAULT_LOG_EVERY


def set_log_every(seconds: float | None) -> None:
    """Set the interval for this process and the worker processes it starts."""
    if seconds is not None:
        if not seconds > 0:
            from benchmark.errors import ConfigError

            raise ConfigError(f"--log-every must be a positive number of seconds, got {seconds}")
        os.environ["BENCH_LOG_EVERY"] = str(seconds)


def mode(enabled: bool | None) -> str:
    """bar | log | off for a reporter asked to be `enabled` (None: decide from the environment)."""
    if enabled is False or os.environ.get("BENCH_PROGRESS", "").lower() in ("0", "false", "no"):
        return "off"
    if enabled is None and "PYTEST_CURRENT_TEST" in os.environ:
        return "off"
    return "bar" if sys.stderr.isatty() else "log"


def progress_enabled(progress: bool | None) -> bool:
    """Whether a reporter asked to be `progress` shows anything (bar or log lines)."""
    return mode(progress) != "off"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Reporter:
    """Progress of one task: ``with Reporter(desc, total) as r: r.update(done, loss=...)`` or ``r.advance()``."""

    def __init__(self, desc: str, total: int, completed: int = 0, *, enabled: bool | None = True, unit: str = "steps",
                 fields: tuple[str, ...] = (), transient: bool = False, console: Any = None, every: float | None = None):
        self.desc, self.total, self.completed, self.unit = desc, int(total), int(completed), unit
        self.fields: dict[str, float] = {}
        self.field_names = fields
        self.mode = mode(enabled)
        self.every = every or log_every()
        self.console = console
        self._bar = self._task = None
        self._transient = transient
        self._start_done, self._t0 = self.completed, time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- context
    def __enter__(self) -> "Reporter":
        if self.mode == "bar":
            self._bar = self._make_bar()
            self._bar.__enter__()
            self._task = self._bar.add_task(self.desc, total=self.total, completed=self.completed, **self._bar_fields())
        elif self.mode == "log":
            self._log_line()
            self._thread = threading.Thread(target=self._tick, name=f"progress {self.desc}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> bool:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._log_line(final=True)
        return False

    # -- updates
    def update(self, completed: int, **fields: Any) -> None:
        with self._lock:
            self.completed = int(completed)
            self.fields.update({k: v for k, v in fields.items() if v is not None})
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed, **self._bar_fields())

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.update(self.completed + n, **fields)

    def print(self, message: str) -> None:
        """A message above the bar (bar mode), a log line (log mode), or on the console (off)."""
        if self._bar is not None:
            self._bar.console.print(message)
        elif self.mode == "log":
            logger().info(_plain(message))
        elif self.console is not None:
            self.console.print(message)

    # -- rendering
    def _fields_text(self) -> str:
        parts = []
        for key in self.field_names or tuple(self.fields):
            label, fmt = FIELD_FORMATS.get(key, (key, ".4g"))
            v = self.fields.get(key)
            parts.append(f"{label} {'-' if v is None else format(v, fmt)}")
        return " ".join(parts)

    def _bar_fields(self) -> dict[str, str]:
        return {"info": self._fields_text()}

    def _make_bar(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        kw = {"console": self.console} if self.console is not None else {}
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), transient=self._transient, **kw)

    def line(self) -> str:
        """The plain progress line (what log mode prints)."""
        with self._lock:
            done, total = self.completed, self.total
            fields = self._fields_text()
        elapsed = time.monotonic() - self._t0
        rate = (done - self._start_done) / elapsed if elapsed > 0 else 0.0
        pct = f" ({100.0 * done / total:.0f}%)" if total else ""
        eta = f" ETA {_duration((total - done) / rate)}" if rate > 0 and total > done else ""
        speed = f"{rate:.2f} it/s" if rate >= 0.1 or rate == 0 else f"{1.0 / rate:.1f} s/it"
        return f"{self.desc}: {self.unit} {done}/{total}{pct}{' ' + fields if fields else ''} | {speed}{eta}"

    def _log_line(self, final: bool = False) -> None:
        logger().info(self.line() + (" done" if final and self.completed >= self.total else ""))

    def _tick(self) -> None:
        """A line at t0 + k * every (a fixed schedule: a slow write or a late wake-up does not add up)."""
        due = time.monotonic()
        while True:
            due += self.every
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self._log_line()


def _plain(message: str) -> str:
    """Rich markup removed, for a log line."""
    try:
        from rich.text import Text

        return Text.from_markup(message).plain
    except Exception:
        return message
