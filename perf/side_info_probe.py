"""What does a side-information decoder do with the side view? Two measurements, run by hand (not a test).

1. ``wrong_side``: code each test image once (the bytes of the evaluation) and decode it with (a) its own side
   view, (b) the side view of another test pair, (c) a flat grey image. If the decoder uses the side view,
   (b) and (c) lose PSNR; if they do not, the side view is ignored and cannot save bits.
2. ``disparity_coverage``: how much of the stereo correspondence a square training crop keeps. Disparities are
   estimated by block matching (SAD on grey levels, 7x7 windows, 0..max_disp) on the preprocessed pairs; a
   pixel's match is kept by a crop when it falls inside the same crop (x and side are cropped at the same place).

    OMP_NUM_THREADS=1 python perf/side_info_probe.py disparity --root DIR [--split train]
    OMP_NUM_THREADS=1 python perf/side_info_probe.py wrong-side --root DIR --weights W --method ndic_balle2018
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROTOCOL = "stereo/kitti-ndic"


def _split(root: Path, split: str):
    from benchmark.contract.registry import get_dataset, get_protocol

    import datasets.folders  # noqa: F401 - registers the protocol

    return get_dataset("stereo").factory(root, get_protocol(PROTOCOL), split)


@torch.no_grad()
def wrong_side(codec: Any, samples: Any, protocol: Any) -> dict[str, Any]:
    """Mean PSNR per rate point when decoding the same bytes with the right side view, another pair's side view
    (pair i decodes with the side view of pair i + n/2) and a flat grey side view."""
    from benchmark.evaluation.rows import measure

    n = len(samples)
    items = [samples[i] for i in range(n)]
    out: dict[str, Any] = {}
    for point in codec.rate_points():
        acc = {"own": [], "other_pair": [], "grey": []}
        for i, s in enumerate(items):
            data = codec.compress(s.x, side=None, point=point)
            other = items[(i + max(2, n // 2)) % n].side  # +2 at least: i+1 is the same pair, other direction
            for key, side in (("own", s.side), ("other_pair", other), ("grey", torch.full_like(s.side, 0.5))):
                acc[key].append(measure(s.x, codec.decompress(data, side=side), protocol)["psnr"])
        own = float(np.mean(acc["own"]))
        out[point] = {"psnr_own_side": round(own, 4),
                      **{f"psnr_{k}_side": round(float(np.mean(v)), 4) for k, v in acc.items() if k != "own"},
                      **{f"loss_{k}_db": round(own - float(np.mean(v)), 4) for k, v in acc.items() if k != "own"}}
    return out


def _disparity(left: torch.Tensor, right: torch.Tensor, max_disp: int, win: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Left-view disparity by SAD block matching on grey levels, and a confidence mask (textured, unambiguous)."""
    gl = left.mean(0, keepdim=True)[None]
    gr = right.mean(0, keepdim=True)[None]
    w = gl.shape[-1]
    costs = []
    for d in range(max_disp + 1):
        shifted = F.pad(gr, (d, 0, 0, 0), mode="replicate")[..., :w]  # right image moved right by d: R(u - d)
        costs.append(F.avg_pool2d((gl - shifted).abs(), win, stride=1, padding=win // 2))
    c = torch.cat(costs, 1)[0]  # D x H x W
    best = c.argmin(0)
    srt = c.sort(0).values
    texture = F.avg_pool2d((gl - F.avg_pool2d(gl, win, 1, win // 2)).abs(), win, 1, win // 2)[0, 0]
    confident = (srt[1] - srt[0] > 0.002) & (texture > 0.01)
    return best.numpy(), confident.numpy()


def disparity_coverage(samples: Any, crops: tuple[int, ...] = (64, 128, 256), max_disp: int = 64) -> dict[str, Any]:
    """Share of (confident) left-view pixels whose stereo match lies inside the same random square crop (the
    crop's side is clipped to the image height), averaged over every crop position; and disparity statistics."""
    kept = {c: [] for c in crops}
    disps = []
    for i in range(len(samples)):
        s = samples[i]
        if not s.name.endswith("left"):
            continue
        d, ok = _disparity(s.x, s.side, max_disp)
        h, w = d.shape
        u = np.arange(w)[None, :].repeat(h, 0)
        disps.append(d[ok])
        for c in crops:
            cw, ch = min(c, w), min(c, h)
            fr = []
            for left in range(0, w - cw + 1, 4):
                for top in range(0, h - ch + 1, 16):
                    inside = np.zeros_like(ok)
                    inside[top:top + ch, left:left + cw] = True
                    sel = inside & ok
                    if sel.any():
                        fr.append(float(((u - d)[sel] >= left).mean()))
            kept[c].append(float(np.mean(fr)))
    all_d = np.concatenate(disps)
    return {"pairs": len(disps), "max_disp_searched": max_disp,
            "disparity_px": {"median": float(np.median(all_d)), "p90": float(np.percentile(all_d, 90)),
                             "max_searched_hits": float((all_d == max_disp).mean())},
            "matches_kept_by_crop": {f"{min(c, 256)}x{min(c, 128)}" if c > 128 else f"{c}x{c}": round(float(np.mean(v)), 4)
                                     for c, v in kept.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("disparity", "wrong-side"))
    ap.add_argument("--root", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--weights")
    ap.add_argument("--method", default="ndic_balle2018")
    args = ap.parse_args()
    torch.set_num_threads(1)
    samples = _split(Path(args.root), args.split)
    if args.what == "disparity":
        print(json.dumps(disparity_coverage(samples), indent=1))
        return 0
    from benchmark.contract.registry import get_method, get_protocol

    import baselines.balle  # noqa: F401
    import methods.ndic.codec  # noqa: F401

    proto = get_protocol(PROTOCOL)
    codec = get_method(args.method)(protocol=proto)
    codec.load_weights(Path(args.weights))
    print(json.dumps(wrong_side(codec, samples, proto), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
