"""`layered_wz`: the learned successive-refinement Wyner–Ziv coder as a suite codec (Joukovsky et al.: `PAPER`).

One stream per stage inside the suite's container, so the stream is scalable: the first k streams decode
to stage k (`truncate`). Each stage's indices are coded for real with a range coder (constriction) under
the marginal prior q_m(m_k | m_<k), tabulated as 16-bit integer frequencies stored with the weights.

Rates, honestly labelled:
  bytes            real range-coded bits under q_m (no side information used by the entropy coder)
  bpp_estimated    the paper's ideal rate: cross-entropy under the training prior, i.e. q_m (ideal entropy
                   coder) or q_c(m_k | m_<k, y) (ideal Slepian–Wolf coder, which is not built here)
For prior="conditional" the bytes are therefore those of a non-Slepian–Wolf coder (an auxiliary q_m trained
on the frozen codes), above the ideal Slepian–Wolf rate by about I(M; Y)."""
from __future__ import annotations

import copy
import math
import re
import time
from pathlib import Path
from typing import Any, Iterable

import constriction
import numpy as np
import torch

from benchmark.contract.budgets import MethodBudget
from benchmark.contract.codec import LearnedCodec, MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ConfigError, WeightsError
from benchmark.contract.registry import register_method
from benchmark.training.trainer import train
from benchmark.contract.budgets import TrainConfig, resolve_budget
from benchmark.training.weights import load_into, load_weights, save_weights

from . import configs
from . import slepian_wolf as sw
from .model import LayeredWZ, ModelConfig
from .train import Annealed, Chunks, fit_encoder_to_nested, make_loss_fn, relaxation_leak, samples_hard

PAPER = ("B. Joukovsky, B. De Weerd, N. Deligiannis, \"Learned layered coding for successive refinement in the "
         "Wyner-Ziv problem\" (RNN encoders/decoders, Gaussian source with decoder side information)")

def parse_config(config: str) -> tuple[int, ...]:
    """'222' -> (2, 2, 2); '44' -> (4, 4); 'mono8' -> (8,) (the monolithic K = 1 coder, 2..16 bins)."""
    config = str(config)
    m = re.fullmatch(r"mono(\d+)", config)
    if m:
        n = int(m.group(1))
        if not 2 <= n <= 16:
            raise ConfigError(f"layered_wz: monolithic coder needs 2..16 bins, got {config!r}")
        return (n,)
    if re.fullmatch(r"[2-9]{1,4}", config) and len(set(config)) == 1:
        return tuple(int(c) for c in config)
    raise ConfigError(f"layered_wz: config {config!r} not understood; use '222', '44' (K stages of alphabet M, "
                      f"one digit per stage, all equal) or 'mono2'..'mono16'")


# options that change training, with their short names in the key and their defaults (None: always shown)
TRAIN_OPTIONS = ("lam", "faithful", "hidden", "layers", "cell", "in_scale", "residual", "hard", "tau1", "steps", "lr",
                 "batch", "estimator", "anneal_at", "lr_decay_at", "train_other", "init", "init_delta", "init_steps")
_KEY_DEFAULTS = {"faithful": False, "hidden": 100, "layers": 2, "cell": "elman", "residual": True, "hard": False,
                 "tau1": configs.TAU1, "steps": None, "lr": None, "batch": configs.SAMPLES_PER_STEP, "estimator": "gumbel",
                 "anneal_at": configs.ANNEAL_AT, "lr_decay_at": None, "train_other": False, "init": "random",
                 "init_delta": 1.0, "init_steps": 500}
_KEY_NAMES = {"faithful": "faithful", "hidden": "h", "layers": "L", "cell": "", "in_scale": "in", "residual": "res",
              "hard": "hard", "tau1": "tau", "steps": "steps", "lr": "lr", "batch": "b", "estimator": "",
              "anneal_at": "ha", "lr_decay_at": "decay", "train_other": "other", "init": "init", "init_delta": "d",
              "init_steps": "is"}
