"""What one flipped payload bit does, per registered codec (run by hand; figures in docs/security.md).

    OMP_NUM_THREADS=1 python perf/bitflip.py [--flips 64]

For each codec: a small test input is compressed at its first rate point, then `--flips` copies of the stream
each get one payload bit flipped (evenly spaced positions; the container header is left intact, so the
flip reaches the codec's own decoder). Prints, per codec: how many flips were refused (BitstreamError), how
many decoded with identical output, and how many decoded to a different image (with the median and worst
PSNR of that image against the unflipped decode). Codecs with untrained weights decode noise-like images;
the refused/changed split is what matters here."""
from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flips", type=int, default=64)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from benchmark.contract.container import Container
    from benchmark.contract.conformance import coded_sample
    from benchmark.errors import BitstreamError
    from benchmark.contract.registry import METHODS

    print(f"{'codec':<22}{'payload B':>10}{'refused':>9}{'same':>6}{'changed':>9}{'median dB':>11}{'worst dB':>10}")
    for name in METHODS.names():
        codec, data, dec_side = coded_sample(name)
        ref = codec.decompress(data, side=dec_side)
        payload = Container.from_bytes(data, name).payload_bytes
        head = len(data) - payload
        refused = same = 0
        psnrs = []
        bits = payload * 8
        for k in range(args.flips):
            pos = (k * bits) // args.flips
            b = bytearray(data)
            b[head + pos // 8] ^= 1 << (pos % 8)
            try:
                out = codec.decompress(bytes(b), side=dec_side)
            except BitstreamError:
                refused += 1
                continue
            mse = float(torch.mean((out.double() - ref.double()) ** 2))
            if mse == 0:
                same += 1
            else:
                psnrs.append(10 * math.log10(1.0 / mse))
        psnrs.sort()
        med = f"{psnrs[len(psnrs) // 2]:.1f}" if psnrs else "—"
        worst = f"{psnrs[0]:.1f}" if psnrs else "—"
        print(f"{name:<22}{payload:>10}{refused:>9}{same:>6}{len(psnrs):>9}{med:>11}{worst:>10}")


if __name__ == "__main__":
    main()
