"""`bench new-method NAME`: the files of a new method, ready to run and to be replaced by the real thing.

The generated codec is a working placeholder (uniform quantiser + zlib, real bytes through the suite's
container), so `bench run --method NAME` and the contract tests pass before the first line of the real method
is written; the README names the paper and lists what to replace."""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.errors import ConfigError

_CODEC = '''"""{name}: placeholder codec written by `bench new-method` — replace it with the method of the paper.

Paper: {paper}"""
from __future__ import annotations

import zlib

import numpy as np
import torch

from benchmark.contract.codec import Codec, MethodMeta, Scenario
from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ConfigError
from benchmark.contract.options import Option
from benchmark.contract.registry import register_method

from .configs import BITS


@register_method
class {cls}(Codec):
    meta = MethodMeta("{name}", Scenario.SEPARATE, paper={paper!r}, licence="TODO",
                      description="placeholder: uniform quantiser + zlib (replace with the paper's method)")
    # every option, declared once: checked and cast before __init__, listed by `bench list methods -v`
    options_spec = (Option("bits", list[int], list(BITS), "rate points: bits per sample", minimum=1, maximum=8, unique=True),)

    def rate_points(self) -> list[str]:
        return [f"bits={{b}}" for b in self.options.get("bits", BITS)]

    def _bits(self, point: str) -> int:
        if point not in self.rate_points():
            raise ConfigError(f"{name}: unknown rate point {{point!r}}; valid: {{', '.join(self.rate_points())}}")
        return int(point.split("=", 1)[1])

    def compress(self, x, *, side=None, source=0, point):
        b = self._bits(point)
        q = torch.round(x.clamp(0, 1) * (2 ** b - 1)).to(torch.uint8).numpy()
        payload = bytes([b]) + zlib.compress(q.tobytes(), 9)
        return Container(self.meta.name, self.rate_points().index(point), tuple(x.shape), [payload]).to_bytes()

    def decompress(self, data, *, side=None, source=0):
        c = Container.from_bytes(data, self.meta.name)
        if len(c.streams) != 1 or not c.streams[0]:
            raise BitstreamError(f"{name}: expected one non-empty stream")
        b, body = c.streams[0][0], c.streams[0][1:]
        try:
            raw = zlib.decompress(body)
        except zlib.error as exc:
            raise BitstreamError(f"{name}: corrupt payload: {{exc}}") from exc
        n = int(np.prod(c.shape))
        if not 1 <= b <= 8 or len(raw) != n:
            raise BitstreamError(f"{name}: payload holds {{len(raw)}} samples at {{b}} bits, header says {{n}}")
        q = np.frombuffer(raw, dtype=np.uint8).reshape(c.shape)
        return torch.from_numpy(q.astype(np.float32) / (2 ** b - 1))
'''

_CONFIGS = '''"""{name}: settings per protocol and budget (the paper's hyperparameters go in the `paper` budget)."""
BITS = [2, 3, 4, 5, 6]  # rate points of the placeholder quantiser
'''

_README = '''# {name}

**Paper:** {paper}

Written by `bench new-method {name}`: a placeholder codec (uniform quantiser + zlib) so that the suite runs it
end to end. To turn it into the method of the paper:

1. Put the torch modules in `model.py`, the `Codec` (or `LearnedCodec`) adapter in `codec.py`
   (docs/adding_a_method.md has the contract), the paper's settings in `configs.py`.
2. Set `meta.scenario` to what the encoder and decoder see (`separate`, `decoder_side_info`, `joint`,
   `distributed`) and `paper=` to the authors, title, venue and arXiv id.
3. Say here what the paper does, what this implementation changed, and measured numbers with the command
   that made them.
4. Run `python -m pytest -q tests/test_{name}.py tests/test_codec_contract.py`, then `bench run --method {name}`.
5. Submit results with `bench submit` (CONTRIBUTING.md).
'''

_TEST = '''"""{name}: round trip to real bytes, rate grows with the rate point."""
import torch

from benchmark.contract.registry import get_method


def test_{name}_round_trip_and_rate():
    codec = get_method("{name}")()
    x = torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(0))
    sizes = []
    for point in codec.rate_points():
        data = codec.compress(x, point=point)
        y = codec.decompress(data)
        assert y.shape == x.shape
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
'''


def scaffold(name: str, paper: str, root: Path, tests: Path) -> list[Path]:
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", name):
        raise ConfigError(f"method name {name!r}: use 2-41 lower-case letters, digits and _, starting with a letter")
    pkg = Path(root) / name
    test = Path(tests) / f"test_{name}.py"
    if pkg.exists() or test.exists():
        raise ConfigError(f"{pkg if pkg.exists() else test} already exists; pick another name or remove it")
    cls = "".join(p.capitalize() for p in name.split("_")) + "Codec"
    files = {pkg / "__init__.py": f'"""{name}: see README.md."""\nfrom . import codec  # noqa: F401  (registers the method)\n',
             pkg / "codec.py": _CODEC.format(name=name, cls=cls, paper=paper),
             pkg / "configs.py": _CONFIGS.format(name=name),
             pkg / "README.md": _README.format(name=name, paper=paper),
             test: _TEST.format(name=name)}
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
