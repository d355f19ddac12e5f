"""Codecs written to cheat through a channel outside the codec instance, and two honest edge cases: fixtures the
sandbox test (tests/test_sandbox.py) runs through a real `bench run`. Imported only inside role processes (the
runner's `plugins`), never registered in the test process.

Every cheat codes x losslessly as zlib-compressed 8-bit values (its *honest path*), except when x equals a view
it remembers: then the bitstream is a short token naming that view. Its decoder remembers every side view it is
handed — in the channel the class is named for — and its encoder looks there. In one process (``--isolation
none``) a stereo set coded in both directions hands the decoder of image k the image k+1 as its side view, so
half the images cost a token. In the sandbox the encoders finish before any decoder starts, in other processes
with their own /tmp, /dev/shm, home and environment, so every image takes the honest path."""
from __future__ import annotations

import builtins
import functools
import hashlib
import os
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from benchmark.contract.codec import Codec, LearnedCodec, MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.errors import BitstreamError
from benchmark.contract.registry import register_method


def q8(x: torch.Tensor) -> bytes:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()


def honest_bytes(name: str, x: torch.Tensor) -> bytes:
    """The stream of a cheat's honest path for x (what the sandbox must leave it with)."""
    return Container(name, 0, tuple(x.shape), [b"R" + zlib.compress(q8(x), 9)]).to_bytes()


def _key(t: torch.Tensor) -> str:
    return hashlib.sha256(q8(t)).hexdigest()[:16]


class _Cheat(Codec):
    """The shared coding; subclasses say where views are remembered (`remember`) and found (`recall`)."""

    channel = ""

    def rate_points(self) -> list[str]:
        return ["lossless"]

    def remember(self, key: str, view: torch.Tensor) -> None:
        raise NotImplementedError

    def recall(self, key: str) -> torch.Tensor | None:
        raise NotImplementedError

    def compress(self, x, *, side=None, source=0, point):
        if self.recall(_key(x)) is not None:
            return Container(self.meta.name, 0, tuple(x.shape), [b"T" + _key(x).encode()]).to_bytes()
        return honest_bytes(self.meta.name, x)

    def decompress(self, data, *, side=None, source=0):
        c = Container.from_bytes(data, self.meta.name)
        if side is not None:
            self.remember(_key(side), side)
        body = c.streams[0]
        if body[:1] == b"T":
            view = self.recall(body[1:].decode())
            if view is None:
                raise BitstreamError(f"{self.meta.name}: token for a view it does not remember")
            return view.clone()
        raw = zlib.decompress(body[1:])
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).float().reshape(c.shape) / 255.0


def _cheat(name: str, channel: str):
    def deco(cls):
        cls.meta = MethodMeta(name, Scenario.DECODER_SIDE_INFO, description=f"cheat fixture: {channel}")
        cls.channel = channel
        return register_method(cls)
    return deco


@_cheat("cheat_instance", "instance state")
class InstanceCheat(_Cheat):
    def __init__(self, protocol=None, **options):
        super().__init__(protocol, **options)
        self.memory: dict[str, torch.Tensor] = {}

    def remember(self, key, view):
        self.memory[key] = view.clone()

    def recall(self, key):
        return self.memory.get(key)


@_cheat("cheat_class_attr", "class attribute")
class ClassAttrCheat(_Cheat):
    memory: dict[str, torch.Tensor] = {}

    def remember(self, key, view):
        type(self).memory[key] = view.clone()

    def recall(self, key):
        return type(self).memory.get(key)


@functools.lru_cache(maxsize=None)
def _cache() -> dict[str, torch.Tensor]:
    return {}


@_cheat("cheat_lru_cache", "process-wide cache (functools.lru_cache)")
class CacheCheat(_Cheat):
    def remember(self, key, view):
        _cache()[key] = view.clone()

    def recall(self, key):
        return _cache().get(key)


@_cheat("cheat_builtins", "sys.modules / builtins")
class BuiltinsCheat(_Cheat):
    def remember(self, key, view):
        store = getattr(builtins, "_cheat_views", None)
        if store is None:
            store = builtins._cheat_views = {}  # type: ignore[attr-defined]
            sys.modules["_cheat_views_mod"] = type(sys)("_cheat_views_mod")
        store[key] = view.clone()

    def recall(self, key):
        return getattr(builtins, "_cheat_views", {}).get(key)


_BUFFER = torch.zeros(64, 3, 192, 368)  # created at import: a module-level torch buffer
_SLOTS: list[str] = []


@_cheat("cheat_torch_buffer", "module-level torch buffer")
class BufferCheat(_Cheat):
    def remember(self, key, view):
        if key not in _SLOTS and tuple(view.shape) == tuple(_BUFFER.shape[1:]) and len(_SLOTS) < len(_BUFFER):
            _BUFFER[len(_SLOTS)] = view
            _SLOTS.append(key)

    def recall(self, key):
        return _BUFFER[_SLOTS.index(key)].clone() if key in _SLOTS else None


@_cheat("cheat_environ", "os.environ")
class EnvironCheat(_Cheat):
    def remember(self, key, view):
        os.environ[f"CHEAT_{key}"] = zlib.compress(q8(view)).hex() + ":" + ",".join(map(str, view.shape))

    def recall(self, key):
        val = os.environ.get(f"CHEAT_{key}")
        if not val:
            return None
        data, shape = val.split(":")
        raw = zlib.decompress(bytes.fromhex(data))
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).float().reshape(tuple(int(s) for s in shape.split(","))) / 255


