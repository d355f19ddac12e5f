"""The one codec interface every method and baseline implements, and the four scenarios.

A codec maps an image tensor (float, [0,1], shape 3xHxW or CxHxW) to bytes and back. The runner, not the
codec, decides what side information each side may see (see `Scenario`)."""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

import torch

from .jsonsafe import jsonable as _jsonable  # the one JSON sanitiser


class Scenario(str, enum.Enum):
    """Who sees what. The honesty core of a distributed-source-coding benchmark."""

    SEPARATE = "separate"  # encoder: x; decoder: bits(x)
    DECODER_SIDE_INFO = "decoder_side_info"  # Wyner-Ziv: encoder x; decoder bits(x), y
    JOINT = "joint"  # encoder x, y; decoder bits(x), y (conditional-coding reference)
    DISTRIBUTED = "distributed"  # M encoders (source m sees x_m only), one decoder

    @property
    def encoder_sees_side(self) -> bool:
        return self is Scenario.JOINT

    @property
    def decoder_sees_side(self) -> bool:
        return self in (Scenario.DECODER_SIDE_INFO, Scenario.JOINT)

    @property
    def rate_accounting(self) -> str:
        return {
            Scenario.SEPARATE: "bits of x only; no side information exists for this codec",
            Scenario.DECODER_SIDE_INFO: "bits of x only; side view y is available uncoded at the decoder and costs nothing",
            Scenario.JOINT: "bits of x only; side view y is available uncoded at encoder and decoder and costs nothing",
            Scenario.DISTRIBUTED: "bits of each source's own stream; sources are coded independently and decoded by one shared decoder",
        }[self]


@dataclass(frozen=True)
class MethodMeta:
    """Declarative record of a method (cf. MTEB ModelMeta)."""

    name: str
    scenario: Scenario
    paper: str = ""
    licence: str = "Apache-2.0 (this suite's implementation)"
    trainable: bool = False
    variable_rate: bool = False  # one model covers every rate point
    scalable: bool = False  # one stream whose prefixes decode at every rate point
    description: str = ""
    modalities: tuple[str, ...] = ("image",)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scenario": self.scenario.value,
            "paper": self.paper,
            "licence": self.licence,
            "trainable": self.trainable,
            "variable_rate": self.variable_rate,
            "scalable": self.scalable,
            "description": self.description,
        }


class Codec(ABC):
    """Base class of every codec. Subclasses set `meta` and implement the three verbs.

    Construction: ``cls(protocol=Protocol, **options)``; options come from the CLI or a config."""

    meta: ClassVar[MethodMeta]

    def __init__(self, protocol: Any = None, **options: Any):
        self.protocol = protocol
        self.options = dict(options)

    @abstractmethod
    def rate_points(self) -> list[str]:
        """Names of the operating points, highest distortion first is not required but customary."""

    @abstractmethod
    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        """Code one image `x` (CxHxW, [0,1]) at `point` to a self-describing byte string."""

    @abstractmethod
    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        """Decode bytes from `compress` into an image tensor (CxHxW); raise BitstreamError on bad input."""

    # ---- optional hooks -------------------------------------------------------------------------
    def estimate_bits(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> float | None:
        """Likelihood (ideal code length) estimate of the bits for `x`, where the codec has one."""
        return None

    def truncate(self, data: bytes, point: str) -> bytes:
        """Scalable codecs: a valid stream for `point` that is a prefix of the full stream's payload."""
        raise NotImplementedError(f"{self.meta.name} is not scalable")

    def info(self) -> dict[str, Any]:
        """Extra facts recorded in result files (configuration, widths, ...)."""
        return {"options": {k: _jsonable(v) for k, v in self.options.items()}}


class LearnedCodec(Codec):
    """A codec with weights: trained by `fit`, saved and loaded as safetensors (never pickle)."""

    @abstractmethod
    def fit(self, train: Iterable, val: Iterable | None, *, budget: str, device: str, workdir: Path, seed: int = 0) -> dict[str, Any]:
        """Train on `train` (an iterable dataset of Samples); return training info for the result file."""

    @abstractmethod
    def save_weights(self, directory: Path) -> Path:
        """Write safetensors + JSON manifest into `directory`; return the manifest path."""

    @abstractmethod
    def load_weights(self, directory: Path) -> dict[str, Any]:
        """Load weights saved by `save_weights`; refuse foreign or tampered files with WeightsError."""

