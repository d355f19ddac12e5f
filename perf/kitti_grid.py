"""The KITTI learning-curve grid: methods × λ × training seeds at a few step counts, each (method, λ, seed) one
`perf/learning_curve.py` run, each point filed into the committed learning-curve points.

Run by hand (not a test), one torch thread per run, ``--jobs`` runs side by side, from a clean worktree of HEAD:

    python perf/kitti_grid.py --root KITTI_PAIRS --plan                 # what is filed, what is left, CPU hours
    python perf/kitti_grid.py --root KITTI_PAIRS --jobs 2 --worktree    # run what is left; file each run as it ends
    python perf/kitti_grid.py --file                                    # file finished runs only (no training)

The grid (`METHODS`, `LAMBDAS`, `SEEDS`, `STEPS`; each can be narrowed on the command line) is what a headline
BD-PSNR with seed intervals needs: at every step count, every method at 4 λ spanning about 0.1–0.7 bpp (so the
BD integral is over a PCHIP curve, not a line) and 2 seeds. A (method, λ, seed) job trains one λ
(``--option lambdas=[λ]``) up to the largest step count it still lacks and evaluates at each step count it lacks
(the runs are extendable: the point at S equals a run of S steps from scratch), in its own folders:
``<work>/work/<job>`` (training state, weights: never committed) and ``<work>/parts/<job>`` (its points). Filing
folds a part into ``<measured>/stereo/kitti-ndic/<method>.steps<S>[.seed<k>]``: the part itself where no point of
that name exists yet, else `learning_curve.py --merge` (which keeps each part's commit, command and training time
under ``learning_curve.parts``). A λ the committed point already has is not filed again; where a part repeats one
(a job trained through a step count that was filed before), its per-image bytes are compared with the committed
rows: a determinism check, printed.

A killed run resumes from its checkpoint when started again; a filed point is never retrained."""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "perf"))

from learning_curve import PROTOCOL, point_name  # noqa: E402

METHODS = ("balle2018", "ndic_balle2018", "dsi_disparity")
LAMBDAS = (0.0006, 0.0015, 0.0035, 0.013)
SEEDS = (0, 1)
STEPS = (1000, 2000, 3000)
# seconds of one training step (batch 8, 128² crops, N=64/M=96, one thread) on a core of this 2-core machine while
# another training runs on the other: balle2018 2,000 steps in 14 min (2026-12-07), a dsi_disparity step 1.25 and an
# ndic_balle2018 step 2.3 balle2018 steps (methods/dsi_disparity/README.md); the evaluation of a point (20 test
# codings, the side-view probe of a side-information codec) about 90 s
STEP_S = {"balle2018": 0.42, "ndic_balle2018": 0.97, "dsi_disparity": 0.52}
EVAL_S = 90.0
FILE_LOCK = threading.Lock()


def lam_text(lam: float) -> str:
    return f"{lam:g}"


def job_name(method: str, lam: float, seed: int) -> str:
    return f"{method}.lam{lam_text(lam)}.seed{seed}"


def filed_points(measured: Path, method: str, steps: int, seed: int) -> set[str]:
    """The rate points (``lambda=…``) the committed point of (method, steps, seed) has."""
    from benchmark.evaluation.setup import protocol_dir

    path = protocol_dir(measured, PROTOCOL) / f"{point_name(method, steps, seed)}.json"
    if not path.is_file():
        return set()
    return {p["rate_point"] for p in json.loads(path.read_text(encoding="utf-8"))["points"]}


def part_path(work: Path, job: str, method: str, steps: int, seed: int) -> Path:
    from benchmark.evaluation.setup import protocol_dir

    return protocol_dir(work / "parts" / job, PROTOCOL) / f"{point_name(method, steps, seed)}.json"


def plan(args: argparse.Namespace) -> list[dict]:
    """One entry per (method, λ, seed): the step counts filed, trained but not filed, and still to train."""
    out = []
    for method in args.methods:
        for lam in args.lambdas:
            for seed in args.seeds:
                job = job_name(method, lam, seed)
                rp = f"lambda={lam_text(lam)}"
                filed = [s for s in args.steps if rp in filed_points(args.measured, method, s, seed)]
                parts = [s for s in args.steps if s not in filed and part_path(args.work, job, method, s, seed).is_file()]
                todo = [s for s in args.steps if s not in filed and s not in parts]
                out.append({"job": job, "method": method, "lam": lam, "seed": seed, "filed": filed, "to_file": parts,
                            "todo": todo})
    return out


def cpu_seconds(entry: dict, work: Path) -> float:
    """Training to the largest step count still to train (less what a checkpoint already holds) plus the
    evaluations."""
    if not entry["todo"]:
        return 0.0
    done = 0
    for ck in (work / "work" / entry["job"]).glob("**/last.json"):  # the trainer's last checkpoint: how far a run got
        try:
            done = max(done, int(json.loads(ck.read_text(encoding="utf-8")).get("step", 0)))
        except (ValueError, OSError, AttributeError):
            pass
    return STEP_S[entry["method"]] * max(0, max(entry["todo"]) - done) + EVAL_S * len(entry["todo"])


def command(args: argparse.Namespace, entry: dict) -> list[str]:
    job = entry["job"]
    cmd = ["perf/learning_curve.py", "--method", entry["method"], "--root", str(args.root),
           "--steps", ",".join(map(str, entry["todo"])), "--work", str((args.work / "work" / job).resolve()),
           "--measured", str((args.work / "parts" / job).resolve()), "--option", f"lambdas=[{lam_text(entry['lam'])}]"]
    return cmd + (["--seed", str(entry["seed"])] if entry["seed"] else [])


