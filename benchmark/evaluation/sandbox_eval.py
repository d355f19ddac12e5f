"""The parent of a sandboxed evaluation: it never imports the method's code.

`bench run` at ``--isolation sandbox`` (or ``process``) runs the method only in role processes
(benchmark/evaluation/roles.py, started by benchmark/evaluation/sandbox.py):

1. ``describe`` builds the codec from its options and reports its metadata (no data);
2. ``train`` (learned codecs without reusable weights) gets the training and validation samples, materialised
   by this parent into its input folder (generated datasets: only their seed), and hands back its weights;
3. one ``encode`` process per *view group* writes every bitstream of the run; **all encoders finish before any
   decoder starts**;
4. one ``decode`` process per view group gets the bitstreams and the side views the scenario allows, writes
   the reconstructions and hands back what its decoder counted (`Codec.decoder_counts`: checked, then summed over
   the decode roles into the result's `decoding` record);
5. ``estimate`` (codecs whose likelihood estimate needs the decoder's side view) hands back numbers only.

A *view group* never holds two views of one scene: samples are grouped by `Sample.view` where the dataset sets
it, then split further so that no group holds an x that is another member's side view (content hashes); for a
distributed protocol the groups are the sources. With ``--eval-workers N`` (N > 1) the groups are cut into at
least N parts of about equal size (a part of a group is a group) and up to N encoders run side by side, each with one
torch thread, then up to N decoders: the bytes do not depend on the thread count or on which process codes a sample
(tests/test_determinism.py). This parent computes the rate from the bitstream files and every metric from the
original samples and the reconstructions."""
from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from benchmark.results import metrics
from benchmark.contract.codec import Scenario
from benchmark.contract.container import Container
from benchmark.contract.data import readable_samples
from benchmark.errors import BenchError, DatasetError, IsolationError
from benchmark.evaluation import sandbox
from benchmark.evaluation.record import add_counts, checked_counts
from benchmark.evaluation.roles import read_recon, read_tensor, write_tensor
from benchmark.evaluation.session import Context, Description

# ------------------------------------------------------------------------------------------------ training data


