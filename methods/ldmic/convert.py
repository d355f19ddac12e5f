"""The authors' LDMIC state dicts (``LDMIC``, ``LDMIC_checkboard``, ``Multi_LDMIC``) as our ``LDMICModel``.

An explicit renaming table (``RULES``: the authors' prefix -> ours); a key that no rule names, or a tensor of
ours that no key fills, is refused with a WeightsError. Widths N and M and the context model are read from the
tensors (``infer``)."""
from __future__ import annotations

from typing import Mapping

import torch

from benchmark.errors import WeightsError

from .model import LDMICModel

# (the authors' prefix, ours), first match wins; the two-view JCT's rb1/rb2 and the multi-view JCT's rb.0/rb.1
# are the same two residual blocks
RULES: tuple[tuple[str, str], ...] = (
    ("encoder.", "g_a."),
    ("hyperprior.hyper_encoder.", "h_a."),
    ("hyperprior.hyper_decoder.", "h_s."),
    ("hyperprior.entropy_bottleneck.", "entropy_bottleneck."),
    ("context_prediction.", "context."),
    ("entropy_parameters.", "entropy_parameters."),
    ("gaussian_conditional.", "gaussian_conditional."),
    ("atten_3.rb1.", "jct_latent.rb.0."),
    ("atten_3.rb2.", "jct_latent.rb.1."),
    ("atten_3.", "jct_latent."),
    ("decoder_1.", "g_s1."),
    ("atten_4.rb1.", "jct_feature.rb.0."),
    ("atten_4.rb2.", "jct_feature.rb.1."),
    ("atten_4.", "jct_feature."),
    ("decoder_2.", "g_s2."),
)


def infer(state: Mapping[str, torch.Tensor]) -> tuple[int, int, str]:
    """(N, M, context) of an authors' state dict."""
    try:
        n = int(state["encoder.0.weight"].shape[0])
        m = int(state["encoder.6.weight"].shape[0])
        mask = state["context_prediction.mask"]
    except KeyError as exc:
        raise WeightsError(f"not an LDMIC state dict of the authors: no tensor {exc.args[0]!r}") from exc
    k = mask.shape[-1] // 2
    # the serial mask (type A) sees the rows above and the left part of its own row; the checkerboard one sees the
    # positions with (row + col) odd, the centre's left neighbour among them
    serial = bool(mask[0, 0, 0].all()) and not bool(mask[0, 0, k, k:].any())
    return n, m, "autoregressive" if serial else "checkerboard"


def rename(key: str, rules: tuple[tuple[str, str], ...] = RULES) -> str | None:
    for theirs, ours in rules:
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return None


def convert(state: Mapping[str, torch.Tensor], rules: tuple[tuple[str, str], ...] = RULES) -> LDMICModel:
    """Our model holding the authors' tensors (eval mode)."""
    n, m, context = infer(state)
    model = LDMICModel(n, m, context=context)
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        new = rename(key, rules)
        if new is None:
            raise WeightsError(f"the authors' tensor {key!r} has no place in our LDMIC model")
        mapped[new] = tensor.detach().clone()
    missing = sorted(set(model.state_dict()) - set(mapped))
    if missing:
        raise WeightsError(f"the authors' state dict does not fill {', '.join(missing[:5])}"
                           f"{' ...' if len(missing) > 5 else ''}")
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"the authors' tensors do not fit our LDMIC model: {str(exc).splitlines()[0][:300]}") from exc
    return model.eval()
