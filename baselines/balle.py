"""CompressAI's Ballé family as learned baselines (scenario `separate`), trained through the suite's trainer.

The zoo table ``ZOO`` (at the end) makes one registered method per CompressAI architecture:

- ``balle2017``: bmshj2018-factorized (Ballé et al., ICLR 2017 architecture as CompressAI implements it)
- ``balle2018``: bmshj2018-hyperprior (scale hyperprior, Ballé et al., ICLR 2018)
- ``mbt2018_mean``: mbt2018-mean (mean-scale hyperprior of Minnen et al., NeurIPS 2018, *without* their context
  model; the name ``minnen2018`` is accepted with a deprecation warning)

One model per λ (CompressAI's MSE table, quality 1..8 → 0.0018 ... 0.18; loss λ·255²·MSE + bpp). Rate points
are named ``lambda=<λ>``. Images are padded to the stride (64 for hyperprior models, 16 for the factorized
one) by edge replication and cropped back. After training, ``update(force=True, update_quantiles=True)``
computes the entropy coder's tables once; they are stored with the weights, so the tables used to decode
are exactly those used to encode. The Gaussian conditional's scale table has ``SCALE_LEVELS`` = 256
log-spaced scales over CompressAI's range [0.11, 256] instead of its default 64: the coder rounds every
predicted scale up to the next table entry, and with 64 entries (13 % apart) that alone makes the bytes
2-4 % longer than the likelihood estimate; with 256 (3 % apart) the gap is about 1 %. The networks and the
training loss are CompressAI's; only the coder's table is finer. The bytes are CompressAI's rANS strings
(one container stream per string: y, then z) in the suite's container.

``RDCodec`` is the reusable base: a subclass says how to build a model and how to run it; the base
handles budgets, training (benchmark.training.trainer), weights (benchmark.training.weights), padding, the container and the
likelihood estimate. ``baselines/joint.py`` and methods/ndic build on it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import torch

from benchmark.contract.budgets import MODEL_STAGE, MethodBudget, checked_table, method_budget
from benchmark.contract.codec import LearnedCodec, MethodMeta, Scenario
from benchmark.contract.coding import check_image_header, check_side_shape, pad_to, point_index
from benchmark.contract.container import Container
from benchmark.contract.data import Batch
from benchmark.contract.determinism import one_thread
from benchmark.errors import BitstreamError, ConfigError, WeightsError
from benchmark.contract.options import Option, train_options
from benchmark.contract.registry import METHODS
from benchmark.training.trainer import check_device, train
from benchmark.training.losses import bits_from_likelihoods, rd_loss_fn
from benchmark.contract.budgets import TrainConfig, resolve_budget
from benchmark.training.weights import LoadedWeights, load_into, load_weights, save_weights, state_dict_sha256
from benchmark.training.weight_checks import entropy_range_problem

from . import COMPRESSAI_LAMBDAS, register_family, zoo_widths
from .convert import foreign_spec, import_checkpoint

SCALE_LEVELS = 256  # entries of the Gaussian conditional's scale table (CompressAI's default: 64)
_MAX_PIXELS = 1 << 26  # refuse to decode implausible sizes from a damaged header
_GUARD = b"\x00" * 256  # appended (not transmitted) so a damaged rANS stream cannot read past its buffer

# Budgets of the Ballé family. N/M None: CompressAI's zoo widths per quality (paper). The quick budget is
# sized so that `bench run` trains five learned methods in about 7 minutes on 2 CPU cores.
_SMALL_TRAIN = dict(batch_size=8, crop=64, lr=1e-3, aux_lr=1e-2, schedule="cosine", clip_grad=1.0,
                    val_samples=4, checkpoint_every=100, restore="last")
_COMPRESSAI_SOURCE = ("CompressAI's zoo training as the suite approximates it (CompressAI documentation, model zoo: "
                      "256x256 random crops, batch 16, Adam lr 1e-4, lr decayed on a validation-loss plateau; "
                      "the zoo's widths and 8 MSE λ); steps, aux lr 1e-3 and clipping: ours")


def compressai_paper(crop: int | None = 256, note: str = "") -> MethodBudget:
    """CompressAI's recipe (see _COMPRESSAI_SOURCE); `crop` None trains on whole samples where a protocol's are
    smaller than 256x256 (`note` says so in the source)."""
    return MethodBudget({MODEL_STAGE: TrainConfig(steps=1_000_000, batch_size=16, crop=crop, lr=1e-4, aux_lr=1e-3,
                                                  schedule="plateau", gamma=0.1, plateau_patience=10, clip_grad=1.0,
                                                  val_every=5000, val_samples=64, checkpoint_every=1000,
                                                  restore="best", num_workers=4)},
                        {"N": None, "M": None, "lambdas": COMPRESSAI_LAMBDAS, "warm_start": False},
                        source=_COMPRESSAI_SOURCE + (f"; {note}" if note else ""))


# one MethodBudget per budget (benchmark/contract/budgets.py): stage "model" (one model per λ, each trained alike); model:
# N, M (None: the zoo's), lambdas, warm_start. `paper` here is the entry for protocols of arbitrary image sizes (a
# folder of images, Kodak); `budget_table(protocol)` puts the protocol's own paper entry in (PAPER_BY_PROTOCOL).
BUDGETS: dict[str, MethodBudget] = checked_table({
    "smoke": MethodBudget({MODEL_STAGE: TrainConfig(steps=150, **_SMALL_TRAIN)},
                          {"N": 32, "M": 48, "lambdas": (0.0035, 0.0130, 0.0483), "warm_start": False}),
    "quick": MethodBudget({MODEL_STAGE: TrainConfig(steps=500, val_every=250, **_SMALL_TRAIN)},
                          {"N": 48, "M": 64, "lambdas": (0.0035, 0.0130, 0.0483), "warm_start": True}),
    "paper": compressai_paper(256),
}, "balle")

# The NDIC authors trained their Ballé 2017 / 2018 baselines on KITTI Stereo and Cityscapes at 128x256 with their
# own training script (ipc-lab/NDIC, configs/config.yaml and main.py; the published Ballé curves on these protocols
# are theirs): whole 128x256 images with a random horizontal flip of x and y together, batch 1, Adam with amsgrad,
# lr 1e-4, ReduceLROnPlateau(factor 0.1, patience 10, min_lr 1e-7) on the validation loss once per epoch over the
# whole validation split, no gradient clipping, 192 filters. λ lists (MSE trainings): their Results.md.
NDIC_BALLE2017_LAMBDAS = (0.0002, 0.0004, 0.0008, 0.0014, 0.002, 0.0026, 0.0032, 0.0036, 0.0044, 0.0048)
NDIC_BALLE2018_LAMBDAS = (0.0002, 0.0005, 0.0009, 0.001, 0.0011, 0.0014, 0.002, 0.0026, 0.0032, 0.0038, 0.0044,
                          0.0048)
NDIC_AUTHORS_SOURCE = ("NDIC authors' training (N. Mital et al., Neural Distributed Image Compression Using Common "
                       "Information, DCC 2022; their repository ipc-lab/NDIC: configs/config.yaml, main.py, "
                       "Results.md): whole 128x256 images, hflip, batch 1, Adam amsgrad lr 1e-4, plateau x0.1 "
                       "patience 10 min_lr 1e-7 per epoch on the whole val split, no clipping, 192 filters, their "
                       "MSE λ list; ours: 500k steps (their config runs 50,000 epochs, i.e. until stopped), aux lr 1e-3")


def ndic_authors_train(epoch: int, val: int) -> TrainConfig:
    """The NDIC authors' training loop (see NDIC_AUTHORS_SOURCE) on a protocol with `epoch` training samples and
    `val` validation samples (validated once per epoch on all of them)."""
    return TrainConfig(steps=500_000, batch_size=1, crop=None, lr=1e-4, aux_lr=1e-3, amsgrad=True, schedule="plateau",
                       gamma=0.1, plateau_patience=10, min_lr=1e-7, clip_grad=None, hflip=True, val_every=epoch,
                       val_samples=val, checkpoint_every=2000, restore="best", num_workers=4)


# (training samples per epoch, validation samples) of the 128x256 stereo protocols the NDIC authors trained on; a
# KITTI stereo folder (stereo/kitti-ndic) is taken to hold the KITTI split (ours)
NDIC_PROTOCOLS = {"kitti-stereo/ndic": (1576, 790), "cityscapes/ndic": (2975, 500), "stereo/kitti-ndic": (1576, 790)}


def _ndic_baseline(protocol: str, lambdas: tuple[float, ...]) -> MethodBudget:
    return MethodBudget({MODEL_STAGE: ndic_authors_train(*NDIC_PROTOCOLS[protocol])},
                        {"N": 192, "M": 192, "lambdas": lambdas, "warm_start": False}, source=NDIC_AUTHORS_SOURCE)


def paper_for(protocol: str | None, factorized: bool) -> MethodBudget:
    """The Ballé family's paper budget under `protocol`: the NDIC authors' baselines on their 128x256 protocols
    (Ballé 2017's λ list for the factorized model, Ballé 2018's for the hyperprior ones: for mbt2018_mean and the
    side-information variants, ours), CompressAI's recipe on whole samples where a protocol's are smaller than its
    256x256 crops, CompressAI's crops elsewhere."""
    if protocol in NDIC_PROTOCOLS:
        return _ndic_baseline(protocol, NDIC_BALLE2017_LAMBDAS if factorized else NDIC_BALLE2018_LAMBDAS)
    return PAPER_BY_PROTOCOL.get(protocol or "", BUDGETS["paper"])


