"""Learning curve of one learned codec at fixed settings: train in segments, evaluate at each step S, file each point.

Run by hand (not a test), one method per process, one torch thread, e.g. side by side on 2 cores:

    OMP_NUM_THREADS=1 nice -n 5 python perf/learning_curve.py --method balle2018 \\
        --root DIR --steps 100,200,400,700,1000,1500,2000 --work scratch/kitti-curve --measured measured

Each segment is `bench run` with ``--option steps=S`` and the options below (``schedule=constant``,
``restore=last``, ``warm_start=false``): such training is *extendable* (benchmark.training.trainer.extendable), so the run
to S continues the checkpoint of the run to the previous S and its weights at S are those of a run of S steps
from scratch. A point is therefore reproduced by the single command printed in its result file
(``learning_curve.reproduce``) in a fresh output folder: same bytes per image, same PSNR.

Each point is copied to ``<measured>/<protocol>/<method>.steps<S>.json`` (+ ``.csv``) with ``variant`` =
``steps<S>`` (``steps<S>.seed<k>`` with ``--seed k > 0``) and a ``learning_curve`` record (steps, settings, command, training wall time). Training state
and weights stay under ``--work`` (never committed). ``--check DIR`` compares a reproduction's CSV with the
committed point instead of training.

``--merge DIR`` (repeatable) folds the points of more λ into the committed points: a run of this script with
``--option lambdas=[...]`` and ``--measured DIR`` (same method, steps and other settings, e.g. on another core or
another day) files its points under DIR; the merge writes, for each S, one result with every λ (points ordered
by λ, the per-image CSV rows as one run of all λ writes them), the training records of the λ side by side, and
under ``learning_curve.parts`` each part's λ, commit, diff hash, training time and command. The Ballé-family
points train independently (``Codec.independent_points``), so the merged point is what one run of all the λ
gives; each part stays reproducible with its own command. The merged file keeps the first part's ``created``,
isolation and code records: a point is only as trusted as its weakest part (`bench submit` shows a point with parts
made before the sandbox as such), and ``parts`` says how each part was made."""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.evaluation.setup import protocol_dir  # noqa: E402

PROTOCOL = "stereo/kitti-ndic"
# the settings every method of one curve shares (widths of the reference run, one crop/batch/lr)
DEFAULTS = {"N": 64, "M": 96, "lambdas": "[0.0035,0.013]", "crop": 128, "batch_size": 8, "lr": "5e-4",
            "schedule": "constant", "restore": "last", "warm_start": "false"}


def cli_values(opts: dict[str, str]) -> dict[str, object]:
    """Option values as `bench run --option k=v` passes them (JSON if it parses, else the text)."""
    out: dict[str, object] = {}
    for k, v in opts.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def options(steps: int, overrides: dict[str, str]) -> dict[str, str]:
    return {**{k: str(v) for k, v in DEFAULTS.items()}, **overrides, "steps": str(steps)}


def bench_command(method: str, root: str, out: str, opts: dict[str, str], budget: str = "quick", seed: int = 0) -> str:
    parts = ["OMP_NUM_THREADS=1", "bench", "run", "--method", method, "--dataset", "stereo", "--protocol", PROTOCOL,
             "--root", root, "--budget", budget, "--out", out] + (["--seed", str(seed)] if seed else [])
    for k, v in opts.items():
        parts += ["--option", f"{k}={v}"]
    return " ".join(shlex.quote(p) if not p.startswith("OMP_") else p for p in parts)


def point_name(method: str, steps: int, seed: int = 0) -> str:
    """The file name of a point: seed 0 keeps the names committed before seeds were run."""
    return f"{method}.steps{steps}" + (f".seed{seed}" if seed else "")


