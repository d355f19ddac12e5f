"""Fuzz every registered codec's `decompress` in this process, under an address-space limit and a per-input
timeout; print one JSON summary. Run by tests/test_fuzz_decoders.py as

    python -m tests.fuzz_decode_worker EXAMPLES PIXEL_LIMIT MEMORY_BYTES TIMEOUT_S [NAME ...]
    python -m tests.fuzz_decode_worker guard [NAME ...]

Inputs come from hypothesis (derandomized, no database): arbitrary bytes, containers with arbitrary header
fields and payloads (shapes up to far above the pixel limit), and mutations (bit flips, truncation,
extension, splices) of a valid stream of the codec. Every input must either decode to a finite tensor of the
header's shape or raise BitstreamError; anything else (another exception, a timeout, MemoryError) is listed."""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "1")


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def guard(argv: list[str]) -> int:
    """Headers announcing more than the default pixel limit (8192x8192 images, 2**26-sample blocks, and
    2048x2048 for Neural DSC's autoregressive decoder), and image headers that disagree with the side view:
    each must raise BitstreamError from the size check ("refusing to decode") or the side check. The address
    space is limited to 512 MB above the imports, so a decoder that allocated for the claimed size first would
    fail with a different error."""
    import torch

    torch.set_num_threads(1)
    from benchmark.contract.container import Container
    from benchmark.contract.conformance import contract_codec, contract_inputs
    from benchmark.errors import BitstreamError
    from benchmark.contract.registry import METHODS

    names = argv or METHODS.names()  # imports every method module: before the limit on the address space
    base = _vm_size()
    resource.setrlimit(resource.RLIMIT_AS, (base + (512 << 20), base + (512 << 20)))
    out: dict[str, list] = {}
    for name in names:
        codec = contract_codec(name)
        x, side, _ = contract_inputs(type(codec))
        dec_side = side if codec.meta.scenario.decoder_sees_side else None
        huge = (1 << 26,) if x.dim() == 1 else (x.shape[0], 8192, 8192)
        # 1-D blocks: the container caps one dimension at 2**24, below the pixel limit
        cases = [("over the limit", Container(name, 0, huge, [bytes(51)]).to_bytes(),
                  "dimension 0" if x.dim() == 1 else "refusing to decode")]
        if x.dim() == 1:
            cases.append(("2**24 samples, 51 bytes", Container(name, 0, (1 << 24,), [bytes(51)]).to_bytes(), ""))
        if name.startswith("neural_dsc"):
            cases.append(("2048x2048, 78 zero bytes", Container(name, 0, (3, 2048, 2048), [bytes(78)]).to_bytes(), "refusing to decode"))
        if dec_side is not None and x.dim() == 3:
            cases.append(("header differs from the side view",
                          Container(name, 0, (x.shape[0], x.shape[1], x.shape[2] + 8), [bytes(40)]).to_bytes(), ""))
        res = []
        for what, data, must in cases:
            t0 = time.perf_counter()
            try:
                codec.decompress(data, side=dec_side)
                verdict = "decoded"
            except BitstreamError as exc:
                verdict = "ok" if must in str(exc) else f"BitstreamError without {must!r}: {exc}"
            except BaseException as exc:  # noqa: BLE001
                verdict = f"{type(exc).__name__}: {str(exc)[:200]}"
            res.append({"case": what, "verdict": verdict, "s": round(time.perf_counter() - t0, 3)})
        out[name] = res
    print(json.dumps(out))
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "guard":
        return guard(argv[1:])
    examples, pixel_limit_n, memory, timeout_s = int(argv[0]), int(argv[1]), int(argv[2]), float(argv[3])
    import torch

    torch.set_num_threads(1)
    from benchmark.contract.registry import METHODS

    # every import before the limit on the address space: listing the methods imports every method module
    all_names = METHODS.names()
    names = argv[4:] or all_names
    import hypothesis  # noqa: F401

    import benchmark.contract.container
    import benchmark.contract.conformance
    import benchmark.safety.limits  # noqa: F401

    # the limit is set after the imports (torch alone maps a few GB of virtual memory)
    base = _vm_size()
    resource.setrlimit(resource.RLIMIT_AS, (base + memory, base + memory))
    signal.signal(signal.SIGALRM, _alarm)
    print(json.dumps({name: fuzz_codec(name, examples, pixel_limit_n, timeout_s) for name in names}))
    return 0


