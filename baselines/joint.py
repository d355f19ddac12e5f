"""Side-information variants of the scale-hyperprior codec (built from CompressAI layers and entropy models), one row
each of the table ``SIDE_VARIANTS`` (scenario, model class, twin):

- ``joint_balle2018`` (scenario ``joint``): the side view y is given to encoder and decoder. The analysis
  transform sees concat(x, y); a side encoder turns y into features at 1/2, 1/4, 1/8 and 1/16 resolution;
  the entropy model of the latent (scales and means of the Gaussian conditional) is predicted from the
  hyperprior and the 1/16 side features; the synthesis concatenates the side features at every
  resolution. This is conditional coding: the reference that bounds what decoder-only side information
  can reach.
- ``dsi_balle2018`` (scenario ``decoder_side_info``, Wyner–Ziv): the encoder is exactly balle2018's
  (x only, the hyperprior entropy model does not use y); only the synthesis transform receives the side
  features (same side encoder, concatenated at matching resolutions). The simplest learned WZ baseline.

Both code real bytes with CompressAI's rANS coder (streams: y, z). Side views are padded like x."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from compressai.layers import GDN
from compressai.models import ScaleHyperprior
from compressai.models.utils import conv, deconv
from torch import nn

from benchmark.contract.codec import MethodMeta, Scenario
from benchmark.contract.data import Batch
from benchmark.errors import TrainingError

from . import register_family, zoo_widths
from .balle import RDCodec


class SideEncoder(nn.Module):
    """y -> features at 1/2, 1/4, 1/8, 1/16 resolution (C channels each)."""

    def __init__(self, C: int):
        super().__init__()
        self.s1 = nn.Sequential(conv(3, C), GDN(C))
        self.s2 = nn.Sequential(conv(C, C), GDN(C))
        self.s3 = nn.Sequential(conv(C, C), GDN(C))
        self.s4 = conv(C, C)

    def forward(self, y: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.s1(y)
        f2 = self.s2(f1)
        f3 = self.s3(f2)
        return [f1, f2, f3, self.s4(f3)]


class SideSynthesis(nn.Module):
    """Synthesis transform with side features concatenated at every resolution."""

    def __init__(self, N: int, M: int, C: int):
        super().__init__()
        self.d1, self.i1 = deconv(M + C, N), GDN(N, inverse=True)
        self.d2, self.i2 = deconv(N + C, N), GDN(N, inverse=True)
        self.d3, self.i3 = deconv(N + C, N), GDN(N, inverse=True)
        self.d4 = deconv(N + C, 3)

    def forward(self, y_hat: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3, f4 = feats
        h = self.i1(self.d1(torch.cat([y_hat, f4], 1)))
        h = self.i2(self.d2(torch.cat([h, f3], 1)))
        h = self.i3(self.d3(torch.cat([h, f2], 1)))
        return self.d4(torch.cat([h, f1], 1))


class DSIHyperprior(ScaleHyperprior):
    """balle2018's encoder and entropy model; the synthesis also sees the side view (decoder only)."""

    def __init__(self, N: int, M: int, C: int | None = None, **kwargs: Any):
        super().__init__(N=N, M=M, **kwargs)
        C = C or N
        self.side_encoder = SideEncoder(C)
        self.g_s = SideSynthesis(N, M, C)

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> dict[str, Any]:
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales_hat = self.h_s(z_hat)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales_hat)
        x_hat = self.g_s(y_hat, self.side_encoder(side))
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # compress(x) is ScaleHyperprior.compress: the encoder never sees the side view.

    def decompress(self, strings, shape, side: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        scales_hat = self.h_s(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales_hat)
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, z_hat.dtype)
        return {"x_hat": self.g_s(y_hat, self.side_encoder(side)).clamp_(0, 1)}


