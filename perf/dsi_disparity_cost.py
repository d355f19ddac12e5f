"""Decoding time of dsi_disparity against balle2018 at the same widths, one torch thread (run by hand, not a test).

Both codecs are built with the same widths, λ and seed, so their encoders, entropy models and synthesis g_s hold
the same (untrained) weights and code the same bytes: the difference in decoding time is exactly the stereo
refinement (cost volume, warp, fusion). Times are the codecs' ``decompress`` (container parsing, rANS decoding,
networks, cropping) on 128x256 images, measured in interleaved rounds (balle2018, then dsi_disparity, per image)
so that load from other processes falls on both alike; the median over rounds and images is reported. Beside it,
``networks_only``: the decoders' networks alone (h_s, g_s; plus the refinement), without the container and the rANS
decoder (CompressAI's entropy decoding is about half of balle2018's decoding time at these widths).

    OMP_NUM_THREADS=1 python perf/dsi_disparity_cost.py [--root KITTI_PAIRS] [--rounds 15] [--train-steps 10]

Without --root the images are synthetic (a multi-scale texture and a copy shifted by 6 pixels)."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _images(root: str | None, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x, side) pairs at 128x256: the first n test pairs of the stereo/kitti-ndic protocol, or synthetic ones."""
    if root:
        from benchmark.contract.registry import get_dataset, get_protocol

        proto = get_protocol("stereo/kitti-ndic")
        ds = get_dataset("stereo").factory(Path(root), proto, "test")
        return [(ds[i].x, ds[i].side) for i in range(min(n, len(ds)))]
    out = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        wide = sum(F.interpolate(torch.rand(1, 3, 128 // s, 262 // s, generator=g), size=(128, 262), mode="bilinear",
                                 align_corners=False) for s in (1, 2, 4, 8))[0] / 4
        out.append((wide[..., 6:262].contiguous(), wide[..., :256].contiguous()))
    return out


def measure(N: int, M: int, lmbda: float, images, rounds: int) -> dict:
    from benchmark.contract.registry import get_method, get_protocol

    proto = get_protocol("stereo/kitti-ndic")
    opts = {"N": N, "M": M, "lambdas": [lmbda]}
    balle, dsi = get_method("balle2018")(protocol=proto, **opts), get_method("dsi_disparity")(protocol=proto, **opts)
    point = balle.rate_points()[0]
    coded = []
    for x, side in images:
        a, b = balle.compress(x, point=point), dsi.compress(x, point=point)
        coded.append((a, b, side))
        balle.decompress(a), dsi.decompress(b, side=side)  # warm-up (allocations, the coder's tables)
    times: dict[str, list[float]] = {"balle2018": [], "dsi_disparity": []}
    for _ in range(rounds):
        for a, b, side in coded:
            t0 = time.perf_counter()
            balle.decompress(a)
            t1 = time.perf_counter()
            dsi.decompress(b, side=side)
            t2 = time.perf_counter()
            times["balle2018"].append(t1 - t0)
            times["dsi_disparity"].append(t2 - t1)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    nets = _networks_only(balle.models[0], dsi.models[0], [x for x, _ in images], [s for _, s in images], rounds)
    same_bytes = all(_streams(a, "balle2018") == _streams(b, "dsi_disparity") for a, b, _ in coded)
    return {"N": N, "M": M, "lambda": lmbda, "images": len(coded), "rounds": rounds, "same_bytes": same_bytes,
            "decode_ms_per_image": {k: round(v, 2) for k, v in med.items()},
            "ratio": round(med["dsi_disparity"] / med["balle2018"], 3),
            "added_percent": round(100 * (med["dsi_disparity"] / med["balle2018"] - 1), 1),
            "bytes_per_image": round(statistics.mean(len(a) for a, _, _ in coded), 1),
            "networks_only": nets}


@torch.no_grad()
def _networks_only(balle, dsi, xs, sides, rounds: int) -> dict:
    """The decoders' networks without the container and the rANS decoder: h_s and g_s (balle2018) against h_s, g_s
    and the stereo refinement (dsi_disparity), on the quantised latents of the same images."""
    times: dict[str, list[float]] = {"balle2018": [], "dsi_disparity": []}
    for _ in range(rounds):
        for x, side in zip(xs, sides):
            y_hat = torch.round(balle.g_a(x[None]))
            z_hat = torch.round(balle.h_a(torch.abs(y_hat)))
            t0 = time.perf_counter()
            balle.h_s(z_hat), balle.g_s(y_hat)
            t1 = time.perf_counter()
            dsi.h_s(z_hat), dsi.refiner(dsi.g_s(y_hat), side[None])
            t2 = time.perf_counter()
            times["balle2018"].append(t1 - t0)
            times["dsi_disparity"].append(t2 - t1)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {"ms_per_image": {k: round(v, 2) for k, v in med.items()},
            "ratio": round(med["dsi_disparity"] / med["balle2018"], 3)}


def train_step_cost(N: int, M: int, lmbda: float, rounds: int, batch: int = 8, crop: int = 128) -> dict:
    """Seconds per training step (forward, RD loss, backward, Adam) of the two models at the learning curves'
    batch and crop, interleaved rounds on random crops (the step's cost does not depend on the content)."""
    from benchmark.contract.data import Batch
    from benchmark.contract.registry import get_method, get_protocol
    from benchmark.training.losses import rd_loss_fn

    proto = get_protocol("stereo/kitti-ndic")
    g = torch.Generator().manual_seed(0)
    x, side = torch.rand(batch, 3, crop, crop, generator=g), torch.rand(batch, 3, crop, crop, generator=g)
    b = Batch(x, side, torch.zeros(batch, dtype=torch.long), [""] * batch)
    steps = {}
    for name in ("balle2018", "dsi_disparity"):
        codec = get_method(name)(protocol=proto, N=N, M=M, lambdas=[lmbda])
        model = codec.build_model(N, M, lmbda).train()
        loss_fn = rd_loss_fn(lmbda, "mse", forward=codec.train_forward)
        steps[name] = (model, loss_fn, torch.optim.Adam(model.parameters(), 1e-4))
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(rounds + 1):
        for name, (model, loss_fn, opt) in steps.items():
            t0 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model, b)["loss"].backward()
            opt.step()
            if r:  # the first round warms up
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"batch": batch, "crop": crop, "s_per_step": {k: round(v, 3) for k, v in med.items()},
            "ratio": round(med["dsi_disparity"] / med["balle2018"], 3)}


def _streams(data: bytes, method: str) -> list[bytes]:
    from benchmark.contract.container import Container

    return list(Container.from_bytes(data, method).streams)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", help="a stereo folder (train/ val/ test/ with left/ right/); default: synthetic images")
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--M", type=int, default=96)
    ap.add_argument("--lmbda", type=float, default=0.013)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--train-steps", type=int, default=0, help="also time this many training steps of each (batch 8, "
                    "128x128 crops: the learning curves' settings)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = measure(args.N, args.M, args.lmbda, _images(args.root, args.images), args.rounds)
    if args.train_steps:
        res["training_step"] = train_step_cost(args.N, args.M, args.lmbda, args.train_steps)
    res["threads"] = torch.get_num_threads()
    res["data"] = "stereo/kitti-ndic test pairs" if args.root else "synthetic 128x256 texture pairs"
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
