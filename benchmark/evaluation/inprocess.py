"""Evaluation with the method's code in this process (`--isolation none`): every sample coded at every rate
point by isolated encoder/estimator instances and decoded by the codec, rows resumed from a partial CSV.

The runner enforces the scenario (who sees the side view): the encoder gets `side` only in scenario `joint`; the
decoder gets it in `joint` and `decoder_side_info`. Rate is always the length of the bytes the codec returned (the
suite's container), divided by the pixels of the coded image."""
from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any

from benchmark.results import metrics
from benchmark.contract.codec import Codec, Scenario
from benchmark.contract.container import Container
from benchmark.contract.data import readable_samples
from benchmark.contract.protocol import Protocol
from benchmark.errors import (
    BenchError,
    DatasetError,
)
from benchmark.evaluation.record import checked_counts
from benchmark.evaluation.rows import PartialCSV, measure
from benchmark.progress import Reporter
from benchmark.safety.limits import expected_shape


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
    `estimate_bits`. `run` passes isolated instances (benchmark/evaluation/isolation.py). `facts` (when given)
    receives the input facts and what the decoder counted (`Codec.decoder_counts`, the result's `decoding`).

    Rows already present in `partial_csv` under the same fingerprint are reused (resume)."""
    scenario = codec.meta.scenario
    points = codec.rate_points()
    n = len(samples) if limit is None else min(limit, len(samples))
    n_sources = int(getattr(samples, "num_sources", 1)) if scenario is Scenario.DISTRIBUTED else 1
    image_protocol = protocol.rate_unit == "bpp"

    part = PartialCSV(partial_csv, fingerprint, protocol) if partial_csv is not None else None
    done = part.done if part is not None else {}
    rows: list[dict[str, Any]] = []
    decoded = 0
    with part or contextlib.nullcontext(), \
            Reporter(f"{codec.meta.name} on {protocol.name}", n * n_sources, enabled=progress, unit="images") as prog:
        for idx, name, sample in readable_samples(samples, n, facts):
            sources = range(n_sources) if scenario is Scenario.DISTRIBUTED else [sample.source]
            for source in sources:
                rows += [done[(name, int(source), p)] for p in points if (name, int(source), p) in done]
                todo = [p for p in points if (name, int(source), p) not in done]
                for row in _code_sample(codec, sample, name, int(source), todo, points, scenario, protocol, image_protocol,
                                        encoder or codec, estimator or codec) if todo else ():
                    rows.append(row)
                    decoded += 1
                    if part is not None:
                        part.add(row)
                prog.advance(1)
    if not rows and n:
        raise DatasetError(f"no test sample could be read ({int(getattr(samples, 'skipped', 0) or 0)} skipped by --skip-bad); "
                           "nothing to evaluate")
    if facts is not None:  # what the decoder counted, asked before any further decoding (the complexity pass)
        facts.update(decoder_counts=checked_counts(codec.decoder_counts(), codec.meta.name, "the decoder"),
                     decoders=1, streams_decoded=decoded)
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
            "bpp": metrics.bpp(len(data), pixels), "bpp_payload": metrics.bpp(payload, pixels),
            "bpp_estimated": None if est is None else float(est) / pixels,
            "encode_s": t_enc, "decode_s": t_dec,
            "height": int(x.shape[-2]) if x.dim() >= 2 else 1, "width": int(x.shape[-1]),  # 1-D blocks: 1 x n
            "sha256": hashlib.sha256(bytes(data)).hexdigest(),
        }
        row.update(measure(x, x_hat, protocol, image_protocol))
        yield row