PAPER_BY_PROTOCOL: dict[str, MethodBudget] = {
    "celeba-hq/neural-dsc": compressai_paper(None, "whole 128x256 samples (x = the top half of a 256x256 face): "
                                                   "smaller than CompressAI's crops; no published Ballé training on "
                                                   "this protocol (ours)"),
    "middlebury-sample/stereo": compressai_paper(None, "whole 128x128 training tiles of the embedded pair (ours)"),
}

_TRAIN_OPTIONS = ("steps", "batch_size", "crop", "lr", "aux_lr", "schedule", "val_every", "val_samples", "clip_grad",
                  "checkpoint_every", "hflip", "num_workers", "restore")
# the options of the Ballé family, declared once (benchmark/contract/options.py): checked and cast before __init__ runs
OPTIONS: tuple[Option, ...] = (
    Option("lambdas", list[float], None, "rate points: RD trade-offs λ (default: the budget's)", minimum=0,
           exclusive=True, unique_sorted=True),
    Option("N", int, None, "channels of the transforms (default: the budget's; paper: CompressAI's zoo widths)", minimum=1),
    Option("M", int, None, "channels of the latent (default: the budget's)", minimum=1),
    Option("metric", str, "mse", "distortion the loss trains for", choices=("mse", "ms-ssim")),
    *train_options(*_TRAIN_OPTIONS),
    Option("warm_start", bool, None, "start each λ from the model trained just below it (default: the budget's)"),
    Option("point", str, None, "train and code only this rate point of `lambdas` (e.g. lambda=0.013), with the model "
           "and bytes the full run has there: a per-point sweep job (needs warm_start=false)"),
)