class _FileCheat(_Cheat):
    """Views saved as .npy files in a folder that outlives the process unless the sandbox gives a private one."""

    def folder(self) -> Path:
        raise NotImplementedError

    def remember(self, key, view):
        try:
            d = self.folder()
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / f"{key}.npy", (view * 255).round().to(torch.uint8).numpy())
        except OSError:
            pass

    def recall(self, key):
        try:
            return torch.from_numpy(np.load(self.folder() / f"{key}.npy")).float() / 255
        except (OSError, ValueError):
            return None


@_cheat("cheat_tmp_file", "files in the temp folder")
class TmpFileCheat(_FileCheat):
    def folder(self):
        return Path(tempfile.gettempdir()) / "dsc-bench-cheat"


@_cheat("cheat_home_cache", "files in the home / cache folder")
class HomeCacheCheat(_FileCheat):
    def folder(self):
        return Path.home() / ".cache" / "dsc-bench-cheat"


@_cheat("cheat_dev_shm", "/dev/shm")
class ShmCheat(_FileCheat):
    def folder(self):
        return Path("/dev/shm") / "dsc-bench-cheat"


@_cheat("cheat_frame", "the caller's frame (sys._getframe)")
class FrameCheat(_Cheat):
    """Sends a token always; its decoder looks up the stack for the runner's local `x` of the right shape."""

    def compress(self, x, *, side=None, source=0, point):
        return Container(self.meta.name, 0, tuple(x.shape), [b"F"]).to_bytes()

    def decompress(self, data, *, side=None, source=0):
        c = Container.from_bytes(data, self.meta.name)
        f = sys._getframe(1)
        while f is not None:
            x = f.f_locals.get("x")
            if isinstance(x, torch.Tensor) and tuple(x.shape) == tuple(c.shape):
                return x.clone()
            f = f.f_back
        return torch.full(c.shape, 0.5)  # nothing found: a grey image


@_cheat("cheat_fit_test_data", "test data read in fit() through the dataset registry")
class FitTestDataCheat(_Cheat, LearnedCodec):
    """Reads the test split in fit() and remembers its images in its weights."""

    def __init__(self, protocol=None, **options):
        super().__init__(protocol, **options)
        self.memory: dict[str, torch.Tensor] = {}

    def remember(self, key, view):
        pass

    def recall(self, key):
        return self.memory.get(key)

    def fit(self, train, val, *, budget, device, workdir, seed=0):
        from benchmark.contract.registry import get_dataset

        test = get_dataset("middlebury_sample").factory(None, self.protocol, "test")
        for i in range(len(test)):
            self.memory[_key(test[i].x)] = test[i].x.clone()
        return {"budget": budget, "steps": 0, "seed": seed}

    def save_weights(self, directory):
        from benchmark.training.weights import save_weights

        keys = sorted(self.memory)
        tensors = {"views": torch.stack([self.memory[k] for k in keys]) if keys else torch.zeros(0)}
        return save_weights(Path(directory), method=self.meta.name, models={"memo": tensors}, config={"keys": keys},
                            points=self.rate_points(), protocol="middlebury-sample/stereo", training={"budget": "quick"})

    def load_weights(self, directory):
        from benchmark.training.weights import load_weights

        w = load_weights(Path(directory), method=self.meta.name)
        views = w.tensors["memo"]["views"] if isinstance(w.tensors["memo"], dict) else w.tensors["memo"]
        self.memory = {k: views[i] for i, k in enumerate(w.config.get("keys", []))}
        return w.summary()


@_cheat("cheat_fit_files", "test data read in fit() from the embedded dataset's files")
class FitFilesCheat(FitTestDataCheat):
    """Reads the embedded pair straight from scikit-image's files (hidden in the sandbox: it learns nothing)."""

    def fit(self, train, val, *, budget, device, workdir, seed=0):
        try:
            from datasets.middlebury import MiddleburySample

            test = MiddleburySample("test")
            for i in range(len(test)):
                self.memory[_key(test[i].x)] = test[i].x.clone()
        except Exception:  # noqa: BLE001 - the files are not there: train on nothing
            self.memory = {}
        return {"budget": budget, "steps": 0, "seed": seed}


# ---------------------------------------------------------------------------------------------- honest edge cases
@register_method
class SideAsReconstruction(Codec):
    """Legal in decoder_side_info: one byte of payload, and the decoder returns the side view as x's estimate."""

    meta = MethodMeta("edge_side_as_recon", Scenario.DECODER_SIDE_INFO, description="honest edge case: x̂ = side view")

    def rate_points(self):
        return ["zero"]

    def compress(self, x, *, side=None, source=0, point):
        return Container(self.meta.name, 0, tuple(x.shape), [b"0"]).to_bytes()

    def decompress(self, data, *, side=None, source=0):
        c = Container.from_bytes(data, self.meta.name)
        return side.clone() if side is not None else torch.full(c.shape, 0.5)


@register_method
class WrongEstimate(Codec):
    """Honest bytes (zlib of 8-bit values) with a likelihood estimate ten times the real payload."""

    meta = MethodMeta("edge_wrong_estimate", Scenario.SEPARATE, description="honest edge case: estimate ≠ bytes")

    def rate_points(self):
        return ["lossless"]

    def compress(self, x, *, side=None, source=0, point):
        return honest_bytes(self.meta.name, x)

    def decompress(self, data, *, side=None, source=0):
        c = Container.from_bytes(data, self.meta.name)
        raw = zlib.decompress(c.streams[0][1:])
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).float().reshape(c.shape) / 255.0

    def estimate_bits(self, x, *, side=None, source=0, point):
        return 10.0 * 8 * len(zlib.compress(q8(x), 9))


CHEATS = [n for n, obj in list(globals().items()) if isinstance(obj, type) and issubclass(obj, _Cheat)
          and obj not in (_Cheat, _FileCheat)]
