"""Training budgets in one shape for every method: a table ``{budget name: MethodBudget}``.

A learned method declares, per budget (`benchmark.contract.options.BUDGET_NAMES`: smoke, quick, paper), one
`MethodBudget`:

- ``train``: stage name -> `TrainConfig`. One stage ``"model"`` for most methods; a method trained in stages
  names each one (Neural DSC: ``"vq"`` then ``"prior"``).
- ``model``: what the budget fixes beyond training: widths (``N``, ``M``, ``widths``), rate points
  (``lambdas``, ``bits``), switches (``warm_start``). The method reads its own keys.
- ``epochs``: stage name -> epochs, for stages whose steps the method derives from the training-set size
  (DRASIC's and Neural DSC's paper budgets); absent: the stage's ``steps`` stand.
- ``source``: where the numbers come from (the paper, the authors' configuration, or "ours" for what neither
  states). Every ``paper`` budget names one; ``bench list methods -v`` prints it.

A method's ``paper`` budget may differ per protocol (the authors trained on whole 128x256 KITTI images, not on
CompressAI's 256x256 crops): `paper_by_protocol` groups a method's paper budgets by the protocols that share one,
and `padding_fraction` says how much of a training crop the trainer would have to pad on a protocol's samples
(tests/test_paper_budgets.py keeps it under 5 % for every paper budget on every registered protocol).

The codec exposes its table through ``Codec.budget_table(protocol)`` (None for codecs without training), so
``bench list methods -v``, the runner and the tests read every method's budgets the same way. `checked_table`
builds a table (exactly the budget names, each a MethodBudget), `method_budget` picks an entry with a clear
ConfigError, `resolve_budget` gives a stage's TrainConfig with overrides applied.

`TrainConfig` (everything that determines a training run) lives here too; ``benchmark.training.trainer`` re-exports it."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from benchmark.errors import ConfigError
from benchmark.contract.options import BUDGET_NAMES, Budget, check_budget

MODEL_STAGE = "model"  # the stage name of a method trained in one stage


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the seed and the model)."""

    steps: int
    batch_size: int = 8
    crop: int | None = 256  # random crop of x and side at the same location; None: whole images (same size)
    lr: float = 1e-4
    aux_lr: float = 1e-3
    schedule: str = "constant"  # constant | step | cosine | plateau
    milestones: tuple[float, ...] = (0.8,)  # step schedule: fractions of `steps` where lr *= gamma
    gamma: float = 0.1
    plateau_patience: int = 10  # plateau schedule: validations without improvement before lr *= gamma
    min_lr: float = 0.0
    warmup: int = 0  # linear warm-up steps
    amsgrad: bool = False
    clip_grad: float | None = 1.0
    hflip: bool = False  # random horizontal flip of x and side together
    val_every: int = 0  # validate every N steps (0: only at the end)
    val_samples: int = 16  # first N validation samples, centre-cropped to val_crop
    val_crop: int | None = None  # default: crop
    checkpoint_every: int = 100  # steps
    checkpoint_seconds: float = 120.0  # also checkpoint when this much time passed since the last one
    keep_best: bool = True
    restore: str = "best"  # weights left in the model at the end: best (by validation loss) | last
    num_workers: int = 0
    log_window: int = 50  # steps averaged into the reported final training losses

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1:
            raise ConfigError(f"steps must be >= 0 and batch_size >= 1 (got {self.steps}, {self.batch_size})")
        if self.schedule not in ("constant", "step", "cosine", "plateau"):
            raise ConfigError(f"unknown lr schedule {self.schedule!r}; use constant, step, cosine or plateau")
        if self.restore not in ("best", "last"):
            raise ConfigError(f"restore must be 'best' or 'last', got {self.restore!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr}")

    def replace(self, **changes: Any) -> "TrainConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(sorted(unknown))}")
        if "milestones" in changes and changes["milestones"] is not None:
            changes["milestones"] = tuple(changes["milestones"])
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


