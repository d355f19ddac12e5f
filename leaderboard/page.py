"""The leaderboard as one self-contained HTML page: sortable, filterable tables in vanilla JS (no CDN, works
offline), the RD figures, published rows visibly apart, unique element ids and working in-page links.

The Markdown that `leaderboard.build` and `leaderboard.protocol` write holds one marker line per table
(`TABLE_MARKER.format(key)`); README.md gets a Markdown table there, index.html a rich table whose rows carry their `leaderboard.csv` id
(`data-id`) and whose cells carry the CSV value (`data-value`, the sort key unless a `data-sort` gives another:
the training column sorts by steps). Every table sorts and filters, the Markdown ones (e.g. the gaussian
section's) too: numbers (read from the cell's text there: "+1.2 dB", "1,000") before text before empty cells, in
both directions. Every text from a result or curve file is HTML-escaped; bare https addresses become links."""
from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from .formatting import csv_text, md_table, slug

TABLE_MARKER = "<!-- leaderboard-table {} -->"
_MARKER_RX = re.compile(r"^<!-- leaderboard-table (\S+) -->$")


_HTTPS = re.compile(r"(?<![\w\"'=/>])https://[^\s<>\"'`)\]]+[^\s<>\"'`)\].,;:]")


def link_https(escaped: str) -> str:
    """Bare https addresses in already-escaped HTML text as links (any other scheme stays text)."""
    return _HTTPS.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


class Table:
    """One table: its frame (every column) and the (column, header) pairs shown. A shown column whose sort key is
    another column of the frame (`SORT_BY`, e.g. training -> steps) carries that key as `data-sort`."""

    SORT_BY = {"training": "steps"}

    def __init__(self, key: str, df: pd.DataFrame, cols: list[tuple[str, str]], kind: str,
                 fmt: Callable[[str, Any], str]):
        self.key, self.df, self.cols, self.kind, self.fmt = key, df, cols, kind, fmt

    def records(self) -> list[dict[str, Any]]:
        return [{k: (None if (isinstance(v, float) and v != v) else v) for k, v in r.items()}
                for r in self.df.to_dict("records")]

    def markdown(self) -> list[str]:
        rows = [[self.fmt(c, r.get(c)) for c, _ in self.cols] for r in self.records()]
        return md_table([h for _, h in self.cols], rows)

    def html(self) -> str:
        """Cells hold text from result and curve files: escaped, with only `code` spans rendered (no links, no
        images from a file's text)."""
        def inline(text: str) -> str:
            return link_https(re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=True)))

        def sort_attr(c: str, r: dict[str, Any]) -> str:
            key = self.SORT_BY.get(c)
            return f' data-sort="{html.escape(csv_text(r.get(key)))}"' if key in r else ""

        tid = f"table-{self.key}"
        head = "".join(f'<th data-col="{html.escape(c)}" tabindex="0" title="sort">{inline(h)}</th>' for c, h in self.cols)
        body = []
        for r in self.records():
            cells = "".join(f'<td data-col="{html.escape(c)}" data-value="{html.escape(csv_text(r.get(c)))}"{sort_attr(c, r)}>'
                            f"{inline(self.fmt(c, r.get(c)))}</td>" for c, _ in self.cols)
            rid = html.escape(str(r["id"]))
            body.append(f'<tr id="row-{rid}" data-id="{rid}">{cells}</tr>')
        return (f'<div class="lb-wrap {html.escape(self.kind)}"><input type="search" class="lb-filter" '
                f'aria-label="filter rows" placeholder="filter rows…" data-table="{tid}">'
                f'<table class="lb {html.escape(self.kind)}" id="{tid}"><thead><tr>{head}</tr></thead><tbody>'
                + "".join(body) + "</tbody></table></div>")


def markdown_with_tables(markdown: str, tables: dict[str, Table]) -> str:
    out = []
    for line in markdown.splitlines():
        m = _MARKER_RX.match(line)
        out.extend(tables[m.group(1)].markdown() if m else [line])
    return "\n".join(out) + "\n"


_SCRIPT = r"""
(function () {
  // sort key of a cell: [class, key]; numbers (class 0) before text (1) before empty cells (2) in both directions
  var NUM = /^[+\u2212-]?(\d[\d,]*)(\.\d+)?(e[+-]?\d+)?(\s*(%|dB|steps?|bpp|s|ms))?$/i;
  function key(td) {
    var v = td.getAttribute('data-sort');
    if (v === null) v = td.getAttribute('data-value');
    if (v === null) v = td.textContent.trim();
    if (v === '' || v === '\u2014' || v === '\u2013') return [2, 0];
    var t = v.replace(/\u2212/g, '-');
    if (NUM.test(t)) return [0, parseFloat(t.replace(/,/g, ''))];
    return [1, v.toLowerCase()];
  }
  function sortable(table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      th.setAttribute('tabindex', '0');
      function sort() {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (o) { o.setAttribute('aria-sort', 'none'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.forEach(function (r, i) { r._k = key(r.cells[col]); r._i = i; });
        rows.sort(function (a, b) {
          var x = a._k, y = b._k;
          if (x[0] !== y[0]) return x[0] - y[0];
          if (x[1] === y[1]) return a._i - b._i;
          return (x[1] < y[1] ? -1 : 1) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener('click', sort);
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sort(); });
    });
  }
  document.querySelectorAll('table.lb').forEach(sortable);
  document.querySelectorAll('input.lb-filter').forEach(function (input) {
    input.addEventListener('input', function () {
      var q = input.value.toLowerCase();
      var table = document.getElementById(input.getAttribute('data-table'));
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.hidden = q !== '' && r.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  });
})();
"""

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;line-height:1.4}"
          "table{border-collapse:collapse;margin:.3em 0 1em;font-size:.8em}th,td{border:1px solid #ccc;padding:3px 6px;"
          "text-align:left;vertical-align:top}th{background:#f3f3f3;cursor:pointer;user-select:none}"
          "th[aria-sort=ascending]::after{content:' ▲'}th[aria-sort=descending]::after{content:' ▼'}"
          ".lb-wrap{overflow-x:auto}.lb-wrap.published table,.lb-wrap.reproduced table{background:#fbf8ef}"
          ".lb-wrap.published th{background:#efe6cc}.lb-wrap.unranked table{color:#555}"
          ".lb-filter{margin-top:.5em;padding:2px 6px;font-size:.85em;width:16em}"
          "img{max-width:100%;display:block;margin:1em 0;background:#fff}"
          "blockquote{color:#555;border-left:3px solid #ddd;margin:0;padding-left:1em}code{background:#f6f6f6}")


