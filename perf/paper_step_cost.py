"""CPU cost of one paper-budget training step of the suite's hyperprior model (the Ballé family's size).

Measures process CPU seconds (not wall time, so other load on the machine matters less) per optimisation
step of CompressAI's bmshj2018-hyperprior (N=128, M=192) with the suite's RD loss, on one torch thread, at
the paper budget's batch (16 x 256x256 crops). The README's "running the full benchmark" section turns it
into core-hours and, with the FLOPs it counts and an assumed sustained GPU throughput, a GPU-hour estimate.

    OMP_NUM_THREADS=1 python perf/paper_step_cost.py [--steps 3] [--batch 16] [--crop 256]
"""
from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from compressai.models import ScaleHyperprior

    from benchmark.training.losses import rd_loss, split_parameters

    torch.manual_seed(0)
    model = ScaleHyperprior(128, 192)
    main_p, _ = split_parameters(model)
    opt = torch.optim.Adam(main_p, lr=1e-4)
    x = torch.rand(args.batch, 3, args.crop, args.crop)
    costs = []
    for i in range(args.steps + 1):
        t0 = time.process_time()
        loss = rd_loss(model(x), x, 0.0130)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up allocators
            costs.append(time.process_time() - t0)
    print(f"bmshj2018-hyperprior N=128 M=192, batch {args.batch} x {args.crop}^2, 1 thread: "
          f"{min(costs):.2f} CPU s/step (min of {len(costs)}), median {sorted(costs)[len(costs) // 2]:.2f}")
    print(f"forward+backward FLOPs per step at batch {args.batch}: {step_flops(model, x):.3e}")


def step_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward + backward pass (torch's FlopCounterMode: convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    from benchmark.training.losses import rd_loss

    with FlopCounterMode(display=False) as counter:
        rd_loss(model(x), x, 0.0130)["loss"].backward()
    return float(counter.get_total_flops())


if __name__ == "__main__":
    main()
