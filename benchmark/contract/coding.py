"""Pieces every image codec needs around its networks: stride padding, rate-point lookup, and the checks of a
decoded container header before any payload is touched. Shared by the Ballé family (baselines/balle.py) and the
methods (e.g. methods/neural_dsc), so each check reads and fails the same way everywhere."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from benchmark.contract.container import Container
from benchmark.errors import BitstreamError, ConfigError
from benchmark.safety.limits import shape_problem


def pad_to(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Pad an NCHW tensor at the bottom/right to a multiple of `stride` by edge replication."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def point_index(codec: str, points: Sequence[str], point: str) -> int:
    """Index of `point` among a codec's rate points; ConfigError naming the valid ones otherwise."""
    if point not in points:
        raise ConfigError(f"{codec}: unknown rate point {point!r}; valid: {', '.join(points)}")
    return list(points).index(point)


def check_image_header(codec: str, c: Container, *, n_points: int, n_streams: int, max_pixels: int,
                       stride: int = 1, cap: int | None = None) -> None:
    """BitstreamError unless the header names a rate point these weights have, a plausible 3xHxW image of at
    most `max_pixels` and `n_streams` streams, within the pixel limit once padded to the decoder's `stride`
    (benchmark.safety.limits.shape_problem; `cap`: the decoder's own lower default)."""
    if c.point >= n_points:
        raise BitstreamError(f"{codec}: bitstream names rate point #{c.point}, these weights have {n_points}")
    if len(c.shape) != 3 or c.shape[0] != 3 or min(c.shape[1:]) < 1 or c.shape[1] * c.shape[2] > max_pixels:
        raise BitstreamError(f"{codec}: implausible image shape {c.shape} in the bitstream header")
    why = shape_problem(c.shape, cap=cap, stride=stride)  # the padded image is what the networks allocate
    if why:
        raise BitstreamError(f"{codec}: refusing to decode: {why}")
    if len(c.streams) != n_streams:
        raise BitstreamError(f"{codec}: bitstream has {len(c.streams)} streams, expected {n_streams}")


def check_side_shape(codec: str, c: Container, side: torch.Tensor | None) -> None:
    """BitstreamError when a side view is given whose shape is not the one the header announces."""
    if side is not None and tuple(side.shape) != tuple(c.shape):  # a header that does not match the side view
        raise BitstreamError(f"{codec}: the bitstream header announces an image of shape {c.shape} "
                             f"but the side view is {tuple(side.shape)}; the bitstream is corrupt or belongs to another image")
