"""`bench submit`: check result files for a pull request and place them in the committed results tree.

A submitted result must (1) follow the result schema, (2) cover the whole test split of its protocol (a
`--limit N` run or one that skipped unreadable samples is a pipeline check, not a submission) and (3) say
how it was made: the git commit, the command line, the training budget (for a learned method) and the
environment (package versions, device). Files that pass are copied, with their per-image CSV, to
`<into>/<protocol>/<method>[.variant].json` — the layout `bench run --out measured` writes — where CI
rebuilds the committed leaderboard from them."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BenchError, ResultSchemaError

DEFAULT_TREE = Path("measured")


@dataclass
class Check:
    path: Path
    result: dict[str, Any] | None = None
    refused: list[str] = field(default_factory=list)  # reasons it cannot be submitted
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result is not None and not self.refused


def check_result(path: Path) -> Check:
    """Every reason the file cannot be submitted (none: it can), and warnings that do not block it."""
    from .ranking import is_ranked, needs_training, training_budget
    from .results import validate_result
    from .untrusted import load_json_file

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
    cov = result.get("coverage")
    limit = (result.get("metrics") or {}).get("limit")
    if isinstance(cov, dict):
        if cov.get("limit") is not None or limit is not None:
            chk.refused.append(f"coverage: a --limit {cov.get('limit', limit)} run coded {cov.get('samples')} of "
                               f"{cov.get('split_samples')} test samples; a submission covers the whole test split "
                               "(rerun without --limit)")
        elif not cov.get("complete"):
            chk.refused.append(f"coverage: {cov.get('samples')} of {cov.get('split_samples')} test samples coded, "
                               f"{cov.get('skipped', 0)} skipped as unreadable; fix the dataset copy and rerun")
    elif limit is not None:
        chk.refused.append(f"coverage: a --limit {limit} run; a submission covers the whole test split (rerun without --limit)")
    else:
        chk.refused.append("coverage: the file has no `coverage` record (written by an older suite); rerun with this "
                           "version so the number of test samples coded is recorded")
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
        chk.refused.append("provenance missing: " + ", ".join(missing) + "; results written by `bench run` carry all of it")
    if str(env.get("git_commit") or "").endswith("-dirty"):
        chk.warnings.append("made from a checkout with uncommitted changes: say in the pull request what they were")
    if result.get("protocol_version") is None:
        chk.warnings.append("no protocol_version (written before result files carried it): version 1 assumed")
    ranked, why = is_ranked(result)
    if not ranked:
        chk.warnings.append(f"will be listed apart, not ranked: {why}")
    return chk


def destination(result: dict[str, Any], into: Path) -> Path:
    from .safenames import safe_path

    key = result["method"] + (f".{result['variant']}" if result.get("variant") else "")
    return safe_path(Path(into) / Path(*result["protocol"].split("/")), f"{key}.json")


def place(chk: Check, into: Path = DEFAULT_TREE, replace: bool = False) -> list[Path]:
    """Copy an accepted result (and its per-image CSV) into the results tree; returns the files written."""
    from .results import atomic_write_text

    if not chk.ok:
        raise BenchError(f"{chk.path}: not accepted: " + "; ".join(chk.refused))
    dst = destination(chk.result, into)
    if dst.exists() and not replace and dst.resolve() != chk.path.resolve():
        raise BenchError(f"{dst} already holds a result of this method under this protocol; pass --replace to "
                         "overwrite it (say why in the pull request)")
    written = []
    csv_name = chk.result.get("per_image_csv")
    if csv_name:
        src_csv = chk.path.parent / Path(csv_name).name
        if src_csv.is_file():
            dst_csv = dst.parent / Path(csv_name).name
            if src_csv.resolve() != dst_csv.resolve():
                dst_csv.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src_csv, dst_csv)
            written.append(dst_csv)
        else:
            chk.warnings.append(f"per-image CSV {csv_name} not found beside the file: no bootstrap CI for it")
    if dst.resolve() != chk.path.resolve():
        atomic_write_text(dst, json.dumps(chk.result, indent=2) + "\n")
    written.insert(0, dst)
    return written
