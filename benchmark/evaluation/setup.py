"""What a run codes with: the run's specification, the dataset and protocol it names, the codec built from
the method's options, its result key, the test/train splits, and weights loaded, reused or trained in process."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.contract.budgets import method_budget
from benchmark.contract.codec import Codec, LearnedCodec
from benchmark.contract.protocol import Protocol
from benchmark.contract.registry import (
    DatasetInfo,
    get_dataset,
    get_method,
    get_protocol,
)
from benchmark.errors import (
    ConfigError,
    DatasetError,
    WeightsError,
)
from benchmark.safety.safenames import key_problem
from benchmark.training import distributed


@dataclass
class RunSpec:
    method: str
    dataset: str
    root: Path | None = None
    protocol: str | None = None
    limit: int | None = None
    out: Path = Path("results")
    budget: str = "quick"
    device: str = "cpu"
    seed: int = 0
    weights: Path | None = None
    retrain: bool = False
    method_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    max_pixels: int | None = None  # image/bitstream pixel limit for this run (None: benchmark.safety.limits default)
    isolation: str | None = None  # sandbox | process | none (benchmark/evaluation/sandbox.py); None: the best available
    keep_bitstreams: bool = False  # store every bitstream beside the result (<key>.bitstreams.zip) for `bench verify`
    devices: int = 1  # processes training one model data-parallel in the train role (torchrun inside its sandbox)
    plugins: tuple[str, ...] = ()  # modules a role imports before looking the method up (a method not installed)
    eval_workers: int = 1  # encoder (then decoder) roles run side by side, each single-threaded (isolated runs)


def resolve(dataset: str, protocol: str | None,
            dataset_options: dict[str, Any] | None = None) -> tuple[DatasetInfo, Protocol]:
    """The dataset and protocol a run names; with the run's dataset options, the protocol as the run codes it
    (`Protocol.for_run`: the views per frame its per-view PSNR splits frames into)."""
    info = get_dataset(dataset)
    name = protocol or info.default_protocol
    proto = get_protocol(name)
    if name not in info.protocols:
        raise ConfigError(
            f"dataset {dataset!r} does not support protocol {name!r}; it supports: {', '.join(info.protocols)}"
        )
    return info, proto.for_run(dataset_options)


def protocol_dir(out: Path, protocol: str) -> Path:
    return Path(out) / Path(*protocol.split("/"))


def make_codec(spec: RunSpec, protocol: Protocol) -> Codec:
    return build_codec(get_method(spec.method), spec.method, protocol, spec.method_options, spec.dataset_options)


def build_codec(cls: type, name: str, protocol: Protocol, method_options: dict[str, Any],
                dataset_options: dict[str, Any]) -> Codec:
    """An instance of method class `cls` under `protocol` (also called inside a sandboxed role, benchmark/evaluation/roles.py)."""
    options = {**protocol.options_for(name), **method_options}
    # dataset options a codec must agree with when it is built (e.g. DRASIC's number of sources M), forwarded
    # as method options unless given explicitly; a codec lists them in `dataset_options_used`
    data_opts = {**protocol.options, **dataset_options}
    for k in cls.dataset_options_used:
        if k in data_opts and k not in options:
            options[k] = data_opts[k]
    try:
        return cls(protocol=protocol, **options)
    except TypeError as exc:
        raise ConfigError(f"bad option for method {name!r}: {exc}") from exc


def check_method_budget(codec: Codec, protocol: Protocol, budget: str) -> None:
    """A learned codec's own budget table (benchmark/contract/budgets.py) has `budget`: checked before any work."""
    table = codec.budget_table(protocol.name)
    if table is not None:
        method_budget(table, budget, codec.meta.name)


def result_key(codec: Codec, spec: RunSpec) -> tuple[str, str | None]:
    return run_key(codec.meta.name, codec.variant, spec)


def run_key(name: str, codec_variant: str | None, spec: RunSpec) -> tuple[str, str | None]:
    parts = [p for p in (codec_variant, spec.dataset_options.get("variant")) if p]
    variant = "+".join(str(p) for p in parts) or None
    key = name + (f".{variant}" if variant else "")
    why = key_problem(key)  # the key names files under --out: never a path of its own, never too long for one
    if why:
        raise ConfigError(f"method/variant name {why}")
    return key, variant


def build_split(info: DatasetInfo, spec: RunSpec, protocol: Protocol, split: str):
    opts = {**protocol.options, **spec.dataset_options}
    return info.factory(spec.root, protocol, split, **opts)


def ensure_trained(codec: Codec, info: DatasetInfo, protocol: Protocol, spec: RunSpec, key: str, console=None) -> dict[str, Any] | None:
    """Load weights (given, or left by an earlier run in the same --out) or train and save them."""
    if not isinstance(codec, LearnedCodec):
        if spec.weights:
            raise ConfigError(f"{spec.method} has no weights; drop --weights")
        return None
    pdir = protocol_dir(spec.out, protocol.name)
    weights_dir = pdir / "weights" / key
    if spec.weights:
        return {"loaded_from": str(spec.weights), **(codec.load_weights(Path(spec.weights)) or {})}
    if weights_dir.exists() and not spec.retrain:
        reuse = loaded_weights_reusable(codec, weights_dir, spec.budget, spec.seed)
        if reuse["reusable"]:
            return {"loaded_from": str(weights_dir), **reuse["loaded"]}
        if console and reuse.get("why"):
            console.print(f"[yellow]{reuse['why']}[/]")
    if spec.devices > 1 and distributed.group().world == 1:
        raise ConfigError(f"--devices {spec.devices} trains in the train role's processes (--isolation sandbox or process); "
                          "at --isolation none train with `bench train --devices N`, then `bench run --weights`")
    train = build_split(info, spec, protocol, "train")
    try:
        val = build_split(info, spec, protocol, "val")
    except DatasetError:
        val = None
    workdir = pdir / "train" / key
    info_fit = codec.fit(train, val, budget=spec.budget, device=spec.device, workdir=workdir, seed=spec.seed)
    if distributed.is_main():  # data-parallel training (torchrun): only rank 0 writes
        codec.save_weights(weights_dir)
    return info_fit


def loaded_weights_reusable(codec: Codec, weights_dir: Path, budget: str, seed: int) -> dict[str, Any]:
    """Whether weights an earlier run left in `weights_dir` were trained as this run would train them:
    {"reusable": bool, "loaded": the manifest's training info, "why": what differs}. Loads them into `codec`."""
    try:
        loaded = codec.load_weights(weights_dir) or {}
    except WeightsError as exc:
        return {"reusable": False, "loaded": {}, "why": f"ignoring weights in {weights_dir}: {exc}; retraining"}
    same_plan = _same_training_plan(codec, budget, loaded)
    if loaded.get("budget") in (None, budget) and loaded.get("seed", seed) == seed and same_plan:
        return {"reusable": True, "loaded": loaded}
    why = "" if same_plan else (f"weights in {weights_dir} were trained with other settings; training "
                                "(an extendable run continues its checkpoint)")
    return {"reusable": False, "loaded": {}, "why": why}


def _same_training_plan(codec: Codec, budget: str, loaded: dict[str, Any]) -> bool:
    """Whether saved weights were trained as the codec would train them now (codecs without `training_plan`,
    or weights without a stored config, are taken as matching)."""
    plan = codec.training_plan(budget)
    saved = (loaded.get("training") or {}).get("config")
    if plan is None or saved is None:
        return True
    norm = lambda obj: json.loads(json.dumps(obj, sort_keys=True, default=str))  # noqa: E731 - tuples vs lists
    return norm(plan) == norm(saved)