# ------------------------------------------------------------------------------------------------ view groups
def _digest(t: torch.Tensor | None) -> str | None:
    if t is None:
        return None
    return hashlib.sha256(str(tuple(t.shape)).encode() + t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def view_groups(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split samples into groups none of which holds two views of one scene: by `view` first, then greedily so
    that no member's x is another member's side view (and x's equal to each other stay apart from their sides)."""
    groups: list[tuple[str, list[dict[str, Any]], set[str], set[str]]] = []
    for e in entries:
        for view, members, xs, sides in groups:
            if view == e["view"] and e["hx"] not in sides and (e["hs"] is None or e["hs"] not in xs):
                members.append(e)
                xs.add(e["hx"])
                if e["hs"]:
                    sides.add(e["hs"])
                break
        else:
            groups.append((e["view"], [e], {e["hx"]}, {e["hs"]} if e["hs"] else set()))
    return [g[1] for g in groups]


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate(ctx: Context, desc: Description, samples: Any, protocol: Any, *, weights: Path | None, limit: int | None,
             done: dict[tuple[str, int, str], dict[str, Any]], on_row: Any, progress: Any,
             keep: zipfile.ZipFile | None = None, only: set[int] | None = None,
             given_bits: dict[tuple[str, int, str], bytes] | None = None,
             facts: dict[str, int] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Code every sample in role processes; return (rows in the order of the in-process runner, complexity).

    `only`: the sample indices to code (`bench verify --reencode`); `given_bits`: decode these bitstreams instead
    of encoding (`bench verify`: the streams of a submitted result, keyed by (image, source, rate point))."""
    image = protocol.rate_unit == "bpp"
    n = len(samples) if limit is None else min(limit, len(samples))
    stage = ctx.scratch / "samples"
    stage.mkdir()
    entries, order = _stage(desc, samples, n, stage, done, image, only, facts)
    groups = split_groups(_groups(desc.scenario, entries), ctx.workers)
    if given_bits is not None:
        _given(entries, desc.rate_points, stage, given_bits)
        complexity = None
    else:
        complexity = _encode(ctx, desc, groups, stage, weights, progress)
    dec_macs, counts = _decode(ctx, desc, groups, stage, weights, image, progress)
    if facts is not None:
        facts.update(decoder_counts=counts[0], decoders=counts[1], streams_decoded=sum(len(e["todo"]) for e in entries))
    if desc.estimate_uses_decoder_side:
        _estimates(ctx, desc, groups, stage, weights)
    rows = _measure(desc, protocol, entries, order, done, stage, image, on_row, keep)
    if not rows and n:
        raise DatasetError(f"no test sample could be read ({int(getattr(samples, 'skipped', 0) or 0)} skipped by --skip-bad); "
                           "nothing to evaluate")
    return rows, _complexity(complexity, dec_macs, entries, desc)


def _stage(desc: Description, samples: Any, n: int, stage: Path, done: dict, image: bool,
           only: set[int] | None, facts: dict[str, int] | None = None) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """Every sample to code written once into the stage folder (one in memory at a time), with its content hashes;
    (entries still to code, (image, source) in the runner's order)."""
    scenario, points = desc.scenario, desc.rate_points
    n_sources = int(getattr(samples, "num_sources", 1)) if scenario is Scenario.DISTRIBUTED else 1
    entries, order = [], []
    for idx, name, s in readable_samples(samples, n, facts, only):
        sources = range(n_sources) if scenario is Scenario.DISTRIBUTED else [int(s.source)]
        x_rec = write_tensor(stage / f"{idx}.x", s.x)
        side_rec = write_tensor(stage / f"{idx}.side", s.side) if s.side is not None else None
        hx, hs = _digest(s.x), _digest(s.side)
        for src in sources:
            todo = [p for p in points if (name, int(src), p) not in done]
            order.append((name, int(src)))
            if todo:
                entries.append({"k": f"{idx}-{src}", "idx": idx, "name": name, "source": int(src), "todo": todo,
                                "view": f"source{src}" if scenario is Scenario.DISTRIBUTED else getattr(s, "view", ""),
                                "hx": hx, "hs": hs, "x": x_rec, "side": side_rec, "shape": list(s.x.shape),
                                "pixels": s.x.shape[-2] * s.x.shape[-1] if image else s.x.numel(),
                                "height": int(s.x.shape[-2]) if s.x.dim() >= 2 else 1, "width": int(s.x.shape[-1])})
    if entries and scenario is not Scenario.DISTRIBUTED:
        entries[0]["complexity"] = True
    return entries, order


def _groups(scenario: Scenario, entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    if scenario is not Scenario.DISTRIBUTED:
        return view_groups(entries)
    by_source: dict[str, list] = {}
    for e in entries:
        by_source.setdefault(e["view"], []).append(e)
    return list(by_source.values())


def split_groups(groups: list[list[dict[str, Any]]], workers: int) -> list[list[dict[str, Any]]]:
    """`groups` as they are for one worker; for more, each cut into consecutive parts of at most ceil(total/workers)
    samples, so that at least `workers` roles share the work about equally (largest parts first)."""
    total = sum(len(g) for g in groups)
    if workers <= 1 or not total:
        return groups
    size = -(-total // workers)
    parts = [g[i:i + size] for g in groups for i in range(0, len(g), size)]
    return sorted(parts, key=len, reverse=True)


def _given(entries: list[dict[str, Any]], points: list[str], stage: Path, given_bits: dict) -> None:
    for e in entries:
        e["enc"] = {}
        for p in e["todo"]:
            data = given_bits.get((e["name"], e["source"], p))
            if data is None:
                raise BenchError(f"no bitstream for {e['name']} (source {e['source']}) at {p} in the archive")
            dst = stage / f"{e['k']}.{points.index(p)}.bin"
            dst.write_bytes(data)
            e["enc"][p] = {"path": dst, "encode_s": None, "estimate": None}


def _encode(ctx: Context, desc: Description, groups: list, stage: Path, weights: Path | None, progress: Any) -> dict | None:
    """Every encoder, before any decoder; the bitstreams moved into the stage folder. Returns the MAC count."""
    scenario, points, complexity = desc.scenario, desc.rate_points, None
    jobs = []
    for gi, group in enumerate(groups):
        role = ctx.new(f"encode-{gi}", weights)
        _link_inputs(group, stage, role.folder / "in", x=True, side=scenario.encoder_sees_side)
        jobs.append((role, "encode", {
            "points": points, "scalable": desc.scalable, "estimate_uses_decoder_side": desc.estimate_uses_decoder_side,
            "weights": str(weights) if weights else None,
            "items": [_item(e, x=True, side=scenario.encoder_sees_side) for e in group]}))
    for gi, resp in ctx.launch_all(jobs):
        group, role = groups[gi], jobs[gi][0]
        for it, e in _items(resp, group, "encode"):
            e["enc"] = {}
            for p in e["todo"]:
                rec = _point(it, p, e, "encode")
                src = _output(role, "bits", rec, "encode")
                dst = stage / f"{e['k']}.{points.index(p)}.bin"
                shutil.move(str(src), dst)
                e["enc"][p] = {"path": dst, "encode_s": _reported_number(rec.get("encode_s")), "estimate": _reported_number(rec.get("estimate"))}
        if isinstance(resp.get("complexity"), dict):
            complexity = resp["complexity"]
        shutil.rmtree(role.folder, ignore_errors=True)
        progress(len(group) / 2)
    return complexity


def _decode(ctx: Context, desc: Description, groups: list, stage: Path, weights: Path | None, image: bool,
            progress: Any) -> tuple[int | None, tuple[dict[str, Any] | None, int]]:
    """The decoders: bitstreams and the side views the scenario gives; reconstructions read back (bounded).
    Returns (MAC count, (the decoders' counts summed, or None where none counted; how many counted))."""
    scenario, points, dec_macs = desc.scenario, desc.rate_points, None
    counts: dict[str, Any] | None = None
    counted = 0
    jobs = []
    for gi, group in enumerate(groups):
        role = ctx.new(f"decode-{gi}", weights)
        for e in group:
            for p in e["todo"]:
                _hardlink(e["enc"][p]["path"], role.folder / "in" / e["enc"][p]["path"].name)
        _link_inputs(group, stage, role.folder / "in", x=False, side=scenario.decoder_sees_side)
        items = [{**_item(e, x=False, side=scenario.decoder_sees_side), "shape": e["shape"],
                  "bits": {p: e["enc"][p]["path"].name for p in e["todo"]}} for e in group]
        jobs.append((role, "decode", {"points": points, "image": image, "weights": str(weights) if weights else None,
                                      "items": items}))
    for gi, resp in ctx.launch_all(jobs):
        group, role = groups[gi], jobs[gi][0]
        for it, e in _items(resp, group, "decode"):
            e["dec"] = {}
            for p in e["todo"]:
                rec = _point(it, p, e, "decode")
                path = _output(role, "recon", rec, "decode")
                try:
                    recon = read_recon(path, tuple(e["shape"]), image)
                except ValueError as exc:
                    raise IsolationError(f"decode: {exc}") from exc
                e["dec"][p] = {"recon": recon, "decode_s": _reported_number(rec.get("decode_s"))}
        if isinstance(resp.get("dec_macs"), int):
            dec_macs = resp["dec_macs"]
        got = checked_counts(resp.get("decoder_counts"), desc.name, role.name, IsolationError)
        if got is not None:
            counts, counted = add_counts(counts or {}, got, desc.name, IsolationError), counted + 1
        shutil.rmtree(role.folder, ignore_errors=True)
        progress(len(group) / 2)
    return dec_macs, (checked_counts(counts, desc.name, f"the sum over {counted} decode roles", IsolationError), counted)


def _estimates(ctx: Context, desc: Description, groups: list, stage: Path, weights: Path | None) -> None:
    """Decoder-side estimates (numbers only), after every stream and reconstruction exists."""
    side = desc.scenario.decoder_sees_side
    jobs = []
    for gi, group in enumerate(groups):
        role = ctx.new(f"estimate-{gi}", weights)
        _link_inputs(group, stage, role.folder / "in", x=True, side=side)
        jobs.append((role, "estimate", {"weights": str(weights) if weights else None,
                                        "items": [_item(e, x=True, side=side) for e in group]}))
    for gi, resp in ctx.launch_all(jobs):
        for it, e in _items(resp, groups[gi], "estimate"):
            ests = it.get("estimates") if isinstance(it.get("estimates"), dict) else {}
            e["est"] = {p: _reported_number(ests.get(p)) for p in e["todo"]}
        shutil.rmtree(jobs[gi][0].folder, ignore_errors=True)


def _measure(desc: Description, protocol: Any, entries: list, order: list, done: dict, stage: Path, image: bool,
             on_row: Any, keep: zipfile.ZipFile | None) -> list[dict[str, Any]]:
    """The rows, measured here from the original samples and the reconstructions, in the runner's order."""
    from benchmark.evaluation.rows import measure

    by_key = {(e["name"], e["source"]): e for e in entries}
    rows = []
    for name, src in order:
        e = by_key.get((name, src))
        for p in desc.rate_points:
            if (name, src, p) in done:
                rows.append(done[(name, src, p)])
                continue
            if e is None:
                continue
            data = e["enc"][p]["path"].read_bytes()
            x = read_tensor(stage, {**e["x"], "file": f"{e['idx']}.x"})
            recon = e["dec"][p]["recon"]
            x_hat = recon.double() / 255.0 if image else recon
            try:
                payload = Container.from_bytes(data, desc.name).payload_bytes
            except BenchError as exc:
                raise IsolationError(f"{desc.name}: the bitstream of {name} at {p} is not a suite container: {exc}") from exc
            est = e["enc"][p].get("estimate") if not desc.estimate_uses_decoder_side else e.get("est", {}).get(p)
            row = {"image": name, "source": src, "rate_point": p, "bytes": len(data), "payload_bytes": payload,
                   "bpp": metrics.bpp(len(data), e["pixels"]), "bpp_payload": metrics.bpp(payload, e["pixels"]),
                   "bpp_estimated": None if est is None else float(est) / e["pixels"],
                   "encode_s": _reported_number(e["enc"][p].get("encode_s")), "decode_s": e["dec"][p]["decode_s"],
                   "height": e["height"], "width": e["width"], "sha256": hashlib.sha256(data).hexdigest()}
            row.update(measure(x, x_hat, protocol, image))
            if keep is not None:
                keep.writestr(f"bits/{row['sha256']}.bin", data)
            on_row(row)
            rows.append(row)
    return rows


def _item(e: dict[str, Any], *, x: bool, side: bool) -> dict[str, Any]:
    """What a role is told about one sample: its key, source, rate points and the tensors it may read."""
    it = {"k": e["k"], "source": e["source"], "todo": e["todo"], "complexity": e.get("complexity")}
    if x:
        it["x"] = {**e["x"], "file": f"{e['idx']}.x"}
    if side and e["side"] is not None:
        it["side"] = {**e["side"], "file": f"{e['idx']}.side"}
    return it


def _output(role: sandbox.Role, sub: str, rec: dict[str, Any], kind: str) -> Path:
    """The plain file a role names in its response, inside its own out/<sub> folder (never a link)."""
    path = role.out / sub / Path(str(rec.get("file"))).name
    if not path.is_file() or path.is_symlink():
        raise IsolationError(f"{kind}: output file {rec.get('file')!r} missing")
    return path


def _point(it: dict[str, Any], p: str, e: dict[str, Any], role: str) -> dict[str, Any]:
    rec = it.get("points", {}).get(p) if isinstance(it.get("points"), dict) else None
    if not isinstance(rec, dict):
        raise IsolationError(f"{role}: the response has nothing for {e['name']} at {p}")
    return rec


def _link_inputs(group: list[dict[str, Any]], stage: Path, dest: Path, *, x: bool, side: bool) -> None:
    for e in group:
        if x:
            _hardlink(stage / f"{e['idx']}.x", dest / f"{e['idx']}.x")
        if side and e["side"] is not None:
            _hardlink(stage / f"{e['idx']}.side", dest / f"{e['idx']}.side")


def _hardlink(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        dst.hardlink_to(src)
    except OSError:
        shutil.copyfile(src, dst)


def _items(resp: dict[str, Any], group: list[dict[str, Any]], role: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(response item, entry) pairs; the response must name each entry of the group once."""
    items = resp.get("items")
    if not isinstance(items, list) or len(items) != len(group):
        raise IsolationError(f"{role}: expected {len(group)} items in the response, got "
                             f"{len(items) if isinstance(items, list) else type(items).__name__}")
    by_k = {e["k"]: e for e in group}
    out = []
    for it in items:
        if not isinstance(it, dict) or it.get("k") not in by_k:
            raise IsolationError(f"{role}: the response names an item it was not given")
        out.append((it, by_k.pop(it["k"])))
    return out


def _reported_number(v: Any) -> float | None:
    """A number a role reported (a time, an estimate): a float, or None for anything else it sent."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _complexity(enc: dict[str, Any] | None, dec_macs: int | None, entries: list[dict[str, Any]], desc: Description) -> dict[str, Any] | None:
    """The `complexity` record, as benchmark.evaluation.complexity.measure writes it, from the roles' MAC counts."""
    if desc.scenario is Scenario.DISTRIBUTED or not entries:
        return None
    if not enc:
        return {"params": None, "enc_kmac_per_pixel": None, "dec_kmac_per_pixel": None, "error": "not measured"}
    pixels = next(e["pixels"] for e in entries if e.get("complexity"))
    params = enc.get("params") if isinstance(enc.get("params"), int) else None
    learned = params is not None
    return {"params": params, "point": desc.rate_points[-1],
            "enc_kmac_per_pixel": round(int(enc.get("enc_macs") or 0) / pixels / 1000, 3) if learned else None,
            "dec_kmac_per_pixel": round(int(dec_macs or 0) / pixels / 1000, 3) if learned and dec_macs is not None else None,
            "counted": "conv, transposed conv and linear layers run by compress / decompress on the first test "
                       "sample; entropy coding and element-wise layers not counted"}
