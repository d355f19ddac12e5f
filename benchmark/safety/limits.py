"""How large an image the suite agrees to decode: one limit for bitstreams and for input image files.

Decoders allocate memory in proportion to the image size their input *claims* (a container header, a PNG
header), before they know whether the payload can fill it: 51 bytes announcing 8192x8192 cost a hyperprior
decoder about 8 GB. The limit is checked from the header alone, before anything is allocated.

The default, 2**25 pixels (33.5 MP), holds an 8K UHD frame (7680x4320 = 33.2 MP) and is 85 times a Kodak
image; every registered protocol codes far smaller images (at most 192x368 to 370x1240). `bench run
--max-pixels N` changes it for one run (`pixel_limit`); decoders that receive a side view additionally
require the header's size to equal the side view's. A decoder whose time grows faster than its output
(Neural DSC's autoregressive prior: ~25 s for 1024x1024 on one CPU core) has a lower default of its own
(`max_pixels(cap)`), which an explicit --max-pixels overrides.

What a decoder spends follows the image it *works on*, which is the header's image padded to the codec's stride:
a 1 x 262144 header inside a 2**18-pixel limit is a 64 x 262144 image to a stride-64 decoder. So the limit counts
padded pixels (`shape_problem(..., stride=)`), and each side is capped too (MAX_SIDE). Where the caller knows the
shape it expects (the runner decodes what it has just encoded; `expected_shape`), any other header is refused
outright: then a forged header can cost at most what the honest image costs."""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from benchmark.errors import ConfigError

DEFAULT_MAX_PIXELS = 1 << 25
MAX_SIDE = 1 << 16  # pixels per side of one image (JPEG's own limit is 65500)
MAX_CHANNELS = 4  # tensors the codecs code: 1 or 3 image channels (4 leaves room for RGBA-like inputs)
_LIMIT: ContextVar[int | None] = ContextVar("max_pixels", default=None)  # None: not set by the user
_EXPECTED: ContextVar[tuple[int, ...] | None] = ContextVar("expected_shape", default=None)


def max_pixels(cap: int | None = None) -> int:
    """The pixel limit in force (H*W of one image). `cap`: a decoder's own lower default (e.g. an
    autoregressive one whose time grows faster than its output), used unless the user set a limit."""
    explicit = _LIMIT.get()
    if explicit is not None:
        return explicit
    return min(DEFAULT_MAX_PIXELS, cap) if cap else DEFAULT_MAX_PIXELS


@contextmanager
def pixel_limit(n: int | None) -> Iterator[int]:
    """Decode and read images under a limit of `n` pixels (None: keep the current one)."""
    if n is None:
        yield max_pixels()
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--max-pixels must be a positive integer, got {n!r}")
    token = _LIMIT.set(n)
    try:
        yield n
    finally:
        _LIMIT.reset(token)


@contextmanager
def expected_shape(shape: Sequence[int] | None) -> Iterator[None]:
    """Decode under the knowledge that the image has `shape` (None: unknown): every header announcing another shape
    is refused before anything is allocated. The runner wraps each decode of an image it has just encoded in it."""
    token = _EXPECTED.set(None if shape is None else tuple(int(d) for d in shape))
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def padded(n: int, stride: int) -> int:
    return -(-n // stride) * stride if stride > 1 else n


def shape_problem(shape: Sequence[int], cap: int | None = None, stride: int = 1) -> str | None:
    """Why a decoder must not allocate `shape` (None when within the limit). Images: (C, H, W) or (H, W), counted
    after padding H and W to a multiple of `stride` (the image the decoder works on); 1-D signals: (n,), counted as
    n pixels. Each side at most MAX_SIDE; the shape `expected_shape` names, when one is set. `cap`: see
    `max_pixels`."""
    dims = [int(d) for d in shape]
    if not dims:
        return None
    expected = _EXPECTED.get()
    if expected is not None and tuple(dims) != expected:
        return (f"the header announces shape {tuple(dims)}, but the image decoded here has shape {expected} "
                "(the bitstream is corrupt or belongs to another image)")
    limit = max_pixels(cap)
    if len(dims) >= 2:
        h, w = dims[-2:]
        side = max(h, w)
        if side > MAX_SIDE:
            return f"the header announces {h}x{w}, a side of {side} pixels, above the limit of {MAX_SIDE} per side"
        pixels = padded(h, stride) * padded(w, stride)
    else:
        pixels = dims[0]
    if pixels > limit:
        size = "x".join(str(d) for d in dims[-2:])
        work = (f" (padded to the decoder's stride {stride}: {padded(dims[-2], stride)}x{padded(dims[-1], stride)} = "
                f"{pixels})" if len(dims) >= 2 and stride > 1 and pixels != math.prod(dims[-2:]) else f" = {pixels} pixels")
        return (f"the header announces {size}{work}, above the limit of {limit} pixels "
                "(raise it with --max-pixels if the image is genuine)")
    if math.prod(dims) > MAX_CHANNELS * limit:
        return f"the header announces a tensor of shape {tuple(dims)}, more than {MAX_CHANNELS} channels of the pixel limit {limit}"
    return None
