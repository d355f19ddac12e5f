"""The authors' DRASIC weights -> this suite's `DRASIC` model.

Source: the distributed codec of the authors' code, ``src/models/dist_codec.py`` (``Model``, built by
``make_model`` from the cell list of ``dist_codec()`` with ``src/config.py``), MNIST configuration: 1 image
channel, ``code_size`` 8, activation ``tanh``, normalization ``none``, ``num_node`` encoders and one decoder.
Its state dict (``model.state_dict()``, what their training script stores under ``model_dict``) names::

    model.encoder.<m>.0.cell.cell.main.{weight,bias}                 1x1 conv, image -> 32 (with bias)
    model.encoder.<m>.{2,4,6}.cell.cell.0.{in,hidden}.cell.cell.main.weight   ConvLSTM gates (input, hidden)
    model.encoder.<m>.7.cell.cell.main.weight                        1x1 conv 128 -> 8
    model.decoder.0.cell.cell.main.weight                            1x1 conv 8 -> 128
    model.decoder.{1,3,5}.cell.cell.0.{in,hidden}.cell.cell.main.weight       ConvLSTM gates
    model.decoder.7.cell.cell.main.weight                            1x1 conv 32 -> image

(the odd indices of the encoder and the even ones of the decoder are parameter-free pixel (un)shuffles).
Both codes order the LSTM gates (input, forget, cell, output) and use the same pixel (un)shuffle channel
order, so every tensor is copied unchanged; the converted model is built with ``Widths(authors=True)`` (the
stem bias and the authors' recurrence, see `DRASIC`). The authors' checkpoint files also pickle their logger
and configuration objects: the suite does not unpickle them (see :func:`read_authors_checkpoint`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch

from benchmark.errors import WeightsError
from benchmark.safety.plain_checkpoint import read_plain_state_dict

from .model import CODE_CHANNELS, DRASIC, Widths

_ENC_LSTM = (2, 4, 6)  # positions of the ConvLSTM cells in the authors' encoder Sequential
_DEC_LSTM = (1, 3, 5)
_GATE = "cell.cell.0.{}.cell.cell.main.weight"
_CONV = "cell.cell.main.{}"


def authors_key_map(n_encoders: int) -> dict[str, str]:
    """{authors' name: our name} for a distributed model with ``n_encoders`` encoders and one decoder."""
    out: dict[str, str] = {}
    for m in range(n_encoders):
        a, b = f"model.encoder.{m}.", f"encoders.{m}."
        out[a + "0." + _CONV.format("weight")] = b + "stem.weight"
        out[a + "0." + _CONV.format("bias")] = b + "stem.bias"
        for i, pos in enumerate(_ENC_LSTM):
            out[a + f"{pos}." + _GATE.format("in")] = b + f"rnn.{i}.conv_x.weight"
            out[a + f"{pos}." + _GATE.format("hidden")] = b + f"rnn.{i}.conv_h.weight"
        out[a + "7." + _CONV.format("weight")] = b + "head.weight"
    out["model.decoder.0." + _CONV.format("weight")] = "decoders.0.stem.weight"
    for i, pos in enumerate(_DEC_LSTM):
        out[f"model.decoder.{pos}." + _GATE.format("in")] = f"decoders.0.rnn.{i}.conv_x.weight"
        out[f"model.decoder.{pos}." + _GATE.format("hidden")] = f"decoders.0.rnn.{i}.conv_h.weight"
    out["model.decoder.7." + _CONV.format("weight")] = "decoders.0.head.weight"
    return out


def _need(sd: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in sd:
        raise WeightsError(f"drasic authors' state dict: no {key!r}; expected the distributed codec of "
                           "src/models/dist_codec.py (model.encoder.<m>..., model.decoder...)")
    return sd[key]


def authors_layout(sd: Mapping[str, torch.Tensor]) -> tuple[Widths, int]:
    """(widths, number of encoders) read from the shapes of the authors' state dict."""
    encs = {int(m.group(1)) for k in sd if (m := re.match(r"model\.encoder\.(\d+)\.", k))}
    if not encs or encs != set(range(len(encs))):
        raise WeightsError(f"drasic authors' state dict: encoders {sorted(encs)} are not numbered 0..M-1")
    stem = _need(sd, "model.encoder.0.0." + _CONV.format("weight"))
    code = _need(sd, "model.encoder.0.7." + _CONV.format("weight"))
    if code.shape[0] != CODE_CHANNELS:
        raise WeightsError(f"drasic authors' state dict has code_size {code.shape[0]}; this suite's DRASIC codes "
                           f"{CODE_CHANNELS} channels")
    dec_hidden = tuple(int(_need(sd, f"model.decoder.{p}." + _GATE.format("hidden")).shape[1]) for p in _DEC_LSTM)
    try:
        widths = Widths(enc_stem=int(stem.shape[0]), enc_hidden=int(code.shape[1]),
                        dec_stem=int(_need(sd, "model.decoder.0." + _CONV.format("weight")).shape[0]),
                        dec_hidden=dec_hidden, channels=int(stem.shape[1]), authors=True)
    except ValueError as exc:
        raise WeightsError(f"drasic authors' state dict: {exc}") from exc
    return widths, len(encs)


def convert_state_dict(sd: Mapping[str, torch.Tensor]) -> tuple[Widths, int, dict[str, torch.Tensor]]:
    """(widths, number of encoders, our state dict) from the authors' state dict (every key used exactly once)."""
    widths, n = authors_layout(sd)
    mapping = authors_key_map(n)
    extra = sorted(set(sd) - set(mapping))
    if extra:
        raise WeightsError(f"drasic authors' state dict has entries this conversion does not know: {extra[:5]} "
                           "(a configuration other than the MNIST distributed codec: bias / normalization / sizes?)")
    return widths, n, {ours: _need(sd, theirs).detach().clone() for theirs, ours in mapping.items()}


def from_authors(sd: Mapping[str, torch.Tensor]) -> DRASIC:
    """Our `DRASIC` (distributed: M encoders, one decoder) computing the authors' function, in eval mode."""
    widths, n, ours = convert_state_dict(sd)
    model = DRASIC(widths, n, 1).to(next(iter(ours.values())).dtype)  # the dtype of the authors' tensors
    own = model.state_dict()
    for k, v in ours.items():
        if own[k].shape != v.shape:
            raise WeightsError(f"drasic authors' state dict: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    model.load_state_dict(ours, strict=True)
    return model.eval()


def read_authors_checkpoint(path: Path | str) -> dict[str, torch.Tensor]:
    """The authors' state dict from a file of plain tensors (``torch.load(weights_only=True)`` or safetensors).

    Their own ``*_checkpoint.pt`` also pickles ``config.PARAM`` (a numpy RandomState among it) and the logger:
    that file is refused with WeightsError; save ``ckpt['model_dict']`` alone in their environment first."""
    return read_plain_state_dict(path, what="drasic authors' checkpoint", nested=("model_dict", "model_state_dict", "state_dict"))


def save_suite_weights(sd: Mapping[str, torch.Tensor], directory: Path | str, *, protocol: str = "mnist/drasic-class",
                       iterations: int = 16) -> Path:
    """Convert the authors' state dict and save it as suite weights (safetensors + manifest) for
    ``bench run --method drasic --option sources=<M> --weights <directory>``."""
    from .codec import DRASICCodec

    model = from_authors(sd)
    codec = DRASICCodec(protocol, config="distributed", sources=len(model.encoders), iterations=iterations,
                        channels=model.widths.channels)
    codec.widths, codec.model = model.widths, model
    codec.training_info = {"converted_from": "authors' src/models/dist_codec.py state dict"}
    return codec.save_weights(Path(directory))
