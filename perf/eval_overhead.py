"""How much time the suite adds to evaluating balle2018, and its peak memory on 375x1242 (KITTI-size) images.

Run by hand (not a test):

    OMP_NUM_THREADS=1 python perf/eval_overhead.py                       # paper widths, random weights
    OMP_NUM_THREADS=1 python perf/eval_overhead.py --weights results/middlebury-sample/stereo/weights/balle2018

Three ways of coding the same images with the same models, each timed over `--repeat` passes (best pass kept):
  direct   pad to 64, CompressAI's model.compress / model.decompress, crop back (what a user would write)
  codec    the suite's Balle2018.compress / decompress (container, checks, padding, cropping)
  suite    the runner's evaluate(): codec plus the likelihood estimate (bpp_estimated), PSNR and MS-SSIM
The ratio codec/direct is the suite's coding overhead (goal <= 1.03); suite/direct (goal <= 1.15) adds what the
suite measures besides the bytes: PSNR, MS-SSIM and the likelihood estimate, which evaluate() takes from the
encoder's own pass (Codec.compress_with_estimate) instead of running the analysis transform again. The paths are
timed in interleaved rounds (order rotated each round); each ratio is taken within a round and the median over
rounds is printed with every round's value, so a change in the machine's load shows as spread, not as a bias. Peak memory is measured in a fresh subprocess (ru_maxrss) that evaluates 375x1242 images.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_codec(weights: str | None, quality_lambda: float, N: int | None, M: int | None):
    from benchmark.contract.registry import get_method, get_protocol

    cls = get_method("balle2018")
    proto = get_protocol("middlebury-sample/stereo")
    if weights:
        c = cls(protocol=proto)
        c.load_weights(Path(weights))
    else:  # random weights of the requested widths (speed hardly depends on training)
        c = cls(protocol=proto, lambdas=[quality_lambda], N=N, M=M)
        cfg, _ = c.resolve_config("paper")
        c._instantiate({**cfg, "N": N, "M": M, "lambdas": [quality_lambda]})
        for m in c.models:
            m.eval()
            c._update(m, quantiles=True)
    return c


def test_images(n: int, h: int, w: int) -> list:
    """Real content: crops of the embedded Middlebury pair, resized to h x w."""
    from benchmark.contract.registry import get_dataset, get_protocol

    info = get_dataset("middlebury_sample")
    proto = get_protocol("middlebury-sample/stereo")
    ds = info.factory(None, proto, "test")
    out = []
    for i in range(n):
        s = ds[i % len(ds)]
        x = F.interpolate(s.x[None], size=(h, w), mode="bilinear", align_corners=False)[0].clamp(0, 1)
        side = F.interpolate(s.side[None], size=(h, w), mode="bilinear", align_corners=False)[0].clamp(0, 1)
        from benchmark.contract.data import Sample

        out.append(Sample(x=x, side=side, name=f"img{i}"))
    return out


def time_direct(codec, samples, point) -> float:
    from benchmark.contract.coding import pad_to

    model = codec.models[codec.point_index(point)]
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in samples:
            h, w = s.x.shape[-2:]
            xp = pad_to(s.x[None], 64)
            out = model.compress(xp)
            rec = model.decompress(out["strings"], out["shape"])["x_hat"][..., :h, :w].clamp(0, 1)
            assert rec.shape[-2:] == (h, w)
    return time.perf_counter() - t0


def time_codec(codec, samples, point) -> float:
    t0 = time.perf_counter()
    for s in samples:
        codec.decompress(codec.compress(s.x, point=point))
    return time.perf_counter() - t0


def time_suite(codec, samples, point) -> tuple[float, list]:
    from benchmark.contract.registry import get_protocol
    from benchmark.evaluation.inprocess import evaluate

    proto = get_protocol("middlebury-sample/stereo")
    codec_points = codec.rate_points
    codec.rate_points = lambda: [point]  # one point, like the other two
    try:
        t0 = time.perf_counter()
        rows = evaluate(codec, samples, proto, progress=False)
        return time.perf_counter() - t0, rows
    finally:
        codec.rate_points = codec_points


def memory_child(args) -> None:
    """Runs in a fresh process: evaluate 375x1242 images through the suite; print RSS figures (MiB)."""
    torch.set_num_threads(args.threads)
    codec = make_codec(args.weights, args.lmbda, args.N, args.M)
    samples = test_images(args.images, 375, 1242)
    point = codec.rate_points()[-1]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t, rows = time_suite(codec, samples, point)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rss_before_mib": round(base, 1), "peak_rss_mib": round(peak, 1),
                      "added_by_evaluation_mib": round(peak - base, 1), "seconds": round(t, 2),
                      "images": len(samples), "bpp": round(sum(r["bpp"] for r in rows) / len(rows), 4)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="a balle2018 weights directory (default: random weights of --N/--M)")
    ap.add_argument("--N", type=int, default=128)
    ap.add_argument("--M", type=int, default=192)
    ap.add_argument("--lmbda", type=float, default=0.0067)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--height", type=int, default=192)
    ap.add_argument("--width", type=int, default=368)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true", help="skip the 375x1242 peak-memory subprocess")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    torch.set_num_threads(args.threads)
    codec = make_codec(args.weights, args.lmbda, args.N, args.M)
    samples = test_images(args.images, args.height, args.width)
    point = codec.rate_points()[-1]
    print(f"balle2018 {('weights ' + args.weights) if args.weights else f'random weights N={args.N} M={args.M}'}, "
          f"point {point}, {len(samples)} images {args.height}x{args.width}, torch threads {args.threads}")
    time_codec(codec, samples[:1], point)  # warm-up (lazy imports, allocator)
    time_suite(codec, samples[:1], point)
    n = len(samples)
    runs = {"direct": [], "codec": [], "suite": [], "estimate": []}
    fns = {"direct": lambda: time_direct(codec, samples, point), "codec": lambda: time_codec(codec, samples, point),
           "suite": lambda: time_suite(codec, samples, point)[0], "estimate": lambda: _time_estimates(codec, samples, point)}
    for r in range(args.repeat):  # interleaved, order rotated each round: a load change hits every path alike
        order = list(fns)[r % len(fns):] + list(fns)[: r % len(fns)]
        for k in order:
            runs[k].append(fns[k]())
    per_round_codec = [c / d for c, d in zip(runs["codec"], runs["direct"])]
    per_round_suite = [s_ / d for s_, d in zip(runs["suite"], runs["direct"])]
    t_direct, t_codec, t_suite, est = (statistics.median(runs[k]) for k in ("direct", "codec", "suite", "estimate"))
    r_codec, r_suite = statistics.median(per_round_codec), statistics.median(per_round_suite)
    print(f"direct CompressAI compress+decompress : {t_direct / n * 1000:8.1f} ms/image (median of {args.repeat} rounds)")
    print(f"suite codec compress+decompress       : {t_codec / n * 1000:8.1f} ms/image   ratio {r_codec:.3f} "
          f"(goal <= 1.03; median of rounds {', '.join(f'{v:.3f}' for v in per_round_codec)})")
    print(f"suite evaluate() (codec+estimate+metrics): {t_suite / n * 1000:5.1f} ms/image   ratio {r_suite:.3f} "
          f"(goal <= 1.15; median of rounds {', '.join(f'{v:.3f}' for v in per_round_suite)})")
    print(f"  a separate estimate_bits pass (what evaluate() no longer runs for this codec): {est / n * 1000:.1f} ms/image")
    if args.no_memory:
        return
    cmd = [sys.executable, __file__, "--memory-child", "--N", str(args.N), "--M", str(args.M), "--lmbda", str(args.lmbda),
           "--images", "2", "--threads", str(args.threads)] + (["--weights", args.weights] if args.weights else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "BENCH_PROGRESS": "0"})
    if res.returncode != 0:
        print(res.stderr[-2000:])
        raise SystemExit(1)
    mem = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"375x1242 images through evaluate(): peak RSS {mem['peak_rss_mib']} MiB (model loaded: "
          f"{mem['rss_before_mib']} MiB, added by evaluation {mem['added_by_evaluation_mib']} MiB), "
          f"{mem['seconds'] / mem['images']:.2f} s/image, {mem['bpp']} bpp")


def _time_estimates(codec, samples, point) -> float:
    t0 = time.perf_counter()
    for s in samples:
        codec.estimate_bits(s.x, point=point)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
