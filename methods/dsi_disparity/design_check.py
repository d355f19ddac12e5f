"""A design check of the stereo refinement alone, run by hand (not a test, not used by the codec):

    OMP_NUM_THREADS=1 python -m methods.dsi_disparity.design_check --root KITTI_PAIRS --steps 400

x̂₀ is a stand-in for a low-rate reconstruction: the KITTI view blurred (a 5x5 binomial filter applied twice).
The refiner (``StereoRefiner``, without the codec) is trained for `--steps` Adam steps (lr 1e-3, batch 8, random
128x128 crops of the stereo/kitti-ndic training pairs, both directions, seed 0) to map (x̂₀, side view) to x;
the PSNR of x̂₀ and of the refined image over the test pairs (128x256, both directions) is printed per variant:

- ``window=K``: the codec's refiner with the correlation averaged over KxK cells of the 1/4 grid;
- ``oracle``: the disparity matched on the true x instead of x̂₀ (what better matching could give);
- ``nowarp``: the side view unaligned (the codec's ``warp=false``); ``grey``: a flat grey side view (no side
  information: what the fusion network gains by sharpening x̂₀ alone);
- ``zero``: trained with warping, evaluated with zero disparity (the codec's ``disparity=zero``);
- ``2pass``: the codec's ``passes=2`` (a second pass re-matches the disparity at full resolution on the refined
  x̂₁, ±REFINE_RADIUS = 2 px around the first pass's, and fuses again); ``2pass-oracle``: its second pass matched on the true x;
  ``2pass:R=r:W=w`` (either part optional): the second pass with the radius r and the second fusion's width w
  (cheaper variants).

Besides the PSNRs, for the warping variants: the PSNR of the side view warped by the first pass's disparity
(``psnr_side_warped``) and, for the two-pass variants, by the second pass's (``psnr_side_warped2``)."""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .model import REFINE_RADIUS, StereoRefiner, warp_horizontal

VARIANTS = ("window=3", "window=7", "oracle", "nowarp", "grey", "zero", "2pass", "2pass-oracle")


def blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    w = (k[:, None] * k[None, :] / 256.0).expand(3, 1, 5, 5)
    for _ in range(2):
        x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), w, groups=3)
    return x


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10.0 * math.log10(F.mse_loss(a.clamp(0, 1), b).item())


def _stack(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from benchmark.contract.registry import get_dataset, get_protocol

    ds = get_dataset("stereo").factory(root, get_protocol("stereo/kitti-ndic"), split)
    return torch.stack([ds[i].x for i in range(len(ds))]), torch.stack([ds[i].side for i in range(len(ds))])


def run(variant: str, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
        steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    window = int(variant.split("=")[1]) if variant.startswith("window=") else 7
    two = variant.startswith("2pass")
    pass2 = {"R": REFINE_RADIUS, "W": 32, **{a: int(v) for a, v in (kv.split("=") for kv in variant.split(":")[1:])}}
    refiner = StereoRefiner(32, 32, 32, warp=variant not in ("nowarp", "grey"), window=window, passes=2 if two else 1,
                            refine_radius=pass2["R"], fusion2_width=pass2["W"])
    grey = variant == "grey"
    fields: dict[str, torch.Tensor] = {}

    def forward(x0: torch.Tensor, side: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if grey:
            side = torch.full_like(side, 0.5)
        if variant == "oracle":
            return refiner.fusion(x0, warp_horizontal(side, refiner.disparity(x, side)))
        if not refiner.warp or refiner.zero_disparity:
            return refiner(x0, side)[0]
        fields["d1"] = d1 = refiner.disparity(x0, side)
        x1 = refiner.fusion(x0, warp_horizontal(side, d1))
        if not two:
            return x1
        d2, confidence = refiner.refine(x if variant == "2pass-oracle" else x1, side, d1)
        fields["d2"] = d2
        return refiner.fusion2(x1, warp_horizontal(side, d2), confidence)

    opt = torch.optim.Adam(refiner.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    (X, S), (TX, TS) = train, test
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(X), (8,), generator=g)
        left = int(torch.randint(0, X.shape[-1] - 128 + 1, (1,), generator=g))
        top = int(torch.randint(0, X.shape[-2] - 128 + 1, (1,), generator=g))
        x, side = (t[idx, :, top:top + 128, left:left + 128] for t in (X, S))
        loss = F.mse_loss(forward(blur(x), side, x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x0 = blur(TX)
        refiner.zero_disparity = variant == "zero"
        out = forward(x0, TS, TX)
    warped = {f"psnr_side_warped{'' if k == 'd1' else '2'}": round(psnr(warp_horizontal(TS, d), TX), 2)
              for k, d in fields.items()}
    return {"psnr_x0": round(psnr(x0, TX), 2), "psnr_refined": round(psnr(out, TX), 2), **warped,
            "train_s": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="a stereo folder with train/ and test/ (left/ right/)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    train, test = _stack(Path(args.root), "train"), _stack(Path(args.root), "test")
    for v in args.variants.split(","):
        if v not in VARIANTS and not v.startswith(("window=", "2pass:")):
            raise SystemExit(f"unknown variant {v!r}; one of {', '.join(VARIANTS)} (or window=K, K odd; 2pass:R=r:W=w)")
        print(json.dumps({"variant": v, "steps": args.steps, **run(v, train, test, args.steps)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
