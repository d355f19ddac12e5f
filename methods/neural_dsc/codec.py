"""Neural DSC as a suite codec: conditional VQ-VAE + causal-Transformer prior, coded to real bytes.

Three registered names, one per mode, because a method's scenario (who sees the side view) is a class-level
fact the runner, the registry listing and the contract test rely on:

- ``neural_dsc``           mode ``distributed`` (scenario decoder_side_info; the paper's method)
- ``neural_dsc_joint``     mode ``joint``       (scenario joint: side view at encoder and decoder)
- ``neural_dsc_separate``  mode ``separate``    (scenario separate: no side view anywhere)

``neural_dsc --option mode=joint`` is accepted as a spelling of ``neural_dsc_joint``: the instance then
carries the joint meta (name, scenario), so results, weights and bitstreams are those of ``neural_dsc_joint``
whichever way it was asked for. A variant architecture (``--option arch=4x``) is a result variant
(``neural_dsc.4x.json``).

Rate points ``bits=<b>``: one model (VQ-VAE with K = 2**b codes + its prior) per point. Bytes: the indices
of the latent grid (raster order) range-coded with the prior's probabilities (see prior.py), one container
stream. Reported rates: ``bpp`` from the container bytes, ``bpp_estimated`` = the authors' ideal code
length ceil(sum -log2 p) + 1, and the fixed-length rate b * latents / pixels in ``codec_info``.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.contract.budgets import MethodBudget, method_budget
from benchmark.contract.codec import LearnedCodec, MethodMeta, Scenario
from benchmark.contract.coding import check_image_header, check_side_shape, pad_to, point_index
from benchmark.contract.container import Container
from benchmark.contract.data import Batch
from benchmark.contract.determinism import one_thread
from benchmark.errors import BitstreamError, ConfigError, TrainingError, WeightsError
from benchmark.contract.options import Option, train_options
from benchmark.contract.registry import register_method
from benchmark.training.trainer import check_device, train
from benchmark.contract.budgets import TrainConfig, resolve_budget
from benchmark.training.weights import load_into, load_weights, save_weights, state_dict_sha256

from . import configs
from .configs import Arch
from .model import MODES, ConditionalVQVAE, build_vqvae
from .prior import CausalTransformerPrior, decode_indices, encode_indices, ideal_bits, to_float64

ARCHITECTURE = "neural-dsc-cvqvae+transformer-prior"
COMMITMENT = 0.25
_MAX_PIXELS = 1 << 26
# the autoregressive prior decodes one latent at a time: ~4 s for 512x512, ~25 s for 1024x1024 on one core,
# whatever the payload holds; without an explicit --max-pixels a header above 512x512 is refused
DECODE_PIXEL_CAP = 1 << 18
_ARCH_FIELDS = ("down", "ch", "n_res", "emb_dim", "prior_dim", "prior_layers", "prior_heads", "prior_dropout")
# training overrides: VQ-VAE (TrainConfig names) and prior (prior_ + name)
_VQ_TRAIN = ("steps", "batch_size", "crop", "lr", "schedule", "warmup", "val_every", "val_samples", "clip_grad",
             "checkpoint_every", "num_workers", "restore", "hflip")
_PRIOR_TRAIN = tuple(f"prior_{k}" for k in ("steps", "batch_size", "lr", "warmup", "schedule", "val_every", "val_samples"))
_PRIOR_HELP = "the prior's training (default: the budget's)"
# the options of Neural DSC, declared once (benchmark/contract/options.py): checked and cast before __init__ runs
OPTIONS: tuple[Option, ...] = (
    Option("mode", str, None, "who sees the side view (default: the method's mode)", choices=MODES),
    Option("arch", str, None, "architecture variant of the protocol's table (default: the protocol's)"),
    Option("bits", list[int], None, "rate points: codebook bits (K = 2**bits; default: the budget's)", minimum=1,
           maximum=16, unique_sorted=True),
    Option("data_init", bool, True, "initialise the codebook from encoder outputs"),
    Option("dead_threshold", float, 1.0, "EMA usage below which a codebook vector is re-seeded", minimum=0),
    *(Option(k, int, None, "architecture width/depth (default: the arch's)", minimum=1) for k in _ARCH_FIELDS[:-1]),
    Option("prior_dropout", float, None, "dropout of the prior (default: the arch's)", minimum=0, maximum=1),
    Option("warmup", int, None, "linear learning-rate warm-up steps (default: the budget's)", minimum=0),
    *train_options(*(k for k in _VQ_TRAIN if k != "warmup")),
    *(Option(f"prior_{o.name}", o.type, None, _PRIOR_HELP, o.choices, o.minimum, o.exclusive, o.maximum)
      for o in train_options("steps", "batch_size", "lr")),
    Option("prior_warmup", int, None, _PRIOR_HELP, minimum=0),
    *(Option(f"prior_{o.name}", o.type, None, _PRIOR_HELP, o.choices, o.minimum, o.exclusive, o.maximum)
      for o in train_options("schedule", "val_every", "val_samples")),
)

PAPER = ("J. Whang, A. Nagle, A. Acharya, H. Kim, A. G. Dimakis, Neural Distributed Source Coding, "
         "IEEE JSAIT 2024 (arXiv:2106.02797)")
_DESCRIPTION = ("conditional VQ-VAE (EMA codebook, one index per latent position) + causal Transformer prior; "
                "indices range-coded (constriction) with the prior's probabilities; one model per codebook size")

MODE_NAMES = {"distributed": "neural_dsc", "joint": "neural_dsc_joint", "separate": "neural_dsc_separate"}
MODE_SCENARIOS = {"distributed": Scenario.DECODER_SIDE_INFO, "joint": Scenario.JOINT, "separate": Scenario.SEPARATE}
MODE_META = {
    m: MethodMeta(
        name=MODE_NAMES[m],
        scenario=MODE_SCENARIOS[m],
        paper=PAPER,
        trainable=True,
        description=f"mode {m}: " + _DESCRIPTION,
        twin="neural_dsc_separate" if m == "distributed" else "",  # the same codec without the side view
    )
    for m in MODES
}


def point_name(bits: int) -> str:
    return f"bits={bits}"


class _PriorHolder(nn.Module):
    """What the shared trainer optimises in the second stage: the prior alone (the VQ-VAE is frozen)."""

    def __init__(self, prior: CausalTransformerPrior):
        super().__init__()
        self.prior = prior


def vq_loss_fn(mode: str, down: int):
    """MSE(x, x_hat) + 0.25 * commitment, with logs (PSNR, codebook perplexity, fixed-length bpp)."""

    def loss_fn(model: ConditionalVQVAE, batch: Batch) -> dict[str, Any]:
        x = batch.x
        if mode != "separate" and batch.side is None:
            raise TrainingError(f"neural_dsc mode {mode!r} trains with the side view; the dataset gives none")
        H, W = x.shape[-2:]
        side = pad_to(batch.side, down) if mode != "separate" else None
        out = model(pad_to(x, down), side)
        mse = F.mse_loss(out.x_hat[..., :H, :W], x)
        loss = mse + COMMITMENT * out.commitment
        K = model.vq.K
        counts = torch.bincount(out.indices.reshape(-1), minlength=K).double()
        prob = counts / counts.sum()
        ppl = torch.exp(-(prob * torch.log(prob.clamp_min(1e-12))).sum())
        h, w = out.indices.shape[-2:]
        return {"loss": loss, "mse": mse.detach(), "psnr": -10 * torch.log10(mse.detach().clamp_min(1e-10)),
                "commitment": out.commitment.detach(), "perplexity": ppl, "bpp": model.bits * h * w / float(H * W)}

    return loss_fn


def prior_loss_fn(vq: ConditionalVQVAE, mode: str, down: int):
    """Cross-entropy of the prior on the (frozen) VQ-VAE's indices of the batch; logs bits per latent and bpp."""

    def loss_fn(holder: _PriorHolder, batch: Batch) -> dict[str, Any]:
        H, W = batch.x.shape[-2:]
        with torch.no_grad():
            side = pad_to(batch.side, down) if mode == "joint" else None
            idx = vq.encode_indices(pad_to(batch.x, down), side)
        n, h, w = idx.shape
        flat = idx.reshape(n, h * w)
        logits = holder.prior(flat, h, w)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat.reshape(-1))
        bpl = ce.detach() / math.log(2.0)
        return {"loss": ce, "bits_per_latent": bpl, "bpp": bpl * h * w / float(H * W)}

    return loss_fn


