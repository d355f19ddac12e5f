"""The KITTI learning-curve grid: methods × λ × training seeds at a few step counts, each (method, λ, seed) one
`perf/learning_curve.py` run, each point filed into the committed learning-curve points.

Run by hand (not a test), one torch thread per run, ``--jobs`` runs side by side, from a clean worktree of HEAD:

    python perf/kitti_grid.py --root KITTI_PAIRS --plan                 # what is filed, what is left, CPU hours
    python perf/kitti_grid.py --root KITTI_PAIRS --jobs 2 --worktree    # run what is left; file each run as it ends
    python perf/kitti_grid.py --file                                    # file finished runs only (no training)
    # a variant, filed apart: the dsi_disparity decoder without side information (its control)
    python perf/kitti_grid.py --root KITTI_PAIRS --methods dsi_disparity --option side=grey --tag greyside \
        --measured docs/ablations/dsi_disparity/greyside --jobs 2 --worktree

The grid (`METHODS`, `LAMBDAS`, `SEEDS`, `STEPS`; each can be narrowed on the command line) is what a headline
BD-PSNR with seed intervals needs: at every step count, every method at 4 λ spanning about 0.1–0.7 bpp (so the
BD integral is over a PCHIP curve, not a line) and 2 seeds, each point with its training CPU seconds (the
equal-CPU comparison; balle2018, the twin, one step count further). A (method, λ, seed) job trains one λ
(``--option lambdas=[λ]``) up to the largest step count it still lacks and evaluates at each step count it lacks
(the runs are extendable: the point at S equals a run of S steps from scratch), in its own folders:
``<work>/work/<job>`` (training state, weights: never committed) and ``<work>/parts/<job>`` (its points).

Filing folds parts into ``<measured>/stereo/kitti-ndic/<method>.steps<S>[.seed<k>]``: the first part of a new
point is copied, later ones merged by `learning_curve.py --merge` (which keeps each part's commit, command and
training time under ``learning_curve.parts``). A committed λ without training CPU seconds (trained before they
were recorded) counts as not filed: its job retrains it, and once every λ of that point has a part the point is
rebuilt from the parts alone, the old rows compared with the retrained ones (same bytes and decoded-image hash
per test image: a determinism check, printed; ``--accept-no-cpu`` keeps such points instead).

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

from learning_curve import PROTOCOL, _lam, point_name  # noqa: E402

METHODS = ("balle2018", "ndic_balle2018", "dsi_disparity")
LAMBDAS = (0.0006, 0.0015, 0.0035, 0.013)
SEEDS = (0, 1)
# balle2018 one step count further: the equal-CPU comparison reads the twin at the side codec's CPU time, and
# dsi_disparity at 3,000 steps costs about 3,750 balle2018 steps
STEPS = {"balle2018": (1000, 2000, 3000, 4000), "ndic_balle2018": (1000, 2000, 3000), "dsi_disparity": (1000, 2000, 3000)}
# seconds of one training step (batch 8, 128² crops, N=64/M=96, one thread) on a core of this 2-core machine while
# another training runs on the other (measured: docs/measurements.md, learning curves; a dsi_disparity step costs 1.25
# and an ndic_balle2018 step 2.3 balle2018 steps, methods/dsi_disparity/README.md); the evaluation of a point (20 test
# codings, the side-view probe of a side-information codec) about 90 s
STEP_S = {"balle2018": 0.42, "ndic_balle2018": 0.97, "dsi_disparity": 0.52}
EVAL_S = 90.0
FILE_LOCK = threading.Lock()


def lam_text(lam: float) -> str:
    return f"{lam:g}"


def job_name(method: str, lam: float, seed: int, tag: str = "") -> str:
    return f"{method}{'.' + tag if tag else ''}.lam{lam_text(lam)}.seed{seed}"


def filed_points(measured: Path, method: str, steps: int, seed: int) -> dict[str, bool]:
    """rate point (``lambda=…``) → whether its training record has CPU seconds, for the committed point of
    (method, steps, seed)."""
    from benchmark.evaluation.setup import protocol_dir

    path = protocol_dir(measured, PROTOCOL) / f"{point_name(method, steps, seed)}.json"
    if not path.is_file():
        return {}
    r = json.loads(path.read_text(encoding="utf-8"))
    per = (r.get("training") or {}).get("points") or {}
    return {p["rate_point"]: isinstance((per.get(p["rate_point"]) or {}).get("cpu_s"), (int, float)) for p in r["points"]}


def part_path(work: Path, job: str, method: str, steps: int, seed: int) -> Path:
    from benchmark.evaluation.setup import protocol_dir

    return protocol_dir(work / "parts" / job, PROTOCOL) / f"{point_name(method, steps, seed)}.json"


def steps_of(args: argparse.Namespace, method: str) -> tuple[int, ...]:
    return tuple(args.steps) if args.steps else STEPS[method]


def is_filed(args: argparse.Namespace, filed: dict[str, bool], rp: str) -> bool:
    return rp in filed and (filed[rp] or args.accept_no_cpu)


def plan(args: argparse.Namespace) -> list[dict]:
    """One entry per (method, λ, seed): the step counts filed, trained but not filed, and still to train. A point
    filed without training CPU seconds counts as still to train (unless --accept-no-cpu): the equal-CPU comparison
    needs them, and retraining it is also a determinism check (see `file_point`)."""
    out = []
    for method in args.methods:
        for lam in args.lambdas:
            for seed in args.seeds:
                job = job_name(method, lam, seed, args.tag)
                rp = f"lambda={lam_text(lam)}"
                steps = steps_of(args, method)
                filed = [s for s in steps if is_filed(args, filed_points(args.measured, method, s, seed), rp)]
                parts = [s for s in steps if s not in filed and part_path(args.work, job, method, s, seed).is_file()]
                todo = [s for s in steps if s not in filed and s not in parts]
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
    cmd += [a for kv in args.option for a in ("--option", kv)]
    return cmd + (["--seed", str(entry["seed"])] if entry["seed"] else [])


def csv_rows(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["image"], r["source"], r["rate_point"]): r for r in csv.DictReader(f)}


def compare_rows(old: dict, new: dict, rate_point: str) -> str:
    """How the per-image rows of `rate_point` in a rebuilt point compare with the replaced ones."""
    a = {k: v for k, v in old.items() if k[2] == rate_point}
    b = {k: v for k, v in new.items() if k[2] == rate_point}
    common = set(a) & set(b)
    bad = sum(a[k]["bytes"] != b[k]["bytes"] or a[k].get("sha256") != b[k].get("sha256") for k in common)
    return f"{rate_point}: {len(common)} rows again, {bad + len(set(a) ^ set(b))} differ in bytes or image hash"


def _merge(args: argparse.Namespace, method: str, steps: int, seed: int, folders: list[Path]) -> str:
    cmd = [sys.executable, str(REPO / "perf" / "learning_curve.py"), "--method", method, "--steps", str(steps),
           "--measured", str(args.measured)] + [a for f in folders for a in ("--merge", str(f))]
    if seed:
        cmd += ["--seed", str(seed)]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    return "" if res.returncode == 0 else f"merge FAILED: {res.stdout.strip()} {res.stderr.strip()[-400:]}"


def file_point(args: argparse.Namespace, method: str, steps: int, seed: int) -> list[str]:
    """Fold the finished parts of (method, steps, seed) into the committed point (see the module's docstring).

    The committed point is rebuilt from parts alone when one of its λ lacks training CPU seconds and every one of
    its λ has a part: the old point's rows are compared with the retrained ones (a determinism check, printed)."""
    from benchmark.evaluation.setup import protocol_dir

    name = point_name(method, steps, seed)
    dest = protocol_dir(args.measured, PROTOCOL)
    with FILE_LOCK:
        filed = filed_points(args.measured, method, steps, seed)
        parts = {}  # rate point → the part that has it (a job's part holds its λ)
        for lam in sorted(args.lambdas):
            if (p := part_path(args.work, job_name(method, lam, seed, args.tag), method, steps, seed)).is_file():
                parts.update((q["rate_point"], p) for q in json.loads(p.read_text(encoding="utf-8"))["points"])
        stale = sorted(rp for rp in filed if not is_filed(args, filed, rp))
        if stale and not set(filed) <= set(parts):
            return [f"{name}: waiting for {sorted(set(filed) - set(parts))} to be retrained before the point (without "
                    f"CPU time for {stale}) is rebuilt"] if set(parts) - set(filed) or set(parts) & set(stale) else []
        new = dict(parts) if stale else {rp: p for rp, p in parts.items() if rp not in filed}
        if not new:
            return []
        old = csv_rows(dest / f"{name}.csv") if stale else {}
        if stale:  # rebuilt from the parts: the old files go (git keeps them)
            (dest / f"{name}.json").unlink()
            (dest / f"{name}.csv").unlink()
        order = list(dict.fromkeys(new.values()))  # each part once, in λ order
        if not (dest / f"{name}.json").is_file():
            dest.mkdir(parents=True, exist_ok=True)
            first = order.pop(0)
            shutil.copyfile(first.with_suffix(".csv"), dest / f"{name}.csv")  # byte for byte: its hash is in the result
            shutil.copyfile(first, dest / f"{name}.json")
        err = _merge(args, method, steps, seed, [p.parents[2] for p in order]) if order else ""
        lines = [f"{name}: {'rebuilt from' if stale else 'filed'} {sorted(new, key=_lam)} {err}".rstrip()]
        if stale:
            rebuilt = csv_rows(dest / f"{name}.csv")
            lines += [f"{name} {compare_rows(old, rebuilt, rp)}" for rp in sorted(filed)]
        return lines


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
    for s in steps_of(args, entry["method"]):
        lines += file_point(args, entry["method"], s, entry["seed"])
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
    ap.add_argument("--steps", help="step counts for every method (default: STEPS, per method)")
    ap.add_argument("--accept-no-cpu", action="store_true",
                    help="count points filed without training CPU seconds as filed (default: retrain them)")
    ap.add_argument("--option", action="append", default=[],
                    help="a method option for every job, key=value (a variant: give it --tag and its own --measured)")
    ap.add_argument("--tag", default="", help="names the jobs of a variant (e.g. greyside for --option side=grey)")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side (one torch thread each)")
    ap.add_argument("--work", default="scratch/kitti-grid", help="training state, weights and parts (not committed)")
    ap.add_argument("--measured", default="measured")
    ap.add_argument("--plan", action="store_true", help="print what is filed and left, with CPU hours; run nothing")
    ap.add_argument("--file", action="store_true", help="file the finished parts only; train nothing")
    ap.add_argument("--worktree", action="store_true", help="run the code of HEAD from a clean git worktree under scratch/")
    ap.add_argument("--allow-dirty", action="store_true", help="run from this checkout with uncommitted changes")
    args = ap.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    if args.option and (not args.tag or Path(args.measured).resolve() == (REPO / "measured").resolve()):
        ap.error("--option makes a variant: name it with --tag and file it apart from measured/ (--measured DIR), "
                 "since the learning-curve table keys points by method and steps")
    unknown = sorted(set(args.methods) - set(STEP_S))
    if unknown:
        ap.error(f"--methods: {unknown} are not in the grid; choose from {sorted(STEP_S)}")
    args.lambdas = [float(v) for v in args.lambdas.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    args.steps = sorted(int(v) for v in args.steps.split(",")) if args.steps else None
    args.work, args.measured = Path(args.work).resolve(), Path(args.measured).resolve()
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    entries = plan(args)
    print_plan(args, entries)
    for method in args.methods:
        for seed in args.seeds:
            for s in steps_of(args, method):
                for line in file_point(args, method, s, seed):
                    print(line, flush=True)
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
