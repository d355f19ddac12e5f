"""The LDMIC codecs (scenario ``distributed``): ``ldmic``, ``ldmic_checkerboard`` and ``ldmic_multi``.

Zhang, Shao, Zhang, "LDMIC: Learning-based Distributed Multi-view Image Coding", ICLR 2023 (arXiv:2301.09799).

What one coded sample is. A multi-view protocol (``stereo/kitti-ldmic``, ``multiview/wildtrack-ldmic``) hands the
runner each scene once, as one frame holding its V views side by side (3 x H x V·W; datasets/multiview.py). The
codec cuts the frame into its V views and codes each with the per-view encoder alone — view v's streams are a
function of view v only (tests/test_ldmic.py checks it by changing the other views) — and writes all views'
streams into one container; the decoder reads every view's streams and decodes them jointly. So the rate of a
row is the bits of all views over V·H·W pixels, each scene coded once, as the paper reports it. What the runner
cannot enforce here (it sandboxes per sample, not per view) the codec's structure does: ``compress`` calls
``LDMICModel.encode_view`` once per view, on that view's pixels only.

One model per λ (``RDCodec``: rate points ``lambda=<λ>``, λ on the authors' scale, λ·MSE on [0,1] images);
every view is padded to a multiple of 64 by edge replication and cropped back; CompressAI's rANS strings, per
view [y, z] (serial context) or [a, b, c, d, z] (checkerboard), views in order.

Training (``fit`` of RDCodec with the authors' loss): the training samples are x = one view and side = the other
view(s) stacked along channels (3·(V−1) channels), cropped at the same place by the suite's trainer."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import torch
import torch.nn.functional as F

from baselines import register_family
from baselines.balle import OPTIONS as RD_OPTIONS
from baselines.balle import RDCodec
from benchmark.contract.budgets import MODEL_STAGE, MethodBudget, TrainConfig, method_budget
from benchmark.contract.codec import MethodMeta, Scenario
from benchmark.contract.coding import check_image_header, pad_to
from benchmark.contract.container import Container
from benchmark.contract.data import Batch
from benchmark.contract.determinism import one_thread
from benchmark.contract.options import Option
from benchmark.errors import BitstreamError, ConfigError, TrainingError
from benchmark.training.losses import bits_from_likelihoods

from .configs import BUDGETS
from .configs import budgets as protocol_budgets
from .model import STRIDE, LDMICModel

_MAX_PIXELS = 1 << 26
_GUARD = b"\x00" * 256  # appended (never transmitted) so a damaged rANS stream cannot read past its buffer
PAPER = ("X. Zhang, J. Shao, J. Zhang, LDMIC: Learning-based Distributed Multi-view Image Coding, ICLR 2023 "
         "(arXiv:2301.09799)")


def ldmic_loss(out: Mapping[str, Any], views: list[torch.Tensor], lmbda: float, metric: str = "mse",
               ms_ssim_win: int = 11) -> dict[str, torch.Tensor]:
    """The authors' loss: λ·mean over views of D_v + mean over views of bpp_v, D = MSE on [0,1] or 1 − MS-SSIM."""
    n, _, h, w = views[0].shape
    bpp = torch.stack([bits_from_likelihoods(lik) for lik in out["likelihoods"]]) / float(n * h * w)
    mse = torch.stack([F.mse_loss(xh, x) for xh, x in zip(out["x_hat"], views)])
    logs: dict[str, torch.Tensor] = {}
    if metric == "mse":
        dist = mse.mean()
    else:
        from pytorch_msssim import ms_ssim

        m = torch.stack([ms_ssim(xh, x, data_range=1.0, win_size=ms_ssim_win) for xh, x in zip(out["x_hat"], views)])
        dist = (1.0 - m).mean()
        logs["ms_ssim"] = m.mean().detach()
    psnr = (-10.0 * torch.log10(mse.detach().clamp_min(1e-10))).mean()
    return {"loss": lmbda * dist + bpp.mean(), "bpp": bpp.mean().detach(), "mse": mse.mean().detach(), "psnr": psnr,
            **logs}


