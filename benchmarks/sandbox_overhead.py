"""CPU cost of the sandbox: the main job (`bench run` on the embedded sample) at --isolation sandbox and at
--isolation none, user+sys CPU time of the whole process tree, median of N interleaved runs; prints the ratio.

    python benchmarks/sandbox_overhead.py [--repeats 3] [--out /tmp/sandbox-overhead] [-- extra bench run args]

CPU time is read from a cgroup made for each run (cgroup v2, or v1's cpuacct), because bubblewrap's processes
do not hand their children's CPU time back to the caller's rusage; without a writable cgroup hierarchy the
script says so and stops. Target (issue 23): sandbox within 15 % of none."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path


def _cgroup() -> tuple[Path, callable]:
    """A fresh cgroup and a function reading its CPU seconds (user+sys)."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    name = f"dsc-bench-{uuid.uuid4().hex[:8]}"
    if v2.exists():
        cg = Path("/sys/fs/cgroup") / name
        cg.mkdir()

        def cpu() -> float:
            for line in (cg / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
            return float("nan")
        return cg, cpu
    cg = Path("/sys/fs/cgroup/cpuacct") / name
    cg.mkdir()
    return cg, lambda: int((cg / "cpuacct.usage").read_text()) / 1e9


def measure(isolation: str, out: Path, extra: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one main-job run."""
    shutil.rmtree(out, ignore_errors=True)
    cg, cpu = _cgroup()
    cmd = [sys.executable, "-m", "benchmark.cli", "run", "--out", str(out), "--isolation", isolation, "-q",
           "--no-leaderboard", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, preexec_fn=lambda: (cg / "cgroup.procs").write_text(str(os.getpid())),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    used = cpu()
    try:
        cg.rmdir()
    except OSError:
        pass
    if proc.returncode:
        raise SystemExit(f"bench run --isolation {isolation} failed:\n{err.decode()[-2000:]}")
    return used, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sandbox-overhead"))
    ap.add_argument("extra", nargs="*", help="further `bench run` arguments (after --)")
    args = ap.parse_args()
    try:
        _cgroup()[0].rmdir()
    except OSError as exc:
        raise SystemExit(f"no writable cgroup hierarchy here ({exc}); run as root on Linux") from exc
    res: dict[str, list[tuple[float, float]]] = {"none": [], "sandbox": []}
    for i in range(args.repeats):  # interleaved: drift in machine load hits both alike
        for iso in ("none", "sandbox"):
            cpu, wall = measure(iso, args.out / iso, args.extra)
            res[iso].append((cpu, wall))
            print(f"run {i + 1}/{args.repeats} --isolation {iso:<7}: {cpu:7.1f} s CPU  {wall:6.1f} s wall", flush=True)
    med = {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in res.items()}
    ratio = med["sandbox"][0] / med["none"][0]
    print(f"median CPU: none {med['none'][0]:.1f} s, sandbox {med['sandbox'][0]:.1f} s -> ratio {ratio:.3f} "
          f"({(ratio - 1) * 100:+.1f} %; target <= +15 %)")
    print(f"median wall: none {med['none'][1]:.1f} s, sandbox {med['sandbox'][1]:.1f} s -> ratio {med['sandbox'][1] / med['none'][1]:.3f}")


if __name__ == "__main__":
    main()