# ---------------------------------------------------------------- Markdown to HTML
_LINK_TARGET = r"((?!(?!https?:)[A-Za-z][\w+.-]*:)[^)\s]+)"  # relative or http(s) only: never javascript: or data:
_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\(" + _LINK_TARGET + r"\)", re.I), r'<img alt="\1" src="\2">'),
    (re.compile(r"\[([^\]]+)\]\(" + _LINK_TARGET + r"\)", re.I), r'<a href="\2">\1</a>'),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])_([^_]+)_(?![\w*])"), r"<em>\1</em>"),
]
_LIST_ITEM = re.compile(r"\s*([-*]|\d+\.)\s+")


def _inline(text: str) -> str:
    """One line of Markdown text as HTML: escaped, then images, links (relative or http(s)), code, bold, italics."""
    s = html.escape(text, quote=True)
    for rx, rep in _INLINE:
        s = rx.sub(rep, s)
    return link_https(s)


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


class _HtmlBody:
    """The HTML blocks of the leaderboard's Markdown: table markers, headings with unique GitHub-style ids,
    Markdown tables, lists, quotes and paragraphs."""

    def __init__(self, tables: dict[str, Table]):
        self.tables = tables
        self.out: list[str] = []
        self.used: dict[str, int] = {}
        self.para: list[str] = []
        self.n_md = 0  # Markdown tables so far (their ids)

    def render(self, lines: list[str]) -> str:
        i = 0
        while i < len(lines):
            i = self._block(lines, i)
        self._flush()
        return "\n".join(self.out)

    def _flush(self) -> None:
        if self.para:
            self.out.append("<p>" + " ".join(_inline(p) for p in self.para) + "</p>")
            self.para.clear()

    def _block(self, lines: list[str], i: int) -> int:
        """Render the block that starts at line i; return the index of the line after it."""
        line = lines[i]
        mk = _MARKER_RX.match(line)
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        if not (mk or not line.strip() or heading or self._table_starts(lines, i) or _LIST_ITEM.match(line)
                or line.startswith(">")):
            self.para.append(line)
            return i + 1
        self._flush()
        if mk:
            self.out.append(self.tables[mk.group(1)].html())
        elif heading:
            self._heading(len(heading.group(1)), heading.group(2))
        elif self._table_starts(lines, i):
            return self._table(lines, i)
        elif _LIST_ITEM.match(line):
            return self._list(lines, i)
        elif line.startswith(">"):
            self.out.append(f"<blockquote>{_inline(line.lstrip('> '))}</blockquote>")
        return i + 1

    def _heading(self, level: int, text: str) -> None:
        base = slug(text) or "section"
        n = self.used.get(base, 0)
        self.used[base] = n + 1
        hid = base if n == 0 else f"{base}-{n}"
        self.out.append(f'<h{level} id="{html.escape(hid)}">{_inline(text)}</h{level}>')

    @staticmethod
    def _table_starts(lines: list[str], i: int) -> bool:
        return (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
                and re.match(r"^\s*\|?\s*:?-{3,}", lines[i + 1]) is not None)

    def _table(self, lines: list[str], i: int) -> int:
        """A Markdown table (e.g. the gaussian section's): sortable and filterable like the leaderboard's own."""
        head = _split_row(lines[i])
        i += 2
        self.n_md += 1
        tid = f"table-md-{self.n_md}"
        self.out.append(f'<div class="lb-wrap md"><input type="search" class="lb-filter" aria-label="filter rows" '
                        f'placeholder="filter rows…" data-table="{tid}"><table class="lb md" id="{tid}"><thead><tr>'
                        + "".join(f'<th title="sort">{_inline(h)}</th>' for h in head) + "</tr></thead><tbody>")
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            self.out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _split_row(lines[i])) + "</tr>")
            i += 1
        self.out.append("</tbody></table></div>")
        return i

    def _list(self, lines: list[str], i: int) -> int:
        tag = "ol" if re.match(r"\s*\d+\.", lines[i]) else "ul"
        items = []
        while i < len(lines) and _LIST_ITEM.match(lines[i]):
            items.append(_LIST_ITEM.sub("", lines[i], count=1))
            i += 1
        self.out.append(f"<{tag}>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + f"</{tag}>")
        return i


def render(markdown: str, tables: dict[str, Table], title: str) -> str:
    """index.html from the Markdown with table markers."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{_STYLE}</style></head><body>\n"
            + _HtmlBody(tables).render(markdown.splitlines()) + f"\n<script>{_SCRIPT}</script>\n</body></html>\n")
