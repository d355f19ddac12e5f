"""One run whose method code lives in role processes: what the parent knows of the method (`Description`, from the
describe role), the run's context (`Context`: isolation level, scratch folder, what every request carries, what no
role may see, the CPU each role reported, how many roles run side by side), and the folders roles are given
(scratch, materialised training data)."""
from __future__ import annotations

import json
import queue
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from benchmark.contract.codec import Scenario
from benchmark.errors import IsolationError
from benchmark.evaluation import sandbox
from benchmark.evaluation.roles import write_tensor


@dataclass
class Description:
    """What the describe role reported about the method (all the parent knows of it)."""

    name: str
    module: str
    file: str
    meta: dict[str, Any]
    scenario: Scenario
    rate_points: list[str]
    variant: str | None
    info: dict[str, Any]
    learned: bool
    scalable: bool
    estimate_uses_decoder_side: bool
    training_plan: Any
    weights: dict[str, Any] | None

    @classmethod
    def from_response(cls, resp: dict[str, Any]) -> "Description":
        meta = resp.get("meta") or {}
        points = resp.get("rate_points")
        if not isinstance(points, list) or not points or not all(isinstance(p, str) for p in points):
            raise IsolationError(f"describe: rate points must be a non-empty list of names, got {points!r:.80}")
        if len(set(points)) != len(points):
            raise IsolationError(f"describe: duplicate rate points {points}")
        try:
            scenario = Scenario(meta.get("scenario"))
        except ValueError:
            raise IsolationError(f"describe: unknown scenario {meta.get('scenario')!r}") from None
        return cls(name=str(meta.get("name")), module=str(resp.get("module") or ""), file=str(resp.get("file") or ""),
                   meta=meta, scenario=scenario, rate_points=points, variant=resp.get("variant"),
                   info=resp.get("info") or {}, learned=bool(resp.get("learned")), scalable=bool(meta.get("scalable")),
                   estimate_uses_decoder_side=bool(resp.get("estimate_uses_decoder_side")),
                   training_plan=resp.get("training_plan"), weights=resp.get("weights"))


    def update_from(self, resp: dict[str, Any] | None) -> None:
        """The rate points and facts of the codec once its weights are loaded or trained (they may differ from the
        ones of the untrained codec, e.g. a budget that trains fewer λ)."""
        if resp and resp.get("rate_points") is not None:
            points = Description.from_response({"meta": self.meta, "rate_points": resp["rate_points"]}).rate_points
            self.rate_points = points
        if resp and isinstance(resp.get("info"), dict):
            self.info = resp["info"]