@dataclass(frozen=True)
class MethodBudget:
    """One budget of one method: its training stages, the model settings it fixes, and epochs per stage."""

    train: Mapping[str, TrainConfig]
    model: Mapping[str, Any] = field(default_factory=dict)
    epochs: Mapping[str, int] = field(default_factory=dict)
    source: str = ""  # where the numbers come from (paper, authors' configuration, ours)

    def __post_init__(self):
        train, model, epochs = dict(self.train), dict(self.model), dict(self.epochs)
        if not train or not all(isinstance(k, str) and isinstance(v, TrainConfig) for k, v in train.items()):
            raise ConfigError(f"MethodBudget.train maps stage names to TrainConfig, got {self.train!r}")
        bad = [k for k, v in epochs.items() if k not in train or not (isinstance(v, int) and v >= 1)]
        if bad:
            raise ConfigError(f"MethodBudget.epochs: {bad} must be stages of train ({', '.join(train)}) with an "
                              "int >= 1 (leave a stage out when its steps stand)")
        object.__setattr__(self, "train", train)  # own copies: a table is not changed through a caller's dict
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "epochs", epochs)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.train)

    def stage(self, name: str = MODEL_STAGE) -> TrainConfig:
        if name not in self.train:
            raise ConfigError(f"no training stage {name!r} in this budget; stages: {', '.join(self.train)}")
        return self.train[name]

    def as_dict(self) -> dict[str, Any]:
        return {"train": {k: v.as_dict() for k, v in self.train.items()},
                "model": {k: _plain(v) for k, v in self.model.items()}, "epochs": dict(self.epochs),
                **({"source": self.source} if self.source else {})}

    def crops(self) -> dict[str, int | None]:
        """Each stage's training crop (None: whole images)."""
        return {name: tc.crop for name, tc in self.train.items()}

    def describe(self) -> str:
        """One line for `bench list methods -v`: each stage's schedule, then the model settings."""
        parts = []
        for name, tc in self.train.items():
            length = f"{self.epochs[name]} epochs" if name in self.epochs else f"{tc.steps} steps"
            parts.append(f"{name}: {length}, batch {tc.batch_size}, crop {tc.crop or 'none'}, lr {tc.lr:g} {tc.schedule}")
        model = " ".join(f"{k}={json.dumps(_plain(v), separators=(',', ':'))}" for k, v in self.model.items())
        return "; ".join(parts) + (f" | {model}" if model else "")


def _plain(value: Any) -> Any:
    """A JSON-ready form of a model setting (dataclasses such as widths as dicts, tuples as lists)."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def padding_fraction(crop: int | None, sample_hw: tuple[int, int]) -> float:
    """The share of a `crop` x `crop` training crop that the trainer pads (benchmark/training/sampling.py's
    crop_pair replicates edges where the sample is smaller than the crop) on samples of `sample_hw` (H, W); 0 for
    whole images (crop None)."""
    if crop is None:
        return 0.0
    h, w = sample_hw
    return 1.0 - (min(crop, h) * min(crop, w)) / float(crop * crop)


def paper_by_protocol(codec: Any, protocols: list[str]) -> list[tuple[list[str], MethodBudget]]:
    """A learned codec's ``paper`` budgets, one entry per distinct budget with the protocols that use it (in the
    order given; a codec without budgets: empty)."""
    groups: list[tuple[list[str], MethodBudget]] = []
    for name in protocols:
        table = codec.budget_table(name)
        if not table or "paper" not in table:
            continue
        entry = table["paper"]
        same = next((g for g in groups if g[1] == entry), None)
        if same is None:
            groups.append(([name], entry))
        else:
            same[0].append(name)
    return groups


def checked_table(entries: Mapping[str, MethodBudget], who: str = "") -> dict[str, MethodBudget]:
    """`entries` checked to be a full table: exactly the BUDGET_NAMES, each a MethodBudget (ConfigError if not)."""
    where = f"{who}: " if who else ""
    if tuple(entries) != BUDGET_NAMES:
        raise ConfigError(f"{where}a budget table has exactly the budgets {', '.join(BUDGET_NAMES)} in that order, "
                          f"got {', '.join(map(str, entries)) or 'none'}")
    bad = [k for k, v in entries.items() if not isinstance(v, MethodBudget)]
    if bad:
        raise ConfigError(f"{where}budget(s) {', '.join(bad)} must be MethodBudget (benchmark/contract/budgets.py)")
    return dict(entries)


def method_budget(table: Mapping[str, MethodBudget] | None, budget: str | Budget, who: str = "") -> MethodBudget:
    """The entry of `budget` in `table`: a ConfigError naming the budgets if it is not one of them."""
    if table is None:
        raise ConfigError(f"{who or 'this codec'} has no training budgets (it is not trained)")
    return table[check_budget(budget, table, who)]


def resolve_budget(budget: str | TrainConfig, table: Mapping[str, MethodBudget] | None = None, *,
                   stage: str = MODEL_STAGE, **overrides: Any) -> TrainConfig:
    """The TrainConfig of stage `stage` of a budget (from `table`, else the generic BUDGETS), with overrides applied.

    Overrides whose value is None are ignored, so options can be passed through unconditionally."""
    cfg = budget if isinstance(budget, TrainConfig) else method_budget(BUDGETS if table is None else table,
                                                                        budget).stage(stage)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(**changes) if changes else cfg


# Generic budgets (a method usually declares its own table).
BUDGETS: dict[str, MethodBudget] = checked_table({
    "smoke": MethodBudget({MODEL_STAGE: TrainConfig(steps=20, batch_size=4, crop=64, lr=1e-3, val_samples=2,
                                                    checkpoint_every=10)}),
    "quick": MethodBudget({MODEL_STAGE: TrainConfig(steps=500, batch_size=8, crop=64, lr=1e-3, schedule="cosine",
                                                    val_every=250, val_samples=4)}),
    "paper": MethodBudget({MODEL_STAGE: TrainConfig(steps=1_000_000, batch_size=16, crop=256, lr=1e-4, schedule="plateau",
                                                    val_every=5000, val_samples=64, checkpoint_every=1000, num_workers=4)},
                          source="generic fallback of the suite (ours): CompressAI-style 256x256 crops; a method "
                                 "declares its own"),
}, "generic")