_GAUSSIAN_TABLES: dict[tuple, tuple[torch.Tensor, ...]] = {}
_GAUSSIAN_BUFFERS = ("scale_table", "_quantized_cdf", "_offset", "_cdf_length")


def _set_gaussian_tables(gc: Any) -> None:
    """Give a GaussianConditional the coder tables of the SCALE_LEVELS-entry scale table (cached per setting)."""
    from compressai.models.base import get_scale_table

    key = (SCALE_LEVELS, float(gc.tail_mass), int(gc.entropy_coder_precision), float(gc.lower_bound_scale.bound))
    if key not in _GAUSSIAN_TABLES:
        gc.update_scale_table(get_scale_table(levels=SCALE_LEVELS), force=True)
        _GAUSSIAN_TABLES[key] = tuple(getattr(gc, b).detach().cpu().clone() for b in _GAUSSIAN_BUFFERS)
    for name, value in zip(_GAUSSIAN_BUFFERS, _GAUSSIAN_TABLES[key]):
        setattr(gc, name, value.clone().to(getattr(gc, name).device))


def point_name(lmbda: float) -> str:
    return f"lambda={lmbda:g}"


class RDCodec(LearnedCodec):
    """Base of the suite's CompressAI-style codecs: one model per λ, real rANS bytes, likelihood estimates."""

    meta: ClassVar[MethodMeta]
    stride: ClassVar[int] = 64
    n_streams: ClassVar[int] = 2
    arch: ClassVar[str] = ""
    budgets: ClassVar[dict[str, MethodBudget]] = BUDGETS  # smoke and quick; paper per protocol (budget_table)
    options_spec: ClassVar[tuple[Option, ...]] = OPTIONS
    test_options: ClassVar[dict[str, Any]] = {"lambdas": (0.0035, 0.0483), "N": 16, "M": 24}
    # options that make `fit` take a few steps (the contract test trains every learned codec briefly)
    test_fit_options: ClassVar[dict[str, Any]] = {"steps": 2, "batch_size": 2, "crop": 64, "val_every": 1000,
                                                  "checkpoint_every": 1000}

    def __init__(self, protocol: Any = None, *, lambdas: tuple[float, ...] | None = None, N: int | None = None,
                 M: int | None = None, metric: str | None = None, warm_start: bool | None = None, point: str | None = None,
                 **options: Any):
        # the options arrive checked and typed (OPTIONS, via Codec.options_spec)
        if warm_start is not None:
            options["warm_start"] = warm_start
        if point is not None:
            options["point"] = point
        super().__init__(protocol, lambdas=lambdas, N=N, M=M, metric=metric or "mse", **options)
        self._opt_lambdas = lambdas
        self._opt_N, self._opt_M = N, M
        self.metric = metric or "mse"
        self._train_overrides = {k: options[k] for k in _TRAIN_OPTIONS if k in options}
        crop = self._train_overrides.get("crop")  # checked here, not deep inside compressai's tensor ops
        if crop is not None and (crop < self.stride or crop % self.stride):
            raise ConfigError(f"{self.meta.name}: crop={crop!r} must be a positive multiple of the model's stride "
                              f"{self.stride} (e.g. {self.stride * max(1, -(-256 // self.stride))})")
        self._warm_start = warm_start
        self._point = point  # only this rate point is trained and coded (a per-point sweep job); None: all
        self.lambdas: tuple[float, ...] = self._opt_lambdas or COMPRESSAI_LAMBDAS
        self.config: dict[str, Any] = {}
        self.models: list[torch.nn.Module] = []
        self.training_info: dict[str, Any] = {}

    # ---- what a subclass provides ------------------------------------------------------------
    def build_model(self, N: int | None, M: int | None, lmbda: float) -> torch.nn.Module:
        raise NotImplementedError

    def train_forward(self, model: torch.nn.Module, batch: Batch) -> Mapping[str, Any]:
        return model(batch.x)

    def eval_forward(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> Mapping[str, Any]:
        return model(x)

    def encode(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> list[bytes]:
        out = model.compress(x)
        return [s[0] for s in out["strings"]]

    def decode(self, model: torch.nn.Module, streams: list[bytes], shape: tuple[int, int], side: torch.Tensor | None) -> torch.Tensor:
        return model.decompress([[s] for s in streams], shape)["x_hat"]

    def latent_shape(self, h: int, w: int) -> tuple[int, int]:
        """Spatial shape CompressAI's decompress() wants, for a padded input of h x w."""
        return (h // self.stride, w // self.stride)

    # ---- configuration -------------------------------------------------------------------------
    @classmethod
    def budget_table(cls, protocol: str | None = None) -> dict[str, MethodBudget]:
        if cls.budgets is not BUDGETS:  # a subclass's own table
            return cls.budgets
        factorized = getattr(cls, "model_class", "") == "FactorizedPrior"
        return {**cls.budgets, "paper": paper_for(protocol, factorized)}

    def resolve_config(self, budget: str) -> tuple[dict[str, Any], TrainConfig]:
        b = method_budget(self.budget_table(getattr(self.protocol, "name", None)), budget, self.meta.name)
        tc = resolve_budget(b.stage(), None, **self._train_overrides)  # typed by OPTIONS
        cfg = {
            "architecture": self.arch,
            "N": self._opt_N if self._opt_N is not None else b.model["N"],
            "M": self._opt_M if self._opt_M is not None else b.model["M"],
            "lambdas": list(self._opt_lambdas or b.model["lambdas"]),
            "metric": self.metric,
            "stride": self.stride,
            "budget": budget,
            "warm_start": self._warm_start if self._warm_start is not None else b.model["warm_start"],
        }
        return cfg, tc

    def training_plan(self, budget: str) -> dict[str, Any]:
        """The training configuration `fit` would use (as stored in the weights' training record): the runner
        reuses saved weights only when it matches, so `--option steps=S` never silently loads other weights."""
        cfg, tc = self._resolved(budget)
        return {**cfg, "train": tc.as_dict()}

    def _resolved(self, budget: str) -> tuple[dict[str, Any], TrainConfig]:
        """`resolve_config` with the `point` option checked and recorded (absent without it)."""
        cfg, tc = self.resolve_config(budget)
        if self._point is not None:
            names = [point_name(l) for l in cfg["lambdas"]]
            if self._point not in names:
                raise ConfigError(f"{self.meta.name}: point={self._point!r} is not one of the rate points {', '.join(names)}")
            if cfg["warm_start"]:
                raise ConfigError(f"{self.meta.name}: point={self._point!r} trains one rate point alone, but warm_start is on "
                                  "(each λ starts from the one below it); add --option warm_start=false")
            cfg["point"] = self._point
        return cfg, tc

    def independent_points(self, budget: str) -> list[tuple[str, dict[str, Any]]] | None:
        """One model per λ trained from its own initialisation: independent unless warm-started (a chain)."""
        cfg, _ = self.resolve_config(budget)
        if cfg["warm_start"] or self._point is not None or len(cfg["lambdas"]) < 2:
            return None
        return [(point_name(l), {"point": point_name(l)}) for l in cfg["lambdas"]]

    def rate_points(self) -> list[str]:
        return [self._point] if self._point is not None else [point_name(l) for l in self.lambdas]

    def point_index(self, point: str) -> int:
        """Index of `point` among all λ (its model, and the container's point field: the same as in a run of all
        the points); only the points this codec codes are accepted."""
        point_index(self.meta.name, self.rate_points(), point)
        return point_index(self.meta.name, [point_name(l) for l in self.lambdas], point)

    def _instantiate(self, cfg: Mapping[str, Any], seed: int = 0) -> None:
        self.config = dict(cfg)
        self.lambdas = tuple(float(l) for l in cfg["lambdas"])
        self.models = []
        for i, l in enumerate(self.lambdas):
            torch.manual_seed(seed * 1009 + i)  # deterministic initialisation per rate point
            self.models.append(self.build_model(cfg.get("N"), cfg.get("M"), l))

    def _require_models(self) -> None:
        """Straight after construction the codec codes with random (untrained) weights of the smoke widths, as the
        codec contract asks; the runner always trains (`fit`) or loads (`load_weights`) before it evaluates."""
        if not self.models:
            cfg, _ = self.resolve_config("smoke")
            self._instantiate({**cfg, "lambdas": list(self.lambdas)})
            for model in self.models:
                model.eval()
                self._update(model, quantiles=True)
            self.training_info = {"budget": None, "seed": 0, "untrained": True}

    # ---- training ------------------------------------------------------------------------------
    def fit(self, train_ds: Iterable, val_ds: Iterable | None, *, budget: str, device: str, workdir: Path, seed: int = 0,
            progress: bool | None = None) -> dict[str, Any]:
        cfg, tc = self._resolved(budget)
        dev = check_device(device)
        t0 = time.perf_counter()
        self._instantiate(cfg, seed)
        per_point = {}
        run_root = Path(workdir) / f"{budget}-seed{seed}"
        # warm start (short budgets): train the lowest λ from scratch, then start each higher λ from the model
        # trained just below it, so short CPU runs spend their steps on the trade-off rather than relearning
        # the transforms; `paper` trains every λ from scratch like CompressAI's zoo.
        warm = bool(cfg.get("warm_start"))
        order = sorted(range(len(self.lambdas)), key=lambda i: self.lambdas[i]) if warm else range(len(self.lambdas))
        previous: tuple[str, torch.nn.Module] | None = None  # (rate point, trained model) just before this one
        for i in order:
            lmbda, model = self.lambdas[i], self.models[i]
            p = point_name(lmbda)
            if p not in self.rate_points():
                continue  # a per-point job (`point`): every model is built (same initialisation), only its own trains
            loss_fn = self.make_loss(lmbda)
            tag = f"{self.meta.name} {p}" + ("" if self.metric == "mse" else f" metric={self.metric}")
            if warm and previous is not None:
                src = dict(previous[1].named_parameters())  # parameters only: entropy tables are rebuilt after training
                with torch.no_grad():
                    for name, param in model.named_parameters():
                        param.copy_(src[name])
                tag += f" warm-from={previous[0]}"
            info = train(model, loss_fn, train_ds, val_ds, config=tc, workdir=run_root / p, seed=seed, device=str(dev),
                         tag=tag, progress=progress)
            previous = (p, model)
            model.to("cpu").eval()
            self._update(model, quantiles=True)
            info["weights_sha256"] = state_dict_sha256(model)
            per_point[p] = {k: info.get(k) for k in ("steps", "wall_s", "cpu_s", "resumed_at", "final_train", "best_val",
                                                      "best_step", "restored", "weights_sha256")}
        self.training_info = {
            "budget": budget,
            "seed": seed,
            "device": str(dev),
            "steps": tc.steps,
            "models": len(per_point),
            "config": {**cfg, "train": tc.as_dict()},
            "lambdas": list(self.lambdas),
            "points": per_point,
            "wall_s": round(time.perf_counter() - t0, 2),
            "entropy_tables": "update(force=True, update_quantiles=True) after training; tables stored with the weights",
        }
        return self.training_info

    def make_loss(self, lmbda: float):
        """The training loss of one rate point (the RD loss; a subclass with extra terms replaces it).
        Called by `fit` after `self.config` is set for the budget."""
        return rd_loss_fn(lmbda, "ms-ssim" if self.metric == "ms-ssim" else "mse", forward=self.train_forward)

    @staticmethod
    def _update(model: torch.nn.Module, quantiles: bool = False) -> None:
        """What CompressAI's ``model.update(force=True)`` does, with the finer scale table: the entropy bottlenecks'
        tables come from their learned densities; the Gaussian conditionals' tables depend only on the scale table,
        so they are computed once per process and copied (0.35 s per model saved)."""
        from compressai.entropy_models import EntropyBottleneck, GaussianConditional

        with torch.no_grad():
            for name, m in model.named_modules():
                if isinstance(m, EntropyBottleneck) and (why := entropy_range_problem(m)):  # e.g. a converted checkpoint
                    raise WeightsError(f"refusing the weights: {name} {why}; the coder's tables cannot be built from them")
                if isinstance(m, EntropyBottleneck):
                    m.update(force=True, update_quantiles=quantiles)
                elif isinstance(m, GaussianConditional):
                    _set_gaussian_tables(m)

    # ---- weights -------------------------------------------------------------------------------
    def save_weights(self, directory: Path) -> Path:
        self._require_models()
        proto = getattr(self.protocol, "name", None)
        return save_weights(directory, method=self.meta.name, models={p: self.models[self.point_index(p)] for p in self.rate_points()},
                            config=self.config, points=self.rate_points(), protocol=proto, training=self.training_info)

    def load_weights(self, directory: Path) -> dict[str, Any]:
        if foreign_spec(directory):  # --weights compressai:FILE / authors:FILE: convert, then evaluate as usual
            return import_checkpoint(self, directory)
        loaded: LoadedWeights = load_weights(directory, method=self.meta.name)
        cfg = loaded.config
        for key in ("lambdas", "architecture"):
            if key not in cfg:
                raise WeightsError(f"weights manifest in {directory} lacks config.{key}")
        if cfg.get("architecture") != self.arch:
            raise WeightsError(f"weights in {directory} are a {cfg.get('architecture')!r} model, {self.meta.name} needs {self.arch!r}")
        for opt, key in ((self._opt_N, "N"), (self._opt_M, "M")):
            if opt is not None and cfg.get(key) != opt:
                raise WeightsError(f"weights in {directory} have {key}={cfg.get(key)}, but the options ask for {key}={opt}")
        if cfg.get("metric", "mse") != self.metric:
            raise WeightsError(f"weights in {directory} were trained for metric={cfg.get('metric', 'mse')}, "
                               f"the options ask for metric={self.metric}")
        if self._opt_lambdas is not None and tuple(sorted(float(l) for l in cfg["lambdas"])) != self._opt_lambdas:
            raise WeightsError(f"weights in {directory} cover lambdas {cfg['lambdas']}, the options ask for {list(self._opt_lambdas)}")
        if self._point is not None and cfg.get("point") not in (None, self._point):
            raise WeightsError(f"weights in {directory} hold rate point {cfg.get('point')}, the options ask for {self._point}")
        self._point = self._point or cfg.get("point")  # weights of one point code that point only
        self._instantiate(cfg)
        for p in self.rate_points():
            model = self.models[self.point_index(p)]
            if p not in loaded.tensors:
                raise WeightsError(f"weights in {directory} have no model for {p}")
            load_into(model, loaded.tensors[p], f"{self.meta.name} {p}")
            model.eval()
            if any(getattr(m, "_quantized_cdf", torch.empty(0)).numel() == 0 for m in model.modules()
                   if hasattr(m, "_quantized_cdf")):
                self._update(model)
        self.training_info = loaded.training
        return loaded.summary()

    # ---- coding ----------------------------------------------------------------------------------
    def _check_image(self, x: torch.Tensor, what: str = "x") -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3:
            raise ConfigError(f"{self.meta.name} codes 3xHxW image tensors; got {what} of shape "
                              f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")

    def _side(self, side: torch.Tensor | None, shape: tuple[int, ...], where: str) -> torch.Tensor:
        if side is None:
            raise ConfigError(f"{self.meta.name} needs the side view at the {where}; none was given")
        self._check_image(side, "side")
        if tuple(side.shape) != tuple(shape):
            raise ConfigError(f"{self.meta.name}: side view shape {tuple(side.shape)} differs from the image shape {tuple(shape)}")
        return pad_to(side.detach().float().cpu()[None], self.stride)

    def uses_side_at_encoder(self) -> bool:
        return self.meta.scenario.encoder_sees_side

    def uses_side_at_decoder(self) -> bool:
        return self.meta.scenario.decoder_sees_side

    def _encoder_inputs(self, x: torch.Tensor, side: torch.Tensor | None, point: str) -> tuple[int, torch.Tensor, torch.Tensor | None]:
        """(rate-point index, padded NCHW image, padded side view where the encoder sees one) after the checks."""
        self._require_models()
        self._check_image(x)
        idx = self.point_index(point)
        xp = pad_to(x.detach().float().cpu()[None], self.stride)
        sp = self._side(side, tuple(x.shape), "encoder") if self.uses_side_at_encoder() else None
        return idx, xp, sp

    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        idx, xp, sp = self._encoder_inputs(x, side, point)
        with torch.no_grad(), one_thread():  # bit-exact whatever the thread count (benchmark/contract/determinism.py)
            streams = self.encode(self.models[idx], xp, sp)
        if len(streams) != self.n_streams:
            raise RuntimeError(f"{self.meta.name}: model produced {len(streams)} strings, expected {self.n_streams}")
        return Container(self.meta.name, idx, tuple(int(d) for d in x.shape), [bytes(s) for s in streams]).to_bytes()

    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        self._require_models()
        c = Container.from_bytes(data, self.meta.name)
        check_image_header(self.meta.name, c, n_points=len(self.models), n_streams=self.n_streams, max_pixels=_MAX_PIXELS,
                           stride=self.stride)
        for i, s in enumerate(c.streams):  # CompressAI's rANS writes 32-bit words and flushes a 64-bit state
            if len(s) < 8 or len(s) % 4:
                raise BitstreamError(f"{self.meta.name}: stream {i} has {len(s)} bytes; an rANS stream is a whole number "
                                     "of 32-bit words, at least 8 bytes (corrupt or truncated bitstream)")
        _, h, w = c.shape
        hp, wp = h + (-h) % self.stride, w + (-w) % self.stride
        check_side_shape(self.meta.name, c, side)
        sp = self._side(side, tuple(c.shape), "decoder") if self.uses_side_at_decoder() else None
        try:
            with torch.no_grad(), one_thread():
                x_hat = self.decode(self.models[c.point], [s + _GUARD for s in c.streams], self.latent_shape(hp, wp), sp)
        except BitstreamError:
            raise
        except Exception as exc:  # the rANS decoder or the networks choked on a damaged payload
            raise BitstreamError(f"{self.meta.name}: cannot decode the payload ({type(exc).__name__}: {exc}); "
                                 "the bitstream is corrupt or was made with other weights") from exc
        if tuple(x_hat.shape[-2:]) != (hp, wp) or not torch.isfinite(x_hat).all():
            raise BitstreamError(f"{self.meta.name}: the payload decoded to an invalid image; the bitstream is corrupt")
        return x_hat[0, :, :h, :w].clamp(0.0, 1.0).contiguous()

    def compress_with_estimate(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0,
                               point: str) -> tuple[bytes, float | None]:
        """The bytes of `compress` and, where `encode_with_likelihoods` gives them, the bits of `estimate_bits`
        from the same analysis pass (identical numbers; the transforms run once instead of twice)."""
        idx, xp, sp = self._encoder_inputs(x, side, point)
        with torch.no_grad(), one_thread():
            streams, lik = self.encode_with_likelihoods(self.models[idx], xp, sp)
            bits = None if lik is None else float(bits_from_likelihoods(lik))
        if len(streams) != self.n_streams:
            raise RuntimeError(f"{self.meta.name}: model produced {len(streams)} strings, expected {self.n_streams}")
        return Container(self.meta.name, idx, tuple(int(d) for d in x.shape), [bytes(s) for s in streams]).to_bytes(), bits

    def encode_with_likelihoods(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> tuple[list[bytes], Any]:
        """`encode`'s streams and the likelihoods `likelihoods` would give, from one pass; (streams, None) when a
        subclass has no such pass (the estimate is then computed apart)."""
        return self.encode(model, x, side), None

    def reconstruct(self, x: torch.Tensor, *, side: torch.Tensor | None = None, point: str) -> torch.Tensor:
        """The model's own reconstruction (forward pass in eval mode, quantised latents), cropped and clamped."""
        self._require_models()
        idx = self.point_index(point)
        xp = pad_to(x.detach().float().cpu()[None], self.stride)
        sp = None if side is None else pad_to(side.detach().float().cpu()[None], self.stride)
        with torch.no_grad(), one_thread():
            out = self.eval_forward(self.models[idx], xp, sp)
        return out["x_hat"][0, :, : x.shape[-2], : x.shape[-1]].clamp(0.0, 1.0)

    def estimate_bits(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> float | None:
        """-log2 of the model's likelihoods of the quantised latents of the padded image (what the coder codes)."""
        idx, xp, sp = self._encoder_inputs(x, side, point)
        with torch.no_grad(), one_thread():
            lik = self.likelihoods(self.models[idx], xp, sp)
        return float(bits_from_likelihoods(lik))

    def likelihoods(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> Any:
        """The likelihoods of the quantised latents (eval mode); subclasses may skip the synthesis transform."""
        return self.eval_forward(model, x, side)["likelihoods"]

    def info(self) -> dict[str, Any]:
        base = super().info()
        return {
            **base,
            "architecture": self.arch,
            "config": self.config,
            "lambdas": list(self.lambdas),
            "stride": self.stride,
            "rate_notes": (f"CompressAI rANS strings ({self.n_streams} per image) in the suite's container; image padded to a "
                           f"multiple of {self.stride} by edge replication (padding is coded, bpp divides by the original pixels)"),
        }


# ------------------------------------------------------------------------------ the zoo models
class _ZooCodec(RDCodec):
    """A CompressAI zoo architecture (``model_class`` of compressai.models, widths of the zoo's ``arch``)."""

    model_class: ClassVar[str]

    def likelihoods(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> Any:
        """CompressAI's eval-mode forward pass up to the likelihoods, without the synthesis g_s, which the estimate
        does not need."""
        y = model.g_a(x)
        if self.model_class == "FactorizedPrior":
            return {"y": model.entropy_bottleneck(y)[1]}
        z = model.h_a(torch.abs(y) if self.model_class == "ScaleHyperprior" else y)
        z_hat, z_lik = model.entropy_bottleneck(z)
        params = model.h_s(z_hat)
        if self.model_class == "ScaleHyperprior":
            y_lik = model.gaussian_conditional(y, params)[1]
        else:  # MeanScaleHyperprior: h_s predicts (scales, means)
            scales, means = params.chunk(2, 1)
            y_lik = model.gaussian_conditional(y, scales, means=means)[1]
        return {"y": y_lik, "z": z_lik}

    def encode_with_likelihoods(self, model: torch.nn.Module, x: torch.Tensor, side: torch.Tensor | None) -> tuple[list[bytes], Any]:
        """CompressAI's `compress` (same calls, same order, so the same bytes) with the eval-mode likelihoods of
        `likelihoods` taken from the same g_a/h_a outputs instead of a second analysis pass."""
        y = model.g_a(x)
        eb, gc = model.entropy_bottleneck, getattr(model, "gaussian_conditional", None)
        if self.model_class == "FactorizedPrior":
            return [eb.compress(y)[0]], {"y": eb(y)[1]}
        z = model.h_a(torch.abs(y) if self.model_class == "ScaleHyperprior" else y)
        z_fwd, z_lik = eb(z)
        z_strings = eb.compress(z)
        z_hat = eb.decompress(z_strings, z.size()[-2:])
        params = model.h_s(z_hat)
        # the estimate's h_s input is the forward pass's z_hat; it equals the decoded one (round(z - m) + m both)
        p_est = params if torch.equal(z_hat, z_fwd) else model.h_s(z_fwd)
        if self.model_class == "ScaleHyperprior":
            y_strings = gc.compress(y, gc.build_indexes(params))
            y_lik = gc(y, p_est)[1]
        else:  # MeanScaleHyperprior: h_s predicts (scales, means)
            scales, means = params.chunk(2, 1)
            y_strings = gc.compress(y, gc.build_indexes(scales), means=means)
            s_est, m_est = p_est.chunk(2, 1)
            y_lik = gc(y, s_est, means=m_est)[1]
        return [y_strings[0], z_strings[0]], {"y": y_lik, "z": z_lik}

    def build_model(self, N: int | None, M: int | None, lmbda: float) -> torch.nn.Module:
        """The zoo's model at the given widths; a width not given is the zoo's at the quality nearest to λ."""
        import compressai.models as cm

        if N is None or M is None:
            dn, dm = zoo_widths(self.arch, lmbda)
            N, M = N or dn, M or dm
        return getattr(cm, self.model_class)(N=N, M=M)


_COMPRESSAI_LICENCE = "Apache-2.0 (suite); CompressAI BSD-3-Clause-Clear"


@dataclass(frozen=True)
class ZooArchitecture:
    """One row of the zoo table: a CompressAI architecture registered as a learned baseline."""

    name: str  # the method's registered name
    arch: str  # CompressAI's name of the architecture (its zoo key; recorded with the weights)
    model_class: str  # the class in compressai.models (FactorizedPrior, ScaleHyperprior or MeanScaleHyperprior)
    stride: int  # the image side is padded to a multiple of it
    n_streams: int  # rANS strings per image: y, then z where there is a hyperprior
    paper: str
    description: str

    def class_attrs(self) -> dict[str, Any]:
        meta = MethodMeta(name=self.name, scenario=Scenario.SEPARATE, paper=self.paper, licence=_COMPRESSAI_LICENCE,
                          trainable=True, description=self.description)
        return {"meta": meta, "arch": self.arch, "model_class": self.model_class, "stride": self.stride,
                "n_streams": self.n_streams}


ZOO: tuple[ZooArchitecture, ...] = (
    ZooArchitecture(
        "balle2017", "bmshj2018-factorized", "FactorizedPrior", stride=16, n_streams=1,
        paper="J. Ballé, V. Laparra, E. P. Simoncelli, End-to-end Optimized Image Compression, ICLR 2017 "
              "(CompressAI bmshj2018-factorized)",
        description="factorized-prior autoencoder (GDN), one model per lambda, CompressAI rANS bytes"),
    ZooArchitecture(
        "balle2018", "bmshj2018-hyperprior", "ScaleHyperprior", stride=64, n_streams=2,
        paper="J. Ballé, D. Minnen, S. Singh, S. J. Hwang, N. Johnston, Variational Image Compression with a Scale "
              "Hyperprior, ICLR 2018 (CompressAI bmshj2018-hyperprior)",
        description="scale-hyperprior autoencoder, one model per lambda, CompressAI rANS bytes"),
    ZooArchitecture(
        "mbt2018_mean", "mbt2018-mean", "MeanScaleHyperprior", stride=64, n_streams=2,
        paper="D. Minnen, J. Ballé, G. Toderici, Joint Autoregressive and Hierarchical Priors for Learned Image "
              "Compression, NeurIPS 2018 (CompressAI mbt2018-mean: mean-scale hyperprior, no context model)",
        description="mean-scale hyperprior autoencoder, one model per lambda, CompressAI rANS bytes"),
)
globals().update(register_family(_ZooCodec, ZOO, __name__))  # Balle2017, Balle2018, Mbt2018Mean

# "minnen2018" would put "Minnen 2018" next to the published Minnen curves, which include the context model
# mbt2018_mean lacks; the name is still accepted, with a deprecation warning
METHODS.alias("minnen2018", "mbt2018_mean", "it is CompressAI's mbt2018-mean: mean-scale hyperprior, no context model")
