"""`bench verify RESULT`: re-check a submitted number from its bitstreams.

1. the result against its schema and its per-image CSV (benchmark/results/consistency.py: means, bpp = 8·bytes/pixels,
   PSNR from MSE, counts, the CSV's sha256);
2. the bitstream archive beside it (`<method>[.variant].bitstreams.zip`, written by `bench run
   --keep-bitstreams`): one stream per CSV row, each with the row's sha256 and byte count;
3. every stream decoded again by the method in the sandbox (decode roles, the recorded or given weights), and
   every per-image metric recomputed by the suite from the original test images and compared with the CSV;
4. with ``--reencode N``: N test images (seeded choice) encoded again in the sandbox, their bytes compared.

Steps 3 and 4 need the test split (`--root` for a local dataset) and, for a learned method, its weights."""
from __future__ import annotations

import csv
import hashlib
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_ARCHIVE_ENTRY = 64 << 20  # one bitstream is read only below this size


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _rows(json_path: Path, result: dict[str, Any]) -> list[dict[str, str]]:
    csv_path = json_path.parent / Path(str(result.get("per_image_csv") or "")).name
    with open(csv_path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_archive(path: Path, rows: list[dict[str, str]], report: Report) -> dict[tuple[str, int, str], bytes]:
    """The streams of the archive, keyed by (image, source, rate point); every mismatch becomes a problem."""
    if path.is_symlink() or not path.is_file():
        report.problems.append(f"bitstreams: {path.name} is not a plain file beside the result")
        return {}
    out = {}
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        for i, r in enumerate(rows):
            sha = str(r.get("sha256") or "")
            entry = f"bits/{sha}.bin"
            if entry not in names:
                report.problems.append(f"bitstreams: row {i + 1} ({r.get('image')} at {r.get('rate_point')}): no stream "
                                       f"with sha256 {sha[:16]}… in the archive")
                continue
            if zf.getinfo(entry).file_size > MAX_ARCHIVE_ENTRY:
                report.problems.append(f"bitstreams: {entry} is larger than {MAX_ARCHIVE_ENTRY} bytes")
                continue
            data = zf.read(entry)
            if hashlib.sha256(data).hexdigest() != sha:
                report.problems.append(f"bitstreams: {entry} does not hash to its name")
            elif str(len(data)) != str(r.get("bytes")):
                report.problems.append(f"bitstreams: row {i + 1} says {r.get('bytes')} bytes, its stream has {len(data)}")
            out[(str(r["image"]), int(r["source"]), str(r["rate_point"]))] = data
    return out


def verify(json_path: Path, *, root: Path | None = None, weights: Path | None = None, reencode: int = 0,
           isolation: str | None = None, decode: bool = True, seed: int = 0, lenient: bool = False) -> Report:
    """Every problem of the result at `json_path` (none: verified). `lenient` (CI on a pull request): where the
    method cannot be re-run here — weights not in the pull request, a dataset not on this machine — say so in a
    note and check consistency only."""
    from benchmark.errors import BenchError
    from benchmark.results.consistency import check_consistency
    from benchmark.results.schema import load_result

    report = Report()
    json_path = Path(json_path)
    try:
        result = load_result(json_path)
    except BenchError as exc:
        report.problems.append(f"schema: {exc}")
        return report
    report.problems += [str(p) for p in check_consistency(result, json_path)]
    if report.problems:
        return report
    rows = _rows(json_path, result)
    archive = result.get("bitstreams")
    if not archive:
        report.notes.append("no bitstream archive recorded (run with --keep-bitstreams): JSON ↔ CSV consistency only; "
                            "could not re-decode")
        streams = None
    else:
        streams = read_archive(json_path.parent / Path(str(archive)).name, rows, report)
    if report.problems or not decode:
        return report
    from benchmark.errors import ConfigError, DatasetError, WeightsError

    try:
        if streams is not None:
            _redecode(result, rows, streams, report, root=root, weights=weights, isolation=isolation)
        if reencode:
            _reencode(result, rows, reencode, report, root=root, weights=weights, isolation=isolation, seed=seed)
    except (ConfigError, DatasetError, WeightsError) as exc:
        (report.notes if lenient else report.problems).append(f"could not re-run the method: {exc}")
    except BenchError as exc:
        report.problems.append(f"could not re-run the method: {exc}")
    return report


def _spec(result: dict[str, Any], root: Path | None, weights: Path | None, isolation: str | None, out: Path):
    from benchmark.evaluation.setup import RunSpec

    opts = result.get("method_options")
    if not isinstance(opts, dict):
        opts = ((result.get("codec_info") or {}).get("options") or {})
    training = result.get("training") or {}
    w = weights or (Path(training["loaded_from"]) if training.get("loaded_from") else None)
    return RunSpec(method=result["method"], dataset=result["dataset"], root=root, protocol=result["protocol"],
                   out=out, budget=training.get("budget") or "quick", weights=w, method_options=dict(opts),
                   dataset_options={k: v for k, v in (result.get("dataset_options") or {}).items()},
                   isolation=isolation, progress=False)


def _compare(rows: list[dict[str, str]], fresh: list[dict[str, Any]], report: Report, what: str,
             keys=("bytes", "sha256", "mse", "psnr", "ms_ssim")) -> None:
    by = {(str(r["image"]), int(r["source"]), str(r["rate_point"])): r for r in rows}
    for f in fresh:
        k = (str(f["image"]), int(f["source"]), str(f["rate_point"]))
        r = by.get(k)
        if r is None:
            report.problems.append(f"{what}: {k} is not in the CSV")
            continue
        for key in keys:
            a, b = r.get(key), f.get(key)
            if key in ("sha256",) or isinstance(b, str):
                if str(a) != str(b):
                    report.problems.append(f"{what}: {k[0]} at {k[2]}: {key} {a!s:.20} in the CSV, {b!s:.20} recomputed")
            elif b is None:
                if a not in ("", None, "None"):
                    report.problems.append(f"{what}: {k[0]} at {k[2]}: {key} {a} in the CSV, none recomputed")
            else:
                try:
                    av = float(a)
                except (TypeError, ValueError):
                    report.problems.append(f"{what}: {k[0]} at {k[2]}: {key} {a!r} is not a number")
                    continue
                if abs(av - float(b)) > 1e-6 * max(1.0, abs(float(b))):
                    report.problems.append(f"{what}: {k[0]} at {k[2]}: {key} {av:.6g} in the CSV, {float(b):.6g} recomputed")


def _prepare(result, root, weights, isolation, scratch_out: Path):
    from benchmark.contract.registry import DATASETS
    from benchmark.evaluation import sandbox_eval as se
    from benchmark.evaluation.sandbox import resolve_isolation
    from benchmark.evaluation.setup import build_split, protocol_dir, resolve

    spec = _spec(result, root, weights, isolation, scratch_out)
    level = resolve_isolation(spec.isolation)
    if level == "none":
        level = "process"  # verification never runs a stranger's method in this process
    info, protocol = resolve(spec.dataset, spec.protocol)
    test = build_split(info, spec, protocol, "test")
    return spec, level, info, protocol, test, se, DATASETS, protocol_dir


def _run_roles(result, root, weights, isolation, *, only=None, given_bits=None):
    import tempfile

    from benchmark.errors import ConfigError
    from benchmark.evaluation import sandbox_eval as se
    from benchmark.evaluation import session

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        spec, level, info, protocol, test, se, datasets, protocol_dir = _prepare(result, root, weights, isolation, Path(tmp))
        base = {"method": spec.method, "plugins": [], "protocol": protocol.name, "method_options": spec.method_options,
                "dataset_options": {**protocol.options, **spec.dataset_options}, "budget": spec.budget, "seed": spec.seed}
        with session.scratch_folder(Path(tmp), "verify") as scratch:
            ctx = session.Context(level, scratch, base, session.hidden_paths(spec, datasets), None, "cpu")
            role = ctx.new("describe", Path(spec.weights) if spec.weights else None)
            resp = ctx.launch(role, "describe", {"given_weights": str(Path(spec.weights).resolve()) if spec.weights else None})
            desc = session.Description.from_response(resp)
            if desc.learned and not spec.weights:
                raise ConfigError(f"{spec.method} is learned: pass --weights (the result's weights folder)")
            desc.update_from(desc.weights)
            ctx.base["module"] = desc.module
            rows, _ = se.evaluate(ctx, desc, test, protocol, weights=Path(spec.weights).resolve() if spec.weights else None,
                                  limit=result.get("metrics", {}).get("limit"), done={}, on_row=lambda r: None,
                                  progress=lambda k: None, only=only, given_bits=given_bits)
    return rows, level


def _redecode(result, rows, streams, report, *, root, weights, isolation) -> None:
    fresh, level = _run_roles(result, root, weights, isolation, given_bits=streams)
    _compare(rows, fresh, report, "re-decoded", keys=("bytes", "sha256", "mse", "psnr", "ms_ssim"))
    report.notes.append(f"re-decoded {len(fresh)} streams at --isolation {level}")


def _reencode(result, rows, n, report, *, root, weights, isolation, seed) -> None:
    from benchmark.evaluation.setup import build_split, resolve

    names = sorted({str(r["image"]) for r in rows})
    chosen = set(random.Random(seed).sample(names, min(n, len(names))))
    spec = _spec(result, root, weights, isolation, Path("."))
    info, protocol = resolve(spec.dataset, spec.protocol)
    test = build_split(info, spec, protocol, "test")
    only = {i for i in range(len(test)) if (test[i].name or f"{i:06d}") in chosen}
    fresh, level = _run_roles(result, root, weights, isolation, only=only)
    _compare(rows, fresh, report, "re-encoded", keys=("bytes", "sha256"))
    report.notes.append(f"re-encoded {len(only)} images ({len(fresh)} streams) at --isolation {level}")