def same_rows(a: Path, b: Path, rate_point: str) -> tuple[int, int]:
    """(rows of `rate_point` in both per-image CSVs, rows whose bytes or decoded-image hash differ)."""
    def rows(p: Path) -> dict:
        with open(p, newline="", encoding="utf-8") as f:
            return {(r["image"], r["source"]): r for r in csv.DictReader(f) if r["rate_point"] == rate_point}
    ra, rb = rows(a), rows(b)
    common = set(ra) & set(rb)
    bad = sum(ra[k]["bytes"] != rb[k]["bytes"] or ra[k].get("sha256") != rb[k].get("sha256") for k in common)
    return len(common), bad + len(set(ra) ^ set(rb))


def file_part(args: argparse.Namespace, entry: dict, steps: int) -> str:
    """Fold the part of (entry, steps) into the committed point (see the module's docstring)."""
    from benchmark.evaluation.setup import protocol_dir

    method, seed, lam = entry["method"], entry["seed"], entry["lam"]
    src = part_path(args.work, entry["job"], method, steps, seed)
    name = point_name(method, steps, seed)
    dest = protocol_dir(args.measured, PROTOCOL)
    rp = f"lambda={lam_text(lam)}"
    with FILE_LOCK:
        if rp in filed_points(args.measured, method, steps, seed):
            n, bad = same_rows(dest / f"{name}.csv", src.with_suffix(".csv"), rp)
            return f"{name} {rp}: already filed; the part repeats it: {n} rows, {bad} differ in bytes or image hash"
        if not (dest / f"{name}.json").is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.with_suffix(".csv"), dest / f"{name}.csv")  # byte for byte: its hash is in the result
            shutil.copyfile(src, dest / f"{name}.json")
            return f"{name} {rp}: filed (first part of this point)"
        cmd = [sys.executable, str(REPO / "perf" / "learning_curve.py"), "--method", method, "--steps", str(steps),
               "--measured", str(args.measured), "--merge", str(args.work / "parts" / entry["job"])]
        if seed:
            cmd += ["--seed", str(seed)]
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        if res.returncode != 0 or rp not in filed_points(args.measured, method, steps, seed):
            return f"{name} {rp}: merge FAILED: {res.stdout.strip()} {res.stderr.strip()[-400:]}"
        return f"{name} {rp}: merged"


def run_job(args: argparse.Namespace, entry: dict) -> list[str]:
    code = Path(args.code_dir)
    cmd = command(args, entry)
    log_dir = args.work / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"[{entry['job']}] (in {code}) OMP_NUM_THREADS=1 python {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p)}
    t0 = time.perf_counter()
    with open(log_dir / f"{entry['job']}.log", "ab") as log:
        rc = subprocess.run(["nice", "-n", "5", sys.executable, *cmd], cwd=code, env=env, stdout=log,
                            stderr=subprocess.STDOUT, check=False).returncode
    lines = [f"[{entry['job']}] exit {rc} after {time.perf_counter() - t0:.0f} s (log: {log_dir / (entry['job'] + '.log')})"]
    for s in args.steps:
        if part_path(args.work, entry["job"], entry["method"], s, entry["seed"]).is_file():
            lines.append(file_part(args, entry, s))
    return lines


def print_plan(args: argparse.Namespace, entries: list[dict]) -> None:
    total = 0.0
    for e in entries:
        cpu = cpu_seconds(e, args.work)
        total += cpu
        state = (f"filed {e['filed'] or '-'}, to file {e['to_file'] or '-'}, to train {e['todo'] or '-'}"
                 + (f" ({cpu / 3600:.2f} CPU h)" if cpu else ""))
        print(f"{e['job']:<36} {state}")
    left = [e for e in entries if e["todo"]]
    print(f"{len(entries)} jobs, {len(left)} to train: {total / 3600:.1f} CPU hours (steps x {STEP_S} s + {EVAL_S:.0f} s "
          f"per evaluated point), {total / 3600 / max(1, args.jobs):.1f} h wall with --jobs {args.jobs}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", help="the stereo folder (train/ val/ test/ with left/ right/)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--lambdas", default=",".join(map(lam_text, LAMBDAS)))
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--steps", default=",".join(map(str, STEPS)))
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side (one torch thread each)")
    ap.add_argument("--work", default="scratch/kitti-grid", help="training state, weights and parts (not committed)")
    ap.add_argument("--measured", default="measured")
    ap.add_argument("--plan", action="store_true", help="print what is filed and left, with CPU hours; run nothing")
    ap.add_argument("--file", action="store_true", help="file the finished parts only; train nothing")
    ap.add_argument("--worktree", action="store_true", help="run the code of HEAD from a clean git worktree under scratch/")
    ap.add_argument("--allow-dirty", action="store_true", help="run from this checkout with uncommitted changes")
    args = ap.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.methods) - set(STEP_S))
    if unknown:
        ap.error(f"--methods: {unknown} are not in the grid; choose from {sorted(STEP_S)}")
    args.lambdas = [float(v) for v in args.lambdas.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    args.steps = sorted(int(v) for v in args.steps.split(","))
    args.work, args.measured = Path(args.work).resolve(), Path(args.measured).resolve()
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    entries = plan(args)
    print_plan(args, entries)
    for e in entries:
        for s in e["to_file"]:
            print(file_part(args, e, s), flush=True)
    if args.plan or args.file:
        return 0
    if not args.root or not Path(args.root).is_dir():
        ap.error("--root: the KITTI pairs folder (train/ val/ test/ with left/ right/) is needed to train")
    from gaussian_seeds import code_checkout

    args.code_dir = str(code_checkout(args, ap))
    todo = [e for e in plan(args) if e["todo"]]
    todo.sort(key=lambda e: -cpu_seconds(e, args.work))  # longest first: the two cores end together
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for lines in pool.map(lambda e: run_job(args, e), todo):
            print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