# options that only mean something beside another one: (option, the option, the value that gives it a meaning)
_KEY_ONLY_WITH = {"init_delta": ("init", "nested"), "init_steps": ("init", "nested"), "anneal_at": ("estimator", "anneal")}
# training options absent from weights saved before they existed: their value then
_OLD_WEIGHTS_DEFAULTS = {"faithful": False, "anneal_at": configs.ANNEAL_AT}


def variant_key(config: str, prior: str, sigma2: float, train_options: dict[str, Any]) -> str:
    """'222.cond.s0.1.lam300' plus one part per training option that differs from its default (in_scale's
    default is 1/σ; with faithful=true 1, and residual's false), e.g. '.h32.steps6000', '.faithful', '.anneal':
    the weights folder, the training folder and the result file name."""
    parts = [config, prior[:4], f"s{sigma2:g}", f"lam{train_options['lam']:g}"]
    defaults = {**_KEY_DEFAULTS, "in_scale": 1.0 / math.sqrt(sigma2)}
    if train_options.get("faithful"):  # `.faithful` names the paper's networks: no input scaling, no residual
        defaults.update(in_scale=1.0, residual=False)
    for k in TRAIN_OPTIONS[1:]:
        v, d = train_options[k], defaults[k]
        if k in _KEY_ONLY_WITH and train_options[_KEY_ONLY_WITH[k][0]] != _KEY_ONLY_WITH[k][1]:
            continue
        if v == d or (isinstance(v, float) and isinstance(d, float) and math.isclose(v, d, rel_tol=1e-9)):
            continue
        if isinstance(v, bool):
            val = "" if v else "0"
        elif isinstance(v, (list, tuple)):
            val = "_".join(f"{f:g}" for f in v)
        elif isinstance(v, float):
            val = f"{v:g}"
        else:
            val = str(v)
        parts.append(f"{_KEY_NAMES[k]}{val}")
    return ".".join(parts)


TABLE_SAMPLES = 1_000_000  # training pairs whose codes are counted into the q_m table of a conditional coder