@register_method
class NeuralDSC(LearnedCodec):
    meta: ClassVar[MethodMeta] = MODE_META["distributed"]
    fixed_mode: ClassVar[str | None] = None  # subclasses pin their mode
    test_options: ClassVar[dict[str, Any]] = {
        "bits": [1, 3], "ch": 8, "n_res": 1, "emb_dim": 8, "prior_dim": 16, "prior_layers": 1, "prior_heads": 2,
    }
    # options that make `fit` take a few steps (the contract test trains every learned codec briefly)
    test_fit_options: ClassVar[dict[str, Any]] = {"steps": 2, "batch_size": 2, "crop": 64, "prior_steps": 2,
                                                  "prior_batch_size": 2}

    options_spec: ClassVar[tuple[Option, ...]] = OPTIONS

    def __init__(self, protocol: Any = None, *, mode: str | None = None, arch: str | None = None,
                 bits: tuple[int, ...] | None = None, data_init: bool | None = None, dead_threshold: float | None = None,
                 **options: Any):
        # the options arrive checked and typed (OPTIONS); None: the declared default
        data_init = True if data_init is None else data_init
        dead_threshold = 1.0 if dead_threshold is None else dead_threshold
        super().__init__(protocol, mode=mode, arch=arch, bits=bits, data_init=data_init, dead_threshold=dead_threshold, **options)
        default_mode = self.fixed_mode or "distributed"
        mode = mode or default_mode
        if mode not in MODES:
            raise ConfigError(f"neural_dsc: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if self.fixed_mode and mode != self.fixed_mode:
            raise ConfigError(f"{self.meta.name} is mode {self.fixed_mode!r}; for mode {mode!r} use {MODE_NAMES[mode]}")
        self.mode = mode
        self.meta = MODE_META[mode]  # neural_dsc --option mode=joint == neural_dsc_joint
        self.protocol_name = getattr(protocol, "name", protocol if isinstance(protocol, str) else None)
        archs, _ = configs.tables(self.protocol_name)
        if arch is not None and arch not in archs:
            raise ConfigError(f"neural_dsc: unknown arch {arch!r} for protocol {self.protocol_name}; choose {', '.join(archs)}")
        self.arch_name = arch or configs.default_arch_name(self.protocol_name)
        if arch is not None and arch != configs.default_arch_name(self.protocol_name):
            self.variant = arch
        self._opt_bits = bits
        self._arch_over = {k: options[k] for k in _ARCH_FIELDS if options.get(k) is not None}
        self._train_over = {k: options[k] for k in (*_VQ_TRAIN, *_PRIOR_TRAIN) if k in options and options[k] is not None}
        self.data_init, self.dead_threshold = bool(data_init), float(dead_threshold)
        self.config: dict[str, Any] = {}
        self.models: dict[str, tuple[ConditionalVQVAE, CausalTransformerPrior]] = {}
        self._p64: dict[str, CausalTransformerPrior] = {}
        self.training_info: dict[str, Any] = {}
        self.bits: tuple[int, ...] = self._opt_bits or configs.bits_for(self.budget_table(self.protocol_name)["paper"],
                                                                         self.arch_name)

    # ---- configuration -------------------------------------------------------------------------------
    def arch(self, budget: str | None) -> Arch:
        a = configs.arch_for(self.protocol_name, self.arch_name, budget)
        return replace(a, **self._arch_over) if self._arch_over else a

    @classmethod
    def budget_table(cls, protocol: str | None = None) -> dict[str, MethodBudget]:
        return configs.tables(protocol)[1]  # per protocol (stages "vq" and "prior")

    def resolve(self, budget: str, n_train: int) -> tuple[Arch, tuple[int, ...], TrainConfig, TrainConfig]:
        b = method_budget(self.budget_table(self.protocol_name), budget, self.meta.name)
        over = {"vq": {k: v for k, v in self._train_over.items() if k in _VQ_TRAIN},
                "prior": {k[len("prior_"):]: v for k, v in self._train_over.items() if k in _PRIOR_TRAIN}}
        cfgs = {}
        for stage in ("vq", "prior"):
            cfg = resolve_budget(b.stage(stage), None, **over[stage])
            if stage in b.epochs and "steps" not in over[stage]:
                cfg = cfg.replace(steps=math.ceil(b.epochs[stage] * n_train / cfg.batch_size))
            cfgs[stage] = cfg
        return self.arch(budget), self._opt_bits or configs.bits_for(b, self.arch_name), cfgs["vq"], cfgs["prior"]

    def rate_points(self) -> list[str]:
        return [point_name(b) for b in self.bits]

    def point_index(self, point: str) -> int:
        return point_index(self.meta.name, self.rate_points(), point)

    def _instantiate(self, arch: Arch, bits: tuple[int, ...], seed: int = 0, budget: str | None = None) -> None:
        self.bits = tuple(int(b) for b in bits)
        self.config = {"architecture": ARCHITECTURE, "mode": self.mode, "arch_name": self.arch_name, "arch": arch.as_dict(),
                       "bits": list(self.bits), "budget": budget, "protocol": self.protocol_name,
                       "data_init": self.data_init, "dead_threshold": self.dead_threshold}
        self.models, self._p64 = {}, {}
        for i, b in enumerate(self.bits):
            torch.manual_seed(seed * 1009 + i)  # deterministic initialisation per rate point
            vq = build_vqvae(arch.family, self.mode, b, arch.down, arch.ch, arch.n_res, arch.emb_dim,
                             data_init=self.data_init, dead_threshold=self.dead_threshold).eval()
            prior = CausalTransformerPrior(2**b, arch.prior_dim, arch.prior_layers, arch.prior_heads, arch.prior_dropout,
                                           style=arch.prior_style).eval()
            self.models[point_name(b)] = (vq, prior)

    def _require_models(self) -> None:
        if not self.models:  # untrained: random weights of the construction-time configuration
            self._instantiate(self.arch(None), self.bits)

    @property
    def down(self) -> int:
        self._require_models()
        return int(self.config["arch"]["down"])

    # ---- training ---------------------------------------------------------------------------------------
    def fit(self, train_ds: Iterable, val_ds: Iterable | None, *, budget: str, device: str, workdir: Path, seed: int = 0,
            progress: bool | None = None) -> dict[str, Any]:
        arch, bits, vq_cfg, pr_cfg = self.resolve(budget, len(train_ds))
        dev = check_device(device)
        t0 = time.perf_counter()
        self._instantiate(arch, bits, seed, budget)
        root = Path(workdir) / f"{budget}-seed{seed}"
        per_point = {}
        for p, (vq, prior) in self.models.items():
            vq.train()
            info_vq = train(vq, vq_loss_fn(self.mode, arch.down), train_ds, val_ds, config=vq_cfg, workdir=root / p / "vqvae",
                            seed=seed, device=str(dev), tag=f"{self.meta.name} {p} vq-vae", progress=progress)
            vq.to(dev).eval()
            holder = _PriorHolder(prior)
            info_pr = train(holder, prior_loss_fn(vq, self.mode, arch.down), train_ds, val_ds, config=pr_cfg,
                            workdir=root / p / "prior", seed=seed, device=str(dev), tag=f"{self.meta.name} {p} prior",
                            progress=progress)
            vq.to("cpu").eval()
            prior.to("cpu").eval()
            keep = ("steps", "wall_s", "cpu_s", "resumed_at", "final_train", "best_val", "best_step", "restored")
            per_point[p] = {"vqvae": {**{k: info_vq.get(k) for k in keep}, "weights_sha256": state_dict_sha256(vq)},
                            "prior": {**{k: info_pr.get(k) for k in keep}, "weights_sha256": state_dict_sha256(prior)}}
        self._p64 = {}
        self.training_info = {
            "budget": budget, "seed": seed, "device": str(dev), "steps": vq_cfg.steps, "prior_steps": pr_cfg.steps,
            "models": len(self.models), "mode": self.mode,
            "config": {**self.config, "train_vqvae": vq_cfg.as_dict(), "train_prior": pr_cfg.as_dict()},
            "points": per_point, "wall_s": round(time.perf_counter() - t0, 2),
        }
        return self.training_info

    # ---- weights --------------------------------------------------------------------------------------------
    def save_weights(self, directory: Path) -> Path:
        self._require_models()
        models = {}
        for p, (vq, prior) in self.models.items():
            models[f"{p}.vqvae"], models[f"{p}.prior"] = vq, prior
        return save_weights(directory, method=self.meta.name, models=models, config=self.config, points=self.rate_points(),
                            protocol=self.protocol_name, training=self.training_info)

    def load_weights(self, directory: Path) -> dict[str, Any]:
        loaded = load_weights(directory, method=self.meta.name)
        cfg = loaded.config
        if cfg.get("architecture") != ARCHITECTURE or cfg.get("mode") != self.mode:
            raise WeightsError(f"weights in {directory} are {cfg.get('architecture')!r} mode {cfg.get('mode')!r}; "
                               f"{self.meta.name} needs {ARCHITECTURE!r} mode {self.mode!r}")
        try:
            arch = Arch(**cfg["arch"])
            bits = tuple(int(b) for b in cfg["bits"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"weights manifest in {directory} has no valid config.arch / config.bits ({exc})") from exc
        if cfg.get("arch_name") != self.arch_name:
            raise WeightsError(f"weights in {directory} are arch {cfg.get('arch_name')!r}; the options ask for {self.arch_name!r}")
        for k, v in self._arch_over.items():
            if getattr(arch, k) != v:
                raise WeightsError(f"weights in {directory} have {k}={getattr(arch, k)}, the options ask for {k}={v}")
        if self._opt_bits is not None and bits != self._opt_bits:
            raise WeightsError(f"weights in {directory} cover bits {list(bits)}, the options ask for {list(self._opt_bits)}")
        self._instantiate(arch, bits, budget=cfg.get("budget"))
        for p, (vq, prior) in self.models.items():
            for what, mod in (("vqvae", vq), ("prior", prior)):
                key = f"{p}.{what}"
                if key not in loaded.tensors:
                    raise WeightsError(f"weights in {directory} have no {key}")
                load_into(mod, loaded.tensors[key], f"{self.meta.name} {key}")
                mod.eval()
        self.training_info = loaded.training
        return loaded.summary()

    # ---- coding ------------------------------------------------------------------------------------------------
    def _batch(self, t: Any, what: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """A 3xHxW image (x, or the side view, which must match x's shape) as a padded 1x3xH'xW' CPU batch."""
        ok = isinstance(t, torch.Tensor) and t.dim() == 3 and t.shape[0] == 3
        if not ok or (shape is not None and tuple(t.shape) != tuple(shape)):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ConfigError(f"{self.meta.name} codes 3xHxW images (side view of the image's shape {shape}); "
                              f"got {what} {got}")
        return pad_to(t.detach().float().cpu()[None], self.down)

    def _side(self, side: torch.Tensor | None, shape: tuple[int, ...], where: str) -> torch.Tensor:
        if side is None:
            raise ConfigError(f"{self.meta.name} (mode {self.mode}) needs the side view at the {where}; none was given")
        return self._batch(side, "side", shape)

    def _prior64(self, p: str) -> CausalTransformerPrior:
        if p not in self._p64:
            self._p64[p] = to_float64(self.models[p][1])
        return self._p64[p]

    def _indices(self, x: torch.Tensor, side: torch.Tensor | None, point: str) -> torch.Tensor:
        """The encoder: (h, w) codebook indices of x (side is read only in joint mode)."""
        self._require_models()
        xp = self._batch(x, "x")
        self.point_index(point)
        vq = self.models[point][0]
        sp = self._side(side, tuple(x.shape), "encoder") if vq.encoder_uses_side else None
        with torch.no_grad(), one_thread():  # bit-exact whatever the thread count (benchmark/contract/determinism.py)
            return vq.encode_indices(xp, sp)[0]

    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        idx = self._indices(x, side, point)
        h, w = idx.shape
        data, _ = encode_indices(self._prior64(point), idx.reshape(-1).numpy(), h, w)
        return Container(self.meta.name, self.point_index(point), tuple(int(d) for d in x.shape), [data]).to_bytes()

    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        self._require_models()
        c = Container.from_bytes(data, self.meta.name)
        pts = self.rate_points()
        # autoregressive: time grows faster than the image; counted on the image padded to the latent grid
        check_image_header(self.meta.name, c, n_points=len(pts), n_streams=1, max_pixels=_MAX_PIXELS, stride=self.down,
                           cap=DECODE_PIXEL_CAP)
        p = pts[c.point]
        vq = self.models[p][0]
        _, H, W = c.shape
        d = self.down
        h, w = -(-H // d), -(-W // d)
        check_side_shape(self.meta.name, c, side)
        sp = self._side(side, tuple(c.shape), "decoder") if vq.decoder_uses_side else None
        try:
            idx = decode_indices(self._prior64(p), c.streams[0], h, w)
            with torch.no_grad(), one_thread():
                x_hat = vq.decode_indices(torch.from_numpy(idx).view(1, h, w), sp)
        except Exception as exc:
            raise BitstreamError(f"{self.meta.name}: cannot decode the payload ({type(exc).__name__}: {exc}); "
                                 "the bitstream is corrupt or was made with other weights") from exc
        if not torch.isfinite(x_hat).all():
            raise BitstreamError(f"{self.meta.name}: the payload decoded to an invalid image; the bitstream is corrupt")
        return x_hat[0, :, :H, :W].clamp(0.0, 1.0).contiguous()

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The raster-ordered indices carried by a bitstream (for tests and analysis)."""
        self._require_models()
        c = Container.from_bytes(data, self.meta.name)
        p = self.rate_points()[c.point]
        d = self.down
        return decode_indices(self._prior64(p), c.streams[0], -(-c.shape[1] // d), -(-c.shape[2] // d))

    def estimate_bits(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> float | None:
        """The authors' ideal code length of x's indices under the prior: ceil(sum -log2 p) + 1 bits."""
        idx = self._indices(x, side, point)
        h, w = idx.shape
        return ideal_bits(self._prior64(point), idx.reshape(-1).numpy(), h, w)

    def info(self) -> dict[str, Any]:
        self._require_models()
        d = self.down
        return {
            **super().info(),
            "mode": self.mode,
            "architecture": ARCHITECTURE,
            "config": self.config,
            "bits": list(self.bits),
            # bits * latents / pixels (exact for image sides that are multiples of the downsampling factor)
            "fixed_length_bpp": {point_name(b): b / (d * d) for b in self.bits},
            "latent_downsampling": d,
            "rate_notes": ("latent indices (raster order) range-coded with the causal-Transformer prior "
                           "(constriction RangeEncoder, float64 incremental probabilities identical at both ends, "
                           "last 32-bit word trimmed); bpp_estimated = authors' ceil(sum -log2 p)+1; fixed-length "
                           f"rate = bits * latents / pixels; image padded to a multiple of {d} by edge replication"),
        }


@register_method
class NeuralDSCJoint(NeuralDSC):
    meta = MODE_META["joint"]
    fixed_mode = "joint"


@register_method
class NeuralDSCSeparate(NeuralDSC):
    meta = MODE_META["separate"]
    fixed_mode = "separate"
