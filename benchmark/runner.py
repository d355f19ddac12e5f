"""The evaluation loop: train or load, code every test sample to real bytes, measure, write the result.

The runner enforces the scenario (who sees the side view): the encoder gets `side` only in scenario
`joint`; the decoder gets it in `joint` and `decoder_side_info`. Rate is always the length of the bytes
the codec returned (the suite's container), divided by the pixels of the coded image."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import torch

from . import distributed, metrics
from .budgets import method_budget
from .codec import Codec, LearnedCodec, Scenario
from .data import readable_samples
from .container import Container
from .environment import environment
from .isolation import isolated_instances
from .errors import BenchError, ConfigError, DatasetError, IsolationError, OutputError, WeightsError
from .progress import Reporter
from .protocol import Protocol
from .registry import DatasetInfo, get_dataset, get_method, get_protocol
from .ranking import coverage_record
from .limits import expected_shape, pixel_limit
from .options import BUDGET_NAMES, check_budget
from .safenames import key_problem
from .atomicio import output_dir
from .csvsafe import safe_row
from .results import SCHEMA_VERSION, atomic_write_text, validate_result, write_json, _finite_or_null

BUDGETS = BUDGET_NAMES  # the one list of budget names (benchmark/options.py)

CSV_FIELDS = [
    "image", "source", "rate_point", "bytes", "payload_bytes", "bpp", "bpp_payload", "bpp_estimated",
    "mse", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s", "height", "width",
    "sha256",  # of the whole bitstream (container included); last, so partial CSVs written without it still read
]


@dataclass
class RunSpec:
    method: str
    dataset: str
    root: Path | None = None
    protocol: str | None = None
    limit: int | None = None
    out: Path = Path("results")
    budget: str = "quick"
    device: str = "cpu"
    seed: int = 0
    weights: Path | None = None
    retrain: bool = False
    method_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    max_pixels: int | None = None  # image/bitstream pixel limit for this run (None: benchmark.limits default)
    isolation: str | None = None  # sandbox | process | none (benchmark/sandbox.py); None: the best available
    keep_bitstreams: bool = False  # store every bitstream beside the result (<key>.bitstreams.zip) for `bench verify`
    plugins: tuple[str, ...] = ()  # modules a role imports before looking the method up (a method not installed)


def resolve(dataset: str, protocol: str | None) -> tuple[DatasetInfo, Protocol]:
    info = get_dataset(dataset)
    name = protocol or info.default_protocol
    proto = get_protocol(name)
    if name not in info.protocols:
        raise ConfigError(
            f"dataset {dataset!r} does not support protocol {name!r}; it supports: {', '.join(info.protocols)}"
        )
    return info, proto


def protocol_dir(out: Path, protocol: str) -> Path:
    return Path(out) / Path(*protocol.split("/"))


def make_codec(spec: RunSpec, protocol: Protocol) -> Codec:
    return build_codec(get_method(spec.method), spec.method, protocol, spec.method_options, spec.dataset_options)


def build_codec(cls: type, name: str, protocol: Protocol, method_options: dict[str, Any],
                dataset_options: dict[str, Any]) -> Codec:
    """An instance of method class `cls` under `protocol` (also called inside a sandboxed role, benchmark/roles.py)."""
    options = {**protocol.options_for(name), **method_options}
    # dataset options a codec must agree with when it is built (e.g. DRASIC's number of sources M), forwarded
    # as method options unless given explicitly; a codec lists them in `dataset_options_used`
    data_opts = {**protocol.options, **dataset_options}
    for k in cls.dataset_options_used:
        if k in data_opts and k not in options:
            options[k] = data_opts[k]
    try:
        return cls(protocol=protocol, **options)
    except TypeError as exc:
        raise ConfigError(f"bad option for method {name!r}: {exc}") from exc


def check_method_budget(codec: Codec, protocol: Protocol, budget: str) -> None:
    """A learned codec's own budget table (benchmark/budgets.py) has `budget`: checked before any work."""
    table = codec.budget_table(protocol.name)
    if table is not None:
        method_budget(table, budget, codec.meta.name)


