"""The evaluation loop: train or load, code every test sample to real bytes, measure, write the result.

The runner enforces the scenario (who sees the side view): the encoder gets `side` only in scenario
`joint`; the decoder gets it in `joint` and `decoder_side_info`. Rate is always the length of the bytes
the codec returned (the suite's container), divided by the pixels of the coded image."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import torch

from benchmark.contract.codec import LearnedCodec
from benchmark.contract.options import check_budget
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import (
    DatasetInfo,
)
from benchmark.errors import (
    BenchError,
    ConfigError,
    DatasetError,
    IsolationError,
    OutputError,
)
from benchmark.evaluation import session
from benchmark.evaluation.inprocess import evaluate
from benchmark.evaluation.isolation import isolated_instances
from benchmark.evaluation.record import Outcome, result_record
from benchmark.evaluation.rows import (
    PartialCSV,
    resume_fingerprint,
    rows_csv_text,
)
from benchmark.evaluation.setup import (
    RunSpec,
    build_split,
    check_method_budget,
    ensure_trained,
    make_codec,
    protocol_dir,
    resolve,
    result_key,
    run_key,
)
from benchmark.progress import Reporter
from benchmark.results.schema import (
    atomic_write_text,
    validate_result,
    write_json,
)
from benchmark.safety.atomicio import exclusive_run, output_dir
from benchmark.safety.limits import pixel_limit

# ---------------------------------------------------------------- evaluation


# ---------------------------------------------------------------- aggregation


# ---------------------------------------------------------------- the whole job
def run(spec: RunSpec, console=None) -> tuple[Path, dict[str, Any]]:
    """`_run` under the run's pixel limit (benchmark.safety.limits) for every image read and bitstream decoded; an
    OSError that escapes (the partial CSV on a full disk, a read-only --out) becomes an OutputError naming --out."""
    with pixel_limit(spec.max_pixels):
        try:
            return _run(spec, console)
        except OSError as exc:
            out = Path(spec.out).resolve()
            if exc.filename and out not in Path(str(exc.filename)).resolve().parents:
                raise  # not about --out
            raise OutputError(f"{spec.method}: cannot write under the output folder {str(spec.out)!r} "
                              f"({exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}); "
                              "free space, make it writable or choose another --out") from exc


def _run(spec: RunSpec, console=None) -> tuple[Path, dict[str, Any]]:
    """Train or load, evaluate, write `<out>/<protocol>/<method>[.variant].json` + CSV. Returns (path, result)."""
    from benchmark.evaluation.sandbox import resolve_isolation

    check_budget(spec.budget)
    level = resolve_isolation(spec.isolation)
    if not isinstance(spec.eval_workers, int) or spec.eval_workers < 1:
        raise ConfigError(f"--eval-workers must be a whole number of at least 1, got {spec.eval_workers!r}")
    if level != "none":
        return _run_isolated(spec, level, console)
    if spec.eval_workers > 1:
        raise ConfigError("--eval-workers codes in role processes side by side; at --isolation none every sample is "
                          "coded in this process, one after the other: drop --eval-workers or run with --isolation "
                          "sandbox (or process)")
    if spec.plugins:
        import importlib

        for mod in spec.plugins:
            importlib.import_module(mod)
    info, protocol = resolve(spec.dataset, spec.protocol, spec.dataset_options)
    codec = make_codec(spec, protocol)  # options checked before any data is read or any training starts
    check_method_budget(codec, protocol, spec.budget)
    output_dir(Path(spec.out))  # a clear message when --out cannot be created (or is a symlink)
    test = build_split(info, spec, protocol, "test")
    if len(test) == 0:
        raise DatasetError(f"dataset {spec.dataset!r} has no test samples under protocol {protocol.name}")
    key, variant = run_key(codec.meta.name, codec.variant, spec)
    # one run of this key per results folder at a time (a second one would overwrite its checkpoints)
    with exclusive_run(output_dir(protocol_dir(spec.out, protocol.name)), key):
        torch.manual_seed(spec.seed)
        training = ensure_trained(codec, info, protocol, spec, key, console)

        pdir = protocol_dir(spec.out, protocol.name)
        partial = pdir / f".{key}.partial.csv"
        fp = resume_fingerprint(spec, protocol, key, codec.info(), training, codec.rate_points())
        # who sees what, by construction: encode (and estimate) with fresh instances built from the options and the
        # saved weights, never with the instance that trained and decodes (benchmark/evaluation/isolation.py)
        encoder, estimator = isolated_instances(lambda: make_codec(spec, protocol),
                                                (spec.weights or pdir / "weights" / key) if isinstance(codec, LearnedCodec) else None)
        facts: dict[str, int] = {}
        rows = evaluate(codec, test, protocol, limit=spec.limit, progress=spec.progress, partial_csv=partial, fingerprint=fp,
                        encoder=encoder, estimator=estimator, facts=facts)
        from benchmark.evaluation.complexity import of_run

        complexity = of_run(codec, test, protocol)  # params, kMAC/pixel of encoder and decoder (leaderboard columns)
        import inspect

        out = Outcome(key, variant, codec.meta.as_dict(), codec.rate_points(), codec.info(), rows, training, complexity,
                      isolation="none", method_file=inspect.getfile(type(codec)), facts=facts)
        return _finish(spec, protocol, test, out, partial)


def _run_isolated(spec: RunSpec, level: str, console=None) -> tuple[Path, dict[str, Any]]:
    """The same job with the method's code only in role processes (benchmark/evaluation/sandbox_eval.py); this process
    never imports it."""
    info, protocol = resolve(spec.dataset, spec.protocol, spec.dataset_options)
    out_existed = Path(spec.out).exists()
    output_dir(Path(spec.out))  # a clear message when --out cannot be created (or is a symlink)
    try:
        return _run_roles(spec, level, info, protocol, console)
    except BenchError:
        if not out_existed:  # a run refused before any work (e.g. a bad option) leaves no folders behind
            _remove_empty_tree(Path(spec.out))
        raise


def _remove_empty_tree(folder: Path) -> None:
    for p in sorted((q for q in folder.rglob("*") if q.is_dir()), key=lambda q: len(q.parts), reverse=True):
        try:
            p.rmdir()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass


def _run_roles(spec: RunSpec, level: str, info: DatasetInfo, protocol: Protocol, console=None) -> tuple[Path, dict[str, Any]]:
    """Describe the method, get its weights, code the test split in role processes, write the result."""

    pdir = protocol_dir(spec.out, protocol.name)
    with contextlib.ExitStack() as held:
        with session.scratch_folder(pdir, spec.method) as scratch, _role_context(spec, level, protocol, pdir, scratch) as ctx:
            # 1. what the method is (no data), and whether weights of an earlier run can be reused
            role = ctx.new("describe", Path(spec.weights) if spec.weights else None)
            resp = ctx.launch(role, "describe", {"given_weights": str(Path(spec.weights).resolve()) if spec.weights else None,
                                                  "reuse_weights": None})
            desc = session.Description.from_response(resp)
            ctx.base["module"] = desc.module
            key, variant = run_key(desc.name, desc.variant, spec)
            # one run of this key per results folder at a time (a second one would overwrite its checkpoints)
            held.enter_context(exclusive_run(pdir, key))
            if not desc.learned and spec.weights:
                raise ConfigError(f"{spec.method} has no weights; drop --weights")
            test = build_split(info, spec, protocol, "test")
            if len(test) == 0:
                raise DatasetError(f"dataset {spec.dataset!r} has no test samples under protocol {protocol.name}")
            # 2. weights: given, reused, or trained in the training sandbox
            weights_dir, training = None, None
            if desc.learned:
                weights_dir, training = _weights_isolated(spec, ctx, info, protocol, pdir, key, desc, console)
            # 3. encoders, then decoders (and decoder-side estimates)
            partial = pdir / f".{key}.partial.csv"
            rows, complexity, facts, kept = _code_in_roles(spec, ctx, desc, test, protocol, weights_dir, partial,
                                                           resume_fingerprint(spec, protocol, key, desc.info, training,
                                                                              desc.rate_points), pdir / f".{key}.bitstreams.zip.tmp")
        archive = None
        if kept is not None:
            archive = pdir / f"{key}.bitstreams.zip"
            kept.replace(archive)
        facts["roles_cpu_s"] = ctx.cost
        out = Outcome(key, variant, desc.meta, desc.rate_points, desc.info, rows, training, complexity, isolation=level,
                      method_file=desc.file, bitstreams=archive.name if archive else None, facts=facts)
        return _finish(spec, protocol, test, out, partial)


@contextlib.contextmanager
def _role_context(spec: RunSpec, level: str, protocol: Protocol, pdir: Path, scratch: Path) -> Iterator[Any]:
    """Where the roles of this run start: what every request carries, what they must not see, how many code side by
    side (--eval-workers) and (sandbox level) the zygotes that fork them (benchmark/evaluation/zygote.py)."""
    from benchmark.contract.registry import DATASETS

    data_opts = {**protocol.options, **spec.dataset_options}
    base = {"method": spec.method, "plugins": list(spec.plugins), "protocol": protocol.name,
            "method_options": spec.method_options, "dataset_options": data_opts, "budget": spec.budget, "seed": spec.seed}
    threads = torch.get_num_threads()
    ctx = session.Context(level, scratch, base, session.hidden_paths(spec, DATASETS), threads, spec.device,
                          workers=spec.eval_workers)
    if level == "sandbox" and not os.environ.get("BENCH_NO_ZYGOTE"):
        from benchmark.evaluation.sandbox import Zygote, shared_zygote

        binds = [(pdir, True)] + ([(Path(spec.weights).resolve(), False)] if spec.weights else [])
        ctx.zygote = shared_zygote(binds, ctx.hide, threads, spec.device)
        ctx.zygote_factory = lambda: Zygote(binds, ctx.hide, 1, spec.device)  # a further worker's roles: one thread
    try:
        yield ctx
    finally:
        ctx.close()


def _code_in_roles(spec: RunSpec, ctx: Any, desc: Any, test: Any, protocol: Protocol, weights_dir: Path | None,
                   partial: Path, fp: str, tmp_archive: Path) -> tuple[list[dict[str, Any]], Any, dict[str, Any], Path | None]:
    """(rows, complexity, input facts, the bitstream archive or None): every test sample coded by encoder roles,
    then decoder roles, each row appended to the partial CSV as it is measured. With --keep-bitstreams every stream
    is archived, unless the run resumed (its first part's streams are gone: then none is kept)."""
    import zipfile

    from benchmark.evaluation import sandbox_eval as se

    n = len(test) if spec.limit is None else min(spec.limit, len(test))
    keep = zipfile.ZipFile(tmp_archive, "w", zipfile.ZIP_DEFLATED) if spec.keep_bitstreams else None
    facts: dict[str, Any] = {}
    with PartialCSV(partial, fp) as part, \
            Reporter(f"{desc.name} on {protocol.name} ({ctx.level})", n, enabled=spec.progress, unit="images") as prog:
        try:
            rows, complexity = se.evaluate(ctx, desc, test, protocol, weights=weights_dir, limit=spec.limit, done=part.done,
                                           on_row=part.add, progress=lambda k: prog.advance(k), keep=keep, facts=facts)
        finally:
            if keep is not None:
                keep.close()
    if keep is not None and any((r["image"], int(r["source"]), r["rate_point"]) in part.done for r in rows):
        tmp_archive.unlink(missing_ok=True)
        keep = None
    return rows, complexity, facts, tmp_archive if keep is not None else None


def _weights_isolated(spec, ctx, info, protocol, pdir, key, desc, console):
    """(weights folder, training record) of a learned method under isolation: the given weights, those an earlier
    run left in <out> when they were trained as this run would train them, or new ones from the training role."""
    import shutil


    if spec.weights:
        desc.update_from(desc.weights)
        return Path(spec.weights).resolve(), {"loaded_from": str(spec.weights), **((desc.weights or {}).get("loaded") or {})}
    weights_dir = (pdir / "weights" / key).resolve()
    if weights_dir.exists() and not spec.retrain:
        role = ctx.new("describe-weights", weights_dir)
        resp = ctx.launch(role, "describe", {"reuse_weights": str(weights_dir)})
        reuse = resp.get("weights") or {}
        if reuse.get("reusable") is True:
            desc.update_from(reuse)
            return weights_dir, {"loaded_from": str(weights_dir), **(reuse.get("loaded") or {})}
        if console and reuse.get("why"):
            console.print(f"[yellow]{reuse['why']}[/]")
    # the training sandbox: the train and validation samples only (generated datasets: their seed), its checkpoint
    # folder, and a weights folder it hands back
    role = ctx.new("train", None)
    role.processes = spec.devices  # data-parallel: torchrun inside the one train sandbox (benchmark/evaluation/sandbox.py)
    req: dict[str, Any] = {"workdir": str((pdir / "train" / key).resolve())}
    data_opts = {**protocol.options, **spec.dataset_options}
    for split in ("train", "val"):
        if info.generated:
            req[split] = {"generated": True, "dataset": info.name, "options": data_opts}
            continue
        try:
            ds = build_split(info, spec, protocol, split)
        except DatasetError:
            if split == "train":
                raise
            req[split] = None
            continue
        req[split] = {"folder": str(session.materialise_split(ds, role.folder / "in" / split, split))}
    (pdir / "train" / key).mkdir(parents=True, exist_ok=True)  # a folder the sandbox does not find is not bound back:
    role.writable.append(pdir / "train" / key)                 # checkpoints, metrics.csv and events would stay inside
    resp = ctx.launch(role, "train", req)
    new = role.out / "weights"
    if not (new / "manifest.json").is_file():
        raise IsolationError(f"{spec.method}: training wrote no weights (manifest.json) into its weights folder")
    tmp = weights_dir.with_name(weights_dir.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    weights_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(new, tmp, symlinks=False)
    if weights_dir.exists():
        shutil.rmtree(weights_dir)
    tmp.replace(weights_dir)
    desc.update_from(resp)
    return weights_dir, resp.get("training")


def _finish(spec: RunSpec, protocol: Protocol, test: Any, out: Outcome, partial: Path) -> tuple[Path, dict[str, Any]]:
    """Write the per-image CSV, then the result JSON (each atomically); drop the partial CSV."""
    pdir = protocol_dir(spec.out, protocol.name)
    csv_path = pdir / f"{out.key}.csv"
    csv_text = rows_csv_text(out.rows)
    atomic_write_text(csv_path, csv_text)
    result = result_record(spec, protocol, test, out, csv_path.name, csv_text)
    validate_result(result)
    path = pdir / f"{out.key}.json"
    write_json(path, result)
    partial.unlink(missing_ok=True)
    return path, result


def train_only(spec: RunSpec, console=None) -> tuple[Path, dict[str, Any] | None]:
    check_budget(spec.budget)
    info, protocol = resolve(spec.dataset, spec.protocol, spec.dataset_options)
    codec = make_codec(spec, protocol)
    if not isinstance(codec, LearnedCodec):
        raise ConfigError(f"{spec.method} is not trainable (classical codec); nothing to train")
    check_method_budget(codec, protocol, spec.budget)
    key, _ = result_key(codec, spec)
    training = ensure_trained(codec, info, protocol, spec, key, console)
    return protocol_dir(spec.out, protocol.name) / "weights" / key, training
