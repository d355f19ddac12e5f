"""Look inside a layered_wz training checkpoint: bins along x, hard-code rates and distortion, and the training
objective with relaxed (Gumbel-softmax) vs hard one-hot samples — the measurements behind the README's
"Binning does not appear" section.

    python -m methods.layered_wz.diagnose measured/gaussian/wz/train/<key>/run-<id> --config 222 --sigma2 0.1 --lam 300
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from benchmark.results.bounds import wz_distortion_db
from datasets.gaussian import draw_pairs

from .codec import parse_config
from .configs import PAPER_STEPS, TAU0, TAU1
from .model import LayeredWZ, ModelConfig


def load_checkpoint(run: Path, config: str, sigma2: float, hidden: int = 100, faithful: bool = False) -> tuple[LayeredWZ, int]:
    """The network of a training checkpoint (this suite's defaults, or the paper's with faithful=True) and its step."""
    ptr = json.loads((run / "last.json").read_text(encoding="utf-8"))
    sd = load_file(str(run / ptr["dir"] / "model.safetensors"))
    scale, residual = (1.0, False) if faithful else (1 / math.sqrt(sigma2), True)
    net = LayeredWZ(ModelConfig(parse_config(config), hidden=hidden, in_scale=scale, residual=residual))
    net.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("net.")}, strict=False)
    return net.eval(), int(sd["step"])


@torch.no_grad()
def diagnose(net: LayeredWZ, step: int, sigma2: float, lam: float, steps: int = PAPER_STEPS, n: int = 20_000) -> dict:
    tau = TAU0 * (TAU1 / TAU0) ** min(1.0, step / max(1, steps - 1))
    xg = torch.linspace(-3.5, 3.5, 141)
    codes_g = net.encode(xg)
    changes = [int((codes_g[1:, k] != codes_g[:-1, k]).sum()) for k in range(net.cfg.K)]
    xs, ys = draw_pairs(n, sigma2, (5, 0))  # seed family 5: none of the splits
    x, y = torch.from_numpy(xs).float(), torch.from_numpy(ys).float()
    out = {"step": step, "tau": tau, "code_changes": changes}
    torch.manual_seed(0)
    for name, kw in (("relaxed", {"tau": tau}), ("relaxed_tau_final", {"tau": TAU1}), ("hard_samples", {"tau": tau, "hard": True})):
        loss, parts = net.loss(x, y, prior="conditional", lam=lam, **kw)
        cum = [sum(parts["rate"][: k + 1]) for k in range(net.cfg.K)]
        out[name] = {"loss": float(loss), "rate_cum": cum, "d_db": [10 * math.log10(m) for m in parts["mse"]],
                     "gap_wz_db": [10 * math.log10(m) - wz_distortion_db(r, sigma2) for m, r in zip(parts["mse"], cum)]}
    codes = net.encode(x)
    xh = net.reconstruct(codes, y)
    lc = net.code_lengths(codes, y, "conditional").mean(0)
    mse = [float(((h - x) ** 2).mean()) for h in xh]
    cum = lc.cumsum(0).tolist()
    out["argmax_codes"] = {"loss": float(lc.sum()) + lam * sum(mse), "rate_cum": cum, "d_db": [10 * math.log10(m) for m in mse],
                           "gap_wz_db": [10 * math.log10(m) - wz_distortion_db(r, sigma2) for m, r in zip(mse, cum)]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--config", default="222")
    ap.add_argument("--sigma2", type=float, default=0.1)
    ap.add_argument("--lam", type=float, default=300.0)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--faithful", action="store_true", help="a checkpoint of --option faithful=true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    net, step = load_checkpoint(a.run, a.config, a.sigma2, a.hidden, a.faithful)
    print(json.dumps(diagnose(net, step, a.sigma2, a.lam), indent=1))


if __name__ == "__main__":
    main()