def file_result(args: argparse.Namespace, path: Path, result: dict, name: str, record_key: str, record: dict) -> dict:
    """Copy a run's result (+ CSV) to <measured>/<protocol>/<name>.json with a provenance record; committed files
    name no machine paths: the data root and the work folder become placeholders."""
    from benchmark.results.schema import validate_result, write_json
    from benchmark.safety.atomicio import atomic_write_bytes

    dest = protocol_dir(Path(args.measured), PROTOCOL)
    result["per_image_csv"] = f"{name}.csv"
    result[record_key] = record
    text = json.dumps(result)
    for real, label in ((str(args.root), args.root_label), (str(args.work), "WORK")):
        text = text.replace(json.dumps(real)[1:-1], label)
    result = validate_result(json.loads(text))
    # the CSV's bytes as the run wrote them (its hash is in the result: per_image_csv_sha256)
    atomic_write_bytes(dest / f"{name}.csv", Path(path).with_suffix(".csv").read_bytes())
    write_json(dest / f"{name}.json", result)
    pts = ", ".join(f"{p['rate_point']}: {p['bpp']:.4f} bpp {p['psnr']:.3f} dB" for p in result["points"])
    print(f"{name}: {pts}", flush=True)
    return result


def run_once(args: argparse.Namespace) -> None:
    """A codec that needs no training (JPEG, WebP): one run on the test pairs, filed as <method>.json."""
    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec

    overrides = dict(kv.split("=", 1) for kv in args.option)
    t0 = time.perf_counter()
    path, result = run(RunSpec(method=args.method, dataset="stereo", protocol=PROTOCOL, root=Path(args.root),
                               out=Path(args.work), method_options=cli_values(overrides), progress=False))
    file_result(args, path, result, args.method, "provenance", {
        "reproduce": bench_command(args.method, args.root_label, "OUT", overrides, budget="quick").replace(" --budget quick", ""),
        "wall_s": round(time.perf_counter() - t0, 1)})


def side_probe(args: argparse.Namespace, opts: dict[str, str]) -> dict:
    """PSNR of the evaluation's bytes decoded with the right side view, another pair's, and a grey one
    (perf/side_info_probe.py), with the weights just trained."""
    from benchmark.contract.registry import get_protocol
    from benchmark.evaluation.setup import RunSpec, build_split, make_codec, resolve, run_key

    sys.path.insert(0, str(REPO / "perf"))
    from side_info_probe import wrong_side

    spec = RunSpec(method=args.method, dataset="stereo", protocol=PROTOCOL, root=Path(args.root), out=Path(args.work),
                   budget="quick", method_options=cli_values(opts))
    info, proto = resolve("stereo", PROTOCOL)
    codec = make_codec(spec, proto)
    key, _ = run_key(args.method, codec.variant, spec)  # the runner's weights folder (e.g. dsi_disparity.nowarp)
    codec.load_weights(protocol_dir(Path(args.work), PROTOCOL) / "weights" / key)
    return wrong_side(codec, build_split(info, spec, get_protocol(PROTOCOL), "test"), proto)


def run_curve(args: argparse.Namespace) -> None:
    import torch

    from benchmark.evaluation.runner import run
    from benchmark.evaluation.setup import RunSpec

    torch.set_num_threads(1)
    overrides = dict(kv.split("=", 1) for kv in args.option)
    dest = protocol_dir(Path(args.measured), PROTOCOL)
    for steps in sorted(int(s) for s in args.steps.split(",")):
        name = point_name(args.method, steps, args.seed)
        if (dest / f"{name}.json").exists() and not args.redo:
            print(f"{name}: already filed, skipping", flush=True)
            continue
        opts = options(steps, overrides)
        t0 = time.perf_counter()
        path, result = run(RunSpec(method=args.method, dataset="stereo", protocol=PROTOCOL, root=Path(args.root),
                                   out=Path(args.work), budget="quick", seed=args.seed, method_options=cli_values(opts),
                                   progress=False))
        wall = time.perf_counter() - t0
        result["variant"] = name.split(".", 1)[1]
        probe = side_probe(args, dict(opts)) if result["scenario"] == "decoder_side_info" else None
        file_result(args, path, result, name, "learning_curve", {
            **({"side_probe": probe} if probe else {}),
            "steps": steps,
            "options": opts,
            "training_wall_s": round(sum(p.get("wall_s") or 0 for p in ((result.get("training") or {}).get("points") or {}).values()), 1),
            "segment_wall_s": round(wall, 1),
            "reproduce": bench_command(args.method, args.root_label, "OUT", opts, seed=args.seed),
            "note": "training in segments (extendable: constant lr, last weights); the point equals a run of "
                    f"`steps` steps from scratch with the same options, seed {args.seed}, one torch thread",
        })


