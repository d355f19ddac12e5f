"""Build the leaderboard: a pure function of result files plus published curves.

Per protocol: a Markdown table of the suite's measured results (BD-rate / BD-PSNR against the protocol's
anchor codec, PSNR at the protocol's fixed rates), a separate table of published curves (marked with their
provenance, never mixed with measured rows), PSNR- and MS-SSIM-vs-rate plots; for all protocols together a
README.md, a CSV of every point, a static index.html and a CompressAI-format export of each measured result.

    python -m leaderboard.build RESULTS_DIR [RESULTS_DIR ...] --out OUT [--published DIR ...] [--protocol NAME]
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmark.safety.csvsafe import safe_cell, safe_row
from benchmark.errors import OutputError, ResultSchemaError
from benchmark.safety.safenames import safe_path
from benchmark.results.schema import RESULT_KIND, atomic_write_text, load_untrusted, validate_result, write_json
from benchmark.results.files import result_candidates, to_compressai_json

from . import sections
from . import tables as tbl
from .compare import (MIN_OVERLAP, PUBLISHED_ANCHORS, clean, curve_from_published, curve_from_result, describe_dropped,
                      merge_published, per_image_problem)
from .figures import assign_colours, draw, series_data
from .page import TABLE_MARKER, Table, markdown_with_tables, raw, render
from .published import DEFAULT_DIR as PUBLISHED_DIR
from .published import scan_published

NA = "—"
DEFAULT_FIXED_BPPS = (0.1, 0.25, 0.5)
FALLBACK_ANCHOR = "jpeg"
GAUSSIAN_PROTOCOL = "gaussian/wz"


# ---------------------------------------------------------------- inputs
@dataclass
class Measured:
    """One valid result file."""

    path: Path
    result: dict[str, Any]
    key: str  # method[.variant], unique within its protocol
    label: str

    @property
    def protocol(self) -> str:
        return self.result["protocol"]


@dataclass
class Curve:
    """One valid published-curve file."""

    path: Path
    curve: dict[str, Any]

    @property
    def protocol(self) -> str:
        return self.curve["protocol"]

    @property
    def legend(self) -> str:
        c = self.curve
        return f"{c['label']} [{c['provenance']}, {c['rate']}]"


@dataclass
class Inputs:
    measured: list[Measured] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # invalid files, with the reason
    ignored: int = 0  # JSON files that are not results (weights manifests, exports, ...)


def natural_key(text: str) -> list[Any]:
    """Sort "M=2" before "M=10"."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _looks_like_result(obj: Any) -> bool:
    """A file is a result candidate if it says so, or has no kind but carries result-like fields."""
    if not isinstance(obj, dict):
        return False
    if "kind" in obj:
        return obj["kind"] == RESULT_KIND
    return "points" in obj and "protocol" in obj


