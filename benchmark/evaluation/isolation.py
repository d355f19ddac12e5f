"""Who sees what, by construction: the instances the runner codes with.

A codec is one Python object with encoder and decoder methods, so a codec written to cheat could carry
information from its decoder to its encoder (store the side views `decompress` or `fit` was given, then
send a short token when `compress` meets one of them). The runner therefore never encodes with the
instance that trains, decodes or estimates:

- the **encoder** is a fresh instance built from the method's options and, for a learned codec, loaded
  from the saved weights (the only thing training may hand on), before anything is decoded or estimated;
- the **estimator** (`estimate_bits`, which for some codecs is given the decoder's side view) is a copy of
  that fresh instance taken before its first use, so nothing it sees reaches the encoder either;
- the **decoder** is the instance that was trained or loaded; it sees the side view as the scenario allows
  and has no reference to the other two.

State kept outside the instance (class attributes, module globals) is not covered by this; the codec
contract test (tests/test_codec_contract.py) checks every registered codec's bytes before and after its
decoder, estimator and trainer were handed arbitrary side views."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

from benchmark.contract.codec import Codec, LearnedCodec


def isolated_instances(build: Callable[[], Codec], weights: Path | None) -> tuple[Codec, Codec]:
    """(encoder, estimator): two instances that have seen nothing but the method's options and its weights."""
    encoder = build()
    if isinstance(encoder, LearnedCodec):
        if weights is None:
            raise ValueError(f"{encoder.meta.name} is a learned codec: its isolated encoder needs the weights folder")
        encoder.load_weights(Path(weights))
    return encoder, copy.deepcopy(encoder)
