"""Seed runs of the `gaussian/wz` layered coders: configurations × training seeds, each a `bench run`, each result
filed under ``<measured>/gaussian/wz/layered_wz.<variant>.seed<s>.json`` (+ ``.csv``).

Run by hand (not a test), one torch thread per process, ``--jobs`` processes side by side:

    python perf/gaussian_seeds.py --list checklist --jobs 2          # every run the checklist judges, 3 seeds
    python perf/gaussian_seeds.py --list faithful --list binning --estimate   # the plan and its CPU time only

The lists (`LISTS`): ``checklist`` — every configuration the `gaussian/wz` checklist compares (222, 44, mono2…16,
conditional and marginal prior, σ² = 0.1 and 0.01, λ = 30/σ²); ``faithful`` — the paper's networks
(``faithful=true``) at σ² = 0.01, conditional, mono4/mono8/222/44 and then mono2/mono16 (the partners of 222's
stage 1 and 44's stage 2); ``binning`` — 222 conditional at σ² = 0.1 and 0.01 trained with the exact expectation
over codes (``estimator=exact``) and with relaxed-then-hard samples (``estimator=anneal``); ``binning-marginal`` —
the same two recipes for 44 marginal at σ² = 0.01, where the Gumbel-softmax seeds split between mirror bins and
contiguous cells (methods/layered_wz/README.md). Seeds 0, 1, 2 unless ``--seeds`` says otherwise.

Each run trains in its own folder under ``--work`` (``<work>/<name>``: weights and checkpoints stay there, never
committed; a killed run resumes from its checkpoint when started again) and is then copied to ``--measured`` with
``variant`` ending in ``.seed<s>`` and a ``provenance`` record: the command that reproduces it (``--out OUT``), its
wall time, the list and this script's command line. A result that exists (the seeded file, or for the seed a committed
result records, the unseeded one) is skipped. A result from a dirty checkout is not filed unless ``--allow-dirty``
(its ``environment.git_diff_sha256`` then names the uncommitted changes it ran with); ``--worktree`` runs the code of
HEAD from a detached git worktree under ``scratch/`` instead, so the result's commit names the code that ran while
others edit this checkout (the way to run these lists in a shared checkout).

``--estimate`` prints each list's CPU time before running (or instead of running, with ``--dry-run``): per run, the
training seconds of the committed seed-0 result of the same configuration (``training.seconds``; a resumed run, whose
record counts one segment, is replaced by the median of the unresumed runs of its stage configuration), times the
cost of a step of the estimator against a Gumbel-softmax step (timed here on 3 steps of each), plus the evaluation
of the 10^7 test pairs (timed from ``--eval-s-per-block``)."""
from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "perf"))

from learning_curve import cli_values  # noqa: E402  (option values as `bench run --option k=v` passes them)

PROTOCOL = "gaussian/wz"
METHOD = "layered_wz"
CONFIGS = ("222", "44", "mono2", "mono4", "mono8", "mono16")


def _job(config: str, prior: str, s2: float, **extra: str) -> dict[str, str]:
    return {"config": config, "prior": prior, "sigma2": f"{s2:g}", "lam": f"{30 / s2:g}", **extra}


LISTS: dict[str, list[dict[str, str]]] = {
    "checklist": [_job(c, p, s2) for p in ("conditional", "marginal") for s2 in (0.1, 0.01) for c in CONFIGS],
    "faithful": [_job(c, "conditional", 0.01, faithful="true") for c in ("mono4", "mono8", "222", "44", "mono2", "mono16")],
    "binning": [_job("222", "conditional", s2, estimator=e) for e in ("exact", "anneal") for s2 in (0.1, 0.01)],
    # the marginal 44 at σ² = 0.01, where Gumbel-softmax seeds learn either mirror bins or contiguous cells: does a
    # recipe without relaxation find the bins every time?
    "binning-marginal": [_job("44", "marginal", 0.01, estimator=e) for e in ("exact", "anneal")],
}
# evaluation seconds per test block of 10^4 pairs (encode 0.18 s, decode of the three stages of 222 0.33 s, measured
# 2026-12-07 on a loaded core with this script's test run), and the seconds a run spends outside training steps and
# coding (start, sandbox, the q_m table counted on 10^6 pairs, validation, the leak diagnostic: 87 − 11 s measured)
EVAL_S_PER_BLOCK = 0.5
RUN_OVERHEAD_S = 80.0