class JointHyperprior(ScaleHyperprior):
    """Conditional coding: encoder and decoder see the side view; entropy model conditioned on it."""

    def __init__(self, N: int, M: int, C: int | None = None, **kwargs: Any):
        super().__init__(N=N, M=M, **kwargs)
        C = C or N
        self.g_a = nn.Sequential(conv(6, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.side_encoder = SideEncoder(C)
        self.g_s = SideSynthesis(N, M, C)
        # (hyperprior features, side features at the latent resolution) -> (scales, means)
        self.entropy_fusion = nn.Sequential(
            conv(M + C, M, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True), conv(M, 2 * M, stride=1, kernel_size=1)
        )

    def _params(self, z_hat: torch.Tensor, f4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self.entropy_fusion(torch.cat([self.h_s(z_hat), f4], 1)).chunk(2, 1)
        return scales, means

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> dict[str, Any]:
        feats = self.side_encoder(side)
        y = self.g_a(torch.cat([x, side], 1))
        z = self.h_a(torch.abs(y))
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self._params(z_hat, feats[3])
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        x_hat = self.g_s(y_hat, feats)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x: torch.Tensor, side: torch.Tensor) -> dict[str, Any]:  # type: ignore[override]
        feats = self.side_encoder(side)
        y = self.g_a(torch.cat([x, side], 1))
        z = self.h_a(torch.abs(y))
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        scales, means = self._params(z_hat, feats[3])
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        return {"strings": [y_strings, z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings, shape, side: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        feats = self.side_encoder(side)
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        scales, means = self._params(z_hat, feats[3])
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, z_hat.dtype, means=means)
        return {"x_hat": self.g_s(y_hat, feats).clamp_(0, 1)}


class _SideCodec(RDCodec):
    """The scale-hyperprior codec with a side view: ``model_cls`` says where the side view enters."""

    model_cls: ClassVar[type[ScaleHyperprior]]
    stride = 64
    n_streams = 2

    def build_model(self, N: int | None, M: int | None, lmbda: float) -> torch.nn.Module:
        if N is None or M is None:  # paper widths: CompressAI's hyperprior widths for this lambda
            dn, dm = zoo_widths("bmshj2018-hyperprior", lmbda, log_distance=False)
            N, M = N or dn, M or dm
        return self.model_cls(N=N, M=M)

    def train_forward(self, model: torch.nn.Module, batch: Batch) -> Mapping[str, Any]:
        if batch.side is None:
            raise TrainingError(f"{self.meta.name} trains on stereo pairs: the training samples have no side view")
        return model(batch.x, batch.side)

    def eval_forward(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> Mapping[str, Any]:
        if side is None:
            # the forward pass needs y for the synthesis; for the dsi codec the likelihoods do not depend on it
            if isinstance(model, JointHyperprior):
                raise TrainingError(f"{self.meta.name}: the likelihood estimate needs the side view")
            side = x
        return model(x, side)

    def encode(self, model, x, side):
        # a Wyner-Ziv encoder (scenario decoder_side_info) never sees the side view
        strings = model.compress(x, side)["strings"] if self.uses_side_at_encoder() else model.compress(x)["strings"]
        return [s[0] for s in strings]

    def decode(self, model, streams, shape, side):
        return model.decompress([[s] for s in streams], shape, side)["x_hat"]


@dataclass(frozen=True)
class SideVariant:
    """One row of the side-information table: where the side view enters the scale-hyperprior codec."""

    name: str  # the method's registered name
    scenario: Scenario  # who sees the side view
    arch: str  # recorded with the weights
    model_cls: type[ScaleHyperprior]
    paper: str
    description: str
    twin: str = "balle2018"  # the codec without the side view, trained and coded the same way

    def class_attrs(self) -> dict[str, Any]:
        meta = MethodMeta(name=self.name, scenario=self.scenario, paper=self.paper, trainable=True,
                          description=self.description, twin=self.twin)
        return {"meta": meta, "arch": self.arch, "model_cls": self.model_cls}


SIDE_VARIANTS: tuple[SideVariant, ...] = (
    SideVariant(
        "joint_balle2018", Scenario.JOINT, "joint-hyperprior", JointHyperprior,
        paper="conditional-coding reference built on J. Ballé et al., ICLR 2018 (scale hyperprior)",
        description="hyperprior codec with the side view at encoder and decoder (analysis, entropy model and "
                    "synthesis conditioned on it); upper reference for decoder-only side information"),
    SideVariant(
        "dsi_balle2018", Scenario.DECODER_SIDE_INFO, "dsi-hyperprior", DSIHyperprior,
        paper="Wyner–Ziv baseline built on J. Ballé et al., ICLR 2018 (scale hyperprior)",
        description="balle2018 encoder and entropy model; the synthesis transform gets side-view features at "
                    "1/2..1/16 resolution (decoder-only side information)"),
)
globals().update(register_family(_SideCodec, SIDE_VARIANTS, __name__))  # JointBalle2018, DsiBalle2018