@register_method
class LayeredWZCodec(LearnedCodec):
    meta = MethodMeta(
        name="layered_wz",
        scenario=Scenario.DECODER_SIDE_INFO,
        paper=PAPER,
        trainable=True,
        variable_rate=True,
        scalable=True,
        description="RNN successive-refinement Wyner–Ziv coder for scalar sources; K stages of alphabet M "
        "(configs 222, 44, monoN); ideal-rate estimate under q_m or q_c, real bytes under q_m",
        modalities=("scalar",),
    )
    test_protocol = "gaussian/wz"
    test_options = {"hidden": 8, "config": "44"}
    test_fit_options = {"steps": 2, "batch": 500}  # a few steps: the contract test trains every learned codec briefly
    dataset_options_used = ("sigma2",)  # the runner forwards --dataset-option sigma2=... to the codec
    estimate_uses_decoder_side = True  # bpp_estimated = ideal Slepian–Wolf rate, measured with y by the runner
    options_spec = configs.OPTIONS  # checked and cast before __init__ runs (benchmark/contract/options.py)

    def __init__(self, protocol: Any = None, *, config: str = "222", prior: str = "conditional", lam: float | None = None,
                 sigma2: float | None = None, hidden: int = 100, layers: int = 2, cell: str = "elman",
                 in_scale: float | None = None, residual: bool = True, hard: bool = False, tau1: float = configs.TAU1,
                 steps: int | None = None, lr: float | None = None, batch: int = configs.SAMPLES_PER_STEP,
                 estimator: str = "gumbel", anneal_at: float = configs.ANNEAL_AT, faithful: bool = False,
                 lr_decay_at: tuple[float, ...] | list[float] | None = None,
                 train_other: bool = False, init: str = "random", init_delta: float = 1.0, init_steps: int = 500,
                 coder: str = "range", sw_margin: float = 0.08):
        # the options arrive checked against configs.OPTIONS (names, types, choices, bounds) and cast
        if sigma2 is None:
            sigma2 = float(getattr(protocol, "options", {}).get("sigma2", 0.1)) if protocol is not None else 0.1
        self.alphabets = parse_config(config)
        lam = configs.default_lam(sigma2) if lam is None else lam
        if faithful:  # the paper's networks (Sec. 3.2, 4): x and y enter unscaled, the decoder outputs x̂ itself
            if in_scale is not None or cell != "elman":
                raise ConfigError("layered_wz: faithful=true is the paper's network (Elman LeakyReLU cell, inputs "
                                  "unscaled, no residual decoder); drop in_scale= and cell= or drop faithful=true")
            in_scale, residual = 1.0, False
        in_scale = 1.0 / math.sqrt(sigma2) if in_scale is None else in_scale
        super().__init__(protocol, config=config, prior=prior, lam=lam, sigma2=sigma2, hidden=hidden, layers=layers,
                         cell=cell, in_scale=in_scale, residual=residual, hard=hard, tau1=tau1, steps=steps, lr=lr,
                         batch=batch, estimator=estimator, anneal_at=anneal_at, faithful=faithful,
                         lr_decay_at=None if lr_decay_at is None else list(lr_decay_at),
                         train_other=train_other, init=init, init_delta=init_delta, init_steps=init_steps, coder=coder,
                         sw_margin=sw_margin)
        if coder == "ldpc" and prior != "conditional":
            raise ConfigError("layered_wz: coder=ldpc (Slepian–Wolf) needs prior=conditional (its decoder uses q_c)")
        self.config, self.prior, self.lam, self.sigma2 = config, prior, lam, sigma2
        self.variant = variant_key(self.config, prior, sigma2, self.train_options())
        if coder == "ldpc":  # same weights, other bytes: its own result file (pass --weights of the range run)
            self.variant += f".ldpc{self.options['sw_margin']:g}"
        self.sw_stats: dict[str, dict[str, int]] = {}
        self._sw_rates: list[list[float]] | None = None
        self.model = LayeredWZ(self.model_config())
        self.model.eval()
        self.model.freeze_entropy_tables()  # untrained weights code too (the contract: usable after construction)
        self.training_info: dict[str, Any] = {}

    def train_options(self) -> dict[str, Any]:
        """Every option that changes what training produces (with λ): part of the weights/result key and of
        the weights manifest, so weights trained with other settings are never reused."""
        o = self.options
        return {k: o[k] for k in TRAIN_OPTIONS}

    def model_config(self) -> ModelConfig:
        o = self.options
        return ModelConfig(self.alphabets, hidden=o["hidden"], layers=o["layers"], cell=o["cell"],
                           in_scale=o["in_scale"], residual=o["residual"])

    # ---- rate points ---------------------------------------------------------------------------------
    @property
    def K(self) -> int:
        return self.model.cfg.K

    @property
    def M(self) -> int:
        return self.model.cfg.M

    def rate_points(self) -> list[str]:
        return [f"stage={k}" for k in range(1, self.K + 1)]

    def _stage(self, point: str) -> int:
        try:
            return self.rate_points().index(point) + 1
        except ValueError:
            raise ConfigError(f"layered_wz ({self.config}): unknown rate point {point!r}; use one of {self.rate_points()}") from None

    # ---- coding ----------------------------------------------------------------------------------------
    def _codes(self, x: torch.Tensor, k: int) -> torch.Tensor:
        dev = next(self.model.parameters()).device
        return self.model.encode(x.reshape(-1).float().to(dev), k).cpu()

    # ---- Slepian–Wolf stage (coder=ldpc) ------------------------------------------------------------------
    def _qc_probs(self, codes: torch.Tensor, y: torch.Tensor, j: int) -> np.ndarray:
        """q_c(m_j | m_<j, y) (n, M) for stage j (0-based) from the first j columns of codes."""
        with torch.no_grad():
            lq = self.model.prior_logits(self.model.one_hot(codes[:, :j]), y, "conditional", codes.shape[0], j + 1)[j]
        return lq.double().exp().numpy()

    def sw_plane_rates(self) -> list[list[float]]:
        """Ideal rate of every stage's bit planes (bits/sample), the syndrome rates' design values: measured once
        on 10^5 pairs drawn from the source model (not the coded data; the encoder never sees y)."""
        if self._sw_rates is None:
            from datasets.gaussian import draw_pairs

            xs, ys = draw_pairs(100_000, self.sigma2, (4, 0))  # seed family 4: none of the splits
            x, y = torch.from_numpy(xs).float(), torch.from_numpy(ys).float()
            codes = self.model.encode(x)
            self._sw_rates = [sw.plane_entropy(self._qc_probs(codes, y, j), codes[:, j].numpy(), self.M)
                              for j in range(self.K)]
        return self._sw_rates

    def _compress_sw(self, codes: torch.Tensor) -> list[bytes]:
        rates = self.sw_plane_rates()
        m = self.options["sw_margin"]
        return [sw.pack_stage([sw.encode_plane(u, rates[j][t], m) for t, u in enumerate(sw.plane_bits(codes[:, j].numpy(), self.M))])
                for j in range(codes.shape[1])]

    def _decompress_sw(self, c: Container, y: torch.Tensor) -> torch.Tensor:
        """Decode stage by stage; at the first stage whose planes fail (BP not converged or CRC mismatch) stop and
        return the last decoded stage's x̂ (y itself, E[X|y], if stage 1 fails). Counted in `sw_stats`."""
        n, k = y.numel(), c.point + 1
        codes = torch.zeros(n, k, dtype=torch.long)
        n_planes = len(sw.plane_bits(np.zeros(1, dtype=np.int64), self.M))
        decoded = 0
        for j, stream in enumerate(c.streams):
            probs = self._qc_probs(codes, y, j)
            known: list[np.ndarray] = []
            ok = True
            for t, plane in enumerate(sw.unpack_stage(stream, n_planes)):
                u, ok = sw.decode_plane(plane, sw.plane_probability(probs, known, t, self.M))
                if not ok:
                    break
                known.append(u)
            if not ok:
                break
            sym = np.zeros(n, dtype=np.int64)
            for u in known:
                sym = (sym << 1) | u.astype(np.int64)
            codes[:, j] = torch.from_numpy(sym)
            decoded = j + 1
        st = self.sw_stats.setdefault(f"stage={k}", {"blocks": 0, "failed": 0, **{f"failed_at_stage{i + 1}": 0 for i in range(k)}})
        st["blocks"] += 1
        if decoded < k:
            st["failed"] += 1
            st[f"failed_at_stage{decoded + 1}"] += 1
        if decoded == 0:
            return y.clone()
        return self.reconstruct(codes[:, :decoded], y)

    def compress(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> bytes:
        """Encode x (any shape; samples are coded independently). `side` is never used (Wyner–Ziv encoder)."""
        k = self._stage(point)
        if self.options["coder"] == "ldpc":
            return Container(self.meta.name, k - 1, tuple(int(d) for d in x.shape), self._compress_sw(self._codes(x, k))).to_bytes()
        probs = self.model.entropy_probs().numpy()
        codes = self._codes(x, k)
        streams = []
        for j in range(k):
            rows = LayeredWZ.history_index(codes, j, self.M).numpy()
            enc = constriction.stream.queue.RangeEncoder()
            enc.encode(codes[:, j].numpy().astype(np.int32), constriction.stream.model.Categorical(perfect=False), probs[rows])
            streams.append(enc.get_compressed().astype("<u4").tobytes())
        return Container(self.meta.name, k - 1, tuple(int(d) for d in x.shape), streams).to_bytes()

    def decode_codes(self, data: bytes) -> tuple[torch.Tensor, tuple[int, ...]]:
        """(codes (n, k), shape) from bytes; no side information needed (the entropy model is q_m)."""
        c = Container.from_bytes(data, self.meta.name)
        k = c.point + 1
        if k > self.K:
            raise BitstreamError(f"layered_wz ({self.config}) has {self.K} stages; the stream claims stage {k}")
        if len(c.streams) != k:
            raise BitstreamError(f"stage-{k} stream must hold {k} sub-streams, found {len(c.streams)}")
        n = int(np.prod(c.shape)) if c.shape else 1
        probs = self.model.entropy_probs().numpy()
        codes = torch.zeros(n, k, dtype=torch.long)
        for j, s in enumerate(c.streams):
            if len(s) % 4:
                raise BitstreamError(f"stage {j + 1} sub-stream has {len(s)} bytes, not a whole number of 32-bit words")
            rows = LayeredWZ.history_index(codes, j, self.M).numpy()
            try:
                dec = constriction.stream.queue.RangeDecoder(np.frombuffer(s, dtype="<u4").astype(np.uint32))
                sym = dec.decode(constriction.stream.model.Categorical(perfect=False), probs[rows])
            except Exception as exc:  # constriction raises on streams it cannot decode
                raise BitstreamError(f"corrupt stage-{j + 1} sub-stream: {exc}") from exc
            sym = np.asarray(sym)
            if sym.shape != (n,) or sym.min(initial=0) < 0 or sym.max(initial=0) >= self.M:
                raise BitstreamError(f"corrupt stage-{j + 1} sub-stream (decoded symbols out of range)")
            codes[:, j] = torch.from_numpy(sym.astype(np.int64))
        return codes, tuple(c.shape)

    def decompress(self, data: bytes, *, side: torch.Tensor | None = None, source: int = 0) -> torch.Tensor:
        if side is None:
            raise ConfigError("layered_wz is a Wyner–Ziv decoder: it needs the side information y (side=...)")
        y = side.reshape(-1).float()
        if self.options["coder"] == "ldpc":
            c = Container.from_bytes(data, self.meta.name)
            if c.point + 1 > self.K or len(c.streams) != c.point + 1:
                raise BitstreamError(f"layered_wz ({self.config}): stream claims stage {c.point + 1} with {len(c.streams)} sub-streams")
            if y.numel() != (int(np.prod(c.shape)) if c.shape else 1):
                raise BitstreamError(f"layered_wz: the bitstream codes {int(np.prod(c.shape))} samples but the side "
                                     f"information has {y.numel()}; the bitstream is corrupt or belongs to other data")
            return self._decompress_sw(c, y).reshape(tuple(c.shape))
        codes, shape = self.decode_codes(data)
        if y.numel() != codes.shape[0]:
            raise BitstreamError(f"layered_wz: the bitstream codes {codes.shape[0]} samples but the side information has "
                                 f"{y.numel()}; the bitstream is corrupt or belongs to other data")
        return self.reconstruct(codes, y).reshape(shape)

    @torch.no_grad()
    def reconstruct(self, codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x̂ at stage codes.shape[1] from codes and y."""
        dev = next(self.model.parameters()).device
        return self.model.reconstruct(codes.to(dev), y.to(dev))[-1].cpu()

    def truncate(self, data: bytes, point: str) -> bytes:
        k = self._stage(point)
        c = Container.from_bytes(data, self.meta.name)
        if k > c.point + 1:
            raise BitstreamError(f"cannot extend a stage-{c.point + 1} stream to stage {k}; truncation only drops stages")
        return Container(self.meta.name, k - 1, c.shape, list(c.streams[:k])).to_bytes()

    @torch.no_grad()
    def estimate_bits(self, x: torch.Tensor, *, side: torch.Tensor | None = None, source: int = 0, point: str) -> float | None:
        """Ideal code length (bits) of the first k stages under the training prior: Σ −log2 q_m(m_k|m_<k) for
        prior=marginal, Σ −log2 q_c(m_k|m_<k, y) (ideal Slepian–Wolf) for prior=conditional (needs side; None without)."""
        k = self._stage(point)
        codes = self._codes(x, k)
        if self.prior == "conditional":
            if side is None:
                return None
            y = side.reshape(-1).float()
            return float(self.model.code_lengths(codes, y, "conditional").sum())
        return float(self.model.code_lengths(codes, None, "marginal").sum())

    def decoder_counts(self) -> dict[str, Any] | None:
        """coder=ldpc: per number of stages, the blocks decoded, those whose Slepian–Wolf decoding failed and the
        stage each failure stopped at (`sw_stats`); the range coder counts nothing."""
        return copy.deepcopy(self.sw_stats) if self.options["coder"] == "ldpc" else None

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update({
            "variant": self.variant,
            "stages": self.K,
            "alphabet": self.M,
            "model": self.model.cfg.as_dict(),
            "rate_notes": (
                "bytes: one range-coded (constriction) sub-stream per stage under the marginal prior q_m, 16-bit "
                "integer tables stored with the weights; bpp_estimated: ideal cross-entropy under "
                + ("q_c(m_k|m_<k,y), the rate of an ideal Slepian-Wolf coder, which is NOT built: the bytes use an "
                   "auxiliary q_m trained on the frozen codes, so bytes exceed the estimate by about I(M;Y)"
                   if self.prior == "conditional" else "q_m (ideal entropy coder)")
            ),
        })
        if self.options["coder"] == "ldpc":
            out["rate_notes"] = (
                "bytes: Slepian-Wolf stage, LDPC syndromes (column weight 3, one block = one test block) of every "
                "stage's bit planes at the plane's ideal q_c rate + sw_margin, plus a 32-bit CRC and 8-byte header per "
                "plane, decoded by sum-product BP with q_c(m_k|m_<k,y) as the channel; a failed stage (BP not "
                "converged or CRC mismatch) is detected, the decoder keeps the last decoded stage, and it is counted "
                "in codec_info.slepian_wolf; bpp_estimated: ideal cross-entropy under q_c (ideal Slepian-Wolf coder)")
            out["slepian_wolf"] = {"margin_bits": self.options["sw_margin"], "plane_rates_design": self.sw_plane_rates(),
                                   "max_iter": sw.MAX_ITER, "decoding": self.sw_stats}
        if self.training_info:
            out["training"] = {k: v for k, v in self.training_info.items() if k != "trainer"}
        out["figure"] = self.figure_data()
        return out

    @torch.no_grad()
    def figure_data(self, n_x: int = 801, n_y: int = 41, span: float = 3.5) -> dict[str, Any]:
        """What the leaderboard draws (paper Fig. 3): the code of every stage on a grid of x (one hex digit per
        grid point), and the stage-k reconstruction x̂_k(y) for every code prefix m_1..m_k on a grid of y."""
        sx = span * math.sqrt(1.0 + self.sigma2)
        xg = torch.linspace(-sx, sx, n_x)
        codes = self.model.encode(xg)
        yg = torch.linspace(-span, span, n_y)
        recon = {}
        for k in range(1, self.K + 1):
            prefixes = torch.cartesian_prod(*[torch.arange(self.M)] * k).reshape(-1, k)
            for pre in prefixes:
                xh = self.model.reconstruct(pre.expand(n_y, k).contiguous(), yg)[-1]
                recon["".join(format(int(c), "x") for c in pre)] = [round(float(v), 4) for v in xh]
        return {"x": [-sx, sx, n_x], "codes": ["".join(format(int(c), "x") for c in codes[:, k]) for k in range(self.K)],
                "y": [-span, span, n_y], "recon": recon}

    # ---- training ----------------------------------------------------------------------------------------
    @classmethod
    def budget_table(cls, protocol: str | None = None) -> dict[str, MethodBudget]:
        return configs.BUDGETS  # the same for every σ²

    def train_config(self, budget: str) -> TrainConfig:
        o = self.options
        return resolve_budget(budget, configs.BUDGETS, steps=o["steps"], lr=o["lr"],
                              milestones=configs.lr_milestones(self.prior) if o["lr_decay_at"] is None else tuple(o["lr_decay_at"]))

    def fit(self, train_ds: Iterable, val: Iterable | None, *, budget: str, device: str = "cpu", workdir: Path | None = None,
            seed: int = 0) -> dict[str, Any]:
        data_s2 = getattr(train_ds, "sigma2", None)
        if data_s2 is not None and abs(float(data_s2) - self.sigma2) > 1e-12:
            raise ConfigError(f"layered_wz was built for sigma2={self.sigma2:g} but the training data has sigma2={data_s2:g}; "
                              f"pass the method option sigma2={data_s2:g} too (it selects λ, input scaling and the result name)")
        if workdir is None:
            raise ConfigError("layered_wz.fit needs a workdir for its checkpoints")
        o = self.options
        cfg = self.train_config(budget)
        torch.manual_seed(seed)
        wrapped = Annealed(LayeredWZ(self.model_config()), cfg.steps, configs.TAU0, o["tau1"])
        if o["init"] == "nested":
            fit_encoder_to_nested(wrapped.net, self.sigma2, o["init_delta"], o["init_steps"], batch=o["batch"], seed=seed)
        loss_fn = make_loss_fn(prior=self.prior, lam=self.lam, hard=o["hard"], estimator=o["estimator"],
                               other=o["train_other"], anneal_at=o["anneal_at"], sigma2=self.sigma2)
        t0 = time.time()
        info = train(wrapped, loss_fn, Chunks(train_ds, o["batch"]), val, config=cfg, workdir=Path(workdir), seed=seed,
                     device=device, tag=f"layered_wz {self.variant}")
        self.model = wrapped.net.to("cpu").eval()
        if self.counted_tables:
            self.model.count_entropy_tables(self._codes(self._samples(train_ds, TABLE_SAMPLES)[0], self.K))
        else:
            self.model.freeze_entropy_tables()
        self.training_info = {"budget": budget, "seed": seed, "steps": cfg.steps,
                              # training time over every resumed segment (the trainer's wall_s), and this call's
                              "seconds": round(float(info.get("wall_s", time.time() - t0)), 1),
                              "this_call_s": round(time.time() - t0, 1),
                              "lam": self.lam, "prior": self.prior, "config": self.config, "sigma2": self.sigma2,
                              "samples_per_step": o["batch"], "tau": [configs.TAU0, o["tau1"]], "tau_final": round(wrapped.tau(), 6),
                              "steps_taken": int(wrapped.step), "estimator": o["estimator"],
                              "leak": self._leak(wrapped, cfg.steps),
                              "trainer": {k: info[k] for k in ("config", "wall_s", "cpu_s", "final_train", "validation",
                                                               "weights_sha256", "resumed_at") if k in info}}
        if val is not None:
            self.training_info["val"] = self.evaluate_ideal(val)
        return dict(self.training_info)

    def _leak(self, wrapped: Annealed, steps: int) -> dict[str, Any]:
        """The relaxed-below-bound leak of the trained weights at the final temperature (`train.relaxation_leak`),
        with the samples the last training step used (relaxed, hard (straight-through) or exact: no samples) and the
        training objective's gap to the Wyner–Ziv bound tracked during training (`train.Annealed.track`)."""
        o = self.options
        last = ("exact" if o["estimator"] == "exact"
                else "hard" if samples_hard(o["estimator"], o["hard"], max(0, steps - 1), steps, o["anneal_at"]) else "relaxed")
        return {"last_step_samples": last, **relaxation_leak(self.model, self.sigma2, prior=self.prior, lam=self.lam,
                                                             tau=wrapped.tau()),
                "training_gap_wz_db": wrapped.gap_record()}

    @property
    def counted_tables(self) -> bool:
        """True when q_m of the real entropy coder is counted from codes (conditional prior, q_m not trained)."""
        o = self.options
        return self.prior == "conditional" and not o["train_other"] and o["estimator"] != "exact"

    @staticmethod
    def _samples(blocks: Iterable, max_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys, n = [], [], 0
        for s in blocks:
            xs.append(s.x.reshape(-1).float())
            ys.append(s.side.reshape(-1).float())
            n += xs[-1].numel()
            if n >= max_samples:
                break
        return torch.cat(xs)[:max_samples], torch.cat(ys)[:max_samples]

    def table_code_lengths(self, codes: torch.Tensor) -> torch.Tensor:
        """−log2 of the frozen q_m table (what the range coder pays) per sample and stage, (n, k)."""
        logp = self.model.entropy_probs().log2()
        return torch.stack([-logp[LayeredWZ.history_index(codes, j, self.M), codes[:, j]] for j in range(codes.shape[1])],
                           dim=-1).float()

    @torch.no_grad()
    def evaluate_ideal(self, blocks: Iterable, max_samples: int = 1_000_000) -> list[dict[str, float]]:
        """Per stage: ideal rates (training prior; q_m table; q_c when trained; cumulative bits/sample) and MSE."""
        x, y = self._samples(blocks, max_samples)
        codes = self.model.encode(x)
        xh = self.model.reconstruct(codes, y)
        lt = self.table_code_lengths(codes).mean(0).cumsum(0)
        lc = (self.model.code_lengths(codes, y, "conditional").mean(0).cumsum(0)
              if self.prior == "conditional" or self.options["train_other"] else None)
        return [{"stage": k + 1, **({"rate_conditional": float(lc[k])} if lc is not None else {}),
                 "rate_marginal": float(lt[k]), "mse": float(((xh[k] - x) ** 2).mean())} for k in range(self.K)]

    # ---- weights -----------------------------------------------------------------------------------------
    def _manifest_config(self) -> dict[str, Any]:
        return {"config": self.config, "prior": self.prior, "lam": self.lam, "sigma2": self.sigma2,
                "model": self.model.cfg.as_dict(), "train_options": self.train_options()}

    def save_weights(self, directory: Path) -> Path:
        if self.model.qm_freq.numel() == 0:
            self.model.freeze_entropy_tables()
        training = {k: v for k, v in self.training_info.items() if k != "trainer"}
        return save_weights(Path(directory), method=self.meta.name, models={"model": self.model},
                            config=self._manifest_config(), points=self.rate_points(),
                            protocol=getattr(self.protocol, "name", None), training=training)

    def load_weights(self, directory: Path) -> dict[str, Any]:
        loaded = load_weights(Path(directory), method=self.meta.name, keys=["model"])
        cfg = loaded.config
        theirs = {"config": cfg.get("config"), "prior": cfg.get("prior"), "sigma2": cfg.get("sigma2"),
                  **_OLD_WEIGHTS_DEFAULTS, **(cfg.get("train_options") or {"lam": cfg.get("lam")})}
        mine = {"config": self.config, "prior": self.prior, "sigma2": self.sigma2, **self.train_options()}
        differ = [k for k in mine if k not in theirs or theirs[k] != mine[k]]
        if differ:
            raise WeightsError("weights were trained with " + ", ".join(f"{k}={theirs.get(k)!r}" for k in differ)
                               + "; this codec has " + ", ".join(f"{k}={mine[k]!r}" for k in differ)
                               + "; construct it with the same options (--option k=v) or retrain")
        state = loaded.tensors["model"]
        try:
            model = LayeredWZ(ModelConfig.from_dict(cfg["model"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"the weights manifest does not describe a layered_wz model: {exc}") from exc
        if "qm_freq" not in state:
            raise WeightsError("weights hold no entropy-coder table (qm_freq); retrain")
        model.qm_freq = state["qm_freq"].to(torch.int32)
        load_into(model, state, f"layered_wz {self.variant}")
        if model.qm_freq.shape != (sum(self.M**k for k in range(self.K)), self.M) or bool((model.qm_freq <= 0).any()):
            raise WeightsError("weights hold an invalid entropy-coder table (qm_freq)")
        self.model = model.eval()
        self.training_info = loaded.training
        return {**loaded.summary(), "budget": loaded.training.get("budget"), "seed": loaded.training.get("seed")}