def vertical_flips(frames: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each sample's views flipped upside down together with probability 1/2 (the authors' ``RandomVerticalFlip``
    on the stacked views, lib/utils.py; the suite's trainer already flips horizontally). Drawn from the global RNG,
    which the trainer seeds per step, so a resumed run draws the same flips."""
    flip = torch.rand(frames[0].shape[0]) < 0.5
    if not bool(flip.any()):
        return frames
    mask = flip.to(frames[0].device).view(-1, 1, 1, 1)
    return [torch.where(mask, f.flip(-2), f) for f in frames]


def split_training_views(batch: Batch, views: int) -> list[torch.Tensor]:
    """[x, side view 1, ..., side view V-1] of a training batch whose side holds the other views along channels."""
    if batch.side is None:
        raise TrainingError("LDMIC trains on multi-view samples: the training samples have no side view(s)")
    if batch.side.shape[1] != 3 * (views - 1):
        raise TrainingError(f"LDMIC with {views} views needs training samples whose side holds {views - 1} other "
                            f"view(s) ({3 * (views - 1)} channels); got {batch.side.shape[1]} channels")
    return [batch.x, *batch.side.split(3, dim=1)]


class _LDMICCodec(RDCodec):
    """What the LDMIC codecs share; a row of ``LDMIC_VARIANTS`` gives each its context model and views."""

    context: ClassVar[str]
    joint: ClassVar[bool] = True
    fixed_views: ClassVar[int | None]  # 2 for the stereo codecs; None: the `views` option
    stride: ClassVar[int] = STRIDE
    budgets: ClassVar[dict[str, MethodBudget]] = BUDGETS
    test_options: ClassVar[dict[str, Any]] = {"N": 16, "M": 24, "lambdas": "256,2048"}
    dataset_options_used: ClassVar[tuple[str, ...]] = ()

    def __init__(self, protocol: Any = None, *, views: int | None = None, vflip: bool | None = None, **options: Any):
        super().__init__(protocol, **options)
        self._opt_vflip = vflip
        if vflip is not None:
            self.options["vflip"] = vflip
        proto_views = (getattr(protocol, "options", None) or {}).get("views")
        self.views = int(self.fixed_views or views or proto_views or 2)
        if self.fixed_views is None:
            self.options["views"] = self.views
            self.variant = f"V{self.views}"
        self.lambdas = self._opt_lambdas or BUDGETS["paper"].model["lambdas"]
        self._n_train: int | None = None
        self.n_streams = self.views * (2 if self.context == "autoregressive" else 5)

    # ---- configuration --------------------------------------------------------------------------------
    @classmethod
    def budget_table(cls, protocol: str | None = None) -> dict[str, MethodBudget]:
        return protocol_budgets(protocol)

    def resolve_config(self, budget: str) -> tuple[dict[str, Any], TrainConfig]:
        cfg, tc = super().resolve_config(budget)
        b = method_budget(protocol_budgets(getattr(self.protocol, 'name', None)), budget, self.meta.name)
        epochs = b.epochs.get(MODEL_STAGE)
        if epochs and "steps" not in self._train_overrides and self._n_train:
            per_epoch = max(1, math.ceil(self._n_train / tc.batch_size))
            tc = tc.replace(steps=epochs * per_epoch, val_every=10 * per_epoch)
            cfg["epochs"] = epochs
        vflip = self._opt_vflip if self._opt_vflip is not None else bool(b.model.get("vflip", False))
        cfg.update(context=self.context, views=self.views, joint=self.joint, vflip=vflip)
        return cfg, tc

    def build_model(self, N: int | None, M: int | None, lmbda: float) -> torch.nn.Module:
        try:
            return LDMICModel(N or 192, M or 192, context=self.context, joint=self.joint)
        except ValueError as exc:
            raise ConfigError(f"{self.meta.name}: {exc}") from exc

    def make_loss(self, lmbda: float):
        metric, views = ("ms-ssim" if self.metric == "ms-ssim" else "mse"), self.views
        vflip = bool(self.config.get("vflip"))

        def loss_fn(model: torch.nn.Module, batch: Batch) -> dict[str, Any]:
            frames = split_training_views(batch, views)
            if vflip and model.training:  # training steps only: validation stays deterministic
                frames = vertical_flips(frames)
            return ldmic_loss(model(frames), frames, lmbda, metric)

        return loss_fn

    def fit(self, train_ds: Iterable, val_ds: Iterable | None, *, budget: str, device: str, workdir: Path, seed: int = 0,
            progress: bool | None = None) -> dict[str, Any]:
        self._n_train = len(train_ds)  # the paper budget's steps: epochs x ceil(n / batch)
        info = super().fit(train_ds, val_ds, budget=budget, device=device, workdir=workdir, seed=seed, progress=progress)
        info["loss"] = ("lambda * mean_v MSE(x_v, x_hat_v) + mean_v bpp_v" if self.metric == "mse" else
                        "lambda * mean_v (1 - MS-SSIM(x_v, x_hat_v)) + mean_v bpp_v")
        return info

    # ---- views of a frame -------------------------------------------------------------------------------
    def split_views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The V views of a 3 x H x V·W frame, each 1 x 3 x Hp x Wp padded to the stride."""
        self._check_image(x)
        if x.shape[-1] % self.views:
            raise ConfigError(f"{self.meta.name} codes frames of {self.views} views side by side; the width "
                              f"{x.shape[-1]} is not a multiple of {self.views}")
        frame = x.detach().float().cpu()[None]
        return [pad_to(v, self.stride) for v in frame.chunk(self.views, dim=-1)]

    def _view_geometry(self, shape: tuple[int, ...]) -> tuple[int, int, tuple[int, int]]:
        _, h, w = shape
        if w % self.views:
            raise BitstreamError(f"{self.meta.name}: header width {w} is not a multiple of {self.views} views")
        wv = w // self.views
        return h, wv, (-(-h // self.stride), -(-wv // self.stride))  # the hyper-latent: one per 64x64 block

    # ---- coding ----------------------------------------------------------------------------------------
    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        self._require_models()
        idx = self.point_index(point)
        views = self.split_views(x)
        model = self.models[idx]
        streams: list[bytes] = []
        with torch.no_grad(), one_thread():
            for view in views:  # each view alone through the encoder: no view's streams depend on another's pixels
                streams += [bytes(s) for s in model.encode_view(view)]
        return Container(self.meta.name, idx, tuple(int(d) for d in x.shape), streams).to_bytes()

    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        self._require_models()
        c = Container.from_bytes(data, self.meta.name)
        check_image_header(self.meta.name, c, n_points=len(self.models), n_streams=self.n_streams,
                           max_pixels=_MAX_PIXELS, stride=self.stride)
        for i, s in enumerate(c.streams):  # CompressAI's rANS writes whole 32-bit words
            if len(s) < 4 or len(s) % 4:
                raise BitstreamError(f"{self.meta.name}: stream {i} has {len(s)} bytes; an rANS stream is a whole "
                                     "number of 32-bit words (corrupt or truncated bitstream)")
        h, wv, z_shape = self._view_geometry(c.shape)
        per = self.n_streams // self.views
        strings = [[s + _GUARD for s in c.streams[v * per:(v + 1) * per]] for v in range(self.views)]
        try:
            with torch.no_grad(), one_thread():
                x_hats = self.models[c.point].decode_views(strings, [z_shape] * self.views)
        except Exception as exc:  # the rANS decoder or the networks choked on a damaged payload
            raise BitstreamError(f"{self.meta.name}: cannot decode the payload ({type(exc).__name__}: {exc}); "
                                 "the bitstream is corrupt or was made with other weights") from exc
        if not all(torch.isfinite(v).all() for v in x_hats):
            raise BitstreamError(f"{self.meta.name}: the payload decoded to an invalid image; the bitstream is corrupt")
        return torch.cat([v[0, :, :h, :wv] for v in x_hats], dim=-1).clamp(0.0, 1.0).contiguous()

    def estimate_bits(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> float | None:
        """-log2 of the likelihoods of every view's quantised latents (the encoder's side: no view sees another)."""
        self._require_models()
        model = self.models[self.point_index(point)]
        with torch.no_grad(), one_thread():
            return float(sum(float(bits_from_likelihoods(model.view_likelihoods(v))) for v in self.split_views(x)))

    def compress_with_estimate(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0,
                               point: str) -> tuple[bytes, float | None]:
        return self.compress(x, point=point), self.estimate_bits(x, point=point)

    def reconstruct(self, x: torch.Tensor, *, side: torch.Tensor | None = None, point: str) -> torch.Tensor:
        """The model's forward pass on the frame's views (eval mode), cropped, clamped and put side by side."""
        self._require_models()
        views = self.split_views(x)
        h, wv = x.shape[-2], x.shape[-1] // self.views
        with torch.no_grad(), one_thread():
            out = self.models[self.point_index(point)](views)
        return torch.cat([v[0, :, :h, :wv] for v in out["x_hat"]], dim=-1).clamp(0.0, 1.0)

    def info(self) -> dict[str, Any]:
        base = super().info()
        base["views"] = self.views
        base["context"] = self.context
        base["rate_notes"] = (
            f"one container per scene holding every view's CompressAI rANS strings ({self.n_streams // self.views} per "
            f"view, {self.views} views, each view coded by the encoder alone); bpp = bits of all views / (views*H*W); "
            f"every view padded to a multiple of {self.stride}; decoded jointly (joint context transfer)")
        return base


VFLIP = Option("vflip", bool, None, "random vertical flips of the training crops (all views together), besides the "
               "trainer's horizontal ones: the authors' augmentation (default: the budget's, on)")


@dataclass(frozen=True)
class LDMICVariant:
    """One row of the LDMIC table."""

    name: str
    arch: str
    context: str  # autoregressive | checkerboard
    fixed_views: int | None
    description: str
    joint: bool = True  # False: every view decoded alone (the separate-coding baseline)

    def class_attrs(self) -> dict[str, Any]:
        scenario = Scenario.DISTRIBUTED if self.joint else Scenario.SEPARATE
        meta = MethodMeta(name=self.name, scenario=scenario, paper=PAPER, trainable=True,
                          description=self.description, licence="Apache-2.0 (this suite's implementation; the "
                          "authors' code, MIT, is used only by the parity tests)")
        attrs: dict[str, Any] = {"meta": meta, "arch": self.arch, "context": self.context,
                                 "fixed_views": self.fixed_views, "joint": self.joint}
        attrs["options_spec"] = (*RD_OPTIONS, VFLIP)
        if self.fixed_views is None:
            attrs["options_spec"] = (*RD_OPTIONS, VFLIP, Option("views", int, None, "views per scene V >= 2 (default: "
                                                                "the protocol's, else 2)", minimum=2))
            attrs["dataset_options_used"] = ("views",)
        return attrs


LDMIC_VARIANTS: tuple[LDMICVariant, ...] = (
    LDMICVariant("ldmic", "ldmic-autoregressive-v1", "autoregressive", 2,
                 "two views coded by independent encoders (hyperprior + serial 5x5 context), decoded jointly with "
                 "cross-attention joint context transfer; bpp over both views"),
    LDMICVariant("ldmic_checkerboard", "ldmic-checkerboard-v1", "checkerboard", 2,
                 "LDMIC with the two-pass checkerboard context (parallel entropy coding) instead of the serial one"),
    LDMICVariant("ldmic_multi", "ldmic-autoregressive-v1", "autoregressive", None,
                 "LDMIC for V >= 2 views (the authors' Multi_LDMIC): each view attends to the mean of the other "
                 "views' features; V is the option `views`"),
    LDMICVariant("ldmic_separate", "ldmic-separate-v1", "autoregressive", 2,
                 "the separate-coding baseline of LDMIC: the same per-view codec (hyperprior + serial context) with "
                 "every view also decoded alone (no joint context transfer), trained and counted the same way",
                 joint=False),
)
globals().update(register_family(_LDMICCodec, LDMIC_VARIANTS, __name__))  # Ldmic, LdmicCheckerboard, LdmicMulti, LdmicSeparate
