"""Baselines for frames of V views side by side (the LDMIC protocols of datasets/multiview.py, datasets/cityscapes.py
and datasets/kitti.py hand a codec each scene once as one frame, 3 x H x V·W), so that a distributed multi-view
coder's gain is measured against separate and joint coding under the same protocol, rate over all views:

- ``balle2018_per_view`` (scenario ``separate``): the ``balle2018`` codec (CompressAI's scale hyperprior, Ballé et
  al., ICLR 2018) applied to every view of the frame on its own — each view padded and coded alone, so no
  receptive field crosses the seam between views (``balle2018`` run on the whole frame would let it) — all views'
  streams in one container; any V (``--option views``, default the protocol's). Trained exactly as ``balle2018``:
  the LDMIC protocols' training samples are single views (x), the side views unused.
- ``joint_balle2018_pair`` (scenario ``joint``): predictive (conditional) stereo coding of the pair, the structure of
  the joint stereo codecs LDMIC is compared with. View 1 is coded by the scale hyperprior alone; view 2 by
  ``joint_balle2018``'s conditional coder (baselines/joint.py: analysis, entropy model and synthesis conditioned on a
  reference) with the *decoded* view 1, rounded to 8 bits, as its reference at the encoder and the decoder — a
  decodable joint coder (a view cannot be conditioned on the other's original at the decoder). Both models of one
  λ are trained together on λ·255²·(MSE_1 + MSE_2)/2 + (bpp_1 + bpp_2)/2, the reference in training being the
  first model's reconstruction (8-bit rounding passed straight through). Two views only.

Both write CompressAI's rANS strings (y, z per view, views in order) into one suite container per scene; the rate
of a row is bits of all views / (V·H·W)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from compressai.models import CompressionModel, ScaleHyperprior

from benchmark.contract.codec import MethodMeta, Scenario
from benchmark.contract.coding import check_image_header, pad_to
from benchmark.contract.container import Container
from benchmark.contract.data import Batch
from benchmark.contract.determinism import one_thread
from benchmark.contract.options import Option
from benchmark.errors import BitstreamError, ConfigError, TrainingError
from benchmark.training.losses import bits_from_likelihoods, compressai_aux_loss, rd_loss

from . import register_family, zoo_widths
from .balle import _MAX_PIXELS, _GUARD, OPTIONS, Balle2018, RDCodec  # type: ignore[attr-defined]
from .joint import JointHyperprior

VIEWS_OPTION = Option("views", int, None, "views side by side in each frame, V >= 2 (default: the protocol's, else 2)",
                      minimum=2)


class _Frames(RDCodec):
    """Frames of `views` views side by side: the views cut apart, padded, coded in order into one container."""

    fixed_views: ClassVar[int | None] = None  # None: the option `views`
    per_view_streams: ClassVar[int] = 2  # y, z

    def __init__(self, protocol: Any = None, *, views: int | None = None, **options: Any):
        super().__init__(protocol, **options)
        proto_views = (getattr(protocol, "options", None) or {}).get("views")
        self.views = int(views or proto_views or 2) if self.fixed_views is None else self.fixed_views
        if self.fixed_views is not None and int(views or proto_views or self.fixed_views) != self.fixed_views:
            raise ConfigError(f"{self.meta.name} codes {self.fixed_views} views per frame; the protocol or the options "
                              f"ask for {views or proto_views}")
        if self.fixed_views is None:
            self.options["views"] = self.views
            self.variant = None if self.views == 2 else f"V{self.views}"
        self.n_streams = self.per_view_streams * self.views

    def split_views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The V views of a 3 x H x V·W frame, each 1 x 3 x Hp x Wp padded to the stride."""
        self._check_image(x)
        if x.shape[-1] % self.views:
            raise ConfigError(f"{self.meta.name} codes frames of {self.views} views side by side; the width "
                              f"{x.shape[-1]} is not a multiple of {self.views}")
        return [pad_to(v, self.stride) for v in x.detach().float().cpu()[None].chunk(self.views, dim=-1)]

    def _read(self, data: bytes) -> tuple[Container, list[list[bytes]], tuple[int, int], tuple[int, int]]:
        """(container, streams per view with the guard appended, (H, view W), latent shape of a padded view)."""
        self._require_models()
        c = Container.from_bytes(data, self.meta.name)
        check_image_header(self.meta.name, c, n_points=len(self.models), n_streams=self.n_streams,
                           max_pixels=_MAX_PIXELS, stride=self.stride)
        for i, s in enumerate(c.streams):  # CompressAI's rANS writes 32-bit words and flushes a 64-bit state
            if len(s) < 8 or len(s) % 4:
                raise BitstreamError(f"{self.meta.name}: stream {i} has {len(s)} bytes; an rANS stream is a whole "
                                     "number of 32-bit words, at least 8 bytes (corrupt or truncated bitstream)")
        _, h, w = c.shape
        if w % self.views:
            raise BitstreamError(f"{self.meta.name}: header width {w} is not a multiple of {self.views} views")
        wv = w // self.views
        k = self.per_view_streams
        streams = [[s + _GUARD for s in c.streams[v * k:(v + 1) * k]] for v in range(self.views)]
        return c, streams, (h, wv), self.latent_shape(h + (-h) % self.stride, wv + (-wv) % self.stride)

    def _frame(self, views: list[torch.Tensor], h: int, wv: int) -> torch.Tensor:
        if not all(tuple(v.shape[-2:]) == (h + (-h) % self.stride, wv + (-wv) % self.stride) and torch.isfinite(v).all()
                   for v in views):
            raise BitstreamError(f"{self.meta.name}: the payload decoded to an invalid image; the bitstream is corrupt")
        return torch.cat([v[0, :, :h, :wv] for v in views], dim=-1).clamp(0.0, 1.0).contiguous()

    def info(self) -> dict[str, Any]:
        base = super().info()
        base["views"] = self.views
        base["rate_notes"] = (f"one container per scene holding every view's CompressAI rANS strings (y, z per view, "
                              f"{self.views} views); each view padded to a multiple of {self.stride}; bpp = bits of "
                              "all views / (views*H*W)")
        return base


