"""A declared grid of runs in one file (YAML or JSON): methods x protocols x seeds x rate points at one budget,
for `bench sweep run --grid FILE` (docs/grid.md).

    budget: paper
    device: cuda
    devices: 1                  # training processes = GPUs per job (torchrun when > 1)
    seeds: [0, 1, 2]
    methods: [balle2017, balle2018, ndic_balle2018]
    protocols:                  # protocol -> its dataset and local copy
      kitti-stereo/ndic: {dataset: kitti, root: /data/kitti}
    points: all                 # or a list of rate-point names (per-point jobs are kept only for those)
    limit: null                 # evaluate only the first N test samples (null: all)
    method_options: {balle2018: {}}   # per method
    slurm: {partition: gpu, time: 1440, mem: 64G, cpus: 8}
    cost: {tflops: 10, rates: {}, train_samples: {}}   # benchmark/cluster/cost.py

Every key but ``methods`` and ``protocols`` has a default; unknown keys, unknown protocols and datasets that do not
serve a protocol fail before anything is submitted. The sweep folder keeps a copy of the grid as given, its
sha256 and the estimate of every job (``grid.json``), beside the results."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.cluster.cost import DEFAULT_TFLOPS, Estimate, estimate
from benchmark.cluster.sweep import Job, expand
from benchmark.errors import ConfigError
from benchmark.results.schema import atomic_write_text

KEYS = {"budget", "device", "devices", "seeds", "methods", "protocols", "points", "limit", "method_options", "slurm",
        "cost", "launcher"}
COST_KEYS = {"tflops", "rates", "train_samples"}


@dataclass(frozen=True)
class Grid:
    methods: list[str]
    protocols: dict[str, dict[str, Any]]  # protocol -> {"dataset": name, "root": path or None}
    seeds: list[int] = field(default_factory=lambda: [0])
    budget: str = "paper"
    device: str = "cuda"
    devices: int = 1
    points: list[str] | None = None  # None: every point
    limit: int | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    launcher: str | None = None
    text: str = ""  # the file as given
    path: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _parse(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: reading a YAML grid needs PyYAML (pip install pyyaml), or write it as JSON") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a grid is a mapping of keys ({', '.join(sorted(KEYS))}), got {type(doc).__name__}")
    return doc


def _protocols(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    from benchmark.contract.registry import get_dataset, get_protocol

    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: protocols maps each protocol to {{dataset: NAME, root: PATH}}")
    out = {}
    for name, spec in raw.items():
        proto = get_protocol(name)  # unknown: "did you mean"
        spec = dict(spec or {})
        unknown = set(spec) - {"dataset", "root"}
        if unknown:
            raise ConfigError(f"{where}: protocol {name}: unknown key(s) {', '.join(sorted(unknown))}; use dataset, root")
        dataset = spec.get("dataset") or proto.dataset
        if name not in get_dataset(dataset).protocols:
            raise ConfigError(f"{where}: dataset {dataset!r} does not serve protocol {name!r}")
        out[name] = {"dataset": dataset, "root": None if spec.get("root") is None else str(spec["root"])}
    return out


def load_grid(path: Path) -> Grid:
    """The grid of `path`, checked (ConfigError naming the file and the key)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist")
    doc = _parse(path)
    where = str(path)
    unknown = set(doc) - KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KEYS))}")
    methods = doc.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise ConfigError(f"{where}: methods is a non-empty list of method names")
    seeds = doc.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: seeds is a non-empty list of integers >= 0")
    points = doc.get("points", "all")
    if points != "all" and not (isinstance(points, list) and all(isinstance(p, str) for p in points)):
        raise ConfigError(f"{where}: points is 'all' or a list of rate-point names (e.g. lambda=0.0048)")
    cost = dict(doc.get("cost") or {})
    if set(cost) - COST_KEYS:
        raise ConfigError(f"{where}: unknown cost key(s) {', '.join(sorted(set(cost) - COST_KEYS))}; known: "
                          f"{', '.join(sorted(COST_KEYS))}")
    devices = doc.get("devices", 1)
    if not isinstance(devices, int) or devices < 1:
        raise ConfigError(f"{where}: devices is an integer >= 1")
    return Grid(methods=list(methods), protocols=_protocols(doc.get("protocols"), where), seeds=list(seeds),
                budget=str(doc.get("budget", "paper")), device=str(doc.get("device", "cuda")), devices=devices,
                points=None if points == "all" else list(points), limit=doc.get("limit"),
                method_options={k: dict(v or {}) for k, v in (doc.get("method_options") or {}).items()},
                slurm=dict(doc.get("slurm") or {}), cost=cost, launcher=doc.get("launcher"),
                text=path.read_text(encoding="utf-8"), path=str(path.resolve()))


def grid_jobs(grid: Grid) -> list[Job]:
    """Every job of the grid: one per (method, protocol, seed), and per rate point where the points train
    independently (benchmark/cluster/sweep.py's expand), kept to `grid.points` when the grid names them."""
    jobs: list[Job] = []
    for name, spec in grid.protocols.items():
        for method in grid.methods:
            jobs += expand([method], [spec["dataset"]], [name], grid.seeds, budget=grid.budget, device=grid.device,
                           limit=grid.limit, root=spec["root"], method_options=grid.method_options.get(method, {}),
                           devices=grid.devices)
    if grid.points is not None:
        known = {j.point for j in jobs if j.point}
        missing = sorted(set(grid.points) - known)
        if missing:
            raise ConfigError(f"{grid.path}: points {', '.join(missing)} are not per-point jobs of this grid "
                              f"(its points: {', '.join(sorted(known)) or 'none'})")
        jobs = [j for j in jobs if j.point is None or j.point in grid.points]
    return jobs


def estimates(grid: Grid, jobs: list[Job]) -> list[Estimate]:
    from benchmark.cluster.cost import flops_table

    table = flops_table()
    return [estimate(j, rates=grid.cost.get("rates"), tflops=float(grid.cost.get("tflops", DEFAULT_TFLOPS)),
                     train_samples=grid.cost.get("train_samples"), flops=table) for j in jobs]


def record_grid(sweep: Path, grid: Grid, found: list[Estimate]) -> Path:
    """S/grid.json: the grid file as given, its sha256 and path, and each job's estimate (written atomically)."""
    path = Path(sweep) / "grid.json"
    doc = {"grid_file": grid.path, "grid_sha256": grid.sha256, "grid_text": grid.text,
           "estimates": [{"job": e.job, "gpu_hours": e.gpu_hours, "basis": e.basis, "steps": e.steps,
                          "models": e.models} for e in found],
           "gpu_hours_total": sum(e.gpu_hours or 0.0 for e in found),
           "jobs_without_estimate": [e.job for e in found if e.gpu_hours is None]}
    Path(sweep).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path