def variant_of(job: dict[str, str]) -> str:
    """The codec's own variant key for these options (`methods.layered_wz.codec.variant_key`)."""
    from benchmark.contract.registry import get_protocol
    from methods.layered_wz.codec import LayeredWZCodec

    opts = LayeredWZCodec.check_options(cli_values(job))
    return LayeredWZCodec(get_protocol(PROTOCOL), **opts).variant


def bench_command(job: dict[str, str], seed: int, out: str, budget: str, test_blocks: int) -> list[str]:
    """`bench run` for one configuration and seed (one torch thread: OMP_NUM_THREADS=1 in its environment)."""
    cmd = ["bench", "run", "--method", METHOD, "--dataset", "gaussian", "--budget", budget, "--seed", str(seed),
           "--out", out, "--quiet", "--no-leaderboard"]
    for k, v in job.items():
        cmd += ["--option", f"{k}={v}"]
    return cmd + ["--dataset-option", f"sigma2={job['sigma2']}", "--dataset-option", f"test_blocks={test_blocks}"]


def shown(cmd: list[str]) -> str:
    return "OMP_NUM_THREADS=1 " + " ".join(shlex.quote(p) for p in cmd)


def filed_name(variant: str, seed: int) -> str:
    return f"{METHOD}.{variant}.seed{seed}"


def exists(dest: Path, variant: str, seed: int, budget: str) -> Path | None:
    """The filed result of this variant and seed, if any: the seeded file, or the unseeded one when it records
    this seed and budget (the results committed before seeds were run)."""
    seeded = dest / f"{filed_name(variant, seed)}.json"
    if seeded.exists():
        return seeded
    plain = dest / f"{METHOD}.{variant}.json"
    if plain.exists():
        t = json.loads(plain.read_text(encoding="utf-8")).get("training") or {}
        if t.get("seed") == seed and t.get("budget") == budget:
            return plain
    return None


def file_result(args: argparse.Namespace, work: Path, variant: str, seed: int, record: dict[str, Any]) -> dict[str, Any]:
    """Copy the run's result and CSV to <measured>/gaussian/wz/ under the seeded name, with its provenance record;
    filed files name no path of this machine (the work folder becomes WORK)."""
    from benchmark.evaluation.setup import protocol_dir
    from benchmark.results.schema import validate_result, write_result_pair

    src = protocol_dir(work, PROTOCOL) / f"{METHOD}.{variant}.json"
    result = json.loads(src.read_text(encoding="utf-8"))
    if str((result.get("environment") or {}).get("git_commit") or "").endswith("-dirty") and not args.allow_dirty:
        raise SystemExit(f"{src}: made from a dirty checkout (git_commit {result['environment']['git_commit']}); "
                         "commit first, or pass --allow-dirty to file it with its git_diff_sha256")
    csv_bytes = (src.parent / result["per_image_csv"]).read_bytes()
    name = filed_name(variant, seed)
    result["variant"] = f"{variant}.seed{seed}"
    result["per_image_csv"] = f"{name}.csv"
    result["provenance"] = record
    text = json.dumps(result).replace(json.dumps(str(work.resolve()))[1:-1], "WORK").replace(json.dumps(str(work))[1:-1], "WORK")
    result = validate_result(json.loads(text))
    dest = protocol_dir(Path(args.measured), PROTOCOL)
    write_result_pair(dest / f"{name}.json", result, csv_bytes)
    pts = ", ".join(f"{p['rate_point']}: {p.get('bpp_estimated') or 0:.3f} bit {10 * math.log10(p['mse']):.2f} dB"
                    for p in result["points"] if p.get("mse"))
    print(f"filed {name}: {pts}", flush=True)
    return result


def run_one(args: argparse.Namespace, list_name: str, job: dict[str, str], variant: str, seed: int) -> str:
    import os

    work = (Path(args.work) / filed_name(variant, seed)).resolve()
    code = Path(args.code_dir)
    cmd = bench_command(job, seed, str(work), args.budget, args.test_blocks)
    print(f"[{list_name}] (in {code}) {shown(cmd)}", flush=True)
    # the code checkout's packages first, also in the sandbox's processes (an editable install may point elsewhere)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p)}
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(work / "run.log", "ab") as log:  # the console script may be missing: run its entry point
        rc = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", *cmd[1:]], cwd=code, env=env,
                            stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        return f"FAILED ({rc}) {filed_name(variant, seed)}: see {work / 'run.log'}"
    file_result(args, work, variant, seed, {
        "reproduce": shown(bench_command(job, seed, "OUT", args.budget, args.test_blocks)),
        "wall_s": round(wall, 1), "seed": seed, "list": list_name,
        "runner": "python perf/gaussian_seeds.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "code": "a clean worktree of the result's commit" if Path(args.code_dir) != REPO else "the checkout",
        "note": "trained and evaluated by the command in `reproduce` (one torch thread), filed under the seeded name"})
    return f"done {filed_name(variant, seed)} in {wall:.0f} s"