class _PerView(_Frames):
    """A single-image member of the Ballé family applied to every view on its own."""

    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        return self.compress_with_estimate(x, point=point)[0]  # the estimate comes from the same pass

    def compress_with_estimate(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0,
                               point: str) -> tuple[bytes, float | None]:
        self._require_models()
        idx, views = self.point_index(point), self.split_views(x)
        streams: list[bytes] = []
        bits = 0.0
        with torch.no_grad(), one_thread():
            for v in views:  # each view alone: its strings are a function of its own pixels only
                s, lik = self.encode_with_likelihoods(self.models[idx], v, None)
                streams += [bytes(b) for b in s]
                bits += float(bits_from_likelihoods(lik))
        return Container(self.meta.name, idx, tuple(int(d) for d in x.shape), streams).to_bytes(), bits

    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        c, streams, (h, wv), shape = self._read(data)
        try:
            with torch.no_grad(), one_thread():
                views = [self.decode(self.models[c.point], s, shape, None) for s in streams]
        except Exception as exc:  # the rANS decoder or the networks choked on a damaged payload
            raise BitstreamError(f"{self.meta.name}: cannot decode the payload ({type(exc).__name__}: {exc}); "
                                 "the bitstream is corrupt or was made with other weights") from exc
        return self._frame(views, h, wv)

    def estimate_bits(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> float | None:
        self._require_models()
        model = self.models[self.point_index(point)]
        with torch.no_grad(), one_thread():
            return float(sum(float(bits_from_likelihoods(self.likelihoods(model, v, None))) for v in self.split_views(x)))

    def reconstruct(self, x: torch.Tensor, *, side: torch.Tensor | None = None, point: str) -> torch.Tensor:
        self._require_models()
        model, h, wv = self.models[self.point_index(point)], x.shape[-2], x.shape[-1] // self.views
        with torch.no_grad(), one_thread():
            return torch.cat([self.eval_forward(model, v, None)["x_hat"][0, :, :h, :wv]
                              for v in self.split_views(x)], dim=-1).clamp(0.0, 1.0)


def round_8bit(x: torch.Tensor) -> torch.Tensor:
    """x clamped and rounded to the 8-bit grid; the rounding's gradient passes straight through."""
    x = x.clamp(0.0, 1.0)
    return x + (torch.round(x * 255.0) / 255.0 - x).detach()


class PairHyperprior(CompressionModel):
    """Predictive stereo coding: view 1 by a scale hyperprior (`base`), view 2 by the conditional coder (`cond`,
    joint_balle2018's JointHyperprior) with view 1's 8-bit reconstruction as its reference. CompressionModel gives
    the auxiliary loss over both entropy bottlenecks and the loading of their coder tables."""

    def __init__(self, N: int, M: int):
        super().__init__()
        self.base = ScaleHyperprior(N=N, M=M)
        self.cond = JointHyperprior(N=N, M=M)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, Any]:
        """x_hat: both views' reconstructions along the batch; likelihoods of both."""
        a = self.base(x1)
        b = self.cond(x2, round_8bit(a["x_hat"]))
        return {"x_hat": torch.cat([a["x_hat"], b["x_hat"]], 0), "likelihoods": [a["likelihoods"], b["likelihoods"]]}

    def encode(self, x1: torch.Tensor, x2: torch.Tensor) -> list[bytes]:
        """[y1, z1, y2, z2]: view 2 coded with the reference the decoder will have (view 1 decoded from its strings)."""
        first = self.base.compress(x1)
        ref = round_8bit(self.base.decompress(first["strings"], first["shape"])["x_hat"])
        second = self.cond.compress(x2, ref)
        return [s[0] for s in first["strings"]] + [s[0] for s in second["strings"]]

    def decode(self, streams: list[list[bytes]], shape: tuple[int, int]) -> list[torch.Tensor]:
        ref = round_8bit(self.base.decompress([[s] for s in streams[0]], shape)["x_hat"])
        return [ref, self.cond.decompress([[s] for s in streams[1]], shape, ref)["x_hat"]]