def _candidates(results_dirs: Iterable[Path]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(file, the folder it was found under) for every result candidate; folders that do not exist are reported."""
    found: list[tuple[Path, Path]] = []
    skipped: list[tuple[Path, str]] = []
    for d in results_dirs:
        d = Path(d)
        if d.is_file():
            found.append((d, d.parent))
        elif d.is_dir():
            found.extend((p, d) for p in result_candidates(d))
        else:
            skipped.append((d, "results folder does not exist (nothing measured read from it)"))
    return found, skipped


def _link_problem(path: Path, folder: Path) -> str | None:
    """A file symlink under a results folder may point anywhere: only links to files inside the folder are read."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    root = folder.resolve()
    if root not in target.parents:
        return (f"a symbolic link to {str(target)!r:.160}, outside the results folder {str(folder)!r}: "
                "links out of a results folder are never followed; copy the file in instead")
    return None


def _result_problem(path: Path, result: dict[str, Any]) -> str | None:
    """What the leaderboard could not do with a valid result: a file name too long for its export, or a per-image
    CSV it cannot read (not a plain file of the result's folder, a link, binary, a cell of 200k characters...)."""
    from benchmark.safety.safenames import MAX_FILE_NAME_LEN, name_problem

    key = result["method"] + (f".{result['variant']}" if result.get("variant") else "")
    why = name_problem(f"{file_stem(result['protocol'])}__{key}-99.json", max_len=MAX_FILE_NAME_LEN)
    if why:
        return f"its export file name {why}"
    return per_image_problem(path, result)


def _short(text: str, n: int = 400) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def discover_results(results_dirs: Iterable[Path]) -> tuple[list[Measured], list[tuple[Path, str]], int]:
    """Every `kind == "result"` JSON under the folders (recursively). Invalid ones are returned as skipped, with the
    reason: whatever is wrong inside one file (its JSON, its names, its per-image CSV, a link out of the folder),
    the others are read."""
    measured: list[Measured] = []
    ignored = 0
    found, skipped = _candidates(results_dirs)
    for path, folder in sorted(set(found)):
        try:
            why = _link_problem(path, folder)
            if why:
                skipped.append((path, why))
                continue
            try:
                obj = load_untrusted(path)
            except ResultSchemaError as exc:
                skipped.append((path, f"not readable JSON: {_short(str(exc))}"))
                continue
            if not _looks_like_result(obj):
                ignored += 1
                continue
            try:
                result = validate_result(obj)
            except ResultSchemaError as exc:
                skipped.append((path, f"invalid result file: {_short(str(exc))}"))
                continue
            why = _result_problem(path, result)
            if why:
                skipped.append((path, _short(why)))
                continue
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the board; it is named with the reason
            skipped.append((path, f"could not be read ({type(exc).__name__}: {_short(str(exc), 300)})"))
            continue
        key = result["method"] + (f".{result['variant']}" if result.get("variant") else "")
        label = result["method"] + (f" ({result['variant']})" if result.get("variant") else "")
        measured.append(Measured(path, result, key, label))
    # the same method measured twice under one protocol (two runs, two folders): keep both, tell them apart
    seen: dict[tuple[str, str], int] = {}
    for m in sorted(measured, key=lambda m: (m.protocol, m.key, str(m.path))):
        n = seen.get((m.protocol, m.key), 0) + 1
        seen[(m.protocol, m.key)] = n
        if n > 1:
            m.label = f"{m.label} #{n} ({m.path.parent.name}/{m.path.name})"
            m.key = f"{m.key}-{n}"
    measured.sort(key=lambda m: (m.protocol, m.key))
    return measured, skipped, ignored


def gather(results_dirs: Iterable[Path], published_dirs: Iterable[Path] | None,
           extra_published: Iterable[Path] = ()) -> Inputs:
    """`published_dirs` replace the shipped curves (None: the shipped ones); `extra_published` add to them."""
    measured, skipped, ignored = discover_results(results_dirs)
    dirs = list(published_dirs) if published_dirs is not None else [PUBLISHED_DIR]
    good, bad = scan_published(dirs + [Path(d) for d in extra_published])
    curves = sorted((Curve(p, c) for p, c in good),
                    key=lambda c: (c.protocol, natural_key(c.curve["label"]), c.curve["metric"], c.curve["rate"], str(c.path)))
    return Inputs(measured, curves, skipped + [(p, f"invalid published curve: {why}") for p, why in bad], ignored)


# ---------------------------------------------------------------- protocol facts
@dataclass
class ProtocolInfo:
    name: str
    anchor: str
    fixed_bpps: tuple[float, ...]
    rate_unit: str
    description: str
    registered: bool
    note: str = ""


def protocol_info(name: str) -> ProtocolInfo:
    try:
        from benchmark.contract.registry import get_protocol

        p = get_protocol(name)
    except Exception as exc:  # unknown protocol, or the registry cannot load: the leaderboard still builds
        unit = "bits/sample" if name == GAUSSIAN_PROTOCOL else "bpp"
        why = "not registered in this installation" if isinstance(exc, KeyError) else f"registry unavailable ({exc})"
        return ProtocolInfo(name, FALLBACK_ANCHOR, DEFAULT_FIXED_BPPS, unit, "", False,
                            f"Protocol `{name}` is {why}: anchor `{FALLBACK_ANCHOR}` and rates {DEFAULT_FIXED_BPPS} assumed.")
    return ProtocolInfo(name, p.anchor, tuple(p.fixed_bpps), p.rate_unit, p.description, True)


def file_stem(protocol: str) -> str:
    return protocol.replace("/", "__")


# ---------------------------------------------------------------- numbers
def _curve_xy(pairs: Iterable[tuple[Any, Any]]) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for x, y in pairs:
        if x is None or y is None:
            continue
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y) and x > 0:
            xs.append(x)
            ys.append(y)
    return xs, ys


