"""Classical image codecs through Pillow: JPEG, WebP, AVIF, JPEG 2000 (scenario `separate`), one row each of the
table ``PILLOW`` (format, sweep, save() arguments).

The payload is exactly the file Pillow writes; the suite's container adds a ~10-byte header (reported
separately as bpp_payload vs bpp). Quality sweeps follow the field: JPEG and WebP quality 5..95 step 5
(CompressAI's Kodak anchors), AVIF quality 10..90 step 10, JPEG 2000 compression ratios 200:1 .. 8:1."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from PIL import Image, features

from benchmark.contract.codec import Codec, MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ConfigError
from benchmark.contract.options import Option

from . import register_family


def _to_pil(x: torch.Tensor) -> Image.Image:
    arr = (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0], mode="L")
    if arr.shape[0] == 3:
        return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)), mode="RGB")
    raise ConfigError(f"classical codecs code 1- or 3-channel images, got {arr.shape[0]} channels")


class PillowCodec(Codec):
    """A Pillow format as a codec; the format, its sweep and its save() arguments come from a row of ``PILLOW``."""

    pil_format: ClassVar[str]
    feature: ClassVar[str | None] = None
    max_side: ClassVar[tuple[int, str] | None] = None  # (pixels per side, the library whose limit it is)
    sweep: ClassVar[tuple[int, ...]]
    point_key: ClassVar[str] = "q"  # rate points are named <point_key>=<value>
    save_args: ClassVar[Callable[[int], dict[str, Any]]]
    options_spec: ClassVar[tuple[Option, ...]] = (
        Option("qualities", list[int], None, "rate points: the quality values (JPEG 2000: compression ratios) "
               "of the sweep (default: the field's sweep)", minimum=1, unique=True),
    )

    def __init__(self, protocol: Any = None, qualities: list[int] | None = None, **options: Any):
        super().__init__(protocol, **options)
        if self.feature and not features.check(self.feature):
            raise ConfigError(f"this Pillow build cannot write {self.pil_format}; install Pillow with {self.feature} support")
        self.qualities = list(qualities) if qualities is not None else list(self.sweep)

    def rate_points(self) -> list[str]:
        return [f"{self.point_key}={q}" for q in self.qualities]

    def encode_file(self, x: torch.Tensor, point: str) -> bytes:
        """The bytes Pillow writes for `x` at `point` (exposed so tests can compare against Pillow)."""
        q = self._quality(point)
        h, w = (int(d) for d in x.shape[-2:])
        if self.max_side is not None and max(h, w) > self.max_side[0]:
            raise ConfigError(f"{self.meta.name} cannot code a {w}x{h} image: {self.max_side[1]} allows at most "
                              f"{self.max_side[0]} pixels per side; crop or tile the image, or use a codec without "
                              "that limit (e.g. jpeg2000)")
        buf = io.BytesIO()
        try:
            _to_pil(x).save(buf, format=self.pil_format, **self.save_args(q))
        except (OSError, ValueError) as exc:  # the encoder library's refusal: not a file-system error
            raise ConfigError(f"{self.meta.name}: Pillow's {self.pil_format} encoder refused a {w}x{h} image at {point} "
                              f"({exc})") from exc
        return buf.getvalue()

    def _quality(self, point: str) -> int:
        if point not in self.rate_points():
            raise ConfigError(f"{self.meta.name}: unknown rate point {point!r}; valid: {', '.join(self.rate_points())}")
        return int(point.split("=", 1)[1])

    def compress(self, x, *, side=None, source=0, point):
        payload = self.encode_file(x, point)
        idx = self.rate_points().index(point)
        return Container(self.meta.name, idx, tuple(x.shape), [payload]).to_bytes()

    def decompress(self, data, *, side=None, source=0):
        c = Container.from_bytes(data, self.meta.name)
        if len(c.streams) != 1 or len(c.shape) != 3:
            raise BitstreamError(f"{self.meta.name}: expected one image stream and a CxHxW shape, got {len(c.streams)} streams, shape {c.shape}")
        try:
            with Image.open(io.BytesIO(c.streams[0])) as im:
                # the payload's own header (size, channels) must agree with the container's, before decoding
                if (im.size[1], im.size[0]) != tuple(c.shape[1:]) or len(im.getbands()) != c.shape[0]:
                    raise BitstreamError(
                        f"{self.meta.name}: the {self.pil_format} header announces {len(im.getbands())}x{im.size[1]}x"
                        f"{im.size[0]} (CxHxW) but the container says {c.shape}; the bitstream is corrupt")
                im.load()
                im = im.convert("L" if c.shape[0] == 1 else "RGB")
        except BitstreamError:
            raise
        except Exception as exc:  # Pillow raises many types on corrupt input
            raise BitstreamError(f"{self.meta.name}: corrupt {self.pil_format} payload: {exc}") from exc
        arr = np.asarray(im, dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[None]
        else:
            arr = arr.transpose(2, 0, 1)
        out = torch.from_numpy(np.ascontiguousarray(arr)).float() / 255.0
        if tuple(out.shape) != tuple(c.shape):
            raise BitstreamError(f"{self.meta.name}: decoded {tuple(out.shape)} but header says {c.shape}")
        return out

    def info(self):
        return {**super().info(), "qualities": self.qualities, "pillow_format": self.pil_format, "save_args": self.save_args(self.qualities[0])}


@dataclass(frozen=True)
class PillowFormat:
    """One row of the classical table: a format Pillow writes, registered as a method."""

    name: str  # the method's registered name
    pil_format: str  # Pillow's format name
    sweep: tuple[int, ...]  # the default rate points: qualities, or compression ratios (point_key "ratio")
    save_args: Callable[[int], dict[str, Any]]  # Pillow's save() arguments at one point of the sweep
    paper: str
    licence: str
    description: str
    feature: str | None = None  # the Pillow feature the format needs (features.check)
    max_side: tuple[int, str] | None = None  # (pixels per side, the library whose limit it is)
    point_key: str = "q"

    def class_attrs(self) -> dict[str, Any]:
        meta = MethodMeta(self.name, Scenario.SEPARATE, paper=self.paper, licence=self.licence, description=self.description)
        return {"meta": meta, "pil_format": self.pil_format, "sweep": self.sweep, "save_args": staticmethod(self.save_args),
                "feature": self.feature, "max_side": self.max_side, "point_key": self.point_key}


PILLOW: tuple[PillowFormat, ...] = (
    PillowFormat("jpeg", "JPEG", tuple(range(5, 100, 5)), lambda q: {"quality": q},
                 paper="ITU-T T.81 (libjpeg via Pillow)", licence="Pillow (HPND) / libjpeg",
                 description="JPEG, 4:2:0, Pillow defaults, quality 5..95 step 5",
                 max_side=(65500, "libjpeg (JPEG_MAX_DIMENSION)")),
    PillowFormat("webp", "WEBP", tuple(range(5, 100, 5)), lambda q: {"quality": q, "method": 6, "lossless": False},
                 paper="WebP (libwebp via Pillow)", licence="Pillow / libwebp (BSD)",
                 description="lossy WebP, method 6, quality 5..95 step 5",
                 feature="webp", max_side=(16383, "libwebp (WEBP_MAX_DIMENSION)")),
    PillowFormat("avif", "AVIF", tuple(range(10, 100, 10)), lambda q: {"quality": q, "speed": 6, "subsampling": "4:4:4"},
                 paper="AV1 Image File Format (libavif via Pillow)", licence="Pillow / libavif (BSD)",
                 description="AVIF, 4:4:4, speed 6, quality 10..90 step 10", feature="avif"),
    # JPEG 2000's points are compression ratios (uncompressed 24-bit size / coded size): higher = fewer bits
    PillowFormat("jpeg2000", "JPEG2000", (200, 150, 100, 75, 50, 35, 25, 16, 12, 8),
                 lambda r: {"quality_mode": "rates", "quality_layers": [r], "irreversible": True},
                 paper="ISO/IEC 15444-1 (OpenJPEG via Pillow)", licence="Pillow / OpenJPEG (BSD)",
                 description="JPEG 2000, irreversible 9/7, one layer at compression ratios 200:1 .. 8:1",
                 feature="jpg_2000", point_key="ratio"),
)
globals().update(register_family(PillowCodec, PILLOW, __name__))  # Jpeg, Webp, Avif, Jpeg2000