class _Pair(_Frames):
    """``joint_balle2018_pair``: the PairHyperprior codec on frames of two views."""

    fixed_views = 2

    def build_model(self, N: int | None, M: int | None, lmbda: float) -> torch.nn.Module:
        if N is None or M is None:  # paper widths: CompressAI's hyperprior widths for this λ
            dn, dm = zoo_widths("bmshj2018-hyperprior", lmbda, log_distance=False)
            N, M = N or dn, M or dm
        return PairHyperprior(N, M)

    def make_loss(self, lmbda: float):
        metric = "ms-ssim" if self.metric == "ms-ssim" else "mse"

        def loss_fn(model: torch.nn.Module, batch: Batch) -> dict[str, Any]:
            if batch.side is None or batch.side.shape[1] != 3:
                raise TrainingError(f"{self.meta.name} trains on stereo pairs: x and one side view (3 channels); got "
                                    f"{'no side view' if batch.side is None else f'{batch.side.shape[1]} channels'}")
            out = model(batch.x, batch.side)
            res = rd_loss(out, torch.cat([batch.x, batch.side], 0), lmbda, metric)  # means over both views
            res["aux_loss"] = compressai_aux_loss(model)
            return res

        return loss_fn

    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        self._require_models()
        idx, (v1, v2) = self.point_index(point), self.split_views(x)
        with torch.no_grad(), one_thread():
            streams = self.models[idx].encode(v1, v2)
        return Container(self.meta.name, idx, tuple(int(d) for d in x.shape), [bytes(s) for s in streams]).to_bytes()

    def compress_with_estimate(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0,
                               point: str) -> tuple[bytes, float | None]:
        return self.compress(x, point=point), self.estimate_bits(x, point=point)

    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        c, streams, (h, wv), shape = self._read(data)
        try:
            with torch.no_grad(), one_thread():
                views = self.models[c.point].decode(streams, shape)
        except Exception as exc:  # the rANS decoder or the networks choked on a damaged payload
            raise BitstreamError(f"{self.meta.name}: cannot decode the payload ({type(exc).__name__}: {exc}); "
                                 "the bitstream is corrupt or was made with other weights") from exc
        return self._frame(views, h, wv)

    def _forward(self, x: torch.Tensor, point: str) -> dict[str, Any]:
        self._require_models()
        model = self.models[self.point_index(point)]
        with torch.no_grad(), one_thread():
            return model(*self.split_views(x))

    def estimate_bits(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> float | None:
        """-log2 of the likelihoods of both views' quantised latents (eval mode: view 2's reference is view 1's
        reconstruction from its quantised latents, as decoded)."""
        return float(bits_from_likelihoods(self._forward(x, point)["likelihoods"]))

    def reconstruct(self, x: torch.Tensor, *, side: torch.Tensor | None = None, point: str) -> torch.Tensor:
        h, wv = x.shape[-2], x.shape[-1] // 2
        x_hat = self._forward(x, point)["x_hat"]
        return torch.cat([x_hat[0, :, :h, :wv], x_hat[1, :, :h, :wv]], dim=-1).clamp(0.0, 1.0)


@dataclass(frozen=True)
class ViewsBaseline:
    """One row of the table: a baseline for frames of views side by side."""

    name: str
    base: type
    scenario: Scenario
    arch: str
    paper: str
    description: str
    twin: str = ""

    def class_attrs(self) -> dict[str, Any]:
        meta = MethodMeta(name=self.name, scenario=self.scenario, paper=self.paper, trainable=True,
                          description=self.description, twin=self.twin,
                          licence="Apache-2.0 (suite); CompressAI BSD-3-Clause-Clear")
        attrs: dict[str, Any] = {"meta": meta, "arch": self.arch}
        if issubclass(self.base, _PerView):
            attrs.update(options_spec=(*OPTIONS, VIEWS_OPTION), dataset_options_used=("views",))
        return attrs


class _Balle2018Views(_PerView, Balle2018):  # type: ignore[misc, valid-type]
    """balle2018's model, transforms and coder (baselines/balle.py) per view."""


VIEWS_BASELINES: tuple[ViewsBaseline, ...] = (
    ViewsBaseline(
        "balle2018_per_view", _Balle2018Views, Scenario.SEPARATE, "bmshj2018-hyperprior",
        paper="J. Ballé, D. Minnen, S. Singh, S. J. Hwang, N. Johnston, Variational Image Compression with a Scale "
              "Hyperprior, ICLR 2018 (CompressAI bmshj2018-hyperprior), every view coded on its own",
        description="separate coding of every view of a multi-view frame with the scale hyperprior (balle2018 per "
                    "view, no receptive field across views); rate over all views"),
    ViewsBaseline(
        "joint_balle2018_pair", _Pair, Scenario.JOINT, "pair-hyperprior",
        paper="predictive stereo coding built on J. Ballé et al., ICLR 2018 (scale hyperprior) and the suite's "
              "joint_balle2018 conditional coder",
        description="joint (predictive) coding of a stereo pair: view 1 by the scale hyperprior, view 2 conditioned "
                    "on the decoded view 1 at encoder and decoder; rate over both views",
        twin="balle2018_per_view"),
)
for _row in VIEWS_BASELINES:
    globals().update(register_family(_row.base, (_row,), __name__))  # Balle2018PerView, JointBalle2018Pair