def code_checkout(args: argparse.Namespace, ap: argparse.ArgumentParser) -> Path:
    """Where the runs' code comes from: this checkout when it is clean (or with --allow-dirty: the results then
    record the diff's sha256); with --worktree, a detached git worktree of HEAD under scratch/ (made once per
    commit), so that a result's commit names exactly the code that ran while others edit this checkout."""
    from benchmark.evaluation.environment import git_commit

    commit = git_commit() or ""
    if args.worktree:
        head = commit.removesuffix("-dirty")
        wt = (REPO / "scratch" / f"worktree-{head[:12]}").resolve()
        if not (wt / "benchmark").is_dir():
            subprocess.run(["git", "worktree", "add", "--detach", str(wt), head], cwd=REPO, check=True)
        print(f"code: a clean worktree of {head} at {wt} (uncommitted changes of this checkout are not used)", flush=True)
        return wt
    if commit.endswith("-dirty") and not args.allow_dirty:  # refused before hours of training, not after
        ap.error(f"the checkout has uncommitted changes ({commit}): commit them, run from a clean worktree of HEAD "
                 "(--worktree), or pass --allow-dirty to file results that record the diff's sha256")
    return REPO


def step_cost_ratio(config: str, estimator: str, steps: int = 3) -> float:
    """Seconds of a training step with this estimator over a Gumbel-softmax step (width 100, batch 10^3, one thread)."""
    if estimator not in ("exact",):
        return 1.0  # anneal: Gumbel-softmax samples, hard or relaxed, the same work
    import torch

    from datasets.gaussian import draw_pairs
    from methods.layered_wz.codec import parse_config
    from methods.layered_wz.model import LayeredWZ, ModelConfig

    torch.set_num_threads(1)
    xs, ys = draw_pairs(1000, 0.1, (6, 0))
    x, y = torch.from_numpy(xs).float(), torch.from_numpy(ys).float()
    net = LayeredWZ(ModelConfig(parse_config(config), in_scale=10 ** 0.5, residual=True))
    times = {}
    for name, f in (("gumbel", lambda: net.loss(x, y, prior="conditional", lam=300.0, tau=0.5)[0]),
                    ("exact", lambda: net.loss_exact(x, y, prior="conditional", lam=300.0)[0])):
        f().backward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            f().backward()
        times[name] = time.perf_counter() - t0
    return times["exact"] / times["gumbel"]


def budget_steps(budget: str) -> int:
    from methods.layered_wz.configs import BUDGETS

    return BUDGETS[budget].stage().steps


def committed_seconds(dest: Path) -> dict[tuple[str, str, str], float]:
    """(config, prior, σ²) → training seconds of the committed paper-budget seed-0 result (this suite's recipe);
    resumed runs replaced by the median of the unresumed runs of their stage configuration."""
    own: dict[tuple[str, str, str], float | None] = {}
    by_config: dict[str, list[float]] = {}
    for p in sorted(dest.glob(f"{METHOD}.*.json")):
        r = json.loads(p.read_text(encoding="utf-8"))
        t, o = r.get("training") or {}, (r.get("codec_info") or {}).get("options") or {}
        if t.get("budget") != "paper" or t.get("seed") != 0 or o.get("estimator", "gumbel") != "gumbel" or o.get("faithful"):
            continue
        if o.get("init", "random") != "random" or o.get("hard") or abs(float(o.get("lam", 0)) * float(o["sigma2"]) - 30) > 1e-6:
            continue
        resumed = bool((t.get("trainer") or {}).get("resumed_at"))
        key = (str(o["config"]), str(o["prior"]), f"{float(o['sigma2']):g}")
        own[key] = None if resumed else float(t["seconds"])
        if not resumed:
            by_config.setdefault(str(o["config"]), []).append(float(t["seconds"]))
    return {k: v if v is not None else statistics.median(by_config[k[0]]) for k, v in own.items() if v is not None or k[0] in by_config}


