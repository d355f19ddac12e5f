"""The NDIC codecs (scenario ``decoder_side_info``): ``ndic_balle2017``, ``ndic_balle2018``, ``ndic_cam``, one row
each of the table ``NDIC_VARIANTS`` (base autoencoder, cross-attention, λ list, loss weights, paper).

Built on baselines/balle.py's ``RDCodec`` (one model per λ, rate points ``lambda=<λ>``, padding to the
stride by edge replication, CompressAI rANS strings as container streams, weights as safetensors, the
Ballé budgets). What differs from the Ballé baselines:
- the loss (``ndic_loss_fn``): λ·255²·(MSE(x,x̂) + α·MSE(y,ŷ)) + bpp_x [+ bpp_z] + α·bpp_y + β·bpp_w;
- the decoder needs the side view (w and, for CAM, the twin decoder's features are computed from it);
- only x's latents are coded: the streams are x's latent [and its hyper-latent]; ``estimate_bits`` counts
  the likelihoods of exactly those, never the regularisers of y and w;
- the model is run on (x, side) pairs; the loss closure calls it directly (``make_loss``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import torch
import torch.nn.functional as F

from baselines import register_family
from baselines.balle import OPTIONS as RD_OPTIONS
from baselines.balle import RDCodec
from benchmark.contract.budgets import MethodBudget
from benchmark.contract.codec import MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.contract.data import Batch
from benchmark.errors import ConfigError, TrainingError, WeightsError
from benchmark.contract.options import Option
from benchmark.training.losses import bits_from_likelihoods, compressai_aux_loss
from benchmark.contract.budgets import TrainConfig

from . import configs
from .cam import DEFAULT_HEADS, DEFAULT_MAX_TOKENS, DEFAULT_PATCHES, NDICCAM
from .model import NDIC, W_NOISE_VAR

_CAM_OPTIONS = ("heads", "max_tokens")


def ndic_loss(out: Mapping[str, Any], x: torch.Tensor, side: torch.Tensor, lmbda: float, alpha: float, beta: float,
              metric: str = "mse", ms_ssim_win: int = 11) -> dict[str, torch.Tensor]:
    """(R_x + λD_x) + α(R_y + λD_y) + βR_w with D = 255²·MSE (or 1 − MS-SSIM), rates in bits per pixel."""
    n, _, h, w = x.shape
    px = float(n * h * w)
    bpp_x = bits_from_likelihoods(out["likelihoods"]) / px
    bpp_y = bits_from_likelihoods(out["likelihoods_y"]) / px
    bpp_w = bits_from_likelihoods(out["likelihoods_w"]) / px
    mse_x = F.mse_loss(out["x_hat"], x)
    mse_y = F.mse_loss(out["y_hat"], side)
    logs: dict[str, torch.Tensor] = {}
    if metric == "mse":
        d_x, d_y = 255.0**2 * mse_x, 255.0**2 * mse_y
    else:
        from pytorch_msssim import ms_ssim

        mx = ms_ssim(out["x_hat"], x, data_range=1.0, win_size=ms_ssim_win)
        my = ms_ssim(out["y_hat"], side, data_range=1.0, win_size=ms_ssim_win)
        d_x, d_y = 1.0 - mx, 1.0 - my
        logs["ms_ssim"] = mx.detach()
    loss = (bpp_x + lmbda * d_x) + alpha * (bpp_y + lmbda * d_y) + beta * bpp_w
    psnr = -10.0 * torch.log10(mse_x.detach().clamp_min(1e-10))
    return {"loss": loss, "bpp": bpp_x.detach(), "mse": mse_x.detach(), "psnr": psnr, "bpp_y": bpp_y.detach(),
            "bpp_w": bpp_w.detach(), "mse_y": mse_y.detach(), **logs}


def ndic_loss_fn(lmbda: float, alpha: float, beta: float, metric: str = "mse"):
    def loss_fn(model: torch.nn.Module, batch: Batch) -> dict[str, Any]:
        if batch.side is None:
            raise TrainingError("NDIC trains on stereo pairs: the training samples have no side view")
        out = model(batch.x, batch.side)
        res = ndic_loss(out, batch.x, batch.side, lmbda, alpha, beta, metric)
        res["aux_loss"] = compressai_aux_loss(model)
        return res

    return loss_fn


_WEIGHT_OPTIONS = (
    Option("alpha", float, None, "weight of the side view's distortion and rate in the loss (default: the family's)",
           minimum=0),
    Option("beta", float, None, "weight of the common-information rate bpp_w in the loss (default: the family's)",
           minimum=0),
)
_CAM_OPTION_SPECS = (
    Option("heads", int, DEFAULT_HEADS, "attention heads of the cross-attention module", minimum=1),
    Option("max_tokens", int, DEFAULT_MAX_TOKENS, "tokens per stage and view the attention accepts", minimum=1),
)


def base_geometry(hyperprior: bool) -> dict[str, int]:
    """Stride and streams of the base autoencoder: the scale hyperprior (64; x's latent and hyper-latent) or the
    factorized prior (16; x's latent)."""
    return {"stride": 64, "n_streams": 2} if hyperprior else {"stride": 16, "n_streams": 1}


class _NDICCodec(RDCodec):
    """What the NDIC codecs share; a row of ``NDIC_VARIANTS`` gives each its base, attention and λ list."""

    hyperprior: ClassVar[bool]
    cam: ClassVar[bool]
    paper_lambdas: ClassVar[tuple[float, ...]]
    loss_weights: ClassVar[tuple[float, float]]  # the default (α, β)
    # a tiny model for the contract test (2 rate points, 8/8 channels)
    test_options: ClassVar[dict[str, Any]] = {"N": 8, "M": 8, "lambdas": "0.0035,0.0483"}

    options_spec: ClassVar[tuple[Option, ...]] = (*RD_OPTIONS, *_WEIGHT_OPTIONS)  # ndic_cam adds heads, max_tokens

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        cam_opts = [k for k in _CAM_OPTIONS if k in options]
        if cam_opts and not cls.cam:
            raise ConfigError(f"{cls.meta.name}: option(s) {', '.join(cam_opts)} only apply to ndic_cam")
        return super().check_options(options)

    def __init__(self, protocol: Any = None, *, alpha: float | None = None, beta: float | None = None, **options: Any):
        cam_opts = {k: options.pop(k) for k in _CAM_OPTIONS if k in options}  # typed; only ndic_cam declares them
        super().__init__(protocol, **options)
        self._opt_alpha, self._opt_beta = alpha, beta
        self._cam_opts = {k: v for k, v in cam_opts.items() if v is not None}
        self.options.update(alpha=alpha, beta=beta, **cam_opts)
        self.lambdas = self._opt_lambdas or self.paper_lambdas

    # ---- configuration ----------------------------------------------------------------------------
    @classmethod
    def budget_table(cls, protocol: str | None = None) -> dict[str, MethodBudget]:
        return configs.budgets(protocol, cls.paper_lambdas)  # the paper budget validates once per epoch of `protocol`

    def resolve_config(self, budget: str) -> tuple[dict[str, Any], TrainConfig]:
        cfg, tc = super().resolve_config(budget)
        alpha, beta = self.loss_weights
        cfg.update(
            alpha=self._opt_alpha if self._opt_alpha is not None else alpha,
            beta=self._opt_beta if self._opt_beta is not None else beta,
            hyperprior=self.hyperprior,
            w_noise_var=W_NOISE_VAR,
        )
        if self.cam:
            cfg.update(heads=self._cam_opts.get("heads", DEFAULT_HEADS), patches=list(DEFAULT_PATCHES),
                       max_tokens=self._cam_opts.get("max_tokens", DEFAULT_MAX_TOKENS))
        return cfg, tc

    def build_model(self, N: int | None, M: int | None, lmbda: float) -> torch.nn.Module:
        cfg = self.config
        N, M = N or 192, M or 192
        variant = str(cfg.get("variant", "suite"))  # "authors": converted from the authors' checkpoints
        if self.cam:
            size = cfg.get("image_size")
            return NDICCAM(N, M, hyperprior=bool(cfg.get("hyperprior", self.hyperprior)), heads=int(cfg.get("heads", DEFAULT_HEADS)),
                           patches=tuple(cfg.get("patches", DEFAULT_PATCHES)),
                           max_tokens=int(cfg.get("max_tokens", DEFAULT_MAX_TOKENS)),
                           w_noise_var=float(cfg.get("w_noise_var", W_NOISE_VAR)), variant=variant,
                           image_size=tuple(size) if size else None)
        return NDIC(N, M, hyperprior=self.hyperprior, w_noise_var=float(cfg.get("w_noise_var", W_NOISE_VAR)), variant=variant)

    def convert_authors(self, state: Mapping[str, torch.Tensor], where: str) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The authors' checkpoint (ipc-lab/NDIC or NDIC-CAM format) as a model of this codec (``--weights authors:``)."""
        from .convert import PAPER_IMAGE_SIZE, convert, infer

        kind, N = infer(state)
        wanted = "cam" if self.cam else ("balle2018" if self.hyperprior else "balle2017")
        if kind != wanted:
            names = {"balle2017": "ndic_balle2017", "balle2018": "ndic_balle2018", "cam": "ndic_cam"}
            raise WeightsError(f"{where} holds the authors' {kind} model; evaluate it with --method {names[kind]}")
        model = convert(state)
        extra: dict[str, Any] = {"N": N, "M": N, "variant": "authors"}
        if self.cam:  # the authors' NDIC-CAM sits on the factorized model: one stream, stride 16, one image size
            self._adopt_base(hyperprior=False)
            extra.update(image_size=list(PAPER_IMAGE_SIZE))
        return model, extra

    def _adopt_base(self, hyperprior: bool) -> None:
        """NDIC-CAM with the authors' weights is built on the factorized model (ours defaults to the hyperprior)."""
        if self.cam and hyperprior != self.hyperprior:
            self.hyperprior = hyperprior
            for key, value in base_geometry(hyperprior).items():
                setattr(self, key, value)

    # ---- how the model is run -----------------------------------------------------------------------
    def eval_forward(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> Mapping[str, Any]:
        # without a side view (the encoder's view, estimate_bits): the likelihoods of x's coded latents only
        if side is None:
            return model.rate(x)
        out = model(x, side)
        return {"x_hat": out["x_hat"], "likelihoods": out["likelihoods"]}

    def encode(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> list[bytes]:
        return [s[0] for s in model.compress(x)["strings"]]  # x only: the side view never reaches the encoder

    def decode(self, model: torch.nn.Module, streams: list[bytes], shape: tuple[int, int], side: torch.Tensor | None) -> torch.Tensor:
        return model.decompress([[s] for s in streams], shape, side)["x_hat"]

    # ---- training (RDCodec.fit with the NDIC loss) -------------------------------------------------------
    def make_loss(self, lmbda: float):
        return ndic_loss_fn(lmbda, self.config["alpha"], self.config["beta"], "ms-ssim" if self.metric == "ms-ssim" else "mse")

    def fit(self, train_ds: Iterable, val_ds: Iterable | None, *, budget: str, device: str, workdir: Path, seed: int = 0,
            progress: bool | None = None) -> dict[str, Any]:
        # the trainer resumes a checkpoint whose model, config, seed and tag match; α and β change the loss but
        # none of those, so they name the folder (a run with other loss weights never resumes this one)
        cfg, _ = self.resolve_config(budget)
        workdir = Path(workdir) / f"alpha={cfg['alpha']:g},beta={cfg['beta']:g}"
        info = super().fit(train_ds, val_ds, budget=budget, device=device, workdir=workdir, seed=seed, progress=progress)
        info["loss"] = "lambda*255^2*(MSE(x,x_hat) + alpha*MSE(y,y_hat)) + bpp_x [+ bpp_z] + alpha*bpp_y + beta*bpp_w"
        return info

    def load_weights(self, directory: Path) -> dict[str, Any]:
        summary = super().load_weights(directory)
        cfg = self.config
        self._adopt_base(bool(cfg.get("hyperprior", self.hyperprior)))
        for opt, key in ((self._opt_alpha, "alpha"), (self._opt_beta, "beta")):
            if opt is not None and cfg.get(key) != opt:
                self.models = []
                raise WeightsError(f"weights in {directory} were trained with {key}={cfg.get(key)}, the options ask for {key}={opt}")
        return summary

    # ---- coding -------------------------------------------------------------------------------------
    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        if self.cam:
            self._check_tokens(data)
        return super().decompress(data, side=side, source=source)

    def _check_tokens(self, data: bytes) -> None:
        self._require_models()
        c = Container.from_bytes(data, self.meta.name)
        if len(c.shape) != 3 or c.point >= len(self.models):
            return  # the base class reports the damage
        h, w = c.shape[1:]
        hp, wp = h + (-h) % self.stride, w + (-w) % self.stride
        model = self.models[c.point]
        if model.image_size is not None and (hp, wp) != tuple(model.image_size):
            raise ConfigError(f"{self.meta.name} with the authors' weights decodes {model.image_size[0]}x{model.image_size[1]} "
                              f"images only (their attention was built for one size); got {h}x{w}")
        if model.tokens(hp, wp) > model.max_tokens:
            raise ConfigError(
                f"{self.meta.name}: a {h}x{w} image needs {model.tokens(hp, wp)} attention tokens per stage, above "
                f"max_tokens={model.max_tokens} (attention memory grows with its square); decode it in tiles or "
                f"construct the codec with max_tokens={model.tokens(hp, wp)} if memory allows")

    def info(self) -> dict[str, Any]:
        base = super().info()
        base["rate_notes"] = (
            f"only x is transmitted: CompressAI rANS strings of x's latent{' and hyper-latent' if self.hyperprior else ''} "
            f"in the suite's container; the side view's private latent and the common information w are computed "
            f"from the side view at the decoder and cost nothing; image padded to a multiple of {self.stride}")
        if self.cam:
            base["size_limit"] = (f"any H x W (padded to a multiple of {self.stride}); attention over (H/8)*(W/8) "
                                  f"patch tokens per stage, refused above max_tokens (default {DEFAULT_MAX_TOKENS})")
        return base


@dataclass(frozen=True)
class NDICVariant:
    """One row of the NDIC table."""

    name: str  # the method's registered name
    arch: str  # recorded with the weights
    hyperprior: bool  # base autoencoder: scale hyperprior (True) or factorized prior
    cam: bool  # cross-attention between x's and the side view's decoder features (NDIC-CAM)
    paper_lambdas: tuple[float, ...]  # the paper budget's λ list
    loss_weights: tuple[float, float]  # the default (α, β) of the loss
    paper: str
    description: str
    twin: str = ""  # the Ballé codec on the same base, trained and coded the same way without the side view

    def class_attrs(self) -> dict[str, Any]:
        meta = MethodMeta(name=self.name, scenario=Scenario.DECODER_SIDE_INFO, paper=self.paper, trainable=True,
                          description=self.description, twin=self.twin)
        attrs = {"meta": meta, "arch": self.arch, "hyperprior": self.hyperprior, "cam": self.cam,
                 "paper_lambdas": self.paper_lambdas, "loss_weights": self.loss_weights,
                 **base_geometry(self.hyperprior)}
        if self.cam:
            attrs["options_spec"] = (*RD_OPTIONS, *_WEIGHT_OPTIONS, *_CAM_OPTION_SPECS)
        return attrs


_MITAL = "N. Mital, E. Özyılkan, A. Garjani, D. Gündüz, Neural Distributed Image Compression"

# loss weights (α, β): the authors' α = β = 1 for NDIC, α = β = 0 for NDIC-CAM
NDIC_VARIANTS: tuple[NDICVariant, ...] = (
    NDICVariant(
        "ndic_balle2017", "ndic-balle2017", hyperprior=False, cam=False, paper_lambdas=configs.LAMBDAS_NDIC_BALLE2017,
        loss_weights=(1.0, 1.0), paper=_MITAL + " Using Common Information, DCC 2022 ('ours+Ballé2017')",
        description="NDIC on the factorized-prior autoencoder: x's latent coded; common information w and the "
                    "side view's private latent computed from the side view at the decoder", twin="balle2017"),
    NDICVariant(
        "ndic_balle2018", "ndic-balle2018", hyperprior=True, cam=False, paper_lambdas=configs.LAMBDAS_NDIC_BALLE2018,
        loss_weights=(1.0, 1.0), paper=_MITAL + " Using Common Information, DCC 2022 ('ours+Ballé2018')",
        description="NDIC on the scale-hyperprior autoencoder: x's latent and hyper-latent coded; common "
                    "information w from the side view at the decoder", twin="balle2018"),
    NDICVariant(
        "ndic_cam", "ndic-cam-balle2018", hyperprior=True, cam=True, paper_lambdas=configs.LAMBDAS_NDIC_BALLE2018,
        loss_weights=(0.0, 0.0),
        paper=_MITAL + " with Cross-Attention Feature Alignment, WACV 2023 (NDIC-CAM)",
        description="NDIC (scale hyperprior) with 8-head cross-attention between x's and the side view's decoder "
                    "features after the first three decoder layers; any image size (padded to 64), attention "
                    f"tokens per stage (H/8)*(W/8) refused above {DEFAULT_MAX_TOKENS} by default"),
)
globals().update(register_family(_NDICCodec, NDIC_VARIANTS, __name__))  # NdicBalle2017, NdicBalle2018, NdicCam
