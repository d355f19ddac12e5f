"""The one codec interface every method and baseline implements, and the four scenarios.

A codec maps an image tensor (float, [0,1], shape 3xHxW or CxHxW) to bytes and back. The runner, not the
codec, decides what side information each side may see (see `Scenario`)."""
from __future__ import annotations

import enum
import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import torch

from benchmark.contract.budgets import MethodBudget
from benchmark.safety.jsonsafe import jsonable as _jsonable  # the one JSON sanitiser
from benchmark.contract.options import Option, check_options


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
    # the method trained and coded the same way without the side view (a side-information codec's twin): the
    # leaderboard pairs them at equal training
    twin: str = ""

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
            **({"twin": self.twin} if self.twin else {}),
        }


class Codec(ABC):
    """Base class of every codec. Subclasses set `meta` and implement the three verbs.

    Construction: ``cls(protocol=Protocol, **options)``; options come from the CLI or a config. A method declares
    its options once in ``options_spec`` (benchmark/contract/options.py): before the subclass's ``__init__`` body runs, the
    given options are checked against it (unknown name: "did you mean"; wrong type: the option, its type and the
    valid names) and cast to the declared types, so ``__init__`` receives typed values and no work starts on a bad
    option. ``options_spec = None`` (a plugin that checks its own) passes them through unchanged."""

    meta: ClassVar[MethodMeta]
    options_spec: ClassVar[tuple[Option, ...] | None] = None
    # ---- hooks the runner reads (declared here with their defaults; docs/adding_a_method.md) -------------
    #: dataset options the codec must agree with (e.g. DRASIC's number of sources M, layered_wz's sigma2): the
    #: runner forwards `--dataset-option K=V` for each K listed here as a method option unless one was given.
    dataset_options_used: ClassVar[tuple[str, ...]] = ()
    #: True when `estimate_bits` is a decoder-side quantity (e.g. an ideal Slepian–Wolf rate H(Q|Y)): the runner
    #: then passes the decoder's side view to it. The coded bytes never depend on this.
    estimate_uses_decoder_side: ClassVar[bool] = False
    #: a name for this configuration (set in __init__ from the options, e.g. "s0.1"): results are stored under
    #: "<method>.<variant>" so two configurations never overwrite each other's result files. None: no suffix.
    variant: str | None = None

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_checks_options", False):
            cls.__init__ = _checking_options(init)  # type: ignore[method-assign]

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The given options validated against ``options_spec`` and cast to their declared types."""
        if cls.options_spec is None:
            return dict(options)
        return check_options(cls.meta.name, cls.options_spec, options)

    def __init__(self, protocol: Any = None, **options: Any):
        if not self.__dict__.get("_options_checked"):
            self._options_checked = True
            options = type(self).check_options(options)
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

    def compress_with_estimate(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0,
                               point: str) -> tuple[bytes, float | None]:
        """`compress`, plus the likelihood estimate in bits where the encoder's own pass yields it for free (the
        same number `estimate_bits` returns). None: the runner asks `estimate_bits` (which runs the transforms
        again). Only encoder-side information may enter it; `estimate_uses_decoder_side` codecs never use it."""
        return self.compress(x, side=side, source=source, point=point), None

    @classmethod
    def budget_table(cls, protocol: str | None = None) -> Mapping[str, MethodBudget] | None:
        """Learned codecs: the method's budgets under `protocol` (None: its default), one `MethodBudget` per name of
        BUDGET_NAMES (benchmark/contract/budgets.py). ``bench list methods -v`` shows it and the runner checks the budget
        against it before any work; None: the codec is not trained."""
        return None

    def training_plan(self, budget: str) -> dict[str, Any] | None:
        """Learned codecs: the training configuration `budget` would use (steps, λ, crop...). The runner compares it
        with the one stored beside saved weights and retrains when they differ; None: never compared."""
        return None

    def independent_points(self, budget: str) -> list[tuple[str, dict[str, Any]]] | None:
        """Rate points that train independently at `budget` (one model each, none started from another's weights):
        one (rate point, method options) per point, where the options make the codec train and code only that point
        with the model and the bytes a run of all the points has there. `bench sweep run` then makes one job per
        point and merges their results. None (the default): the points train together (a warm-start chain, one
        variable-rate model, no training) and stay in one job."""
        return None

    def truncate(self, data: bytes, point: str) -> bytes:
        """Scalable codecs: a valid stream for `point` that is a prefix of the full stream's payload."""
        raise NotImplementedError(f"{self.meta.name} is not scalable")

    def info(self) -> dict[str, Any]:
        """Extra facts recorded in result files (configuration, widths, ...)."""
        return {"options": {k: _jsonable(v) for k, v in self.options.items()}}

    def decoder_counts(self) -> dict[str, Any] | None:
        """What this instance's `decompress` calls counted (e.g. Slepian–Wolf blocks decoded and failed per rate
        point): a JSON mapping of names to non-negative integers, nested at most 3 levels, at most 1,000 keys in
        all (benchmark.results.schema.counts_problem). Counts must add up: the runner asks every decoder once it has
        decoded its share of the test split (each sandboxed ``decode`` role, or the one decoding instance at
        ``--isolation none``), sums the answers key by key and records them as the result's ``decoding`` record,
        with the number of streams decoded in this run. Anything else is refused naming the method. None (the
        default): the decoder counts nothing."""
        return None


def _checking_options(init: Any) -> Any:
    """Wrap a Codec subclass's ``__init__`` so the outermost call checks and casts the options first."""

    @functools.wraps(init)
    def checked(self: Codec, protocol: Any = None, **options: Any) -> None:
        if not self.__dict__.get("_options_checked"):
            self._options_checked = True
            options = type(self).check_options(options)
        init(self, protocol, **options)

    checked._checks_options = True  # type: ignore[attr-defined]
    return checked


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

