"""Decoding time of dsi_disparity (one pass, and passes=2) against balle2018 at the same widths, one torch thread
(run by hand, not a test).

The codecs are built with the same widths, λ and seed, so their encoders, entropy models and synthesis g_s hold
the same (untrained) weights and code the same bytes: the difference in decoding time is exactly the stereo
refinement (cost volume, warp, fusion; with passes=2 also the full-resolution re-matching and the second fusion).
Times are the codecs' ``decompress`` (container parsing, rANS decoding, networks, cropping) on 128x256 images,
measured in interleaved rounds (balle2018, dsi_disparity, dsi_disparity.2pass, per image) so that load from other
processes falls on all alike; the median over rounds and images is reported, and each codec's ratio to balle2018.
Beside it, ``networks_only``: the decoders' networks alone (h_s, g_s; plus the refinement), without the container
and the rANS decoder (CompressAI's entropy decoding is about half of balle2018's decoding time at these widths).

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


# the codecs timed: name -> (registered method, extra options); "dsi_disparity.2pass" is passes=2
CODECS: dict[str, tuple[str, dict]] = {"balle2018": ("balle2018", {}), "dsi_disparity": ("dsi_disparity", {}),
                                       "dsi_disparity.2pass": ("dsi_disparity", {"passes": 2})}


def _ratios(med: dict[str, float], digits: int = 3) -> dict[str, float]:
    """Each codec's median over balle2018's."""
    return {k: round(v / med["balle2018"], digits) for k, v in med.items() if k != "balle2018"}


class Timer:
    """Per name, the wall time and this thread's CPU time of timed calls. With one torch thread the networks run in
    the calling thread, so the CPU time leaves out the time other processes hold the cores: on a loaded shared
    machine it is the steadier measure (the wall-time ratios move by several per cent between runs)."""

    def __init__(self, names) -> None:
        self.wall: dict[str, list[float]] = {k: [] for k in names}
        self.cpu: dict[str, list[float]] = {k: [] for k in names}

    def __call__(self, name: str, fn, keep: bool = True):
        t0, c0 = time.perf_counter(), time.thread_time()
        out = fn()
        if keep:
            self.cpu[name].append(time.thread_time() - c0)
            self.wall[name].append(time.perf_counter() - t0)
        return out

    def summary(self, unit: str, scale: float, digits: int = 2) -> dict:
        wall = {k: statistics.median(v) * scale for k, v in self.wall.items()}
        cpu = {k: statistics.median(v) * scale for k, v in self.cpu.items()}
        return {f"{unit}_wall": {k: round(v, digits) for k, v in wall.items()}, "ratio_wall": _ratios(wall),
                f"{unit}_cpu": {k: round(v, digits) for k, v in cpu.items()}, "ratio_cpu": _ratios(cpu)}


def _codecs(N: int, M: int, lmbda: float, names: list[str]) -> dict:
    """The codecs, with (untrained) models built; a name ``dsi_disparity.2pass:R=r,W=w`` is passes=2 with the
    second pass's radius r and fusion width w in place of the codec's constants (the cost of cheaper variants)."""
    from benchmark.contract.registry import get_method, get_protocol

    proto = get_protocol("stereo/kitti-ndic")
    out = {}
    for k in names:
        base, _, spec = k.partition(":")
        codec = get_method(CODECS[base][0])(protocol=proto, N=N, M=M, lambdas=[lmbda], **CODECS[base][1])
        over = {"refine_radius" if a == "R" else "fusion2_width": int(v)
                for a, v in (kv.split("=") for kv in spec.split(",") if kv)}
        codec._instantiate({**codec.resolve_config("smoke")[0], "N": N, "M": M, "lambdas": [lmbda], **over})
        for model in codec.models:
            model.eval()
            codec._update(model, quantiles=True)
        out[k] = codec
    return out


def measure(N: int, M: int, lmbda: float, images, rounds: int, names: list[str]) -> dict:
    codecs = _codecs(N, M, lmbda, names)
    point = codecs["balle2018"].rate_points()[0]
    coded = []
    for x, side in images:
        data = {k: c.compress(x, point=point) for k, c in codecs.items()}
        coded.append((data, side))
        for k, c in codecs.items():  # warm-up (allocations, the coder's tables)
            c.decompress(data[k], side=None if k == "balle2018" else side)
    timer = Timer(codecs)
    for _ in range(rounds):
        for data, side in coded:
            for k, c in codecs.items():
                timer(k, lambda: c.decompress(data[k], side=None if k == "balle2018" else side))
    decode = timer.summary("ms_per_image", 1000)
    nets = _networks_only(codecs, [x for x, _ in images], [s for _, s in images], rounds)
    same_bytes = all(_streams(d[k], CODECS[k.partition(":")[0]][0]) == _streams(d["balle2018"], "balle2018")
                     for d, _ in coded for k in d)
    return {"N": N, "M": M, "lambda": lmbda, "images": len(coded), "rounds": rounds, "same_bytes": same_bytes,
            "decode": decode, "added_percent_cpu": {k: round(100 * (r - 1), 1) for k, r in decode["ratio_cpu"].items()},
            "bytes_per_image": round(statistics.mean(len(d["balle2018"]) for d, _ in coded), 1),
            "networks_only": nets}


@torch.no_grad()
def _networks_only(codecs: dict, xs, sides, rounds: int) -> dict:
    """The decoders' networks without the container and the rANS decoder: h_s and g_s (balle2018) against h_s, g_s
    and the stereo refinement (dsi_disparity), on the quantised latents of the same images."""
    models = {k: c.models[0] for k, c in codecs.items()}
    timer = Timer(models)
    balle = models["balle2018"]

    def decoder(k: str, z_hat: torch.Tensor, y_hat: torch.Tensor, side: torch.Tensor):
        m = models[k]
        m.h_s(z_hat)
        x0 = m.g_s(y_hat)
        return x0 if k == "balle2018" else m.refiner(x0, side[None])

    for _ in range(rounds):
        for x, side in zip(xs, sides):
            y_hat = torch.round(balle.g_a(x[None]))
            z_hat = torch.round(balle.h_a(torch.abs(y_hat)))
            for k in models:
                timer(k, lambda: decoder(k, z_hat, y_hat, side))
    return timer.summary("ms_per_image", 1000)


def train_step_cost(N: int, M: int, lmbda: float, rounds: int, names: list[str], batch: int = 8,
                    crop: int = 128) -> dict:
    """Seconds per training step (forward, RD loss, backward, Adam) of the models at the learning curves'
    batch and crop, interleaved rounds on random crops (the step's cost does not depend on the content)."""
    from benchmark.contract.data import Batch
    from benchmark.training.losses import rd_loss_fn

    g = torch.Generator().manual_seed(0)
    x, side = torch.rand(batch, 3, crop, crop, generator=g), torch.rand(batch, 3, crop, crop, generator=g)
    b = Batch(x, side, torch.zeros(batch, dtype=torch.long), [""] * batch)
    steps = {}
    for name, codec in _codecs(N, M, lmbda, names).items():
        model = codec.models[0].train()
        loss_fn = rd_loss_fn(lmbda, "mse", forward=codec.train_forward)
        steps[name] = (model, loss_fn, torch.optim.Adam(model.parameters(), 1e-4))
    timer = Timer(steps)

    def step(model, loss_fn, opt) -> None:
        opt.zero_grad()
        loss_fn(model, b)["loss"].backward()
        opt.step()

    for r in range(rounds + 1):
        for name, parts in steps.items():
            timer(name, lambda: step(*parts), keep=r > 0)  # the first round warms up
    return {"batch": batch, "crop": crop, **timer.summary("s_per_step", 1, 3)}


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
    ap.add_argument("--only-2pass", action="store_true", help="time balle2018 and dsi_disparity passes=2 only")
    ap.add_argument("--pass2-variants", default="", help="cheaper second passes to time too, ';'-separated, each "
                    "'R=r,W=w' (the radius of the re-matching, the second fusion's width), e.g. 'R=4;W=16;R=1,W=16'")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = ["balle2018", *(k for k in CODECS if k != "balle2018" and (k.endswith("2pass") or not args.only_2pass))]
    names += [f"dsi_disparity.2pass:{v}" for v in args.pass2_variants.split(";") if v]
    res = measure(args.N, args.M, args.lmbda, _images(args.root, args.images), args.rounds, names)
    if args.train_steps:
        res["training_step"] = train_step_cost(args.N, args.M, args.lmbda, args.train_steps, names)
    res["threads"] = torch.get_num_threads()
    res["data"] = "stereo/kitti-ndic test pairs" if args.root else "synthetic 128x256 texture pairs"
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
