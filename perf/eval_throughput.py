"""Evaluation throughput: images per second per learned method at 128x256, coded by `bench run` in role processes
with `--eval-workers 1` and `2`, and where Neural DSC's coding time goes (its autoregressive prior).

Run by hand (not a test):

    python perf/eval_throughput.py --root <KITTI stereo folder: test/left, test/right> --limit 4 --repeats 3
    python perf/eval_throughput.py --methods balle2018,neural_dsc --workers 1,2 --json /tmp/throughput.json

Each method is built with its default options under `stereo/kitti-ndic` (centre crop 370x740, resized to
128x256) with untrained weights at every rate point of its default λ list (the paper's architecture: the time of
the transforms does not depend on training; the entropy coder's does a little, through the number of bytes), saved
once and given as `--weights`, so no run trains. A run codes `--limit` test samples at every rate point; one
*coding* is one image encoded and decoded at one rate point. Reported per method and worker count, median over
`--repeats` runs (with each run's value and the 1-minute load average, as the machine may be shared):

  wall       seconds of the whole `run()` (roles started, samples staged, coded, measured, result written)
  coded/s    codings per wall second
  enc, dec   seconds per coding inside the role (the rows' encode_s, decode_s)
  CPU        CPU seconds per coding: every role's (`roles_cpu_s`: describe, encode, decode, estimate, each loading
             the weights) and this process's (staging, measuring, writing), divided by the codings; on an idle
             machine with N <= cores workers, coded/s approaches N / CPU for large runs

Without `--root` the samples are generated 375x1242 stereo pairs (smooth noise, the right view shifted) in a
temporary folder, cut to 128x256 by the same preprocessing. Neural DSC's breakdown (`--prior-images` images, one
thread, in this process): the VQ-VAE's analysis and synthesis, and the prior's range encoding and its
autoregressive decoding (one Transformer step per latent) of each rate point."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROTOCOL = "stereo/kitti-ndic"


def learned_methods() -> list[str]:
    from benchmark.contract.codec import LearnedCodec
    from benchmark.contract.registry import METHODS, get_protocol

    out = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        if not issubclass(cls, LearnedCodec):
            continue
        try:
            cls(protocol=get_protocol(PROTOCOL))
        except Exception:  # noqa: BLE001 - a method that does not code this protocol's images
            continue
        out.append(name)
    return out


def generated_root(folder: Path, pairs: int) -> Path:
    """`pairs` stereo pairs of KITTI's size under folder/test/{left,right} (PNG)."""
    import numpy as np
    import torch
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for side in ("left", "right"):
        (folder / "test" / side).mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        base = torch.nn.functional.interpolate(torch.rand(1, 3, 24, 80, generator=g), size=(375, 1262), mode="bicubic",
                                               align_corners=False)[0].clamp(0, 1)
        for side, view in (("left", base[..., 20:]), ("right", base[..., :-20])):
            arr = (view.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(arr).save(folder / "test" / side / f"{i:06d}_10.png")
    return folder


def untrained_weights(method: str, folder: Path) -> tuple[Path, int]:
    from benchmark.contract.registry import METHODS, get_protocol

    codec = METHODS.get(method)(protocol=get_protocol(PROTOCOL))
    codec.save_weights(folder / method)
    return folder / method, len(codec.rate_points())


def one_run(method: str, root: Path, weights: Path, limit: int, workers: int, out: Path, level: str) -> dict[str, Any]:
    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec

    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    _, result = run(RunSpec(method=method, dataset="stereo", root=root, protocol=PROTOCOL, limit=limit, out=out,
                            weights=weights, isolation=level, eval_workers=workers, progress=False))
    wall, parent_cpu = time.perf_counter() - t0, time.process_time() - c0
    import csv

    with open(out / Path(*PROTOCOL.split("/")) / f"{method}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    enc = [float(r["encode_s"]) for r in rows if r["encode_s"] not in ("", "None")]
    dec = [float(r["decode_s"]) for r in rows if r["decode_s"] not in ("", "None")]
    return {"wall_s": wall, "codings": len(rows), "coded_per_s": len(rows) / wall, "load_1min": load,
            "enc_s": statistics.median(enc) if enc else None, "dec_s": statistics.median(dec) if dec else None,
            "roles_cpu_s": result.get("roles_cpu_s"), "parent_cpu_s": parent_cpu,
            "cpu_s_per_coding": (sum((result.get("roles_cpu_s") or {}).values()) + parent_cpu) / len(rows)}


def neural_dsc_breakdown(root: Path, weights: Path, images: int) -> dict[str, Any]:
    """Seconds per image of each part of Neural DSC's coding, per rate point, one thread, in this process."""
    import torch

    import methods.neural_dsc.codec as ndsc
    from benchmark.contract.registry import get_dataset, get_method, get_protocol

    torch.set_num_threads(1)
    protocol = get_protocol(PROTOCOL)
    codec = get_method("neural_dsc")(protocol=protocol)
    codec.load_weights(weights)
    test = get_dataset("stereo").factory(root, protocol, "test", **protocol.options)
    spent: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    real = ndsc.encode_indices, ndsc.decode_indices
    ndsc.encode_indices, ndsc.decode_indices = timed("prior_encode", real[0]), timed("prior_decode", real[1])
    out = {}
    try:
        for p in codec.rate_points():
            spent.clear()
            vq = codec.models[p][0]
            vq_real = vq.encode_indices, vq.decode_indices
            vq.encode_indices, vq.decode_indices = timed("vq_analysis", vq_real[0]), timed("vq_synthesis", vq_real[1])
            try:
                for i in range(images):
                    s = test[i]
                    data = codec.compress(s.x, side=s.side, point=p)
                    codec.decompress(data, side=s.side)
            finally:
                vq.encode_indices, vq.decode_indices = vq_real
            out[p] = {k: round(v / images, 4) for k, v in sorted(spent.items())}
            out[p]["latents"] = int(-(-s.x.shape[-2] // codec.down) * -(-s.x.shape[-1] // codec.down))
    finally:
        ndsc.encode_indices, ndsc.decode_indices = real
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    med = lambda k: statistics.median(r[k] for r in runs if r[k] is not None) if any(r[k] is not None for r in runs) else None  # noqa: E731
    return {"coded_per_s": med("coded_per_s"), "wall_s": med("wall_s"), "enc_s": med("enc_s"), "dec_s": med("dec_s"),
            "cpu_s_per_coding": med("cpu_s_per_coding"),
            "codings": runs[0]["codings"], "load_1min": [round(r["load_1min"], 2) for r in runs],
            "each_coded_per_s": [round(r["coded_per_s"], 3) for r in runs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, help="a stereo folder of KITTI pairs (test/left, test/right); default: generated")
    ap.add_argument("--methods", help="comma-separated; default: every learned method that codes stereo/kitti-ndic")
    ap.add_argument("--limit", type=int, default=4, help="test samples per run (both directions: 2 per pair)")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prior-images", type=int, default=2, help="images of Neural DSC's breakdown (0: none)")
    ap.add_argument("--isolation", default="sandbox", choices=["sandbox", "process"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    methods = args.methods.split(",") if args.methods else learned_methods()
    workers = [int(w) for w in args.workers.split(",")]
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                              "limit": args.limit, "repeats": args.repeats, "isolation": args.isolation, "methods": {}}
    with tempfile.TemporaryDirectory(prefix="eval-throughput-") as tmp:
        tmp = Path(tmp)
        root = args.root or generated_root(tmp / "data", -(-args.limit // 2))
        report["data"] = "KITTI pairs (--root)" if args.root else "generated 375x1242 pairs"
        for m in methods:
            weights, points = untrained_weights(m, tmp / "weights")
            entry: dict[str, Any] = {"rate_points": points}
            for r in range(args.repeats):  # rounds: each worker count once per round (order turned), so a load change hits both
                for w in (workers if r % 2 == 0 else workers[::-1]):
                    # one --out per method: its runs share the sandbox's zygote, as the methods of one `bench run` do
                    res = one_run(m, root, weights, args.limit, w, tmp / "out" / m, args.isolation)
                    entry.setdefault(f"w{w}", []).append(res)
                    print(f"{m:20s} workers={w} round {r}: {res['codings']} codings in {res['wall_s']:.1f} s "
                          f"= {res['coded_per_s']:.3f}/s (enc {res['enc_s']:.3f} s, dec {res['dec_s']:.3f} s; "
                          f"CPU {res['cpu_s_per_coding']:.3f} s/coding; load {res['load_1min']:.1f})", flush=True)
            for w in workers:
                entry[f"w{w}"] = summary(entry[f"w{w}"])
            if m == "neural_dsc" and args.prior_images:
                entry["breakdown"] = neural_dsc_breakdown(root, weights, args.prior_images)
                print(f"neural_dsc breakdown (s per image, 1 thread): {json.dumps(entry['breakdown'])}", flush=True)
            report["methods"][m] = entry
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