def fuzz_codec(name: str, examples: int, pixel_limit_n: int, timeout_s: float) -> dict:
    import torch
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from benchmark.contract.container import Container
    from benchmark.contract.conformance import coded_sample, contract_inputs
    from benchmark.errors import BitstreamError
    from benchmark.safety.limits import pixel_limit

    codec, valid, dec_side = coded_sample(name)
    x_shape = tuple(contract_inputs(type(codec))[0].shape)
    stats = {"tried": 0, "decoded": 0, "bitstream_error": 0, "failures": [], "max_s": 0.0}

    def attempt(data: bytes) -> None:
        stats["tried"] += 1
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            with pixel_limit(pixel_limit_n):
                out = codec.decompress(data, side=dec_side)
            signal.setitimer(signal.ITIMER_REAL, 0)
            c = Container.from_bytes(data, name)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(c.shape) or not torch.isfinite(out).all():
                stats["failures"].append({"input": data.hex()[:400], "error": f"decoded to an invalid tensor {getattr(out, 'shape', out)}"})
            else:
                stats["decoded"] += 1
        except BitstreamError:
            signal.setitimer(signal.ITIMER_REAL, 0)
            stats["bitstream_error"] += 1
        except BaseException as exc:  # noqa: BLE001 - everything else is a finding
            signal.setitimer(signal.ITIMER_REAL, 0)
            kind = "timeout" if isinstance(exc, Timeout) else type(exc).__name__
            stats["failures"].append({"input": data.hex()[:400], "error": f"{kind}: {str(exc)[:300]}",
                                      "where": traceback.format_exc().splitlines()[-3:]})
        stats["max_s"] = max(stats["max_s"], time.perf_counter() - t0)

    shape = st.one_of(
        st.just(x_shape),
        st.lists(st.integers(0, 1 << 24), min_size=0, max_size=4).map(tuple),
        st.tuples(st.integers(0, 4), st.integers(0, 1 << 14), st.integers(0, 1 << 14)),
    )
    structured = st.builds(lambda point, shp, streams: Container(name, point, shp, streams).to_bytes(),
                           st.integers(0, 40), shape, st.lists(st.binary(max_size=256), max_size=4))

    def mutate(data: bytes, draw) -> bytes:
        op = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "zero_payload"]))
        if op == "flip":
            b = bytearray(data)
            for _ in range(draw(st.integers(1, 8))):
                b[draw(st.integers(0, len(b) - 1))] ^= 1 << draw(st.integers(0, 7))
            return bytes(b)
        if op == "truncate":
            return data[: draw(st.integers(0, len(data) - 1))]
        if op == "extend":
            return data + draw(st.binary(min_size=1, max_size=64))
        if op == "splice":
            i = draw(st.integers(0, len(data)))
            return data[:i] + draw(st.binary(max_size=32)) + data[i:]
        c = Container.from_bytes(data, name)
        return Container(name, c.point, c.shape, [bytes(len(s)) for s in c.streams]).to_bytes()

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data) -> None:
        kind = data.draw(st.sampled_from(["bytes", "structured", "mutated"]))
        if kind == "bytes":
            attempt(data.draw(st.binary(max_size=512)))
        elif kind == "structured":
            attempt(data.draw(structured))
        else:
            attempt(mutate(valid, data.draw))

    attempt(valid)  # the unmodified stream first: it must decode
    run()
    return stats


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
