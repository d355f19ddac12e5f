"""One `bench run` of jpeg on a folder of images, with a fault injected; used by tests/test_fault_injection.py.

    python -m tests.fault_run_worker ROOT OUT FAULT [ARG]

FAULT: none | kill_eval N (SIGKILL this process when the N-th image starts coding) | kill_write (SIGKILL in
the middle of writing the result JSON: half its bytes are in the temporary file). Prints "ok" and exits 0 after a completed run; a BenchError
prints "error: ..." and exits 2, as the command line does."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def spec(root: str, out: str):
    from benchmark.evaluation.setup import RunSpec

    return RunSpec(method="jpeg", dataset="images", root=Path(root), out=Path(out), progress=False,
                   method_options={"qualities": [10, 40, 70, 90]})


def main(argv: list[str]) -> int:
    root, out, fault = argv[0], argv[1], argv[2]
    from benchmark.safety import atomicio
    from benchmark.evaluation import inprocess, runner
    from benchmark.errors import BenchError

    if fault == "kill_eval":
        n = int(argv[3])
        orig = inprocess._code_sample
        seen: list[str] = []

        def code_sample(codec, sample, name, *a, **k):
            if name not in seen:
                seen.append(name)
            if len(seen) >= n:
                os.kill(os.getpid(), signal.SIGKILL)
            return orig(codec, sample, name, *a, **k)

        inprocess._code_sample = code_sample
    elif fault == "kill_write":
        real_fdopen = os.fdopen

        class HalfThenKill:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *a):
                return self.f.__exit__(*a)

            def write(self, data):
                if data.lstrip().startswith(b"{"):  # the result JSON (CSV files are written first)
                    self.f.write(data[: len(data) // 2])
                    self.f.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
                return self.f.write(data)

            def __getattr__(self, k):
                return getattr(self.f, k)

        atomicio.os.fdopen = lambda fd, *a, **k: HalfThenKill(real_fdopen(fd, *a, **k))
    try:
        runner.run(spec(root, out))
    except BenchError as exc:
        print(f"error: {exc}")
        return 2
    print("ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
