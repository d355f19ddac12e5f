"""CPU cost of the sandbox: the main job (`bench run` on the embedded sample) at --isolation sandbox and at
--isolation none, user+sys CPU time of the whole process tree, median of N interleaved runs; prints the ratio.

    python perf/sandbox_overhead.py [--repeats 3] [--out /tmp/sandbox-overhead] [-- extra bench run args]

CPU time is read from a cgroup made for each run (cgroup v2, or v1's cpuacct), because bubblewrap's processes
do not hand their children's CPU time back to the caller's rusage; without a writable cgroup hierarchy the
script says so and stops. Target: sandbox within 15 % of none."""
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


def _cgroup() -> tuple[list[Path], callable, callable]:
    """Fresh cgroups for one run, a function reading their CPU seconds (user+sys) and one reading the peak memory
    of the whole process tree in GiB (NaN where no memory controller is writable)."""
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

        def mem() -> float:
            peak = cg / "memory.peak"
            return int(peak.read_text()) / 2**30 if peak.exists() else float("nan")
        return [cg], cpu, mem
    cg = Path("/sys/fs/cgroup/cpuacct") / name
    cg.mkdir()
    groups = [cg]
    mg = Path("/sys/fs/cgroup/memory") / name
    try:
        mg.mkdir()
        groups.append(mg)
    except OSError:
        mg = None

    def mem() -> float:
        return int((mg / "memory.max_usage_in_bytes").read_text()) / 2**30 if mg else float("nan")
    return groups, lambda: int((cg / "cpuacct.usage").read_text()) / 1e9, mem


def measure(isolation: str, out: Path, extra: list[str]) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, peak memory GiB) of one main-job run."""
    shutil.rmtree(out, ignore_errors=True)
    groups, cpu, mem = _cgroup()
    cmd = [sys.executable, "-m", "cli.main", "run", "--out", str(out), "--isolation", isolation, "-q",
           "--no-leaderboard", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, preexec_fn=lambda: [(g / "cgroup.procs").write_text(str(os.getpid())) for g in groups],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    used, peak = cpu(), mem()
    for g in groups:
        try:
            g.rmdir()
        except OSError:
            pass
    if proc.returncode:
        raise SystemExit(f"bench run --isolation {isolation} failed:\n{err.decode()[-2000:]}")
    return used, wall, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sandbox-overhead"))
    ap.add_argument("extra", nargs="*", help="further `bench run` arguments (after --)")
    args = ap.parse_args()
    try:
        for g in _cgroup()[0]:
            g.rmdir()
    except OSError as exc:
        raise SystemExit(f"no writable cgroup hierarchy here ({exc}); run as root on Linux") from exc
    res: dict[str, list[tuple[float, float, float]]] = {"none": [], "sandbox": []}
    for i in range(args.repeats):  # interleaved: drift in machine load hits both alike
        for iso in ("none", "sandbox"):
            cpu, wall, peak = measure(iso, args.out / iso, args.extra)
            res[iso].append((cpu, wall, peak))
            print(f"run {i + 1}/{args.repeats} --isolation {iso:<7}: {cpu:7.1f} s CPU  {wall:6.1f} s wall  "
                  f"{peak:5.2f} GiB peak (process tree)", flush=True)
    med = {k: tuple(statistics.median(r[j] for r in v) for j in range(3)) for k, v in res.items()}
    ratio = med["sandbox"][0] / med["none"][0]
    print(f"median CPU: none {med['none'][0]:.1f} s, sandbox {med['sandbox'][0]:.1f} s -> ratio {ratio:.3f} "
          f"({(ratio - 1) * 100:+.1f} %; target <= +15 %)")
    print(f"median wall: none {med['none'][1]:.1f} s, sandbox {med['sandbox'][1]:.1f} s -> ratio {med['sandbox'][1] / med['none'][1]:.3f}")
    print(f"median peak memory of the process tree: none {med['none'][2]:.2f} GiB, sandbox {med['sandbox'][2]:.2f} GiB")


if __name__ == "__main__":
    main()
