"""What the leaderboard reads: the result files under the results folders and the published-curve files, each
checked on its own. A file that cannot be used is listed with the reason and never stops the board; the others
are read. A result's per-image CSV (for the bootstrap interval of BD-rate) is read only as a plain file of the
result's own folder."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from benchmark.errors import ResultSchemaError
from benchmark.results.files import result_candidates
from benchmark.results.schema import RESULT_KIND, load_untrusted, validate_result

from .curves import result_key, result_label
from .published import DEFAULT_DIR as PUBLISHED_DIR
from .published import scan_published


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


@dataclass
class Inputs:
    measured: list[Measured] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # invalid files, with the reason
    ignored: int = 0  # JSON files that are not results (weights manifests, exports, ...)


def file_stem(protocol: str) -> str:
    return protocol.replace("/", "__")


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

    why = name_problem(f"{file_stem(result['protocol'])}__{result_key(result)}-99.json", max_len=MAX_FILE_NAME_LEN)
    if why:
        return f"its export file name {why}"
    return per_image_problem(path, result)


def _short(text: str, n: int = 400) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _read_result(path: Path, folder: Path) -> dict[str, Any] | str | None:
    """The valid result in `path`; or why it cannot be used (str); or None when the file is no result at all."""
    why = _link_problem(path, folder)
    if why:
        return why
    try:
        obj = load_untrusted(path)
    except ResultSchemaError as exc:
        return f"not readable JSON: {_short(str(exc))}"
    if not _looks_like_result(obj):
        return None
    try:
        result = validate_result(obj)
    except ResultSchemaError as exc:
        return f"invalid result file: {_short(str(exc))}"
    why = _result_problem(path, result)
    return _short(why) if why else result


def _tell_apart(measured: list[Measured]) -> None:
    """The same method measured twice under one protocol (two runs, two folders): both kept, the later ones named
    with their file."""
    seen: dict[tuple[str, str], int] = {}
    for m in sorted(measured, key=lambda m: (m.protocol, m.key, str(m.path))):
        n = seen.get((m.protocol, m.key), 0) + 1
        seen[(m.protocol, m.key)] = n
        if n > 1:
            m.label = f"{m.label} #{n} ({m.path.parent.name}/{m.path.name})"
            m.key = f"{m.key}-{n}"


def discover_results(results_dirs: Iterable[Path]) -> tuple[list[Measured], list[tuple[Path, str]], int]:
    """Every `kind == "result"` JSON under the folders (recursively). Invalid ones are returned as skipped, with the
    reason: whatever is wrong inside one file (its JSON, its names, its per-image CSV, a link out of the folder),
    the others are read."""
    measured: list[Measured] = []
    ignored = 0
    found, skipped = _candidates(results_dirs)
    for path, folder in sorted(set(found)):
        try:
            got = _read_result(path, folder)
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the board; it is named with the reason
            got = f"could not be read ({type(exc).__name__}: {_short(str(exc), 300)})"
        if got is None:
            ignored += 1
        elif isinstance(got, str):
            skipped.append((path, got))
        else:
            measured.append(Measured(path, got, result_key(got), result_label(got)))
    _tell_apart(measured)
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


# ---------------------------------------------------------------- a result's per-image CSV
def _per_image_csv(result_path: Path, result: dict[str, Any]) -> list[dict[str, str]] | None:
    """The rows of the per-image CSV a result names (None: it names none, or the file is absent). The name must be
    a plain file of the result's own folder, not a link; the file bounded, UTF-8 CSV (benchmark.safety.untrusted).
    Failures raise ResultSchemaError naming the file."""
    from benchmark.safety.untrusted import confined_file, load_csv_file

    name = result.get("per_image_csv")
    if not name:
        return None
    err = lambda msg: ResultSchemaError("per_image_csv", msg)  # noqa: E731
    path = confined_file(Path(result_path).parent, name, what="its per-image CSV", error=err)
    if not path.exists():
        return None
    return load_csv_file(path, error=err)


def per_image_problem(result_path: Path, result: dict[str, Any]) -> str | None:
    """Why the per-image CSV a result names cannot be read (None when it can, or when there is none)."""
    try:
        _per_image_csv(result_path, result)
    except ResultSchemaError as exc:
        return str(exc)
    return None


def per_image_rows(result_path: Path, result: dict[str, Any]) -> dict[str, dict[str, tuple[float, float]]]:
    """rate point -> image -> (bpp, psnr) from a result's per-image CSV; {} when it is missing or unreadable
    (the leaderboard has already skipped a result whose CSV it cannot read: `per_image_problem`)."""
    try:
        rows = _per_image_csv(result_path, result) or []
    except ResultSchemaError:
        return {}
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for r in rows:
        try:
            key = r.get("image", "") + "|" + str(r.get("source", ""))
            out.setdefault(r["rate_point"], {})[key] = (float(r["bpp"]), float(r["psnr"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out