def measured_xy(m: Measured, metric: str = "psnr") -> tuple[list[float], list[float]]:
    return _curve_xy((p.get("bpp"), p.get(metric)) for p in m.result["points"])


def curve_xy(c: Curve) -> tuple[list[float], list[float]]:
    return _curve_xy((p["bpp"], p["value"]) for p in c.curve["points"])


# ---------------------------------------------------------------- Markdown helpers
def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


# ---------------------------------------------------------------- one protocol
def _pick(measured: list[Measured], method: str) -> Measured | None:
    cands = [m for m in measured if m.result["method"] == method and len(measured_xy(m)[0]) > 0]
    # a ranked result (whole test split) is a better anchor than a --limit run of the same method
    cands.sort(key=lambda m: (not tbl.is_ranked(m.result)[0], m.result.get("variant") is not None, m.key))
    return cands[0] if cands else None


def choose_anchor(measured: list[Measured], info: ProtocolInfo) -> tuple[Measured | None, str]:
    """The protocol's anchor if it has a ranked result; else a ranked `jpeg`; else whatever of the two exists.

    A quick-budget learned anchor would make every BD number a comparison with an unconverged model, so a ranked
    classical anchor is preferred to it (and the text says so)."""
    a = _pick(measured, info.anchor)
    if a is not None and tbl.is_ranked(a.result)[0]:
        return a, f"Anchor for BD metrics: `{a.key}` (the protocol's anchor)."
    fb = _pick(measured, FALLBACK_ANCHOR) if info.anchor != FALLBACK_ANCHOR else None
    if fb is not None and (a is None or tbl.is_ranked(fb.result)[0]):
        why = ("has no measured result here" if a is None else
               f"is measured only unranked (`{a.key}`: {tbl.is_ranked(a.result)[1]})")
        return fb, f"Anchor for BD metrics: `{fb.key}` — the protocol's anchor `{info.anchor}` {why}, so `{FALLBACK_ANCHOR}` is used instead."
    if a is not None:
        return a, (f"Anchor for BD metrics: `{a.key}` (the protocol's anchor; unranked: {tbl.is_ranked(a.result)[1]}, "
                   "so BD numbers here compare with an unconverged model).")
    return None, (f"No measured anchor (`{info.anchor}`" + (f" or `{FALLBACK_ANCHOR}`" if info.anchor != FALLBACK_ANCHOR else "")
                  + f"): BD metrics are not computed. Run `bench run --method {info.anchor} --dataset DATASET --protocol {info.name}` to get them.")


def _write_bytes(path: Path, data: bytes) -> None:
    from benchmark.safety.atomicio import atomic_write_bytes

    atomic_write_bytes(path, data)


def _custom_section(name: str, measured: list[Measured], out_dir: Path) -> tuple[str | None, str]:
    """Markdown of the section the protocol registered (leaderboard.sections); (None, note) when none or failed."""
    fn = sections.protocol_section_for(name)
    if fn is None:
        return None, ""
    try:
        return str(fn([m.result for m in measured], out_dir)), ""
    except Exception as exc:  # a bug there must not take the whole leaderboard down, but it is shown
        return None, f"the `{name}` section failed ({type(exc).__name__}: {exc}); the generic table is shown."


def _method_extras(measured: list[Measured]) -> str:
    """Method-specific tables under the generic one (e.g. DRASIC's gap to its joint reference); never fatal."""
    out = []
    for fn in sections.extra_sections():
        try:
            md = fn([m.result for m in measured])
        except Exception as exc:  # a bug there must not take the whole leaderboard down, but it is shown
            md = f"_Note: the `{getattr(fn, '__name__', fn)}` table failed ({type(exc).__name__}: {exc})._"
        if md:
            out.append(md)
    return "\n\n".join(out)