def estimate(args: argparse.Namespace, plan: list[tuple[str, dict[str, str], str, int, bool]]) -> None:
    """Print per list: runs to do, CPU hours (training + evaluation), wall hours with --jobs processes."""
    from benchmark.evaluation.setup import protocol_dir

    secs = committed_seconds(protocol_dir(Path(args.measured), PROTOCOL))
    fallback = statistics.median(secs.values()) if secs else 1200.0
    ratios: dict[tuple[str, str], float] = {}
    totals: dict[str, list[float]] = {}
    for list_name, job, _variant, _seed, done in plan:
        key = (job["config"], job.get("estimator", "gumbel"))
        if key not in ratios:
            ratios[key] = step_cost_ratio(*key)
        steps = int(job["steps"]) if "steps" in job else budget_steps(args.budget)
        train = secs.get((job["config"], job["prior"], job["sigma2"]), fallback) * ratios[key] * steps / budget_steps("paper")
        cost = train + args.eval_s_per_block * args.test_blocks + RUN_OVERHEAD_S
        t = totals.setdefault(list_name, [0, 0, 0.0])
        t[0] += 1
        if not done:
            t[1] += 1
            t[2] += cost
    for (config, est), r in sorted(ratios.items()):
        if est != "gumbel":
            print(f"step cost {config} estimator={est}: {r:.1f}x a Gumbel-softmax step (timed now, 3 steps)")
    for name, (n, todo, cpu) in totals.items():
        print(f"list {name}: {n} runs, {todo} to do: {cpu / 3600:.1f} CPU hours (training: committed training.seconds of "
              f"the same configuration x step cost x steps/36000; evaluation {args.eval_s_per_block:g} s x "
              f"{args.test_blocks} blocks; {RUN_OVERHEAD_S:.0f} s per run), "
              f"{cpu / 3600 / args.jobs:.1f} h wall with --jobs {args.jobs}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="append", choices=sorted(LISTS), required=True, help="configuration list (repeatable)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=2, help="bench run processes side by side (one torch thread each)")
    ap.add_argument("--budget", default="paper", choices=("smoke", "quick", "paper"))
    ap.add_argument("--test-blocks", type=int, default=1000, help="test blocks of 10^4 pairs (1000: the whole split)")
    ap.add_argument("--option", action="append", default=[], help="an extra method option for every run, key=value")
    ap.add_argument("--where", action="append", default=[], help="only the list's runs with this option, key=value")
    ap.add_argument("--work", default="scratch/gaussian-seeds", help="training state and weights (not committed)")
    ap.add_argument("--measured", default="measured")
    ap.add_argument("--allow-dirty", action="store_true", help="file results made from a dirty checkout")
    ap.add_argument("--worktree", action="store_true", help="run the code of HEAD from a clean git worktree under scratch/")
    ap.add_argument("--estimate", action="store_true", help="print each list's CPU time; run nothing")
    ap.add_argument("--dry-run", action="store_true", help="print the commands and the estimate, run nothing")
    ap.add_argument("--eval-s-per-block", type=float, default=EVAL_S_PER_BLOCK)
    args = ap.parse_args()
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    from benchmark.evaluation.setup import protocol_dir

    extra = dict(kv.split("=", 1) for kv in args.option)
    where = dict(kv.split("=", 1) for kv in args.where)
    dest = protocol_dir(Path(args.measured), PROTOCOL)
    plan = []
    for name in args.list:
        for job in LISTS[name]:
            if any(job.get(k) != v for k, v in where.items()):
                continue
            job = {**job, **extra}
            variant = variant_of(job)
            for seed in (int(s) for s in args.seeds.split(",")):
                plan.append((name, job, variant, seed, exists(dest, variant, seed, args.budget) is not None))
    for name, job, variant, seed, done in plan:
        cmd = shown(bench_command(job, seed, str(Path(args.work) / filed_name(variant, seed)), args.budget, args.test_blocks))
        print(f"[{name}] {'exists, skipped: ' if done else ''}{cmd}", flush=True)
    if args.estimate or args.dry_run:
        estimate(args, plan)
        return 0  # never starts runs: a second runner beside a running one would train into the same folders
    args.code_dir = str(code_checkout(args, ap))
    todo = [(n, j, v, s) for n, j, v, s, done in plan if not done]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for line in pool.map(lambda t: run_one(args, *t), todo):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
