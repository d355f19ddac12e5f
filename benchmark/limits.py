"""How large an image the suite agrees to decode: one limit for bitstreams and for input image files.

Decoders allocate memory in proportion to the image size their input *claims* (a container header, a PNG
header), before they know whether the payload can fill it: 51 bytes announcing 8192x8192 cost a hyperprior
decoder about 8 GB. The limit is checked from the header alone, before anything is allocated.

The default, 2**25 pixels (33.5 MP), holds an 8K UHD frame (7680x4320 = 33.2 MP) and is 85 times a Kodak
image; every registered protocol codes far smaller images (at most 192x368 to 370x1240). `bench run
--max-pixels N` changes it for one run (`pixel_limit`); decoders that receive a side view additionally
require the header's size to equal the side view's. A decoder whose time grows faster than its output
(Neural DSC's autoregressive prior: ~25 s for 1024x1024 on one CPU core) has a lower default of its own
(`max_pixels(cap)`), which an explicit --max-pixels overrides."""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import ConfigError

DEFAULT_MAX_PIXELS = 1 << 25
MAX_CHANNELS = 4  # tensors the codecs code: 1 or 3 image channels (4 leaves room for RGBA-like inputs)
_LIMIT: ContextVar[int | None] = ContextVar("max_pixels", default=None)  # None: not set by the user


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


def shape_problem(shape: Sequence[int], cap: int | None = None) -> str | None:
    """Why a decoder must not allocate `shape` (None when within the limit). Images: (C, H, W) or (H, W);
    1-D signals: (n,), counted as n pixels. `cap`: see `max_pixels`."""
    limit = max_pixels(cap)
    dims = [int(d) for d in shape]
    if not dims:
        return None
    pixels = math.prod(dims[-2:]) if len(dims) >= 2 else dims[0]
    if pixels > limit:
        size = "x".join(str(d) for d in dims[-2:])
        return (f"the header announces {size} = {pixels} pixels, above the limit of {limit} "
                "(raise it with --max-pixels if the image is genuine)")
    if math.prod(dims) > MAX_CHANNELS * limit:
        return f"the header announces a tensor of shape {tuple(dims)}, more than {MAX_CHANNELS} channels of the pixel limit {limit}"
    return None
