"""Bit-exact coding whatever the thread count.

A learned codec's networks run on both sides of the channel: the encoder computes the latents and the
entropy model's parameters (e.g. a hyperprior's scales, turned into integer table indexes), the decoder
computes the same parameters again and then the image. A float convolution split over N threads may sum in
another order than over 1 thread, so an encoder run with N threads and a decoder run with 1 can disagree in
the last bit: a scale index that flips desynchronises the entropy decoder, and the decoded image differs
from the one measured elsewhere. Codecs therefore run their coding networks under `one_thread()`: one
reduction order, so the same bytes and the same decoded image in any process and with any `--jobs`.
(Different CPU instruction sets or devices may still differ; the suite codes on the CPU.)"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the enclosed torch computation on one intra-op thread; restore the previous count afterwards."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