def result_key(codec: Codec, spec: RunSpec) -> tuple[str, str | None]:
    return _key(codec.meta.name, codec.variant, spec)


def build_split(info: DatasetInfo, spec: RunSpec, protocol: Protocol, split: str):
    opts = {**protocol.options, **spec.dataset_options}
    return info.factory(spec.root, protocol, split, **opts)


def ensure_trained(codec: Codec, info: DatasetInfo, protocol: Protocol, spec: RunSpec, key: str, console=None) -> dict[str, Any] | None:
    """Load weights (given, or left by an earlier run in the same --out) or train and save them."""
    if not isinstance(codec, LearnedCodec):
        if spec.weights:
            raise ConfigError(f"{spec.method} has no weights; drop --weights")
        return None
    pdir = protocol_dir(spec.out, protocol.name)
    weights_dir = pdir / "weights" / key
    if spec.weights:
        return {"loaded_from": str(spec.weights), **(codec.load_weights(Path(spec.weights)) or {})}
    if weights_dir.exists() and not spec.retrain:
        reuse = loaded_weights_reusable(codec, weights_dir, spec.budget, spec.seed)
        if reuse["reusable"]:
            return {"loaded_from": str(weights_dir), **reuse["loaded"]}
        if console and reuse.get("why"):
            console.print(f"[yellow]{reuse['why']}[/]")
    train = build_split(info, spec, protocol, "train")
    try:
        val = build_split(info, spec, protocol, "val")
    except DatasetError:
        val = None
    workdir = pdir / "train" / key
    info_fit = codec.fit(train, val, budget=spec.budget, device=spec.device, workdir=workdir, seed=spec.seed)
    if distributed.is_main():  # data-parallel training (torchrun): only rank 0 writes
        codec.save_weights(weights_dir)
    return info_fit


def loaded_weights_reusable(codec: Codec, weights_dir: Path, budget: str, seed: int) -> dict[str, Any]:
    """Whether weights an earlier run left in `weights_dir` were trained as this run would train them:
    {"reusable": bool, "loaded": the manifest's training info, "why": what differs}. Loads them into `codec`."""
    try:
        loaded = codec.load_weights(weights_dir) or {}
    except WeightsError as exc:
        return {"reusable": False, "loaded": {}, "why": f"ignoring weights in {weights_dir}: {exc}; retraining"}
    same_plan = _same_training_plan(codec, budget, loaded)
    if loaded.get("budget") in (None, budget) and loaded.get("seed", seed) == seed and same_plan:
        return {"reusable": True, "loaded": loaded}
    why = "" if same_plan else (f"weights in {weights_dir} were trained with other settings; training "
                                "(an extendable run continues its checkpoint)")
    return {"reusable": False, "loaded": {}, "why": why}


def _same_training_plan(codec: Codec, budget: str, loaded: dict[str, Any]) -> bool:
    """Whether saved weights were trained as the codec would train them now (codecs without `training_plan`,
    or weights without a stored config, are taken as matching)."""
    plan = codec.training_plan(budget)
    saved = (loaded.get("training") or {}).get("config")
    if plan is None or saved is None:
        return True
    norm = lambda obj: json.loads(json.dumps(obj, sort_keys=True, default=str))  # noqa: E731 - tuples vs lists
    return norm(plan) == norm(saved)


