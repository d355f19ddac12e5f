"""Every value the leaderboard writes as text goes through here: numbers in table cells, CSV cells, Markdown
tables and heading anchors.

- `text(v, template)`: a cell of a Markdown or HTML table. A missing value (None, NaN, ±inf) is `NA` (or the
  `none` given); a string is kept as it is (a cell that says why there is no number); anything else goes through
  the `str.format` template, e.g. "{:+.1f} %".
- `csv_text(v)`: the text of a value in leaderboard.csv and in index.html's `data-value` (the sort key).
- `or_empty(v)`: a points.csv cell, "" for a missing value and the value itself otherwise.
- `md_table`, `slug`: GitHub-flavoured Markdown."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

NA = "—"


def missing(v: Any) -> bool:
    """None, NaN or an infinity: no number to show."""
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def text(v: Any, template: str = "{}", none: str = NA) -> str:
    """A table cell: `none` for a missing value, a string unchanged, anything else through `template`."""
    if missing(v):
        return none
    if isinstance(v, str):
        return v
    return template.format(v)


def pct(v: Any) -> str:
    """A signed percentage (BD-rate): "+12.3 %"."""
    return text(v, "{:+.1f} %")


def db(v: Any) -> str:
    """A signed difference in dB (BD-PSNR, a gap): "-0.42 dB"."""
    return text(v, "{:+.2f} dB")


def csv_text(v: Any) -> str:
    """The CSV text of a value (also the HTML data-value): "" for missing, 6 significant digits for floats."""
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return ""
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, ".6g")  # counts stay whole
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def or_empty(v: Any) -> Any:
    """A points.csv cell: the value, or "" where there is none."""
    return "" if v is None else v


def md_cell(v: Any) -> str:
    """A Markdown table cell: a `|` in the text is escaped and a line break becomes a space."""
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table."""
    out = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return out


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