def protocol_section(name: str, measured: list[Measured], curves: list[Curve], out_dir: Path,
                     ctx: dict[str, Any] | None = None) -> tuple[list[str], list[Path]]:
    """Markdown lines and files of one protocol. `ctx` collects the tables ("tables": key -> page.Table) and the
    figure data ("figures": png name -> series) for index.html, leaderboard.csv and figures.json; it also carries
    the figure options ("figsize", "axes")."""
    ctx = {} if ctx is None else ctx
    ctx.setdefault("tables", {})
    ctx.setdefault("figures", {})
    info = protocol_info(name)
    lines = [f"## {name}", ""]
    if info.description:
        lines += [f"> {info.description}", ""]
    if info.note:
        lines += [f"_{info.note}_", ""]
    written: list[Path] = []

    custom, note = (None, "")
    if sections.protocol_section_for(name) is not None:  # registered by the protocol's section module
        before = _snapshot(out_dir)
        custom, note = _custom_section(name, measured, out_dir)
        after = _snapshot(out_dir)
        written += sorted(p for p, t in after.items() if before.get(p) != t)
    if note:
        lines += [f"_Note: {note}_", ""]
    anchor, anchor_text = choose_anchor(measured, info)
    pub = merge_published([curve_from_published(c.curve) for c in curves])
    stem = file_stem(name)
    tabs = ctx["tables"]

    def table(kind: str, rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
        key = f"{stem}--{kind}".replace("/", "-").replace(".", "-")
        tabs[key] = Table(key, tbl.frame(rows), cols, kind, tbl.fmt_cell)
        return TABLE_MARKER.format(key)

    pa_key = PUBLISHED_ANCHORS.get(name)
    pa_label = None
    if pa_key:
        pa = tbl.published_anchor_for(name, pub, None) if "{M}" not in pa_key else None
        pa_label = pa.label if pa else pa_key.replace("{M}", "M")
    if custom is not None:
        lines += [custom.strip(), ""]
    else:
        lines += [anchor_text, ""]
        lines += _published_anchor_text(name, pub) + [
            "BD-rate: mean rate difference at equal quality (negative = fewer bits than the anchor); BD-PSNR: mean "
            "PSNR difference at equal rate (Bjøntegaard, PCHIP interpolation, overlapping interval only; MS-SSIM in dB). "
            "95 % CI: bootstrap over test images (200 resamples, seed 0) where both results have per-image rows. PSNR at "
            "fixed rates is interpolated in log-rate; — outside a curve's range. Coverage: test samples coded / in the "
            "split. Only results that need no training or were trained at the method's `paper` budget, on the whole "
            "test split, are ranked; every other result is listed apart.", ""]
        mrows = tbl.measured_rows(info, measured, anchor, pub, rank_all=bool(ctx.get("rank_all")))
        anchor_name = anchor.key if anchor else None
        ranked = [r for r in mrows if r["table"] == "ranked"]
        unranked = [r for r in mrows if r["table"] == "unranked"]
        lines += ["### Measured by this suite", ""]
        if ranked:
            cols = tbl.columns("ranked", info, anchor_name, pa_label)
            if ctx.get("rank_all"):  # say on each row whether it would be ranked without --rank-all
                cols.insert(1, ("ranking", "ranking"))
            lines += [table("ranked", ranked, cols), ""]
        elif measured:
            lines += ["_No measured result here is ranked yet (see the next table for why)._", ""]
        else:
            lines += [f"_No measured results for this protocol yet — `bench run --method METHOD --dataset DATASET --protocol {name}` "
                      "writes one._", ""]
        if unranked:
            lines += ["### Measured, not ranked (pipeline checks, learning-curve points, partial runs)", "",
                      table("unranked", unranked, tbl.columns("unranked", info, anchor_name, pa_label)), ""]
        if measured:
            extra = _method_extras(measured)
            if extra:
                lines += [extra, ""]
    if pub:
        prows = tbl.published_rows(info, pub, anchor)
        refs: list[str] = []
        for r in prows:
            if r["ref"] not in refs:
                refs.append(r["ref"])
            r["source"], r["ref"] = r["ref"], f"[{refs.index(r['ref']) + 1}]"
        lines += ["### Published (not measured by this suite)", "",
                  table("published", prows, tbl.columns("published", info, anchor.key if anchor else None, pa_label)), "",
                  "† Published curve against the suite's measured anchor, computed only where the curves overlap: "
                  "different runs and possibly a different rate type (`bpp` = coded bits, `bpp_estimated` = likelihood "
                  "estimate, `bpp_uniform` = fixed-length code, `bpp_prior` = ideal code length under a prior). Read it "
                  "as indicative, not as a measurement.", ""]
        lines += [f"{i + 1}. {r}" for i, r in enumerate(refs)] + [""]
        try:
            from benchmark.contract.registry import METHODS

            registered = set(METHODS.names(None))
        except Exception:  # registry unavailable: no reported-vs-reproduced table
            registered = set()
        rrows = tbl.reproduced_rows(info, pub, measured, registered)
        if rrows:
            lines += ["### Reported vs reproduced", "",
                      f"Each published curve of a method this suite implements, beside our curve under the same protocol: "
                      f"BD-PSNR of ours against the published one, flagged when |Δ| > {tbl.REPRODUCED_FLAG_DB} dB. An empty "
                      "cell says which run is missing.", "",
                      table("reproduced", rrows, tbl.columns("reproduced", info, None, None)), ""]

    if custom is None:
        figs = []
        rd = [curve_from_result(m.result, m.label, str(m.path)) for m in measured] + pub
        bands = {}
        for m in measured:
            pts = sorted((p for p in m.result["points"] if p.get("psnr_min") is not None and p.get("psnr_max") is not None
                          and p["bpp"] > 0), key=lambda p: p["bpp"])
            if pts:
                bands[m.label] = ([p["bpp"] for p in pts], [p["psnr_min"] for p in pts],
                                                  [p["psnr_max"] for p in pts])
        for kind, suffix, title in (("psnr", "psnr", "PSNR vs rate"), ("msssim", "msssim", "MS-SSIM vs rate")):
            path = safe_path(out_dir, f"{file_stem(name)}_{suffix}.png")
            series = series_data(rd, kind, ctx.get("colours"))
            if series:
                _write_bytes(path, draw(f"{name}: {title} — measured solid, published dashed", info.rate_unit, series,
                                        kind, path, ctx.get("figsize"), ctx.get("axes"), bands if kind == "psnr" else None))
                ctx["figures"][path.name] = series
                written.append(path)
                figs.append(f"![{name}: {title}]({path.name})")
            elif path.exists():
                path.unlink()  # a figure left by an earlier build would show data that is no longer there
        if figs:
            lines += figs + [""]
        else:
            lines += ["_No plottable points._", ""]
    return lines, written


def _published_anchor_text(name: str, pub: list) -> list[str]:
    """The paragraph naming the protocol's published anchor and the point policy, with the anchor's left-out points."""
    key = PUBLISHED_ANCHORS.get(name)
    if not key:
        return []
    if "{M}" in key:
        anchors = [c for c in pub if c.method == key.replace("{M}", str(c.sources))]
        what = f"`{key.replace('{M}', 'M')}` (the published curve with the same number of sources M)"
    else:
        anchors = [c for c in pub if c.method == key and c.psnr][:1]
        what = (f"**{anchors[0].label}** [{anchors[0].provenance}, {anchors[0].rate_type}]" if anchors
                else f"`{key}` (not among the curves read)")
    left = [f"{c.label}: {describe_dropped(clean(c.psnr))}" for c in anchors if describe_dropped(clean(c.psnr))]
    return [f"Published anchor (“pub. anchor” in the tables) for BD metrics of every curve: {what}. Points left out "
            "of BD (listed per row): a degenerate point (rate more than 100× below the next point of its curve, e.g. a model that sends almost "
            "nothing) — the headline number excludes it and the column “incl. degenerate points” shows BD with it; and "
            "points that break monotonicity (quality not above every cheaper point's). Overlap is the common quality "
            f"interval over the union (the `bjontegaard` package's measure); below {MIN_OVERLAP:.0%} the row is flagged. "
            "A different rate type than the anchor's (likelihood estimate vs real bytes vs fixed-length code) is flagged."
            + (" Anchor points left out: " + "; ".join(left) + "." if left else ""), ""]


def _snapshot(d: Path) -> dict[Path, tuple[float, int]]:
    if not d.is_dir():
        return {}
    return {p: (p.stat().st_mtime, p.stat().st_size) for p in d.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- outputs for all protocols
CSV_FIELDS = ["origin", "protocol", "method", "variant", "label", "scenario", "provenance", "rate_type", "rate_point",
              "bpp", "bpp_estimated", "psnr", "psnr_min", "psnr_max", "ms_ssim", "ms_ssim_db", "file"]


def rows_csv(tables: dict[str, Table]) -> str:
    """leaderboard.csv: every row of every table (all protocols), every column, values as index.html's data-value."""
    import pandas as pd

    frames = [t.df.assign(table=t.kind) for t in tables.values() if not t.df.empty]
    if not frames:
        return "id\n"
    df = pd.concat(frames, ignore_index=True, sort=False)
    df = df[["id"] + [c for c in df.columns if c != "id"]]
    df = df.astype(object).where(df.notna(), None).map(raw).map(safe_cell)  # text cells never run as formulas
    df.columns = [safe_cell(c) for c in df.columns]
    return df.to_csv(index=False, lineterminator="\n")


def points_csv(measured: list[Measured], curves: list[Curve], out_dir: Path | None = None) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for m in measured:
        r = m.result
        for p in r["points"]:
            w.writerow(safe_row({"origin": "measured", "protocol": r["protocol"], "method": r["method"],
                                 "variant": r.get("variant") or "", "label": m.label, "scenario": r["scenario"],
                                 "provenance": "measured",
                                 "rate_type": "bpp" if r.get("rate_unit", "bpp") == "bpp" else r["rate_unit"],
                                 "file": _relpath(m.path, out_dir), **{k: _num(p.get(k)) for k in
                                 ("rate_point", "bpp", "bpp_estimated", "psnr", "psnr_min", "psnr_max", "ms_ssim", "ms_ssim_db")}}))
    for c in curves:
        cv = c.curve
        for p in cv["points"]:
            w.writerow(safe_row({"origin": "published", "protocol": cv["protocol"], "method": cv["method"], "variant": "",
                                 "label": cv["label"], "scenario": cv["scenario"], "provenance": cv["provenance"],
                                 "rate_type": cv["rate"], "rate_point": p.get("rate_point", ""), "bpp": _num(p["bpp"]),
                                 cv["metric"]: _num(p["value"]), "file": c.path.name}))
    return buf.getvalue()


def _relpath(path: Path, start: Path | None) -> str:
    """A path as seen from the leaderboard folder (the same on every machine for a committed tree)."""
    import os

    if start is None:
        return str(path)
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path)


def _num(v: Any) -> Any:
    return "" if v is None else v


def compressai_exports(measured: list[Measured], out_dir: Path) -> list[Path]:
    written = []
    for m in measured:
        path = safe_path(out_dir / "compressai", f"{file_stem(m.protocol)}__{m.key}.json")
        write_json(path, to_compressai_json(m.result))
        written.append(path)
    return written


def build(results_dirs: list[Path], out_dir: Path, published_dirs: list[Path] | None = None,
          *, protocols: Sequence[str] | None = None, extra_published: Sequence[Path] = (),
          figsize: Sequence[float] | None = None, axes: Sequence[float] | None = None,
          rank_all: bool = False) -> list[Path]:
    """Write README.md, per-protocol PNGs, leaderboard.csv (one row per table row), points.csv (every point),
    figures.json (what each figure draws), index.html and compressai/*.json under `out_dir`.

    `results_dirs` are searched recursively for result files; `published_dirs` replace the package's
    `leaderboard/published` (None: the shipped curves), `extra_published` add curve files (published-curve or
    CompressAI JSON) to them. `protocols` restricts the build to those names; `rank_all` ranks partial and
    short-budget results too (each row still says why it would not be ranked). `figsize` (w, h inches) and `axes`
    (xmin, xmax, ymin, ymax) set every figure's size and limits. Returns the files written. Nothing written
    depends on the time or the machine, so a committed leaderboard can be compared with a rebuild."""
    from benchmark.safety.atomicio import link_problem, output_dir

    out_dir = output_dir(Path(out_dir), what="the leaderboard folder")  # never a link: `rs/leaderboard -> victim/`
    for sub in ("compressai",):
        why = link_problem(out_dir / sub)
        if why:
            raise OutputError(f"refusing to write the leaderboard: {why}")
    inputs = gather([Path(d) for d in results_dirs], published_dirs, extra_published)
    ctx: dict[str, Any] = {"figsize": figsize, "axes": axes, "rank_all": rank_all}
    names = sorted({m.protocol for m in inputs.measured} | {c.protocol for c in inputs.curves})
    if protocols:
        names = [n for n in names if n in set(protocols)] + sorted(set(protocols) - set(names))
    measured = [m for m in inputs.measured if m.protocol in names]
    curves = [c for c in inputs.curves if c.protocol in names]
    ctx["colours"] = assign_colours(  # one colour per method for the whole build, distinct within each figure
        [[m.result["method"] + (f".{m.result['variant']}" if m.result.get("variant") else "")
          for m in measured if m.protocol == n] + [c.curve["method"] for c in curves if c.protocol == n] for n in names])

    written: list[Path] = []
    lines = ["# Leaderboard", "",
             "Generated by `bench leaderboard` (`leaderboard.build`) from "
             f"{len(measured)} measured result file(s) and {len(curves)} published curve(s); do not edit by hand.",
             "Results are comparable only within one protocol. Measured rows come from this suite's own runs (rate = "
             "bytes of a real bitstream); published rows are numbers from papers and the authors' repositories, shown "
             "in their own table with their provenance (exact or digitized) and never mixed with measured rows. "
             "Figures: measured curves solid with markers (shaded band = per-source min–max of distributed codecs), "
             "published curves dashed.", "",
             "Also here: [leaderboard.csv](leaderboard.csv) (every table row), [points.csv](points.csv) (every point), "
             "[figures.json](figures.json) (what each figure draws), [index.html](index.html) (sortable, filterable tables)"
             + (", [compressai/](compressai/) (each measured result in CompressAI's JSON format)." if measured else "."), "",
             "## Protocols", ""]
    lines += [f"- [{n}](#{slug(n)}) — {sum(m.protocol == n for m in measured)} measured, "
              f"{sum(c.protocol == n for c in curves)} published" for n in names] + [""]
    for n in names:
        sec, files = protocol_section(n, [m for m in measured if m.protocol == n], [c for c in curves if c.protocol == n], out_dir,
                                      ctx)
        lines += sec
        written += files
    for board_section in sections.board_sections():  # e.g. learning-curve points at equal training
        md = board_section([m.result for m in measured], out_dir)
        if md:
            lines += [md, ""]
    if inputs.skipped:
        lines += ["## Skipped files", "", "These files were not used; fix them (`bench validate FILE` says what is wrong):", ""]
        lines += [f"- `{p}`: {why}" for p, why in inputs.skipped] + [""]
    if inputs.ignored:
        lines += [f"_{inputs.ignored} other JSON file(s) under the results folders are not result files "
                  "(e.g. weights manifests) and were ignored._", ""]
    markdown = "\n".join(lines).rstrip() + "\n"

    readme = out_dir / "README.md"
    atomic_write_text(readme, markdown_with_tables(markdown, ctx["tables"]))
    csv_path = out_dir / "leaderboard.csv"
    atomic_write_text(csv_path, rows_csv(ctx["tables"]))
    points_path = out_dir / "points.csv"
    atomic_write_text(points_path, points_csv(measured, curves, out_dir))
    fig_path = out_dir / "figures.json"
    atomic_write_text(fig_path, json.dumps(ctx["figures"], indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    index = out_dir / "index.html"
    atomic_write_text(index, render(markdown, ctx["tables"], title="DSC benchmark leaderboard"))
    written += [readme, csv_path, points_path, fig_path, index]
    written += compressai_exports(measured, out_dir)
    return written


# ---------------------------------------------------------------- a small Markdown -> HTML renderer
_LINK_TARGET = r"((?!(?!https?:)[A-Za-z][\w+.-]*:)[^)\s]+)"  # relative or http(s) only: never javascript: or data:
_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\(" + _LINK_TARGET + r"\)", re.I), r'<img alt="\1" src="\2">'),
    (re.compile(r"\[([^\]]+)\]\(" + _LINK_TARGET + r"\)", re.I), r'<a href="\2">\1</a>'),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])_([^_]+)_(?![\w*])"), r"<em>\1</em>"),
]


def _inline(text: str) -> str:
    s = html.escape(text, quote=True)
    for rx, rep in _INLINE:
        s = rx.sub(rep, s)
    return s


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m leaderboard.build", description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", type=Path, default=[Path("leaderboard/results")], help="folders of result files")
    ap.add_argument("--out", type=Path, default=Path("leaderboard"), help="output folder")
    ap.add_argument("--published", type=Path, action="append", default=[],
                    help="folder or file of curves ADDED to the shipped ones (repeatable)")
    ap.add_argument("--no-shipped-curves", action="store_true", help="leave the shipped published curves out")
    ap.add_argument("--protocol", action="append", default=None, help="build only this protocol (repeatable)")
    ap.add_argument("--rank-all", action="store_true", help="rank partial and short-budget results too")
    args = ap.parse_args(argv)
    files = build(args.results, args.out, [] if args.no_shipped_curves else None, protocols=args.protocol,
                  extra_published=args.published, rank_all=args.rank_all)
    print(f"wrote {len(files)} files; open {args.out / 'README.md'} or {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