# ---------------------------------------------------------------- evaluation
def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def evaluate(
    codec: Codec,
    samples: Any,
    protocol: Protocol,
    *,
    limit: int | None = None,
    progress: bool = True,
    partial_csv: Path | None = None,
    fingerprint: str = "",
    encoder: Codec | None = None,
    estimator: Codec | None = None,
    facts: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Code every sample at every rate point; return one row per (sample, source, point).

    `codec` decodes; `encoder` (default: `codec`) encodes and `estimator` (default: `codec`) runs
    `estimate_bits`. `run` passes isolated instances (benchmark/isolation.py).

    Rows already present in `partial_csv` under the same fingerprint are reused (resume)."""
    scenario = codec.meta.scenario
    points = codec.rate_points()
    n = len(samples) if limit is None else min(limit, len(samples))
    n_sources = int(getattr(samples, "num_sources", 1)) if scenario is Scenario.DISTRIBUTED else 1
    image_protocol = protocol.rate_unit == "bpp"

    done: dict[tuple[str, int, str], dict[str, Any]] = {}
    writer = None
    fh = None
    if partial_csv is not None:
        done = _read_partial(partial_csv, fingerprint)
        for row in done.values():  # the CSV has no column for why MS-SSIM is null: the same reason as a fresh row
            if image_protocol and row.get("ms_ssim") is None and row.get("height") and row.get("width"):
                row["_ms_ssim_reason"] = metrics.ms_ssim_supported(row["height"], row["width"], protocol.ms_ssim_win)[1]
        partial_csv.parent.mkdir(parents=True, exist_ok=True)
        fresh = not done
        fh = open(partial_csv, "w" if fresh else "a", newline="", encoding="utf-8")
        writer = csv.DictWriter(fh, fieldnames=["fingerprint"] + CSV_FIELDS, extrasaction="ignore")
        if fresh:
            writer.writeheader()

    rows: list[dict[str, Any]] = []
    try:
        with Reporter(f"{codec.meta.name} on {protocol.name}", n * n_sources, enabled=progress, unit="images") as prog:
            for idx, name, sample in readable_samples(samples, n, facts):
                sources = range(n_sources) if scenario is Scenario.DISTRIBUTED else [sample.source]
                for source in sources:
                    todo = [p for p in points if (name, int(source), p) not in done]
                    for p in points:
                        if (name, int(source), p) in done:
                            rows.append(done[(name, int(source), p)])
                    if todo:
                        for row in _code_sample(codec, sample, name, int(source), todo, points, scenario, protocol, image_protocol,
                                                encoder or codec, estimator or codec):
                            rows.append(row)
                            if writer is not None:
                                writer.writerow({"fingerprint": fingerprint, **row})
                                fh.flush()
                    prog.advance(1)
    finally:
        if fh is not None:
            fh.close()
    if not rows and n:
        raise DatasetError(f"no test sample could be read ({int(getattr(samples, 'skipped', 0) or 0)} skipped by --skip-bad); "
                           "nothing to evaluate")
    return rows


def _code_sample(codec, sample, name, source, todo, points, scenario, protocol, image_protocol, enc, estimator):
    x = sample.x
    side = sample.side
    enc_side = side if scenario.encoder_sees_side else None
    dec_side = side if scenario.decoder_sees_side else None
    pixels = x.shape[-2] * x.shape[-1] if image_protocol else x.numel()
    streams: dict[str, tuple[bytes, float, float | None]] = {}
    if codec.meta.scalable:
        t0 = time.perf_counter()
        full = enc.compress(x, side=enc_side, source=source, point=points[-1])
        t_enc = time.perf_counter() - t0
        for p in todo:
            streams[p] = (full if p == points[-1] else enc.truncate(full, p), t_enc, None)
    else:
        for p in todo:  # the encoder's own pass may yield the likelihood estimate too (Codec.compress_with_estimate)
            t0 = time.perf_counter()
            data, enc_est = enc.compress_with_estimate(x, side=enc_side, source=source, point=p)
            streams[p] = (data, time.perf_counter() - t0, enc_est)
    for p in todo:
        data, t_enc, enc_est = streams[p]
        if not isinstance(data, (bytes, bytearray)):
            raise BenchError(f"{codec.meta.name}.compress returned {type(data).__name__}, expected bytes")
        t0 = time.perf_counter()
        with expected_shape(tuple(x.shape)):  # a header announcing any other shape is refused before allocating
            x_hat = codec.decompress(bytes(data), side=dec_side, source=source)
        t_dec = time.perf_counter() - t0
        if tuple(x_hat.shape) != tuple(x.shape):
            raise BenchError(f"{codec.meta.name} decoded shape {tuple(x_hat.shape)} differs from input {tuple(x.shape)}")
        payload = Container.from_bytes(bytes(data), codec.meta.name).payload_bytes
        # an ideal Slepian–Wolf rate (-log2 q(m | y)) is measured with the decoder's side information; codecs
        # that report one say so with `estimate_uses_decoder_side` (their bytes never depend on it)
        est_side = dec_side if codec.estimate_uses_decoder_side else enc_side
        if enc_est is None or codec.estimate_uses_decoder_side:
            enc_est = estimator.estimate_bits(x, side=est_side, source=source, point=p)
        est = enc_est
        row = {
            "image": name, "source": source, "rate_point": p,
            "bytes": len(data), "payload_bytes": payload,
            "bpp": 8.0 * len(data) / pixels, "bpp_payload": 8.0 * payload / pixels,
            "bpp_estimated": None if est is None else float(est) / pixels,
            "encode_s": t_enc, "decode_s": t_dec,
            "height": int(x.shape[-2]) if x.dim() >= 2 else 1, "width": int(x.shape[-1]),  # 1-D blocks: 1 x n
            "sha256": hashlib.sha256(bytes(data)).hexdigest(),
        }
        row.update(measure(x, x_hat, protocol, image_protocol))
        yield row


def measure(x: torch.Tensor, x_hat: torch.Tensor, protocol: Protocol, image_protocol: bool = True) -> dict[str, Any]:
    """Distortion of the decoded output as the protocol states (8-bit rounded images, or raw MSE)."""
    if image_protocol:
        a, b = metrics.to_8bit(x), metrics.to_8bit(x_hat)
        m = metrics.mse_8bit(x, x_hat)  # exact: integer code values, then / 255^2
    else:
        a, b = x.double(), x_hat.detach().double()
        m = metrics.mse(a, b)
    psnr = metrics.psnr_8bit_capped(m) if image_protocol else metrics.psnr_from_mse(m)  # lossless: 60 dB, not inf
    out: dict[str, Any] = {"mse": m, "psnr": psnr, "ms_ssim": None, "ms_ssim_db": None}
    if image_protocol:
        v, reason = metrics.msssim(a, b, protocol.ms_ssim_win)
        out["ms_ssim"] = v
        out["ms_ssim_db"] = metrics.ms_ssim_db(v)
        out["_ms_ssim_reason"] = reason
    return out


def _read_partial(path: Path, fingerprint: str) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Rows of an interrupted run. A damaged tail (a row cut off by a crash or a full disk: no final newline,
    missing or unparseable fields) is dropped and the file rewritten without it, so those rows are coded again."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}  # unreadable: start over (the file is rewritten from scratch)
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    done = {}
    for rec in csv.DictReader(io.StringIO(complete, newline="")):
        if rec.get("fingerprint") != fingerprint:
            return {}  # another configuration: start over
        if None in rec or any(rec.get(k) is None for k in CSV_FIELDS if k != "sha256"):
            break  # a short or overlong row: damaged from here on
        try:
            row = {k: _parse(k, rec.get(k) or "") for k in CSV_FIELDS}
            done[(row["image"], int(row["source"]), row["rate_point"])] = row
        except (ValueError, TypeError):
            break
    if len(done) != complete.count("\n") - 1 or complete != text:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["fingerprint"] + CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in done.values():
            w.writerow({"fingerprint": fingerprint, **row})
        atomic_write_text(path, buf.getvalue())
    return done


def _parse(key: str, val: str) -> Any:
    if key in ("image", "rate_point"):
        return val
    if key == "sha256":
        return val or None
    if val in ("", "None"):
        return None
    if key in ("source", "bytes", "payload_bytes", "height", "width"):
        return int(val)
    return float(val)


# ---------------------------------------------------------------- aggregation
def _mean(vals: Iterable[Any]) -> float | None:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return float(sum(vals) / len(vals))


def aggregate(rows: list[dict[str, Any]], points: list[str], scenario: Scenario) -> list[dict[str, Any]]:
    out = []
    for p in points:
        rs = [r for r in rows if r["rate_point"] == p]
        if not rs:
            continue
        ms = [r["ms_ssim"] for r in rs]
        ms_mean = _mean(ms) if all(v is not None for v in ms) else None
        psnrs = [r["psnr"] for r in rs]
        point = {
            "rate_point": p,
            "bpp": _mean(r["bpp"] for r in rs),
            "bpp_payload": _mean(r["bpp_payload"] for r in rs),
            "bpp_estimated": _mean(r["bpp_estimated"] for r in rs) if all(r["bpp_estimated"] is not None for r in rs) else None,
            "psnr": _mean(psnrs) if all(math.isfinite(v) for v in psnrs) else None,
            "mse": _mean(r["mse"] for r in rs),
            "ms_ssim": ms_mean,
            "ms_ssim_db": metrics.ms_ssim_db(ms_mean),
            "encode_s": _mean(r["encode_s"] for r in rs),
            "decode_s": _mean(r["decode_s"] for r in rs),
            "n_images": len({r["image"] for r in rs}),
            "n_lossless": sum(1 for r in rs if r["mse"] == 0),  # their PSNR is capped (metrics.PSNR_MAX_8BIT)
        }
        if ms_mean is None:
            reasons = {r.get("_ms_ssim_reason") for r in rs if r.get("_ms_ssim_reason")}
            if reasons:
                point["ms_ssim_null_reason"] = sorted(reasons)[0]
        if scenario is Scenario.DISTRIBUTED:
            per = []
            for s in sorted({r["source"] for r in rs}):
                srs = [r for r in rs if r["source"] == s]
                per.append({"source": s, "bpp": _mean(r["bpp"] for r in srs), "psnr": _mean(r["psnr"] for r in srs),
                            "ms_ssim": _mean(r["ms_ssim"] for r in srs)})
            point["per_source"] = per
            vals = [s["psnr"] for s in per if s["psnr"] is not None]
            if vals:
                point["psnr_min"], point["psnr_max"] = min(vals), max(vals)
        out.append(point)
    return out


# ---------------------------------------------------------------- the whole job
def run(spec: RunSpec, console=None) -> tuple[Path, dict[str, Any]]:
    """`_run` under the run's pixel limit (benchmark.limits) for every image read and bitstream decoded; an
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
    from .sandbox import resolve_isolation

    check_budget(spec.budget)
    level = resolve_isolation(spec.isolation)
    if level != "none":
        return _run_isolated(spec, level, console)
    if spec.plugins:
        import importlib

        for mod in spec.plugins:
            importlib.import_module(mod)
    info, protocol = resolve(spec.dataset, spec.protocol)
    codec = make_codec(spec, protocol)  # options checked before any data is read or any training starts
    check_method_budget(codec, protocol, spec.budget)
    output_dir(Path(spec.out))  # a clear message when --out cannot be created (or is a symlink)
    test = build_split(info, spec, protocol, "test")
    if len(test) == 0:
        raise DatasetError(f"dataset {spec.dataset!r} has no test samples under protocol {protocol.name}")
    key, variant = _key(codec.meta.name, codec.variant, spec)
    torch.manual_seed(spec.seed)
    training = ensure_trained(codec, info, protocol, spec, key, console)

    pdir = protocol_dir(spec.out, protocol.name)
    partial = pdir / f".{key}.partial.csv"
    fp = _fingerprint({"method": key, "options": codec.info(), "training": training, "dataset": spec.dataset,
                       "dataset_options": spec.dataset_options, "root": str(spec.root), "protocol": protocol.name,
                       "points": codec.rate_points()})
    # who sees what, by construction: encode (and estimate) with fresh instances built from the options and the
    # saved weights, never with the instance that trained and decodes (benchmark/isolation.py)
    encoder, estimator = isolated_instances(lambda: make_codec(spec, protocol),
                                            (spec.weights or pdir / "weights" / key) if isinstance(codec, LearnedCodec) else None)
    facts: dict[str, int] = {}
    rows = evaluate(codec, test, protocol, limit=spec.limit, progress=spec.progress, partial_csv=partial, fingerprint=fp,
                    encoder=encoder, estimator=estimator, facts=facts)
    from .complexity import of_run

    complexity = of_run(codec, test, protocol)  # params, kMAC/pixel of encoder and decoder (leaderboard columns)
    import inspect

    return _finish(spec, protocol, test, key, variant, codec.meta.as_dict(), codec.rate_points(), codec.info(), rows,
                   training, complexity, partial, isolation="none", method_file=inspect.getfile(type(codec)), facts=facts)


def _key(name: str, codec_variant: str | None, spec: RunSpec) -> tuple[str, str | None]:
    parts = [p for p in (codec_variant, spec.dataset_options.get("variant")) if p]
    variant = "+".join(str(p) for p in parts) or None
    key = name + (f".{variant}" if variant else "")
    why = key_problem(key)  # the key names files under --out: never a path of its own, never too long for one
    if why:
        raise ConfigError(f"method/variant name {why}")
    return key, variant


def _run_isolated(spec: RunSpec, level: str, console=None) -> tuple[Path, dict[str, Any]]:
    """The same job with the method's code only in role processes (benchmark/sandbox_eval.py); this process
    never imports it."""
    info, protocol = resolve(spec.dataset, spec.protocol)
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
    import zipfile

    from . import sandbox_eval as se
    from .registry import DATASETS

    pdir = protocol_dir(spec.out, protocol.name)
    data_opts = {**protocol.options, **spec.dataset_options}
    base = {"method": spec.method, "plugins": list(spec.plugins), "protocol": protocol.name,
            "method_options": spec.method_options, "dataset_options": data_opts, "budget": spec.budget, "seed": spec.seed}
    threads = torch.get_num_threads()
    with se.scratch_folder(pdir, spec.method) as scratch:
        ctx = se.Context(level, scratch, base, se.hidden_paths(spec, DATASETS), threads, spec.device)
        if level == "sandbox" and not os.environ.get("BENCH_NO_ZYGOTE"):  # a zygote forks every role (benchmark/zygote.py)
            from .sandbox import shared_zygote

            binds = [(pdir, True)] + ([(Path(spec.weights).resolve(), False)] if spec.weights else [])
            ctx.zygote = shared_zygote(binds, ctx.hide, threads, spec.device)
        # 1. what the method is (no data), and whether weights of an earlier run can be reused
        role = ctx.new("describe", Path(spec.weights) if spec.weights else None)
        resp = ctx.launch(role, "describe", {"given_weights": str(Path(spec.weights).resolve()) if spec.weights else None,
                                              "reuse_weights": None})
        desc = se.Description.from_response(resp)
        ctx.base["module"] = desc.module
        key, variant = _key(desc.name, desc.variant, spec)
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
        fp = _fingerprint({"method": key, "options": desc.info, "training": training, "dataset": spec.dataset,
                           "dataset_options": spec.dataset_options, "root": str(spec.root), "protocol": protocol.name,
                           "points": desc.rate_points})
        done = _read_partial(partial, fp)
        partial.parent.mkdir(parents=True, exist_ok=True)
        n = len(test) if spec.limit is None else min(spec.limit, len(test))
        archive_path = pdir / f"{key}.bitstreams.zip"
        tmp_archive = pdir / f".{key}.bitstreams.zip.tmp"
        keep = zipfile.ZipFile(tmp_archive, "w", zipfile.ZIP_DEFLATED) if spec.keep_bitstreams else None
        fresh, facts = not done, {}
        with open(partial, "w" if fresh else "a", newline="", encoding="utf-8") as fh, \
                Reporter(f"{desc.name} on {protocol.name} ({level})", n, enabled=spec.progress, unit="images") as prog:
            writer = csv.DictWriter(fh, fieldnames=["fingerprint"] + CSV_FIELDS, extrasaction="ignore")
            if fresh:
                writer.writeheader()

            def on_row(row: dict[str, Any]) -> None:
                writer.writerow({"fingerprint": fp, **row})
                fh.flush()

            try:
                rows, complexity = se.evaluate(ctx, desc, test, protocol, weights=weights_dir, limit=spec.limit, done=done,
                                               on_row=on_row, progress=lambda k: prog.advance(k), keep=keep, facts=facts)
            finally:
                if keep is not None:
                    keep.close()
        if keep is not None and any(r["rate_point"] for r in rows if (r["image"], int(r["source"]), r["rate_point"]) in done):
            tmp_archive.unlink(missing_ok=True)  # a resumed run lacks the streams of its first part: none is kept
            keep = None
    if keep is not None:
        tmp_archive.replace(archive_path)
    facts["roles_cpu_s"] = ctx.cost  # type: ignore[assignment]
    return _finish(spec, protocol, test, key, variant, desc.meta, desc.rate_points, desc.info, rows, training, complexity,
                   partial, isolation=level, method_file=desc.file,
                   bitstreams=archive_path.name if keep is not None else None, facts=facts)


def _weights_isolated(spec, ctx, info, protocol, pdir, key, desc, console):
    """(weights folder, training record) of a learned method under isolation: the given weights, those an earlier
    run left in <out> when they were trained as this run would train them, or new ones from the training role."""
    import shutil

    from . import sandbox_eval as se

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
        req[split] = {"folder": str(se.materialise_split(ds, role.folder / "in" / split, split))}
    role.writable.append(pdir / "train" / key)
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


def _finish(spec: RunSpec, protocol: Protocol, test: Any, key: str, variant: str | None, meta: dict[str, Any],
            points_names: list[str], codec_info: dict[str, Any], rows: list[dict[str, Any]], training: Any,
            complexity: Any, partial: Path, *, isolation: str, method_file: str | None,
            bitstreams: str | None = None, facts: dict[str, int] | None = None) -> tuple[Path, dict[str, Any]]:
    """Aggregate the rows and write the result JSON and its per-image CSV (atomically; the CSV first)."""
    scenario = Scenario(meta["scenario"])
    pdir = protocol_dir(spec.out, protocol.name)
    points = aggregate(rows, points_names, scenario)
    csv_path = pdir / f"{key}.csv"
    csv_text = _rows_csv_text(rows)
    atomic_write_text(csv_path, csv_text)

    image_protocol = protocol.rate_unit == "bpp"
    result = {
        "schema_version": SCHEMA_VERSION,
        "kind": "result",
        "method": meta["name"],
        "variant": variant,
        "dataset": spec.dataset,
        "dataset_options": {k: v for k, v in {**protocol.options, **spec.dataset_options}.items()},
        "protocol": protocol.name,
        "protocol_version": protocol.version,
        "scenario": scenario.value,
        "rate_unit": protocol.rate_unit,
        "rate_accounting": {
            "rate_source": "bytes of the suite's bitstream container (header included; bpp_payload excludes it)"
            + ("; bpp_estimated: the codec's likelihood estimate" if any(p.get("bpp_estimated") is not None for p in points) else ""),
            "divided_by": "pixels (H*W) of the coded image x" if image_protocol else "number of coded samples",
            "side_information": scenario.rate_accounting,
            "codec_notes": str(codec_info.get("rate_notes", "")),
        },
        "metrics": {
            "psnr": protocol.psnr if image_protocol else "10*log10(1/MSE) on raw values (not rounded)",
            "ms_ssim": f"pytorch_msssim, win_size={protocol.ms_ssim_win}, data_range=1, per image then mean; "
                       "ms_ssim_db = -10*log10(1 - mean MS-SSIM)" if image_protocol else "not applicable",
            "aggregation": "mean over test images (and over sources for distributed codecs)",
            "limit": spec.limit,
        },
        "points": points,
        "coverage": coverage_record(len(test) if spec.limit is None else min(spec.limit, len(test)), len(test),
                                    spec.limit, int(getattr(test, "skipped", 0) or 0)),
        "per_image_csv": csv_path.name,
        "per_image_csv_sha256": hashlib.sha256(csv_text.encode("utf-8")).hexdigest(),
        "isolation": isolation,
        "input_facts": {"exif_rotated": int((facts or {}).get("exif_rotated", 0)),
                        "note": "test images turned upright by their EXIF orientation when read (coded upright)"},
        "roles_cpu_s": (facts or {}).get("roles_cpu_s"),  # CPU seconds of each sandboxed role, as it reported them
        "method_options": {k: v for k, v in spec.method_options.items()},  # as given (`bench verify` rebuilds the codec)
        "estimate_check": _estimate_check(rows),
        "bitstreams": bitstreams,
        "code": _code_record(method_file),
        "complexity": complexity,
        "training": training,
        "method_meta": meta,
        "codec_info": codec_info,
        "environment": environment(spec.device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    result = _finite_or_null(result)
    validate_result(result)
    path = pdir / f"{key}.json"
    write_json(path, result)
    partial.unlink(missing_ok=True)
    return path, result


def _estimate_check(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How far the codec's likelihood estimate lies from its real bytes (payload): an estimate that disagrees
    is legal, and shown. None where the codec gives no estimate."""
    pairs = [(r["bpp_estimated"], r["bpp_payload"]) for r in rows if r.get("bpp_estimated") is not None and r.get("bpp_payload")]
    if not pairs:
        return None
    rel = [abs(e - b) / b for e, b in pairs if b > 0]
    worst = max(rel) if rel else 0.0
    return {"max_relative_gap": worst, "rows": len(pairs), "agrees": worst <= 0.25,
            "note": "estimate vs payload bytes per image; over 25 % apart is flagged (the estimate is not the rate)"}


def _code_record(method_file: str | None) -> dict[str, Any] | None:
    """Content hashes of the method's code and of the suite's (benchmark/provenance.py), where it is available."""
    try:
        from . import provenance
    except ImportError:
        return None
    try:
        rec: dict[str, Any] = {"suite_sha256": provenance.suite_code_hash()}
        if method_file:
            rec["method"] = provenance.method_code_record(method_file)
        return rec
    except Exception as exc:  # noqa: BLE001 - provenance must not fail a finished run; the file says why
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def _rows_csv_text(rows: list[dict[str, Any]]) -> str:
    """The per-image CSV of a run."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(safe_row(r))  # text cells a spreadsheet would run as formulas are neutralised
    return buf.getvalue()


def _write_rows_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """The per-image CSV of a run (atomic)."""
    atomic_write_text(path, _rows_csv_text(rows))


def train_only(spec: RunSpec, console=None) -> tuple[Path, dict[str, Any] | None]:
    check_budget(spec.budget)
    info, protocol = resolve(spec.dataset, spec.protocol)
    codec = make_codec(spec, protocol)
    if not isinstance(codec, LearnedCodec):
        raise ConfigError(f"{spec.method} is not trainable (classical codec); nothing to train")
    check_method_budget(codec, protocol, spec.budget)
    key, _ = result_key(codec, spec)
    training = ensure_trained(codec, info, protocol, spec, key, console)
    return protocol_dir(spec.out, protocol.name) / "weights" / key, training
