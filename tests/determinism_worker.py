"""Subprocess half of tests/test_determinism.py: load each codec's saved weights into a fresh instance in this
process, encode the same inputs with the given number of torch threads, and decode the bitstreams the parent
process made. Reads and writes JSON only (bytes as hex, decoded tensors as sha256 of their float32 values).

    python tests/determinism_worker.py JOB.json OUT.json"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.contract.codec import LearnedCodec  # noqa: E402
from benchmark.contract.registry import get_method, get_protocol  # noqa: E402
from tests.determinism_inputs import det_input  # noqa: E402


def tensor_sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().float().contiguous().numpy().tobytes()).hexdigest()


def main(job_path: str, out_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    torch.set_num_threads(int(job["threads"]))
    out = {"threads": torch.get_num_threads(), "codecs": {}}
    for name, spec in job["codecs"].items():
        cls = get_method(name)
        codec = cls(protocol=get_protocol(spec["protocol"]), **spec["options"])
        if isinstance(codec, LearnedCodec):
            codec.load_weights(Path(spec["weights"]))
        x, side = det_input(cls)
        enc_side = side if codec.meta.scenario.encoder_sees_side else None
        dec_side = side if codec.meta.scenario.decoder_sees_side else None
        res = {"bytes": {}, "decoded": {}}
        for p in spec["points"]:
            res["bytes"][p] = codec.compress(x, side=enc_side, point=p).hex()
        for p, data in spec["decode"].items():
            res["decoded"][p] = tensor_sha(codec.decompress(bytes.fromhex(data), side=dec_side))
        out["codecs"][name] = res
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
