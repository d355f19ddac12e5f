"""``dsi_disparity`` (scenario ``decoder_side_info``): balle2018's encoder and bytes, a decoder that looks where the
other view is (model.py: a cost volume on the 1/4 grid, soft-argmin disparity, the side view warped into x's view,
a small fusion network adding a residual to x̂₀ = g_s(ŷ)).

Built on baselines/balle.py's zoo codec for CompressAI's ``ScaleHyperprior`` (one model per λ, rate points
``lambda=<λ>``, padding to 64 by edge replication, the rANS strings y then z in the suite's container, the Ballé
budgets and options, the likelihood estimate from the encoder's own pass): the encoder path is balle2018's code, so
the side view cannot reach it. Options of its own:

- ``warp`` (trained with the weights): false feeds the side view to the same fusion network unaligned (the
  cost volume is not built): the ablation "without warping".
- ``disparity`` (decode time only, not saved with the weights): ``zero`` replaces the estimated disparity by 0
  when decoding weights trained with warping: the ablation "true disparity replaced by zero". Evaluate it with
  ``--weights`` pointing at the trained weights; it refuses to train.
- ``side`` (trained with the weights): ``grey`` feeds the decoder a grey image instead of the side view, in
  training and decoding: the control that separates what the larger decoder gains from what the side view does.
- ``max_disp`` (trained with the weights): the search range ±max_disp pixels (a multiple of 4).
- ``passes`` (trained with the weights): 2 adds a second, full-resolution pass on the refined image (the disparity
  re-matched ±2 px around the first pass's, a second fusion); results and weights under ``dsi_disparity.2pass``.
  Needs warp=true; with side=grey it is the control of the two-pass decoder (``2pass+greyside``).
- ``anchor`` (trained with the weights): a weight a > 0 adds a·λ·255²·MSE(x̂₀, x) to the loss, keeping x̂₀ = g_s(ŷ), the
  image the decoder matches on and fuses with, an image (without it x̂₀ drifts to 10–13 dB once the fusion becomes
  the decoder's last stage). Default 0.1 for a decoder that matches (warp=true, side=view) with the MSE metric, 0
  otherwise (the grey-side control and the ablation without warping match nothing, and without the term they are
  the stronger baselines: README, "Anchoring x̂₀"); another value names the results and weights
  ``dsi_disparity.anchor<a>`` (``anchor0``: the matching decoder without the term)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from baselines.balle import OPTIONS as RD_OPTIONS
from baselines.balle import _ZooCodec
from benchmark.training.losses import compressai_aux_loss, rd_loss
from benchmark.contract.budgets import TrainConfig
from benchmark.contract.codec import MethodMeta, Scenario
from benchmark.contract.data import Batch
from benchmark.contract.options import Option
from benchmark.contract.registry import register_method
from benchmark.errors import ConfigError, TrainingError, WeightsError

from .model import MATCH_SCALE, REFINE_RADIUS, REFINE_WINDOW, DSIDisparity

DEFAULT_ANCHOR = 0.1  # the x̂₀ image loss's weight for a matching decoder with the MSE metric (README, "Anchoring x̂₀")

DEFAULT_MAX_DISP = 32  # pixels: KITTI at 128x256 has a median disparity of 5 px and a 90th percentile of 16 px
MATCH_CHANNELS = 32
FUSION_WIDTH = 32
MATCH_WINDOW = 7  # cells of the 1/4 grid the correlation is averaged over (28x28 px)
FUSION2_WIDTH = FUSION_WIDTH  # the second pass's fusion (passes=2; with REFINE_RADIUS, REFINE_WINDOW: saved)

OPTIONS: tuple[Option, ...] = (
    *RD_OPTIONS,
    Option("warp", bool, True, "align the side view to x by the estimated disparity before fusing it (false: the "
           "ablation without warping; saved with the weights)"),
    Option("disparity", str, "estimated", "decode with the estimated disparity or with zero (a decode-time "
           "ablation of weights trained with warping)", choices=("estimated", "zero")),
    Option("side", str, "view", "the side view the decoder fuses: the pair's other view, or a grey image (the "
           "control: the same decoder without side information, a balle2018 with a refinement post-filter; saved "
           "with the weights)", choices=("view", "grey")),
    Option("max_disp", int, None, f"disparity search range ±pixels, a multiple of {MATCH_SCALE} (default "
           f"{DEFAULT_MAX_DISP}; saved with the weights)", minimum=MATCH_SCALE),
    Option("passes", int, 1, "refinement passes: 1, or 2 (a second pass re-matches the disparity at full resolution "
           "on the refined image, ±2 px around the first pass's, and fuses again; needs warp=true; saved with the "
           "weights, results under dsi_disparity.2pass)", minimum=1, maximum=2),
    Option("anchor", float, None, "weight a of an image loss on x̂₀ = g_s(ŷ), the image the decoder matches on: the "
           "loss adds a·λ·255²·MSE(x̂₀, x) (default 0.1 for a decoder that matches, warp=true and side=view, with the MSE "
           "metric, 0 otherwise; 0: none; saved with the weights; a value other than the default names the results "
           "dsi_disparity.anchor<a>)", minimum=0.0),
)

_PAPER = ("ours, on J. Ballé et al., Variational Image Compression with a Scale Hyperprior, ICLR 2018 (encoder, "
          "entropy model) and the soft-argmin cost volume of A. Kendall et al., ICCV 2017 (decoder)")


@register_method
class DsiDisparity(_ZooCodec):
    """balle2018's encoder and entropy model; the decoder estimates the disparity between x̂₀ and the side view,
    warps the side view into x's view and fuses it with x̂₀ (decoder-only side information)."""

    meta = MethodMeta(
        name="dsi_disparity", scenario=Scenario.DECODER_SIDE_INFO, paper=_PAPER, trainable=True, twin="balle2018",
        description="balle2018 encoder and bytes; the decoder estimates a horizontal disparity between its "
                    "reconstruction and the side view (cost volume on the 1/4 grid, ±32 px, soft-argmin), warps "
                    "the side view into x's view and adds a fused residual (decoder-only side information)")
    arch = "dsi-disparity-hyperprior"
    model_class = "ScaleHyperprior"  # _ZooCodec's likelihood and encoding paths (balle2018's)
    stride = 64
    n_streams = 2
    options_spec = OPTIONS

    def __init__(self, protocol: Any = None, *, warp: bool = True, disparity: str = "estimated",
                 max_disp: int | None = None, side: str = "view", passes: int = 1, anchor: float | None = None, **options: Any):
        if max_disp is not None and max_disp % MATCH_SCALE:
            raise ConfigError(f"dsi_disparity: max_disp={max_disp} must be a multiple of {MATCH_SCALE} (the cost "
                              f"volume's grid), e.g. {MATCH_SCALE * max(1, round(max_disp / MATCH_SCALE))}")
        super().__init__(protocol, **options)
        self._opt_warp, self._zero_disparity, self._opt_max_disp = bool(warp), disparity == "zero", max_disp
        if not warp and self._zero_disparity:
            raise ConfigError("dsi_disparity: disparity=zero applies to weights trained with warping; with warp=false "
                              "no disparity is used at all")
        if passes not in (1, 2):
            raise ConfigError(f"dsi_disparity: passes={passes!r} must be 1 or 2")
        if passes == 2 and not warp:
            raise ConfigError("dsi_disparity: passes=2 refines the estimated disparity at full resolution; with "
                              "warp=false there is none (train the ablation without warping with passes=1)")
        default_anchor = DEFAULT_ANCHOR if (self.metric == "mse" and warp and side == "view") else 0.0
        self._grey_side, self._passes = side == "grey", int(passes)
        self._anchor = default_anchor if anchor is None else float(anchor)
        if self._anchor and self.metric != "mse":
            raise ConfigError(f"dsi_disparity: anchor={anchor:g} is an MSE term on x̂₀; with metric={self.metric} train "
                              "without it (anchor=0)")
        self.options.update(warp=bool(warp), disparity=disparity, max_disp=max_disp, side=side, passes=self._passes,
                            anchor=self._anchor)
        names = [n for n, on in (("2pass", self._passes == 2), (f"anchor{self._anchor:g}", self._anchor != default_anchor),
                                 ("nowarp", not warp),
                                 ("zero-disparity", self._zero_disparity), ("greyside", self._grey_side)) if on]
        self.variant = "+".join(names) or None

    # ---- configuration ------------------------------------------------------------------------------
    def resolve_config(self, budget: str) -> tuple[dict[str, Any], TrainConfig]:
        cfg, tc = super().resolve_config(budget)
        cfg.update(warp=self._opt_warp, side="grey" if self._grey_side else "view", max_disp=self._opt_max_disp or DEFAULT_MAX_DISP, match_channels=MATCH_CHANNELS,
                   match_window=MATCH_WINDOW, fusion_width=FUSION_WIDTH)
        if self._passes != 1:  # absent for one pass: one-pass plans (and saved weights) stay as they were
            cfg.update(passes=self._passes, refine_radius=REFINE_RADIUS, refine_window=REFINE_WINDOW,
                       fusion2_width=FUSION2_WIDTH)
        if self._anchor:  # no key means anchor 0: plans and weights without the term carry none
            cfg.update(anchor=self._anchor)
        return cfg, tc

    def build_model(self, N: int | None, M: int | None, lmbda: float) -> torch.nn.Module:
        if N is None or M is None:  # paper widths: CompressAI's hyperprior widths at the quality nearest to λ
            from baselines import zoo_widths

            dn, dm = zoo_widths("bmshj2018-hyperprior", lmbda)
            N, M = N or dn, M or dm
        cfg = self.config
        model = DSIDisparity(N, M, max_disp=int(cfg.get("max_disp", DEFAULT_MAX_DISP)),
                             match_channels=int(cfg.get("match_channels", MATCH_CHANNELS)),
                             fusion_width=int(cfg.get("fusion_width", FUSION_WIDTH)), warp=bool(cfg.get("warp", True)),
                             match_window=int(cfg.get("match_window", MATCH_WINDOW)),
                             passes=int(cfg.get("passes", 1)), refine_radius=int(cfg.get("refine_radius", REFINE_RADIUS)),
                             refine_window=int(cfg.get("refine_window", REFINE_WINDOW)),
                             fusion2_width=int(cfg.get("fusion2_width", FUSION2_WIDTH)))
        model.refiner.zero_disparity = self._zero_disparity  # a decoding switch: no parameters, not in the weights
        return model

    def fit(self, train_ds: Iterable, val_ds: Iterable | None, *, budget: str, device: str, workdir: Path, seed: int = 0,
            progress: bool | None = None) -> dict[str, Any]:
        if self._zero_disparity:
            raise TrainingError("dsi_disparity: disparity=zero is a decode-time ablation; evaluate weights trained "
                                "with warping (bench run ... --weights DIR --option disparity=zero) or train the "
                                "ablation without warping with --option warp=false")
        if self._anchor:  # the loss differs, the trainer's config does not: never resume a run without the anchor
            workdir = Path(workdir) / f"anchor={self._anchor:g}"
        info = super().fit(train_ds, val_ds, budget=budget, device=device, workdir=workdir, seed=seed, progress=progress)
        if self._anchor:
            info["loss"] = "lambda*255^2*(MSE(x,x_hat) + anchor*MSE(x,x0)) + bpp_y + bpp_z, x0 = g_s(y_hat)"
        return info

    def make_loss(self, lmbda: float):
        if not self._anchor:
            return super().make_loss(lmbda)
        weight = self._anchor * lmbda * 255.0**2

        def loss_fn(model: torch.nn.Module, batch: Batch) -> dict[str, Any]:
            out = self.train_forward(model, batch)
            res = rd_loss(out, batch.x, lmbda, "mse")
            x0_mse = torch.nn.functional.mse_loss(out["x0"], batch.x)
            res["loss"] = res["loss"] + weight * x0_mse
            res["x0_psnr"] = -10.0 * torch.log10(x0_mse.detach().clamp_min(1e-10))
            res["aux_loss"] = compressai_aux_loss(model)
            return res

        return loss_fn

    def load_weights(self, directory: Path) -> dict[str, Any]:
        summary = super().load_weights(directory)
        cfg = self.config
        wanted = {"warp": self._opt_warp, "max_disp": self._opt_max_disp}
        if cfg.get("passes", 1) != self._passes:  # weights from before the option are one-pass
            self.models = []
            raise WeightsError(f"weights in {directory} were trained with passes={cfg.get('passes', 1)}, the options "
                               f"ask for passes={self._passes} (a {self._passes}-pass decoder has "
                               f"{'more' if self._passes == 2 else 'fewer'} networks; train it, or ask for "
                               f"--option passes={cfg.get('passes', 1)})")
        if self._grey_side or cfg.get("side", "view") != "view":  # weights from before the option are side=view
            wanted["side"] = "grey" if self._grey_side else "view"
        for key, value in wanted.items():
            if value is not None and cfg.get(key) != value:
                self.models = []
                raise WeightsError(f"weights in {directory} were trained with {key}={cfg.get(key)}, the options ask "
                                   f"for {key}={value}")
        trained = float(cfg.get("anchor", 0.0))  # checked after the decoder's shape; no key means anchor 0
        if trained != self._anchor:
            self.models = []
            raise WeightsError(f"weights in {directory} were trained with anchor={trained:g}, the options ask for "
                               f"anchor={self._anchor:g} (ask for --option anchor={trained:g} to decode them)")
        return summary

    # ---- how the model is run -----------------------------------------------------------------------
    def train_forward(self, model: torch.nn.Module, batch: Batch) -> Mapping[str, Any]:
        if batch.side is None:
            raise TrainingError("dsi_disparity trains on stereo pairs: the training samples have no side view")
        return model(batch.x, self._fused_side(batch.side))

    def eval_forward(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> Mapping[str, Any]:
        if side is None:
            raise ConfigError("dsi_disparity reconstructs x with the side view; none was given")
        return model(x, self._fused_side(side))

    def decode(self, model: torch.nn.Module, streams: list[bytes], shape: tuple[int, int], side: torch.Tensor | None) -> torch.Tensor:
        return model.decompress([[s] for s in streams], shape, None if side is None else self._fused_side(side))["x_hat"]

    def _fused_side(self, side: torch.Tensor) -> torch.Tensor:
        """The side view the decoder gets: the view itself, or grey of the same shape (`side=grey`, the control)."""
        return torch.full_like(side, 0.5) if self._grey_side else side

    def info(self) -> dict[str, Any]:
        base = super().info()
        base["rate_notes"] = ("only x is transmitted: balle2018's CompressAI rANS strings (latent, hyper-latent) in the "
                              "suite's container; the side view is used by the decoder only (disparity, warp, fusion) "
                              f"and costs nothing; image padded to a multiple of {self.stride}")
        base["decoder"] = {"warp": self._opt_warp, "side": "grey" if self._grey_side else "view", "disparity": "zero" if self._zero_disparity else "estimated",
                           "passes": self._passes, "anchor": self._anchor,
                           "max_disp_px": self.config.get("max_disp", self._opt_max_disp or DEFAULT_MAX_DISP)}
        return base
