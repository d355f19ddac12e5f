"""`bench submit`: check result files for a pull request and place them in the committed results tree.

A submitted result must (1) follow the result schema, (2) come with its per-image CSV and agree with it in
every number (`benchmark.results.consistency`: bpp from bytes, PSNR from MSE, each point's means and counts),
(3) cover the whole test split of its protocol (a `--limit N` run or one that skipped unreadable samples is a
pipeline check, not a submission), (4) say how it was made: the git commit, the command line, the training
budget (for a learned method) and the environment (package versions, device), and (5) have been evaluated in
the sandbox (`isolation: sandbox`) by the method code of this commit (`code.method.sha256`,
`benchmark.results.provenance`). Files that pass are copied, with their per-image CSV under the name the suite derives,
to `<into>/<protocol>/<method>[.variant].json` — the layout `bench run --out measured` writes — where CI
rebuilds the committed leaderboard from them."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark.errors import BenchError, ResultSchemaError

DEFAULT_TREE = Path("measured")
# Results written from this date on record their method's code and isolation (the sandboxed runner); older ones are kept in
# the committed tree, shown with isolation `none`, until they are rerun.
CODE_RECORDS_SINCE = datetime(2026, 12, 7, tzinfo=timezone.utc)


@dataclass
class Check:
    path: Path
    result: dict[str, Any] | None = None
    refused: list[str] = field(default_factory=list)  # reasons it cannot be submitted
    warnings: list[str] = field(default_factory=list)
    csv_path: Path | None = None  # the per-image CSV that was checked, and the sha256 of the bytes checked
    csv_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and not self.refused


def check_result(path: Path, into: Path | None = None) -> Check:
    """Every reason the file cannot be submitted (none: it can), and warnings that do not block it.

    `into` is the committed tree (default `measured`, in the current folder or the checkout): a file already at
    its own place there is re-checked as a committed file (see `_code_checks`)."""
    from benchmark.results.consistency import inspect
    from benchmark.results.ranking import is_ranked
    from benchmark.results.schema import validate_result
    from benchmark.safety.untrusted import load_json_file

    path = Path(path)
    chk = Check(path)
    try:
        obj = load_json_file(path, error=lambda msg: ResultSchemaError("<file>", msg))
        result = validate_result(obj)
    except ResultSchemaError as exc:
        chk.refused.append(f"schema: field {exc}")
        return chk
    except BenchError as exc:
        chk.refused.append(str(exc))
        return chk
    chk.result = result
    found = inspect(result, path)  # the per-image CSV beside it, and every number the JSON takes from it
    chk.csv_path, chk.csv_sha256 = found.csv_path, found.csv_sha256
    chk.refused.extend(f"per-image CSV: {p}" for p in found.problems)
    chk.refused.extend(_coverage_problems(result))
    chk.refused.extend(_provenance_problems(result))
    in_tree = _in_tree(path, result, into)
    if str((result.get("environment") or {}).get("git_commit") or "").endswith("-dirty"):
        if in_tree:  # committed before the rule: kept, and said
            chk.warnings.append("made from a checkout with uncommitted changes (committed before such results were "
                                "refused)")
        else:
            chk.refused.append("made from a checkout with uncommitted changes: its commit does not name the code that "
                               "ran; commit your changes and rerun")
    if result.get("protocol_version") is None:
        chk.warnings.append("no protocol_version (written before result files carried it): version 1 assumed")
    _code_checks(chk, result, in_tree=in_tree)
    ranked, why = is_ranked(result)
    if not ranked:
        chk.warnings.append(f"will be listed apart, not ranked: {why}")
    return chk


def _coverage_problems(result: dict[str, Any]) -> list[str]:
    """Why the result does not cover the whole test split (none: it does)."""
    cov = result.get("coverage")
    limit = (result.get("metrics") or {}).get("limit")
    if isinstance(cov, dict):
        if cov.get("limit") is not None or limit is not None:
            return [f"coverage: a --limit {cov.get('limit', limit)} run coded {cov.get('samples')} of "
                    f"{cov.get('split_samples')} test samples; a submission covers the whole test split "
                    "(rerun without --limit)"]
        if not cov.get("complete"):
            return [f"coverage: {cov.get('samples')} of {cov.get('split_samples')} test samples coded, "
                    f"{cov.get('skipped', 0)} skipped as unreadable; fix the dataset copy and rerun"]
        return []
    if limit is not None:
        return [f"coverage: a --limit {limit} run; a submission covers the whole test split (rerun without --limit)"]
    return ["coverage: the file has no `coverage` record (written by an older suite); rerun with this "
            "version so the number of test samples coded is recorded"]


def _provenance_problems(result: dict[str, Any]) -> list[str]:
    """What the result lacks of what made it (commit, command, versions, device, training budget)."""
    from benchmark.results.ranking import needs_training, training_budget

    env = result.get("environment") or {}
    missing = []
    if not env.get("git_commit"):
        missing.append("environment.git_commit (run from a git checkout of the suite)")
    if not str(env.get("command") or "").strip():
        missing.append("environment.command")
    if not env.get("versions"):
        missing.append("environment.versions (package versions)")
    if not str(env.get("device") or "").strip():
        missing.append("environment.device")
    if needs_training(result) and not training_budget(result):
        missing.append("training.budget (which training budget the weights were trained at)")
    if missing:
        return ["provenance missing: " + ", ".join(missing) + "; results written by `bench run` carry all of it"]
    return []


def _in_tree(path: Path, result: dict[str, Any], into: Path | None) -> bool:
    """Whether `path` is the result's own place in the committed tree (`into`, default: `measured` here or in
    the checkout), i.e. a committed file being checked again rather than a new submission."""
    from benchmark.results.provenance import repo_root

    trees = [Path(into)] if into is not None else [DEFAULT_TREE, repo_root() / DEFAULT_TREE]
    for tree in trees:
        try:
            if destination(result, tree).resolve() == path.resolve():
                return True
        except (BenchError, OSError):
            continue
    return False


def _legacy(result: dict[str, Any]) -> bool:
    """Written before results recorded their code and isolation (created before `CODE_RECORDS_SINCE`)."""
    if "code" in result or "isolation" in result:
        return False
    try:
        created = datetime.fromisoformat(str(result.get("created")))
    except ValueError:
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return created < CODE_RECORDS_SINCE


def _code_checks(chk: Check, result: dict[str, Any], in_tree: bool) -> None:
    """The checks that hold at submission: the method's code is this commit's, and it ran in the sandbox.

    A file already at its place in the committed tree keeps it when its method's code has changed since (the
    tree holds results of earlier commits: noted, not refused), and so does a result written before results
    recorded their code and isolation: it is shown with isolation `none` until it is rerun. A new submission
    needs both records."""
    from benchmark.results.provenance import method_code_problem, suite_code_hash

    if _legacy(result):
        if in_tree:
            chk.warnings.append("written before results recorded their code and isolation: kept in the tree, shown "
                                "with isolation `none`, until it is rerun")
        else:
            chk.refused.append("code: written before results recorded their code (`code.method.sha256`) and their "
                               "isolation; a submission needs both: rerun with this version of the suite "
                               "(`bench run --isolation sandbox`)")
        return
    isolation = result.get("isolation", "none")
    if isolation != "sandbox":
        chk.refused.append(f"isolation: evaluated with isolation `{isolation}`"
                           + ("" if "isolation" in result else " (the file does not say: written before results recorded it)")
                           + "; only results whose method ran in the sandbox are accepted: rerun with "
                           "`bench run --isolation sandbox`")
    code = result.get("code")
    if code is None:
        chk.refused.append("code: no record of the method's code (`code.method.sha256`): written before results "
                           "recorded their code; rerun with this version of the suite")
        return
    why = method_code_problem(code)
    if code.get("method") is None:  # the run could not record it (the record says why)
        chk.refused.append(why)
        return
    if why and in_tree:
        chk.warnings.append(f"{why} (kept: the tree holds results of earlier commits; rerun to refresh it)")
    elif why:
        chk.refused.append(why)
    elif not in_tree and code.get("suite_sha256") != suite_code_hash():
        chk.warnings.append("made with other suite code than this checkout's (benchmark/, datasets/ differ): say in "
                            "the pull request why the difference does not change the numbers")


def destination(result: dict[str, Any], into: Path) -> Path:
    from benchmark.safety.safenames import safe_path

    key = result["method"] + (f".{result['variant']}" if result.get("variant") else "")
    return safe_path(Path(into) / Path(*result["protocol"].split("/")), f"{key}.json")


def place(chk: Check, into: Path = DEFAULT_TREE, replace: bool = False) -> list[Path]:
    """Copy an accepted result and its per-image CSV into the results tree; returns the files written.

    The CSV goes only under the name derived from the result (`<method>[.variant].csv` beside the
    destination JSON, whose `per_image_csv` is rewritten to it), with the bytes that were checked. Nothing is
    written through a symbolic link, and no file is replaced that this result did not write: an existing
    JSON only with `replace`, an existing CSV only when it is the one that JSON names. Both files are
    written together (`benchmark.results.schema.write_result_pair`)."""
    from benchmark.results.per_image_csv import read_csv_bytes
    from benchmark.results.schema import write_result_pair
    from benchmark.safety.safenames import safe_path

    if not chk.ok:
        raise BenchError(f"{chk.path}: not accepted: " + "; ".join(chk.refused))
    dst = destination(chk.result, into)
    dst_csv = safe_path(dst.parent, dst.stem + ".csv")
    if dst.resolve() == chk.path.resolve():  # already in place: nothing to copy
        return [dst, chk.csv_path or dst_csv]
    for p in (dst, dst_csv):
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise BenchError(f"{p} is a symbolic link or not a regular file; submit never writes through links or "
                             "over folders: remove it (or choose another --into)")
    if dst.exists() and not replace:
        raise BenchError(f"{dst} already holds a result of this method under this protocol; pass --replace to "
                         "overwrite it (say why in the pull request)")
    if dst_csv.exists() and _csv_named_by(dst) != dst_csv.name:
        raise BenchError(f"{dst_csv} exists and is not the per-image CSV of the result at {dst}: submit never replaces "
                         "a file it did not write for this result; move it away (or choose another --into)")
    data, problem = read_csv_bytes(chk.csv_path)
    if problem is not None or hashlib.sha256(data).hexdigest() != chk.csv_sha256:
        raise BenchError(f"{chk.csv_path} changed after it was checked ({problem or 'other bytes'}); submit again")
    write_result_pair(dst, {**chk.result, "per_image_csv": dst_csv.name}, data)
    return [dst, dst_csv]


def _csv_named_by(result_path: Path) -> str | None:
    """The `per_image_csv` of the result file at `result_path` (None: no file, or not a readable result)."""
    from benchmark.safety.untrusted import load_json_file

    try:
        obj = load_json_file(result_path, error=lambda msg: BenchError(msg))
    except BenchError:
        return None
    return obj.get("per_image_csv") if isinstance(obj, dict) else None
