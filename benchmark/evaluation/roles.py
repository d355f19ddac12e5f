"""The method's side of a sandboxed evaluation: `python -m benchmark.evaluation.roles REQUEST.json` runs one role.

A role process is started by benchmark/evaluation/sandbox.py (inside bubblewrap, or as a plain child process) and sees only
what its role allows; it reads `request.json` and the tensors in its `in/` folder, writes its outputs and
`response.json` into `out/`, and exits. The roles:

- ``describe``: build the codec from its options; report its metadata, rate points, variant, training plan and
  whether weights left by an earlier run can be reused. Sees no data.
- ``train``: `fit` on the training and validation samples it is handed (or, for a generated dataset, builds the
  train and validation splits from the seed), then `save_weights` into `out/weights`. Never sees the test split.
- ``encode``: one view index (one source of a distributed protocol): `compress` each x (with its side view only
  in the `joint` scenario) at every rate point; writes one bitstream file per image and point. Runs before any
  decoder starts.
- ``decode``: the same view index: `decompress` each bitstream (with the side view where the scenario gives it);
  writes the reconstruction (8-bit code values for images, the codec's float output for scalar protocols), and
  hands back what the decoder counted (`Codec.decoder_counts`, checked and summed by the parent).
- ``estimate``: `estimate_bits` for codecs whose estimate is a decoder-side quantity (it sees x and the decoder's
  side view, and hands back numbers only, after every bitstream and reconstruction is written).

The dataset registry is sealed in every role: a method's code that asks it for a split gets an IsolationError
naming that channel (and in the sandbox the dataset files are not there to read)."""
from __future__ import annotations

import copy
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESPONSE = "response.json"
SEALED = ("{role} sandbox: the method's code asked the dataset registry for a dataset; a method trains on the samples "
          "fit() is handed and codes the images it is given, and may not read datasets itself")


# ---------------------------------------------------------------------------------------- tensors as raw files
def write_tensor(path: Path, t: torch.Tensor) -> dict[str, Any]:
    """Write `t` as raw bytes: uint8 code values where t holds exactly k/255 values (every 8-bit image), else
    float32 (or float64 where float32 would round). Returns the record `read_tensor` needs."""
    t = t.detach().cpu().contiguous()
    if t.is_floating_point():
        q = (t.double() * 255).round()
        if bool(((q / 255).to(t.dtype) == t).all()) and bool((q >= 0).all()) and bool((q <= 255).all()):
            arr, kind = q.to(torch.uint8).numpy(), "u8/255"
        elif t.dtype == torch.float64 and not torch.equal(t.float().double(), t):
            arr, kind = t.numpy(), "f64"
        else:
            arr, kind = t.float().numpy(), "f32" if t.dtype != torch.float64 else "f32>f64"
    else:
        arr, kind = t.numpy(), f"int:{t.dtype}".replace("torch.", "")
    path.write_bytes(arr.tobytes())
    return {"file": path.name, "kind": kind, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}


_NP = {"u8/255": np.uint8, "f32": np.float32, "f32>f64": np.float32, "f64": np.float64}


def read_tensor(folder: Path, rec: dict[str, Any]) -> torch.Tensor:
    """The tensor `write_tensor` wrote (bounded: the file must hold exactly the recorded shape)."""
    kind = rec["kind"]
    shape = [int(s) for s in rec["shape"]]
    n = int(np.prod(shape)) if shape else 1
    path = Path(folder) / Path(str(rec["file"])).name
    if kind.startswith("int:"):
        dt = np.dtype(kind[4:].replace("long", "int64"))
    elif kind in _NP:
        dt = np.dtype(_NP[kind])
    else:
        raise ValueError(f"unknown tensor kind {kind!r}")
    if path.stat().st_size != n * dt.itemsize:
        raise ValueError(f"{path.name}: {path.stat().st_size} bytes, expected {n * dt.itemsize} for shape {shape}")
    arr = np.fromfile(path, dtype=dt).reshape(shape)
    t = torch.from_numpy(arr.copy())
    if kind == "u8/255":
        t = (t.double() / 255).to(getattr(torch, rec.get("dtype", "float32")))
    elif kind == "f32>f64":
        t = t.double()
    return t