def _lam(rate_point: str) -> float:
    try:
        return float(rate_point.split("=", 1)[1])
    except (IndexError, ValueError):
        return float("inf")


def _part(result: dict) -> dict:
    """What a merged point keeps of one part: its λ, provenance and command."""
    env, lc = result.get("environment") or {}, result.get("learning_curve") or {}
    return {"rate_points": [p["rate_point"] for p in result["points"]], "git_commit": env.get("git_commit"),
            "git_diff_sha256": env.get("git_diff_sha256"), "created": result.get("created"),
            "isolation": result.get("isolation", "none"),
            "code_sha256": ((result.get("code") or {}).get("method") or {}).get("sha256"),
            "training_wall_s": lc.get("training_wall_s"), "reproduce": lc.get("reproduce")}


def merged_point(base: dict, extra: list[dict]) -> dict:
    """`base` (a committed learning-curve point) with the λ points of `extra` results folded in."""
    import copy

    out = copy.deepcopy(base)
    lc = out["learning_curve"]
    parts = lc.get("parts") or [_part(base)]
    have = {p["rate_point"] for p in out["points"]}
    added = False
    for r in extra:
        lr = r.get("learning_curve") or {}
        if lr.get("steps") != lc["steps"] or r["method"] != base["method"] or r["protocol"] != base["protocol"]:
            raise SystemExit(f"cannot merge {r['method']} at {lr.get('steps')} steps on {r['protocol']} into "
                             f"{base['method']} at {lc['steps']} steps on {base['protocol']}")
        differ = {k for k in set(lc["options"]) | set(lr.get("options") or {}) if k != "lambdas"
                  and lc["options"].get(k) != (lr.get("options") or {}).get(k)}
        if differ:
            raise SystemExit(f"{base['method']} at {lc['steps']} steps: the parts differ in {sorted(differ)}")
        new = [p for p in r["points"] if p["rate_point"] not in have]
        if not new:
            continue
        added = True
        have |= {p["rate_point"] for p in new}
        out["points"] += copy.deepcopy(new)
        parts.append(_part(r))
        out["training"]["points"].update(copy.deepcopy((r.get("training") or {}).get("points") or {}))
        out["training"]["models"] = out["training"].get("models", 0) + (r.get("training") or {}).get("models", 0)
        lc["training_wall_s"] = round((lc.get("training_wall_s") or 0) + (lr.get("training_wall_s") or 0), 1)
        lc["segment_wall_s"] = round((lc.get("segment_wall_s") or 0) + (lr.get("segment_wall_s") or 0), 1)
        if isinstance(lr.get("side_probe"), dict):  # the side-view probe of each λ (decoder side information)
            lc["side_probe"] = {**(lc.get("side_probe") or {}), **copy.deepcopy(lr["side_probe"])}
    if not added:  # nothing new (a re-merge): the point as committed
        return out
    out["points"].sort(key=lambda p: _lam(p["rate_point"]))
    lams = sorted(_lam(p["rate_point"]) for p in out["points"])
    for rec in (out["training"], out["training"].get("config") or {}, out["codec_info"],
                out["codec_info"].get("options") or {}, out["codec_info"].get("config") or {}):
        if "lambdas" in rec:
            rec["lambdas"] = lams
    lc["options"]["lambdas"] = json.dumps(lams, separators=(",", ":"))
    lc["parts"] = parts
    lc["reproduce"] = bench_command(base["method"], "KITTI_PAIRS", "OUT", lc["options"],
                                    seed=(base.get("training") or {}).get("seed") or 0)
    lc["note"] = (lc.get("note", "") + "; merged: the λ of `parts` were trained by separate runs of the same settings"
                  " (each reproducible with its own command); the λ train independently, so `reproduce` runs them all")
    return out


def _only_points(text: str, keep: set[str]) -> str:
    """The per-image CSV `text` with only the rows of the rate points `keep`."""
    import io

    reader = csv.DictReader(io.StringIO(text, newline=""))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(reader.fieldnames or []))
    writer.writeheader()
    writer.writerows(r for r in reader if r["rate_point"] in keep)
    return buf.getvalue()


