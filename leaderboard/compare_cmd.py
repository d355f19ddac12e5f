"""`bench compare`: BD-rate / BD-quality of any curves against one of them, without writing code.

Curves are named by file (a result file, a published-curve file, a CompressAI result JSON) or by name
(label or method key) among the curves of the protocol: the shipped published curves, `--published` folders
and the result files under `--results` folders."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from benchmark.errors import BenchError

from benchmark.safety.atomicio import atomic_write_bytes

from .compare import MIN_OVERLAP, BD, bd, clean, describe_dropped
from .curves import RATE_TYPES, RDCurve, curve_from_published, curve_from_result, load_curve_file, merge_published
from .figures import draw, series_data
from .formatting import db, pct
from .inputs import discover_results
from .published import DEFAULT_DIR as PUBLISHED_DIR
from .published import scan_published


def pool(protocol: str, published: Sequence[Path] = (), results: Sequence[Path] = (), shipped: bool = True) -> list[RDCurve]:
    """Every curve of `protocol` the suite can see: shipped + `published` curve files, and measured results."""
    dirs = ([PUBLISHED_DIR] if shipped else []) + [Path(p) for p in published]
    good, _ = scan_published(dirs)
    curves = merge_published([curve_from_published(c) for _, c in good if c["protocol"] == protocol])
    measured, _, _ = discover_results([Path(r) for r in results if Path(r).exists()])
    curves += [curve_from_result(m.result, m.label, str(m.path)) for m in measured if m.protocol == protocol]
    return curves


def resolve(name: str, protocol: str, curves: list[RDCurve]) -> RDCurve:
    """A file path, or a curve's label / method key (exact, then case-insensitive, then a unique substring)."""
    p = Path(name)
    if p.is_file():
        c = load_curve_file(p, protocol)
        if c.protocol not in (None, protocol):
            raise BenchError(f"{p} is a curve of protocol {c.protocol!r}, not {protocol!r}: results are comparable "
                             "only within one protocol")
        c.protocol = protocol
        if c.origin == "published":  # the other metric of a published curve lives in a sibling file
            same = [o for o in curves if o.origin == "published" and (o.method, o.label, o.rate_type) == (c.method, c.label, c.rate_type)]
            if same:
                return same[0]
        return c
    for test in (lambda c: name in (c.label, c.method), lambda c: name.lower() in (c.label.lower(), c.method.lower())):
        found = [c for c in curves if test(c)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise BenchError(f"{name!r} names {len(found)} curves of {protocol}: "
                             + "; ".join(f"{c.label} [{c.method}, {c.rate_type}]" for c in found) + ". Use the full label.")
    found = [c for c in curves if name.lower() in c.label.lower()]
    if len(found) == 1:
        return found[0]
    known = "\n  ".join(sorted(f"{c.label}  [{c.method}, {c.origin}, {c.rate_type}]" for c in curves)) or "(none)"
    raise BenchError(f"no single curve of protocol {protocol!r} is called {name!r} "
                     f"({'several match' if found else 'none matches'}). Pass a file, or one of:\n  {known}")


@dataclass
class Row:
    curve: RDCurve
    psnr: BD | None
    msssim: BD | None


def compare(names: Sequence[str], protocol: str, anchor: str | None = None, published: Sequence[Path] = (),
            results: Sequence[Path] = (), shipped: bool = True) -> tuple[RDCurve, list[Row]]:
    curves = pool(protocol, published, results, shipped)
    chosen = [resolve(n, protocol, curves) for n in names]
    a = resolve(anchor, protocol, curves) if anchor else chosen[0]
    rows = []
    for c in chosen:
        if c is a:
            rows.append(Row(c, None, None))
        else:
            rows.append(Row(c, bd(a, c, "psnr") if a.psnr and c.psnr else None,
                            bd(a, c, "msssim") if a.msssim_db and c.msssim_db else None))
    return a, rows


def _interval(b: BD | None, unit: str) -> str:
    if b is None or b.interval_quality is None:
        return "—"
    q, r = b.interval_quality, b.interval_rate
    return f"{q[0]:.2f}–{q[1]:.2f} dB / {r[0]:.3g}–{r[1]:.3g} {unit}"


def report_lines(a: RDCurve, rows: list[Row], unit: str = "bpp") -> list[str]:
    """Plain-text sentences (also what the tests read): one per curve and metric."""
    out = [f"anchor: {a.label} [{a.origin}, {a.rate_type}: {RATE_TYPES.get(a.rate_type, a.rate_type)}]"]
    left = describe_dropped(clean(a.psnr))
    if left:
        out.append(f"  anchor points left out: {left}")
    for r in rows:
        if r.psnr is None and r.msssim is None:
            continue
        for metric, b in (("PSNR", r.psnr), ("MS-SSIM", r.msssim)):
            if b is None:
                continue
            if b.problem:
                out.append(f"{r.curve.label} vs {a.label} ({metric}): {b.problem}")
                continue
            s = (f"{r.curve.label} vs {a.label} ({metric}): BD-rate {pct(b.bd_rate)}, "
                 f"BD-{'PSNR' if metric == 'PSNR' else 'MS-SSIM'} {db(b.bd_quality)}")
            if b.bd_rate_with_degenerate is not None:
                s += f" (incl. degenerate points: BD-rate {pct(b.bd_rate_with_degenerate)})"
            s += (f"; overlap {b.overlap_quality:.0%} of quality, {b.overlap_rate:.0%} of log-rate"
                  f" over {_interval(b, unit)}; rates {b.rate_types[1]} vs anchor {b.rate_types[0]}")
            flags = b.flags()
            if flags:
                s += " — " + "; ".join(flags)
            out.append(s)
            dropped = describe_dropped(b.test_dropped)
            if dropped and metric == "PSNR":
                out.append(f"  {r.curve.label} points left out: {dropped}")
    out.append(f"(overlap below {MIN_OVERLAP:.0%} is flagged; degenerate = rate more than 100x below the next point; "
               "non-monotone = quality not above every cheaper point's)")
    return out


def write_figure(protocol: str, unit: str, curves: list[RDCurve], out: Path, figsize=None, axes=None) -> list[Path]:
    written = []
    for kind, path in (("psnr", out), ("msssim", out.with_name(out.stem + "_msssim" + out.suffix))):
        series = series_data(curves, kind)
        if series:
            atomic_write_bytes(path, draw(f"{protocol}: {'PSNR' if kind == 'psnr' else 'MS-SSIM'} vs rate", unit,
                                          series, kind, path, figsize, axes))
            written.append(path)
    return written
