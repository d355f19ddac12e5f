"""FLOPs of one paper-budget training sample per learned method, stage and protocol: the cost model of
`bench sweep run --grid` (benchmark/cluster/cost.py reads the table this script writes).

For each method and protocol it builds the method's own paper-budget networks (the widths of every rate point of
the paper budget: CompressAI's zoo widths change with λ) and counts, with torch's FlopCounterMode on CPU, the
FLOPs of one forward + backward pass of one training sample at the size the paper budget trains on (its crop,
else the protocol's sample size: 128x256 on the KITTI, Cityscapes and CelebA-HQ protocols), averaged over the
rate points. Convolutions and matmuls are counted (GDN, entropy models and other element-wise work are not, as in
perf/paper_step_cost.py). A step costs this times the stage's batch; the grid divides by an assumed sustained GPU
throughput unless a measured rate (steps/s) exists.

    python perf/step_flops.py [--out benchmark/cluster/step_flops.json] [--methods balle2018,...]
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.contract.data import Batch
from benchmark.contract.registry import get_method, get_protocol

# protocol -> (H, W) of its training samples (tests/test_paper_budgets.py reads them from the dataset readers)
PROTOCOL_SIZES = {"kitti-stereo/ndic": (128, 256), "cityscapes/ndic": (128, 256), "celeba-hq/neural-dsc": (128, 256),
                  "stereo/kitti-ndic": (128, 256)}
RD_METHODS = ("balle2017", "balle2018", "mbt2018_mean", "joint_balle2018", "dsi_balle2018", "ndic_balle2017",
              "ndic_balle2018", "ndic_cam")
DSC_METHODS = ("neural_dsc", "neural_dsc_joint", "neural_dsc_separate")


def _flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _batch(h: int, w: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g), torch.zeros(1, dtype=torch.long),
                 ["probe"])


def rd_flops(method: str, protocol: str) -> dict[str, float]:
    """The Ballé family and NDIC: one model per λ (each its own widths), the codec's own training loss."""
    codec = get_method(method)(protocol=get_protocol(protocol))
    cfg, tc = codec.resolve_config("paper")
    codec._instantiate(cfg)
    h, w = (tc.crop, tc.crop) if tc.crop else PROTOCOL_SIZES[protocol]
    batch, per_point, by_size = _batch(h, w), [], {}
    for lmbda, model in zip(codec.lambdas, codec.models):
        size = sum(p.numel() for p in model.parameters())  # λ of the same widths cost the same: counted once
        if size not in by_size:
            loss_fn = codec.make_loss(lmbda)
            model.train()
            by_size[size] = _flops(lambda: loss_fn(model, batch)["loss"].backward())
        per_point.append(by_size[size])
    return {"model": sum(per_point) / len(per_point)}


def dsc_flops(method: str, protocol: str) -> dict[str, float]:
    """Neural DSC: the VQ-VAE stage and the prior stage of every codebook size of the paper budget."""
    from methods.neural_dsc.codec import _PriorHolder, prior_loss_fn, vq_loss_fn

    codec = get_method(method)(protocol=get_protocol(protocol))
    arch, bits, _, _ = codec.resolve("paper", 1)
    codec._instantiate(arch, bits, 0, "paper")
    batch = _batch(*PROTOCOL_SIZES[protocol])
    vq_f, pr_f = [], []
    for vq, prior in codec.models.values():
        vq.train()
        vq_f.append(_flops(lambda: vq_loss_fn(codec.mode, arch.down)(vq, batch)["loss"].backward()))
        prior.train()
        pr_f.append(_flops(lambda: prior_loss_fn(vq, codec.mode, arch.down)(_PriorHolder(prior), batch)["loss"].backward()))
    return {"vq": sum(vq_f) / len(vq_f), "prior": sum(pr_f) / len(pr_f)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmark/cluster/step_flops.json"))
    ap.add_argument("--methods", default=",".join(RD_METHODS + DSC_METHODS))
    ap.add_argument("--protocols", default="kitti-stereo/ndic,cityscapes/ndic,celeba-hq/neural-dsc")
    args = ap.parse_args()
    torch.manual_seed(0)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for method in args.methods.split(","):
        for protocol in args.protocols.split(","):
            probe = dsc_flops if method in DSC_METHODS else rd_flops
            table.setdefault(method, {})[protocol] = probe(method, protocol)
            print(method, protocol, {k: f"{v:.3e}" for k, v in table[method][protocol].items()}, flush=True)
    doc = {"what": "FLOPs (torch FlopCounterMode: convolutions and matmuls) of one forward + backward pass of one "
                   "training sample of the paper budget, per method, protocol and training stage; mean over the "
                   "budget's rate points. A step costs this x the stage's batch size.",
           "command": "python perf/step_flops.py", "torch": torch.__version__, "machine": platform.machine(),
           "measured": datetime.date.today().isoformat(), "flops_per_sample": table}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