def merge(args: argparse.Namespace) -> None:
    from benchmark.cluster.sweep_merge import merged_rows
    from benchmark.results.schema import atomic_write_text, load_result, validate_result, write_json

    dest = protocol_dir(Path(args.measured), PROTOCOL)
    for steps in sorted(int(s) for s in args.steps.split(",")):
        name = point_name(args.method, steps, args.seed)
        paths = [dest / f"{name}.json"] + [protocol_dir(Path(d), PROTOCOL) / f"{name}.json" for d in args.merge]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            print(f"{name}: not merged, missing {missing}", flush=True)
            continue
        results = [load_result(p) for p in paths]
        merged = validate_result(merged_point(results[0], results[1:]))
        texts = [(paths[0].parent / results[0]["per_image_csv"]).read_text(encoding="utf-8")]
        have = {q["rate_point"] for q in results[0]["points"]}
        for path, r in zip(paths[1:], results[1:]):  # only the rows of the λ a part adds (a re-merge adds none)
            new = {q["rate_point"] for q in r["points"]} - have
            have |= new
            texts.append(_only_points((path.parent / r["per_image_csv"]).read_text(encoding="utf-8"), new))
        rows = merged_rows([q["rate_point"] for q in merged["points"]], texts).replace("\r\n", "\n")  # as filed
        if "per_image_csv_sha256" in merged:  # the merged CSV's hash (results of the sandboxed runner carry one)
            merged["per_image_csv_sha256"] = hashlib.sha256(rows.encode("utf-8")).hexdigest()
        atomic_write_text(dest / f"{name}.csv", rows)
        write_json(dest / f"{name}.json", merged)
        names = ", ".join(p["rate_point"] for p in merged["points"])
        print(f"{name}: {names}", flush=True)


def check(args: argparse.Namespace) -> int:
    """Compare the per-image CSV of a reproduction (a bench run --out DIR) with the committed point."""
    ref = protocol_dir(Path(args.measured), PROTOCOL) / f"{point_name(args.method, args.check_steps, args.seed)}.csv"
    new = protocol_dir(Path(args.check), PROTOCOL) / f"{args.method}.csv"
    rows = lambda p: {(r["image"], r["rate_point"]): r for r in csv.DictReader(open(p, encoding="utf-8"))}  # noqa: E731
    a, b = rows(ref), rows(new)
    if set(a) != set(b):
        print(f"different images/points: {sorted(set(a) ^ set(b))[:5]}")
        return 1
    bad = [(k, a[k]["bytes"], b[k]["bytes"], float(a[k]["psnr"]) - float(b[k]["psnr"])) for k in sorted(a)
           if a[k]["bytes"] != b[k]["bytes"] or a[k].get("sha256", "") != b[k].get("sha256", "")
           or abs(float(a[k]["psnr"]) - float(b[k]["psnr"])) > 0.01]
    print(json.dumps({"reference": str(ref), "reproduction": str(new), "rows": len(a), "mismatches": len(bad),
                      "examples": bad[:5]}, indent=1))
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", required=True)
    ap.add_argument("--root", help="the stereo folder (train/ val/ test/ with left/ right/)")
    ap.add_argument("--root-label", default="KITTI_PAIRS", help="how the data root is written in filed results")
    ap.add_argument("--steps", default="100,200,400,700,1000,1500,2000")
    ap.add_argument("--work", default="scratch/kitti-curve", help="training state and weights (not committed)")
    ap.add_argument("--measured", default="measured")
    ap.add_argument("--option", action="append", default=[], help="override a setting, key=value")
    ap.add_argument("--redo", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help="training seed; points of seed k > 0 are filed as <method>.steps<S>.seed<k>")
    ap.add_argument("--once", action="store_true", help="a codec without training: one run, filed as <method>.json")
    ap.add_argument("--check", help="a bench run --out folder to compare with the committed point")
    ap.add_argument("--check-steps", type=int)
    ap.add_argument("--merge", action="append", default=[], help="a --measured folder of a run with more λ: fold its points in")
    args = ap.parse_args()
    if args.check:
        return check(args)
    if args.merge:
        merge(args)
        return 0
    (run_once if args.once else run_curve)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
