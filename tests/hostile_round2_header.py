"""The forged-header cost of every registered codec, measured in this process (a child of the
test): for shapes at the pixel limit, the cost of decoding an honest bitstream of that shape against the cost of
headers announcing that shape with payloads that are not the image's (zeros, random bytes, a few bytes).

    python -m tests.hostile_round2_worker header SIDE [NAME ...]

SIDE: the pixel limit is SIDE x SIDE (set with benchmark.safety.limits.pixel_limit, as --max-pixels does). Per codec and
shape, one JSON record: honest decode CPU time and peak RSS (None when the encoder cannot make that shape or the decoder
refuses it), and per forged payload its time, peak RSS and outcome. Peak RSS is Linux's VmHWM, reset before each
measurement (/proc/self/clear_refs)."""
from __future__ import annotations

import time
from typing import Any

import torch


def _hwm_reset() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _timed(fn, repeats: int) -> tuple[float, int, str]:
    """(best CPU time of this process over `repeats`, peak RSS, outcome: 'decoded' or the error's class and message).

    CPU time, not wall time: what a forged header costs is the work it makes the decoder do, and CPU time does not
    grow when other processes load the machine. The child runs torch with one thread, so the decode's work is this
    process's."""
    best, peak, outcome = float("inf"), 0, ""
    for _ in range(repeats):
        _hwm_reset()
        t0 = time.process_time()
        try:
            fn()
            outcome = "decoded"
        except Exception as exc:  # noqa: BLE001 - recorded; the test judges
            outcome = f"{type(exc).__name__}: {str(exc)[:160]}"
        best = min(best, time.process_time() - t0)
        peak = max(peak, _hwm())
    return best, peak, outcome


def _inputs(like: torch.Tensor, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An image (or 1-D block) of `shape` like the contract inputs, and its side view."""
    g = torch.Generator().manual_seed(seed)
    if len(shape) == 1:
        y = torch.randn(shape, generator=g)
        return y + 0.3 * torch.randn(shape, generator=g), y
    c, h, w = shape
    base = torch.nn.functional.interpolate(torch.rand(1, c, max(1, h // 8), max(1, w // 8), generator=g), size=(h, w),
                                           mode="bilinear", align_corners=False)[0]
    x = (base + 0.05 * torch.rand(shape, generator=g)).clamp(0, 1)
    return x, (x.roll(3, dims=-1) * 0.9 + 0.05).clamp(0, 1)


def shapes_at_limit(x: torch.Tensor, side: int) -> list[tuple[int, ...]]:
    """The shapes a forger would pick at a limit of side x side pixels: square, thin and one pixel high."""
    n = side * side
    if x.dim() == 1:
        return [(n,)]
    c = int(x.shape[0])
    return [(c, side, side), (c, 8, n // 8), (c, 1, n)]


def measure(name: str, side: int, repeats: int = 3) -> list[dict[str, Any]]:
    from benchmark.contract.container import Container
    from benchmark.contract.conformance import contract_codec, contract_inputs
    from benchmark.safety.limits import pixel_limit

    torch.manual_seed(0)
    codec = contract_codec(name)
    x0 = contract_inputs(type(codec))[0]
    scen = codec.meta.scenario
    point = codec.rate_points()[0]
    valid = codec.compress(x0, side=contract_inputs(type(codec))[1] if scen.encoder_sees_side else None, point=point)
    n_streams = len(Container.from_bytes(valid, name).streams)
    records = []
    for shape in shapes_at_limit(x0, side):
        x, sv = _inputs(x0, shape, seed=1)
        dec_side = sv if scen.decoder_sees_side else None
        rec: dict[str, Any] = {"codec": name, "shape": list(shape), "honest": None, "forged": []}
        try:
            honest = codec.compress(x, side=sv if scen.encoder_sees_side else None, point=point)
            lengths = [len(s) for s in Container.from_bytes(honest, name).streams]
        except Exception as exc:  # noqa: BLE001 - the encoder cannot make this shape
            honest, lengths = None, [64] * n_streams
            rec["encode"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        with pixel_limit(side * side):
            if honest is not None:
                t, peak, outcome = _timed(lambda: codec.decompress(honest, side=dec_side), repeats)
                rec["honest"] = {"s": t, "rss": peak, "outcome": outcome, "bytes": len(honest)}
            g = torch.Generator().manual_seed(2)
            payloads = {
                "zeros": [bytes(n) for n in lengths],
                "random": [bytes(torch.randint(0, 256, (n,), generator=g, dtype=torch.uint8).tolist()) for n in lengths],
                "8 bytes": [bytes(8) for _ in lengths],
            }
            for what, streams in payloads.items():
                data = Container(name, 0, shape, streams).to_bytes()
                t, peak, outcome = _timed(lambda: codec.decompress(data, side=dec_side), repeats)
                rec["forged"].append({"payload": what, "bytes": len(data), "s": t, "rss": peak, "outcome": outcome})
        records.append(rec)
    return records
