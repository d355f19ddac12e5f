"""The `drasic` codec: M recurrent encoders, one shared decoder (or M pairs, or one joint codec), scalable bytes.

Options (``--option key=value``):
- ``config``: ``distributed`` (default; M encoders + one shared decoder), ``separate`` (M encoder/decoder
  pairs) or ``joint`` (one codec trained on the pooled data of all M sources: the paper's reference).
- ``sources``: M. Forwarded by the runner from the dataset option of the same name (``--sources``).
- ``iterations``: T (default 16); rate points ``iter=1`` .. ``iter=T``.
- ``low_complexity``: the second half of the encoders (sources M - M//2 .. M-1) are trained with T/2
  iterations (paper section 4.3); they still code T iterations at test time.
- widths ``enc_stem``, ``enc_hidden``, ``dec_stem``, ``dec_hidden`` (``"a,b,c"``) override the budget's widths;
  training overrides ``steps``, ``epochs``, ``batch_size``, ``lr``, ``val_every``, ``val_samples``.

Bytes: one container per (image, source) with one stream: iteration t's 8 x (H/8) x (W/8) bits, np.packbits'd
((H/8)(W/8) bytes, 16 at 32x32 = 0.125 bpp), appended in order. The container for ``iter=t`` holds the first t
iterations; ``truncate`` cuts a longer stream to a shorter one (a byte prefix of the payload), so the runner
encodes once per image and source and measures all T points. Images whose size is not a multiple of 8 are
padded by edge replication (the padding is coded; bpp divides by the original pixels).

Scenarios. ``distributed`` and ``separate`` are scenario ``distributed``: the runner codes every test image with
every source's encoder (``source=m``) and reports the mean and the best/worst source. Encoder m sees only its own
x; it runs its decoder internally to form the residuals (the recurrent loop needs the decoder's output), so a
deployed encoder carries a copy of the decoder it is paired with (the shared one for ``distributed``). Decoding
one source's stream needs nothing but that stream: no other source has to be present. ``joint`` is a single
encoder and decoder that sees x only, so at test time it is an ordinary single-source codec: scenario
``separate``, coded once per test image. What makes it a reference rather than a deployable distributed
system is its training: it needs the pooled data of all sources in one place.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, ClassVar, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.contract.budgets import MODEL_STAGE, MethodBudget, method_budget
from benchmark.contract.codec import LearnedCodec, MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.contract.data import Batch
from benchmark.errors import BitstreamError, ConfigError, WeightsError
from benchmark.contract.options import Option, train_options
from benchmark.contract.registry import register_method
from benchmark.training.trainer import check_device, train
from benchmark.contract.budgets import resolve_budget
from benchmark.training.weights import load_into, load_weights, save_weights, state_dict_sha256

from .configs import BUDGETS, CONFIGS, ITERATIONS, QUICK_WIDTHS
from .model import CODE_CHANNELS, DRASIC, STRIDE, Widths, count_parameters

ARCH = "drasic-convlstm-pixelshuffle-v1"
_TRAIN_OPTIONS = ("steps", "epochs", "batch_size", "lr", "val_every", "val_samples", "checkpoint_every", "num_workers")
_MAX_PIXELS = 1 << 24

PAPER = ("E. Diao, J. Ding, V. Tarokh, DRASIC: Distributed Recurrent Autoencoder for Scalable Image Compression, "
         "DCC 2020 (arXiv:1903.09887)")


# the options of DRASIC, declared once (benchmark/contract/options.py): checked and cast before __init__ runs
OPTIONS: tuple[Option, ...] = (
    Option("config", str, "distributed", "M encoders + one decoder | M separate codecs | one codec on pooled data",
           choices=CONFIGS),
    Option("sources", int, None, "number of sources M (default: the protocol's)", minimum=1),
    Option("iterations", int, ITERATIONS, "recurrent iterations T (rate points iter=1..T)", minimum=1),
    Option("low_complexity", bool, False, "train the second half of the encoders with T/2 iterations"),
    Option("channels", int, 1, "image channels", minimum=1),
    Option("enc_stem", int, None, "encoder stem width (default: the budget's)", minimum=1),
    Option("enc_hidden", int, None, "encoder ConvLSTM width (default: the budget's)", minimum=1),
    Option("dec_stem", int, None, "decoder stem width (default: the budget's)", minimum=1),
    Option("dec_hidden", list[int], None, "three decoder ConvLSTM widths a,b,c (default: the budget's)", minimum=1),
    *train_options(*_TRAIN_OPTIONS),
)


def point_name(t: int) -> str:
    return f"iter={t}"


@register_method
class DRASICCodec(LearnedCodec):
    meta: ClassVar[MethodMeta] = MethodMeta(
        name="drasic",
        scenario=Scenario.DISTRIBUTED,
        paper=PAPER,
        trainable=True,
        variable_rate=True,
        scalable=True,
        description="recurrent ConvLSTM autoencoder on residuals, binary codes (0.125 bpp/iteration at 32x32), "
                    "M encoders with one shared decoder; configs distributed | separate | joint",
        modalities=("gray",),
    )
    # The runner forwards these dataset options as method options (the codec must know M when it is built).
    dataset_options_used: ClassVar[tuple[str, ...]] = ("sources",)
    test_protocol: ClassVar[str] = "mnist/drasic-class"
    test_options: ClassVar[dict[str, Any]] = {"sources": 2, "iterations": 3, "enc_stem": 2, "enc_hidden": 4,
                                              "dec_stem": 4, "dec_hidden": "4,4,4"}
    # options that make `fit` take a few steps (the contract test trains every learned codec briefly)
    test_fit_options: ClassVar[dict[str, Any]] = {"steps": 2, "batch_size": 2}

    options_spec: ClassVar[tuple[Option, ...]] = OPTIONS

    def __init__(self, protocol: Any = None, *, config: str | None = None, sources: int | None = None,
                 iterations: int | None = None, low_complexity: bool | None = None, channels: int | None = None,
                 **options: Any):
        # the options arrive checked and typed (OPTIONS); None: the declared default
        config = "distributed" if config is None else config
        iterations = ITERATIONS if iterations is None else iterations
        low_complexity = False if low_complexity is None else low_complexity
        channels = 1 if channels is None else channels
        if sources is None:
            sources = (getattr(protocol, "options", None) or {}).get("sources", 1)
        super().__init__(protocol, config=config, sources=sources, iterations=iterations, low_complexity=low_complexity,
                         channels=channels, **options)
        self.config = config
        self.M = int(sources)  # from the protocol when not given
        self.T, self.low_complexity, self.channels = iterations, low_complexity, channels
        if self.low_complexity and (config == "joint" or self.M < 2 or self.T < 2):
            raise ConfigError("drasic: low_complexity needs a distributed or separate config with M >= 2 sources and T >= 2 "
                              "(the second half of the encoders is trained with T/2 iterations)")
        self._width_overrides = self._parse_widths(options)
        self._train_overrides = {k: options[k] for k in _TRAIN_OPTIONS if k in options and options[k] is not None}
        if config == "joint":
            # one encoder that sees x only, one decoder: at test time an ordinary single-source codec
            self.meta = dataclasses.replace(type(self).meta, scenario=Scenario.SEPARATE,
                                            description="DRASIC joint reference: one recurrent codec trained on the "
                                                        "pooled data of all sources")
        self.variant = "-".join(p for p in (
            None if config == "distributed" else config,
            f"M{self.M}",
            "lowc" if self.low_complexity else None,
            None if self.T == ITERATIONS else f"T{self.T}",
        ) if p)
        self.budget: str | None = None
        self.training_info: dict[str, Any] = {}
        # a working codec straight after construction (random weights): explicit widths, else the quick ones
        self._build(self._widths_for(QUICK_WIDTHS), seed=0)

    # ---- configuration ---------------------------------------------------------------------------------
    def _parse_widths(self, options: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out = {k: options[k] for k in ("enc_stem", "enc_hidden", "dec_stem") if options.get(k) is not None}
        if options.get("dec_hidden") is not None:  # a tuple of ints (OPTIONS)
            if len(options["dec_hidden"]) != 3:
                raise ConfigError(f"drasic: option dec_hidden needs three widths 'a,b,c', got {options['dec_hidden']!r}")
            out["dec_hidden"] = tuple(options["dec_hidden"])
        return out

    def _widths_for(self, base: Widths) -> Widths:
        try:
            return dataclasses.replace(base, channels=self.channels, **self._width_overrides)
        except ValueError as exc:
            raise ConfigError(f"drasic: {exc}") from exc

    @property
    def n_encoders(self) -> int:
        return 1 if self.config == "joint" else self.M

    @property
    def n_decoders(self) -> int:
        return self.M if self.config == "separate" else 1

    def train_iterations(self) -> list[int]:
        """Iterations each source's encoder is trained with (T, or T/2 for the second half when low_complexity)."""
        half = self.M // 2
        return [self.T // 2 if self.low_complexity and m >= self.M - half else self.T for m in range(self.M)]

    def _build(self, widths: Widths, seed: int) -> None:
        torch.manual_seed(seed)
        self.widths = widths
        self.model = DRASIC(widths, self.n_encoders, self.n_decoders).eval()

    def _config_record(self) -> dict[str, Any]:
        return {"architecture": ARCH, "config": self.config, "sources": self.M, "iterations": self.T,
                "low_complexity": self.low_complexity, "widths": self.widths.as_dict(), "budget": self.budget,
                "encoders": self.n_encoders, "decoders": self.n_decoders}

    def rate_points(self) -> list[str]:
        return [point_name(t) for t in range(1, self.T + 1)]

    def point_index(self, point: str) -> int:
        pts = self.rate_points()
        if point not in pts:
            raise ConfigError(f"drasic: unknown rate point {point!r}; valid: iter=1 .. iter={self.T}")
        return pts.index(point)

    def info(self) -> dict[str, Any]:
        enc = count_parameters(self.model.encoders[0])
        dec = count_parameters(self.model.decoders[0])
        notes = ("raw binary code, no entropy coding: 8 x (H/8) x (W/8) bits per iteration packed with np.packbits "
                 "(0.125 bpp per iteration at 32x32); one stream whose first t*(H/8)*(W/8) bytes decode at iter=t; "
                 "bpp includes the container header (about 12 bytes = 0.09 bpp at 32x32), bpp_payload excludes it")
        if self.config == "distributed":
            notes += f"; {self.M} encoders (each sees only its own source) and one shared decoder; every encoder is " \
                     "evaluated on all test images (per_source, psnr_min/psnr_max)"
        elif self.config == "separate":
            notes += f"; {self.M} independent encoder/decoder pairs (source m's stream is decoded by decoder m); every " \
                     "pair is evaluated on all test images"
        else:
            notes += f"; joint reference: one encoder/decoder trained on the pooled training data of all {self.M} " \
                     "sources (needs centralised data); at test time it sees x only, so it runs as a single-source " \
                     "codec (scenario separate), coded once per test image"
        if self.low_complexity:
            notes += f"; low complexity: encoders {', '.join(str(m) for m, t in enumerate(self.train_iterations()) if t < self.T)} " \
                     f"trained with {self.T // 2} iterations, all code {self.T} at test time"
        return {
            **super().info(),
            **self._config_record(),
            "train_iterations": self.train_iterations(),
            "parameters": {"encoder": enc, "decoder": dec, "total": count_parameters(self.model)},
            "rate_notes": notes,
        }

    # ---- training ----------------------------------------------------------------------------------------
    def loss_fn(self, model: DRASIC, batch: Batch) -> dict[str, Any]:
        """Mean over samples of (1/T_m) sum_{t <= T_m} L1(x, x^_t), in the [-1, 1] domain (paper eq. 5/10)."""
        x = 2.0 * _pad(batch.x) - 1.0
        src = batch.source.view(-1)
        t_per_source = torch.tensor(self.train_iterations(), device=x.device, dtype=x.dtype)
        t_n = t_per_source[src.clamp(0, self.M - 1)]  # iterations of each sample's encoder
        outs = model(x, src, int(t_n.max().item()))
        l1 = torch.stack([(x - o).abs().flatten(1).mean(1) for o in outs])  # T x N
        steps = torch.arange(1, len(outs) + 1, device=x.device, dtype=x.dtype)[:, None]
        weight = (steps <= t_n[None]).to(x.dtype) / t_n[None]
        loss = (l1 * weight).sum(0).mean()
        with torch.no_grad():
            h, w = batch.x.shape[-2:]
            last = ((outs[-1][..., :h, :w] + 1) / 2).clamp(0, 1)
            mse = F.mse_loss(last, batch.x)
        return {"loss": loss, "l1_last": l1[-1].mean().detach(), "mse": mse,
                "psnr": -10.0 * torch.log10(mse.clamp_min(1e-10)),
                "bpp": torch.tensor(len(outs) * CODE_CHANNELS / STRIDE**2)}  # raw code of the last iteration

    def _check_sources(self, ds: Any, what: str) -> None:
        if ds is None:
            return
        n = getattr(ds, "num_sources", None)
        if self.config != "joint" and n is not None and int(n) != self.M:
            raise ConfigError(f"drasic: the {what} data has {n} sources, the codec was built for M={self.M}; "
                              f"pass --sources {n} (or drop --option sources)")
        srcs = getattr(ds, "sources", None)
        if srcs is not None and len(srcs) and self.config != "joint":
            lo, hi = int(np.min(srcs)), int(np.max(srcs))
            if lo < 0 or hi >= self.M:
                raise ConfigError(f"drasic: {what} samples carry sources {lo}..{hi}, outside 0..{self.M - 1}")

    @classmethod
    def budget_table(cls, protocol: str | None = None) -> dict[str, MethodBudget]:
        return BUDGETS  # the same for every DRASIC protocol

    def resolve_training(self, budget: str, n_train: int) -> tuple[Widths, Any, int | None]:
        b = method_budget(BUDGETS, budget, "drasic")
        o = dict(self._train_overrides)
        epochs = o.pop("epochs", b.epochs.get(MODEL_STAGE))
        changes: dict[str, Any] = {}
        for k in ("steps", "batch_size", "val_every", "val_samples", "checkpoint_every", "num_workers", "lr"):
            if k in o:  # typed by OPTIONS
                changes[k] = o[k]
        tc = resolve_budget(b.stage(), None, **changes)
        if epochs is not None and "steps" not in changes:
            per_epoch = max(1, math.ceil(n_train / tc.batch_size))
            extra = {"steps": epochs * per_epoch}
            if "val_every" not in changes:
                extra["val_every"] = per_epoch * max(1, epochs // 20)
            tc = tc.replace(**extra)
        else:
            epochs = None
        return self._widths_for(b.model["widths"]), tc, epochs

    def fit(self, train_ds: Iterable, val_ds: Iterable | None, *, budget: str, device: str, workdir: Path, seed: int = 0,
            progress: bool | None = None) -> dict[str, Any]:
        self._check_sources(train_ds, "training")
        self._check_sources(val_ds, "validation")
        dev = check_device(device)
        widths, tc, epochs = self.resolve_training(budget, len(train_ds))
        self.budget = budget
        self._build(widths, seed)
        t0 = time.perf_counter()
        tag = f"drasic.{self.variant}"
        info = train(self.model, self.loss_fn, train_ds, val_ds, config=tc, workdir=Path(workdir) / f"{budget}-seed{seed}",
                     seed=seed, device=str(dev), tag=tag, progress=progress)
        self.model.to("cpu").eval()
        self.training_info = {
            "budget": budget,
            "seed": seed,
            "device": str(dev),
            "steps": tc.steps,
            "epochs": epochs,
            "n_train": len(train_ds),
            "config": {**self._config_record(), "train": tc.as_dict()},
            "train_iterations": self.train_iterations(),
            "parameters": {"encoder": count_parameters(self.model.encoders[0]),
                           "decoder": count_parameters(self.model.decoders[0]), "total": count_parameters(self.model)},
            "routing": "each sample of a batch goes through its own source's encoder; the decoder runs on the whole "
                       "batch (shared) or per source (separate pairs); one optimizer over all parameters",
            "final_train": info.get("final_train"),
            "validation": info.get("validation"),
            "resumed_at": info.get("resumed_at"),
            "wall_s": round(time.perf_counter() - t0, 2),
            "cpu_s": info.get("cpu_s"),
            "weights_sha256": state_dict_sha256(self.model),
        }
        return self.training_info

    # ---- weights ----------------------------------------------------------------------------------------
    def save_weights(self, directory: Path) -> Path:
        return save_weights(directory, method=self.meta.name, models={"model": self.model}, config=self._config_record(),
                            points=self.rate_points(), protocol=getattr(self.protocol, "name", None),
                            training=self.training_info)

    def load_weights(self, directory: Path) -> dict[str, Any]:
        loaded = load_weights(directory, method=self.meta.name, keys=["model"])
        cfg = loaded.config
        if cfg.get("architecture") != ARCH:
            raise WeightsError(f"weights in {directory} are {cfg.get('architecture')!r}, drasic needs {ARCH!r}")
        for key, mine in (("config", self.config), ("sources", self.M), ("iterations", self.T),
                          ("low_complexity", self.low_complexity)):
            if cfg.get(key) != mine:
                raise WeightsError(f"weights in {directory} have {key}={cfg.get(key)!r}, the options ask for {key}={mine!r}")
        try:
            widths = Widths.from_dict(cfg["widths"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"weights in {directory} have no valid widths: {exc}") from exc
        for k, v in self._width_overrides.items():
            if getattr(widths, k) != v:
                raise WeightsError(f"weights in {directory} have {k}={getattr(widths, k)}, the options ask for {v}")
        if widths.channels != self.channels:
            raise WeightsError(f"weights in {directory} code {widths.channels} channel(s), the options ask for {self.channels}")
        self._build(widths, seed=0)
        load_into(self.model, loaded.tensors["model"], "drasic")
        self.model.eval()
        self.budget = cfg.get("budget")
        self.training_info = loaded.training
        return loaded.summary()

    # ---- coding ------------------------------------------------------------------------------------------
    def _source(self, source: int) -> int:
        if self.config == "joint":
            return 0
        s = int(source)
        if not 0 <= s < self.M:
            raise ConfigError(f"drasic: source {source} outside 0..{self.M - 1} (M = {self.M})")
        return s

    def _check_image(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != self.channels:
            raise ConfigError(f"drasic codes {self.channels}xHxW tensors; got "
                              f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")

    def encode_iterations(self, x: torch.Tensor, *, source: int = 0, iterations: int | None = None
                          ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(codes, reconstructions in [0,1] cropped and clamped) after each iteration 1..t, from the encoder's loop."""
        self._check_image(x)
        t = self.T if iterations is None else iterations
        xp = 2.0 * _pad(x.detach().float().cpu()[None]) - 1.0
        self.model.eval()
        codes, recons = self.model.encode(xp, self._source(source), t)
        h, w = x.shape[-2:]
        return codes, [_to_image(r, h, w) for r in recons]

    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        t = self.point_index(point) + 1
        codes, _ = self.encode_iterations(x, source=source, iterations=t)
        payload = b"".join(np.packbits((b[0] > 0).numpy().astype(np.uint8).reshape(-1)).tobytes() for b in codes)
        return Container(self.meta.name, t - 1, tuple(int(d) for d in x.shape), [payload]).to_bytes()

    def _parse(self, data: bytes) -> tuple[Container, int, int, int]:
        c = Container.from_bytes(data, self.meta.name)
        if len(c.shape) != 3 or c.shape[0] != self.channels or min(c.shape[1:]) < 1 or c.shape[1] * c.shape[2] > _MAX_PIXELS:
            raise BitstreamError(f"drasic: implausible image shape {c.shape} in the bitstream header")
        if c.point >= self.T:
            raise BitstreamError(f"drasic: bitstream names rate point #{c.point}, this codec has {self.T} iterations")
        if len(c.streams) != 1:
            raise BitstreamError(f"drasic: bitstream has {len(c.streams)} streams, expected 1")
        hb, wb = -(-c.shape[1] // STRIDE), -(-c.shape[2] // STRIDE)
        per_iter = hb * wb  # 8 channels x hb x wb bits = hb*wb bytes
        t = c.point + 1
        if len(c.streams[0]) != t * per_iter:
            raise BitstreamError(f"drasic: payload has {len(c.streams[0])} bytes, {t} iteration(s) of a "
                                 f"{c.shape[1]}x{c.shape[2]} image need {t * per_iter}")
        return c, t, hb, wb

    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        c, t, hb, wb = self._parse(data)
        bits = np.unpackbits(np.frombuffer(c.streams[0], dtype=np.uint8)).reshape(t, 1, CODE_CHANNELS, hb, wb)
        codes = [torch.from_numpy(bits[i].astype(np.float32) * 2.0 - 1.0) for i in range(t)]
        self.model.eval()
        recon = self.model.decode(codes, self._source(source))
        return _to_image(recon, c.shape[1], c.shape[2])

    def truncate(self, data: bytes, point: str) -> bytes:
        t = self.point_index(point) + 1
        c, have, hb, wb = self._parse(data)
        if t > have:
            raise BitstreamError(f"drasic: cannot truncate a {have}-iteration stream to {t} iterations")
        return Container(self.meta.name, t - 1, c.shape, [c.streams[0][: t * hb * wb]]).to_bytes()


def _pad(x: torch.Tensor) -> torch.Tensor:
    """Pad NCHW at the bottom/right to a multiple of 8 by edge replication."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    return x if ph == 0 and pw == 0 else F.pad(x, (0, pw, 0, ph), mode="replicate")


def _to_image(recon: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[-1, 1] reconstruction (1 x C x Hp x Wp) -> C x h x w in [0, 1]."""
    return ((recon[0, :, :h, :w] + 1.0) / 2.0).clamp(0.0, 1.0).contiguous()