def read_recon(path: Path, shape: tuple[int, ...], image: bool) -> torch.Tensor:
    """A decoder's reconstruction as the parent reads it: uint8 code values (images) or float64 (scalar)."""
    n = 1
    for s in shape:
        n *= int(s)
    dt = np.uint8 if image else np.float64
    size = path.stat().st_size
    if size != n * np.dtype(dt).itemsize:
        raise ValueError(f"reconstruction {path.name} holds {size} bytes; the image needs {n * np.dtype(dt).itemsize}")
    arr = np.fromfile(path, dtype=dt).reshape(shape)
    return torch.from_numpy(arr.copy())


# ---------------------------------------------------------------------------------------- datasets handed over
class FileSplit(torch.utils.data.Dataset):
    """A training or validation split the parent materialised (one raw file per tensor), with the flips of the
    original reader replayed per epoch and the attributes methods read (num_sources, sources, sigma2)."""

    CACHE_BYTES = 512 << 20  # decoded tensors kept in memory (a bounded cache; the split itself stays on disk)

    def __init__(self, folder: Path, index: dict[str, Any]):
        from collections import OrderedDict

        from benchmark.contract.data import Sample

        self._Sample = Sample
        self._cache: OrderedDict[int, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()
        self._cached_bytes = 0
        self.folder = Path(folder)
        self.items = index["items"]
        self.augment = bool(index.get("augment"))
        self.seed = int(index.get("seed", 0))
        self.epoch = 0
        self.split = index.get("split", "train")
        for k, v in (index.get("attrs") or {}).items():
            setattr(self, k, np.asarray(v) if isinstance(v, list) else v)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def _tensors(self, i: int, it: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Item i's tensors, from the cache or read from their files (copies: a caller may change them)."""
        hit = self._cache.get(i)
        if hit is None:
            x = read_tensor(self.folder, it["x"])
            side = read_tensor(self.folder, it["side"]) if it.get("side") else None
            size = x.nbytes + (side.nbytes if side is not None else 0)
            if self._cached_bytes + size <= self.CACHE_BYTES:
                self._cache[i] = hit = (x, side)
                self._cached_bytes += size
            else:
                return x, side
        x, side = hit
        return x.clone(), None if side is None else side.clone()

    def __getitem__(self, i: int):
        if not -len(self.items) <= i < len(self.items):
            raise IndexError(i)
        it = self.items[i % len(self.items)]
        x, side = self._tensors(i % len(self.items), it)
        if self.augment:
            from benchmark.contract.data import flip_coin

            if flip_coin(self.seed, self.epoch, i % len(self.items)):
                x = x.flip(-1)
                side = None if side is None else side.flip(-1)
        return self._Sample(x=x, side=side, source=int(it.get("source", 0)), name=str(it.get("name", "")),
                            label=it.get("label"), view=str(it.get("view", "")))


# ---------------------------------------------------------------------------------------- the roles
def _codec(req: dict[str, Any]):
    import importlib

    from benchmark.contract.registry import get_protocol, method_class
    from benchmark.evaluation.setup import build_codec

    for mod in req.get("plugins") or []:
        importlib.import_module(mod)
    protocol = get_protocol(req["protocol"])
    cls = method_class(req["method"], req.get("module"))
    return build_codec(cls, req["method"], protocol, req.get("method_options") or {}, req.get("dataset_options") or {})


def _seal(role: str) -> None:
    from benchmark.contract.registry import DATASETS

    DATASETS.sealed = SEALED.format(role=role)


def describe(req: dict[str, Any], out: Path) -> dict[str, Any]:
    import inspect

    from benchmark.contract.codec import LearnedCodec
    from benchmark.evaluation.setup import check_method_budget, loaded_weights_reusable

    codec = _codec(req)
    _seal("describe")
    check_method_budget(codec, codec.protocol, req["budget"])
    cls = type(codec)
    learned = isinstance(codec, LearnedCodec)
    resp: dict[str, Any] = {
        "module": cls.__module__, "file": str(Path(inspect.getfile(cls)).resolve()),
        "meta": codec.meta.as_dict(), "rate_points": list(codec.rate_points()), "variant": codec.variant,
        "info": codec.info(), "learned": learned,
        "estimate_uses_decoder_side": bool(codec.estimate_uses_decoder_side),
        "training_plan": codec.training_plan(req["budget"]) if learned else None,
    }
    if learned and req.get("given_weights"):
        resp["weights"] = {"reusable": True, "loaded": codec.load_weights(Path(req["given_weights"])) or {}}
    elif learned and req.get("reuse_weights"):
        resp["weights"] = loaded_weights_reusable(codec, Path(req["reuse_weights"]), req["budget"], req["seed"])
    if resp.get("weights"):  # the rate points and facts of the loaded weights
        resp["weights"].update(rate_points=list(codec.rate_points()), info=codec.info())
    return resp


def train(req: dict[str, Any], out: Path) -> dict[str, Any]:
    codec = _codec(req)
    splits = {}
    for split in ("train", "val"):
        spec = req.get(split)
        if spec is None:
            splits[split] = None
        elif spec.get("generated"):  # a generated dataset: built here from its seed, train/val only
            from benchmark.contract.registry import get_dataset

            info = get_dataset(spec["dataset"])
            splits[split] = info.factory(None, codec.protocol, split, **spec["options"])
        else:
            folder = Path(spec["folder"])
            splits[split] = FileSplit(folder, json.loads((folder / "index.json").read_text(encoding="utf-8")))
    _seal("training")
    from benchmark.training import distributed

    group = distributed.init_from_env(req["device"])  # started by torchrun: the role's processes train one model
    torch.manual_seed(int(req["seed"]))
    info = codec.fit(splits["train"], splits["val"], budget=req["budget"], device=req["device"],
                     workdir=Path(req["workdir"]), seed=int(req["seed"]))
    if group.main:
        codec.save_weights(out / "weights")
    distributed.shutdown()
    return {"training": {**info, "processes": group.world}, "rate_points": list(codec.rate_points()), "info": codec.info()}


def _load(req: dict[str, Any]):
    from benchmark.contract.codec import LearnedCodec

    codec = _codec(req)
    _seal(req["role"])
    if isinstance(codec, LearnedCodec):
        codec.load_weights(Path(req["weights"]))
    return codec


def encode(req: dict[str, Any], out: Path) -> dict[str, Any]:
    from benchmark.errors import BenchError
    from benchmark.evaluation.complexity import count_macs, parameters

    folder = Path(req["in"])
    codec = _load(req)
    estimator = copy.deepcopy(codec)  # taken before first use: nothing the encoder sees beyond x reaches it
    points, scalable, want_est = req["points"], bool(req["scalable"]), not req["estimate_uses_decoder_side"]
    (out / "bits").mkdir(exist_ok=True)
    items, complexity = [], None
    for it in req["items"]:
        x = read_tensor(folder, it["x"])
        side = read_tensor(folder, it["side"]) if it.get("side") else None
        src = int(it["source"])
        rec: dict[str, Any] = {"k": it["k"], "points": {}}
        measure_macs = complexity is None and it.get("complexity")
        with torch.no_grad():
            if scalable:
                with count_macs() as macs:
                    t0 = time.perf_counter()
                    full = codec.compress(x, side=side, source=src, point=points[-1])
                    t_enc = time.perf_counter() - t0
                streams = {p: (full if p == points[-1] else codec.truncate(full, p), t_enc, None) for p in it["todo"]}
            else:
                streams = {}
                for p in it["todo"]:
                    with count_macs() as m:
                        t0 = time.perf_counter()
                        data, est = codec.compress_with_estimate(x, side=side, source=src, point=p)
                        streams[p] = (data, time.perf_counter() - t0, est)
                    if p == points[-1]:
                        macs = m
        if measure_macs and points[-1] in it["todo"]:
            complexity = {"params": parameters(codec), "enc_macs": macs[0], "k": it["k"]}
        for p, (data, t_enc, est) in streams.items():
            if not isinstance(data, (bytes, bytearray)):
                raise BenchError(f"{req['method']}.compress returned {type(data).__name__}, expected bytes")
            name = f"{it['k']}.{points.index(p)}.bin"
            (out / "bits" / name).write_bytes(bytes(data))
            if est is None and want_est:
                est = estimator.estimate_bits(x, side=side, source=src, point=p)
            rec["points"][p] = {"file": name, "encode_s": t_enc, "estimate": None if est is None else float(est)}
        items.append(rec)
    return {"items": items, "complexity": complexity}


def decode(req: dict[str, Any], out: Path) -> dict[str, Any]:
    from benchmark.errors import BenchError
    from benchmark.evaluation.complexity import count_macs
    from benchmark.results import metrics
    from benchmark.safety.limits import expected_shape

    folder = Path(req["in"])
    codec = _load(req)
    image = bool(req["image"])
    (out / "recon").mkdir(exist_ok=True)
    items, dec_macs = [], None
    for it in req["items"]:
        side = read_tensor(folder, it["side"]) if it.get("side") else None
        src = int(it["source"])
        rec: dict[str, Any] = {"k": it["k"], "points": {}}
        for p, bits in it["bits"].items():
            data = (folder / Path(bits).name).read_bytes()
            with torch.no_grad(), count_macs() as macs:
                t0 = time.perf_counter()
                with expected_shape(tuple(it["shape"])):  # any other header is refused before allocating
                    x_hat = codec.decompress(data, side=side, source=src)
                t_dec = time.perf_counter() - t0
            if it.get("complexity") and p == req["points"][-1] and dec_macs is None:
                dec_macs = macs[0]
            if not isinstance(x_hat, torch.Tensor) or tuple(x_hat.shape) != tuple(it["shape"]):
                got = tuple(x_hat.shape) if isinstance(x_hat, torch.Tensor) else type(x_hat).__name__
                raise BenchError(f"{req['method']} decoded shape {got} differs from input {tuple(it['shape'])}")
            arr = (metrics.to_8bit(x_hat) * 255).round().to(torch.uint8).numpy() if image else x_hat.detach().double().numpy()
            name = f"{it['k']}.{req['points'].index(p)}.raw"
            (out / "recon" / name).write_bytes(np.ascontiguousarray(arr).tobytes())
            rec["points"][p] = {"file": name, "decode_s": t_dec}
        items.append(rec)
    return {"items": items, "dec_macs": dec_macs, "decoder_counts": codec.decoder_counts()}


def estimate(req: dict[str, Any], out: Path) -> dict[str, Any]:
    folder = Path(req["in"])
    codec = _load(req)
    items = []
    for it in req["items"]:
        x = read_tensor(folder, it["x"])
        side = read_tensor(folder, it["side"]) if it.get("side") else None
        ests = {}
        for p in it["todo"]:
            est = codec.estimate_bits(x, side=side, source=int(it["source"]), point=p)
            ests[p] = None if est is None else float(est)
        items.append({"k": it["k"], "estimates": ests})
    return {"items": items}


ROLES = {"describe": describe, "train": train, "encode": encode, "decode": decode, "estimate": estimate}


def run_request(path: Path) -> int:
    """Run the role a request file names; write response.json into its out folder. Returns the exit code."""
    from benchmark.errors import BenchError

    req = json.loads(Path(path).read_text(encoding="utf-8"))
    out = Path(req["out"])
    if req.get("threads"):
        torch.set_num_threads(int(req["threads"]))
    try:
        resp = {"ok": True, **ROLES[req["role"]](req, out)}
    except BenchError as exc:
        resp = {"ok": False, "error": str(exc), "type": type(exc).__name__}
    except Exception as exc:  # a method's bug: its traceback goes to the role's log
        traceback.print_exc()
        resp = {"ok": False, "error": f"{req.get('method')} ({req.get('role')}): {type(exc).__name__}: {exc}",
                "type": type(exc).__name__, "traceback": True}
    import resource

    from benchmark.safety.jsonsafe import jsonable

    if os.environ.get("RANK", "0") != "0":  # a further process of a data-parallel train role: rank 0 answers
        return 0 if resp["ok"] else 1
    ru = resource.getrusage(resource.RUSAGE_SELF)
    resp["cpu_s"] = ru.ru_utime + ru.ru_stime  # what this role cost (bubblewrap does not hand it to the caller)
    tmp = out / (RESPONSE + ".tmp")
    tmp.write_text(json.dumps(jsonable(resp)), encoding="utf-8")
    tmp.replace(out / RESPONSE)
    return 0 if resp["ok"] else 1


if __name__ == "__main__":
    sys.exit(run_request(Path(sys.argv[1])))