@dataclass
class Context:
    """One sandboxed run: isolation level, scratch folder, what roles must not see, and the request basics."""

    level: str
    scratch: Path
    base: dict[str, Any]  # method, module, plugins, protocol, options... (every request carries them)
    hide: list[Path] = field(default_factory=list)
    threads: int | None = None
    device: str = "cpu"
    zygote: Any = None  # a sandbox.Zygote forking the roles (level "sandbox"), else one bubblewrap per role
    cost: dict[str, float] = field(default_factory=dict)  # CPU seconds each role reported (result: `roles_cpu_s`)
    workers: int = 1  # roles of one kind (encode, decode, estimate) run side by side, each with one thread
    zygote_factory: Callable[[], Any] | None = None  # a further zygote for each further worker (level "sandbox")
    _extra: list[Any] = field(default_factory=list)  # the further zygotes started, closed by `close`
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new(self, name: str, weights: Path | None) -> sandbox.Role:
        return sandbox.new_role(self.scratch, name, {}, read_only=[weights] if weights else [], hide=self.hide,
                                threads=self.threads, device=self.device)

    def launch(self, role: sandbox.Role, kind: str, extra: dict[str, Any], zygote: Any = None) -> dict[str, Any]:
        """Run one role (with `zygote`, else the run's own); its response. Several may run at once (`launch_all`)."""
        role.request = {**self.base, "role": kind, "out": str(role.out), "in": str(role.folder / "in"),
                        "threads": role.threads, "device": self.device, **extra}
        zygote = zygote or self.zygote
        if zygote is not None and zygote.serves(role):
            resp = zygote.run(role)
        else:
            resp = sandbox.launch(role, self.level)
        if isinstance(resp.get("cpu_s"), (int, float)):
            with self._lock:
                self.cost[kind] = round(self.cost.get(kind, 0.0) + float(resp["cpu_s"]), 3)
        return resp

    def launch_all(self, jobs: list[tuple[sandbox.Role, str, dict[str, Any]]]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Run every (role, kind, request) job, up to `workers` at once, each role with one thread; yield (index of
        the job, response) as each finishes. One worker: the jobs one after the other, with the run's threads. A
        zygote serves one role at a time, so each further worker forks its roles from a zygote of its own. On an
        error no further job starts; the running ones are waited for, then the first error is raised."""
        if self.workers <= 1 or len(jobs) <= 1:
            for i, (role, kind, extra) in enumerate(jobs):
                yield i, self.launch(role, kind, extra)
            return
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        free: queue.SimpleQueue = queue.SimpleQueue()
        zygotes = self._zygotes(min(self.workers, len(jobs)))
        for z in zygotes:
            free.put(z)
        width = len(zygotes)

        def one(role: sandbox.Role, kind: str, extra: dict[str, Any]) -> dict[str, Any]:
            z = free.get()
            try:
                role.threads = 1
                return self.launch(role, kind, extra, zygote=z)
            finally:
                free.put(z)

        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="role") as pool:
            pending = {pool.submit(one, *job): i for i, job in enumerate(jobs)}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        yield pending.pop(fut), fut.result()
            finally:
                for fut in pending:
                    fut.cancel()

    def _zygotes(self, n: int) -> list[Any]:
        """`n` zygotes, one per worker: the run's own and further ones, started here in the calling thread (bubblewrap's
        --die-with-parent ends a sandbox when the thread that started it ends). None where roles are not forked from a
        zygote (each is then a sandbox or process of its own)."""
        if self.zygote is None:
            return [None] * n
        if self.zygote_factory is None:
            return [self.zygote]  # no further zygote to be had: one role at a time
        while len(self._extra) < n - 1:
            self._extra.append(self.zygote_factory())
        return [self.zygote] + self._extra[: n - 1]

    def close(self) -> None:
        """Stop the further zygotes (the run's own is shared with later runs: benchmark.evaluation.sandbox.shared_zygote)."""
        for z in self._extra:
            z.close()
        self._extra.clear()


def hidden_paths(spec: Any, registry_datasets: Any) -> list[Path]:
    """What no role may see where it lies under a bound folder: the dataset root, the results folder and the data
    files of every embedded dataset."""
    hide = [Path(spec.out).resolve()]
    if spec.root:
        hide.append(Path(spec.root).resolve())
    for _, info in registry_datasets.items():
        if info.data_files:
            try:
                hide += [Path(p) for p in info.data_files()]
            except Exception:  # noqa: BLE001 - a dataset whose package is missing has no files to hide
                pass
    return hide


@contextmanager
def scratch_folder(pdir: Path, key: str) -> Iterator[Path]:
    pdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".sandbox-{key}-", dir=pdir)).resolve()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def materialise_split(ds: Any, folder: Path, split: str) -> Path:
    """Write every sample of a training/validation split as raw tensor files plus index.json (streamed: one
    sample in memory at a time). Flips of an augmenting reader are replayed by the role per epoch."""
    folder.mkdir(parents=True, exist_ok=True)
    augment = bool(getattr(ds, "augment", False)) and hasattr(ds, "set_epoch")
    if augment:
        ds.augment = False  # store unflipped; the role's FileSplit flips with the same coin per (seed, epoch, index)
    items = []
    try:
        for i in range(len(ds)):
            s = ds[i]
            it = {"x": write_tensor(folder / f"{i}.x", s.x), "source": int(s.source), "name": s.name, "label": s.label,
                  "view": getattr(s, "view", "")}
            if s.side is not None:
                it["side"] = write_tensor(folder / f"{i}.side", s.side)
            items.append(it)
    finally:
        if augment:
            ds.augment = True
    attrs = {}
    for k in ("num_sources", "sigma2"):
        if getattr(ds, k, None) is not None:
            attrs[k] = getattr(ds, k) if isinstance(getattr(ds, k), (int, float)) else float(getattr(ds, k))
    if getattr(ds, "sources", None) is not None:
        attrs["sources"] = [int(v) for v in ds.sources]
    index = {"split": split, "items": items, "augment": augment, "seed": int(getattr(ds, "seed", 0) or 0), "attrs": attrs}
    (folder / "index.json").write_text(json.dumps(index), encoding="utf-8")
    return folder
