"""What the leaderboard shows of a protocol and knows of a method, read from data only.

A result file records its protocol's facts (`protocol_facts`: anchor, fixed rates, rate unit, description,
dataset) and its method's (`method_meta`: name, scenario, trainable, twin...). Protocols and methods that have no
result here (a published curve's protocol; a method that reproduces a published curve but has not been run) are
described by the suite's facts, which the caller may pass: `{"protocols": {name: protocol_facts}, "methods":
{name: method_meta}}`, the same records for every protocol and method the suite defines
(`benchmark.evaluation.record.suite_facts`). Where neither says anything the leaderboard assumes the defaults
below and says so on the page.

Which suite method reproduces a published curve is read from the curve's method key: the method named by the
key with underscores for dots (`ndic.balle2017` is `ndic_balle2017`, `balle2018` is `balle2018`), or the method
named by the key's first part when the curve's scenario is one that method runs in (`drasic.distributed.m4` is
`drasic`, a distributed codec; `drasic.joint.m4` is not)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_FIXED_BPPS = (0.1, 0.25, 0.5)
FALLBACK_ANCHOR = "jpeg"


@dataclass
class ProtocolInfo:
    name: str
    anchor: str
    fixed_bpps: tuple[float, ...]
    rate_unit: str
    description: str
    dataset: str
    note: str = ""  # shown under the heading when the facts were assumed


def _recorded(name: str, results: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The protocol facts the newest result of protocol `name` recorded (None: no result recorded them)."""
    own = [r for r in results if r["protocol"] == name and isinstance(r.get("protocol_facts"), Mapping)]
    return max(own, key=lambda r: str(r.get("created", "")))["protocol_facts"] if own else None


def protocol_info(name: str, results: Sequence[Mapping[str, Any]], suite: Mapping[str, Any] | None) -> ProtocolInfo:
    """The facts of protocol `name`: as its newest result recorded them, else as the suite's facts give them, else
    assumed (anchor `jpeg`, the default fixed rates, the results' rate unit), with a note saying so."""
    facts = _recorded(name, results) or ((suite or {}).get("protocols") or {}).get(name)
    if facts:
        return ProtocolInfo(name, facts["anchor"], tuple(facts["fixed_bpps"]), facts["rate_unit"], facts["description"],
                            facts["dataset"])
    unit = next((r["rate_unit"] for r in results if r["protocol"] == name), "bpp")
    return ProtocolInfo(name, FALLBACK_ANCHOR, DEFAULT_FIXED_BPPS, unit, "", "DATASET",
                        f"No result file or suite description gives the facts of protocol `{name}`: anchor "
                        f"`{FALLBACK_ANCHOR}` and rates {DEFAULT_FIXED_BPPS} assumed.")


def suite_methods(results: Sequence[Mapping[str, Any]], suite: Mapping[str, Any] | None) -> dict[str, set[str]]:
    """Every method the results or the suite's facts name, with the scenarios it runs in."""
    out: dict[str, set[str]] = {}
    for r in results:
        meta = r.get("method_meta") or {}
        out.setdefault(r["method"], set()).add(meta.get("scenario") or r["scenario"])
    for name, meta in ((suite or {}).get("methods") or {}).items():
        out.setdefault(name, set()).add(meta.get("scenario"))
    return out


def reproducing_method(published_key: str, scenario: str, methods: Mapping[str, set[str]]) -> str | None:
    """The suite method whose results reproduce the published curve `published_key` (module docstring)."""
    whole = published_key.replace(".", "_")
    if whole in methods:
        return whole
    first = published_key.split(".")[0]
    if first != published_key and scenario in methods.get(first, ()):
        return first
    return None


def twin(result: Mapping[str, Any]) -> str | None:
    """The method a side-information codec is compared with at equal training: the same codec trained and coded
    without the side view, as its result's `method_meta.twin` names it (None: it names none)."""
    return (result.get("method_meta") or {}).get("twin") or None


@dataclass(frozen=True)
class Alias:
    """A protocol that applies a published protocol's preprocessing and metrics to other samples: its results are
    shown in `section` (one preprocessing, one name), with whether its samples are that protocol's test split."""

    protocol: str
    section: str
    test_split: bool

    @property
    def split_text(self) -> str:
        return "the protocol's test split" if self.test_split else "not the protocol's test split"


def aliases(results: Sequence[Mapping[str, Any]], suite: Mapping[str, Any] | None) -> dict[str, Alias]:
    """protocol -> Alias, for every protocol whose facts (`protocol_facts.alias_of`, as a result or the suite's
    facts record them; a result's record wins) name another protocol's section. Names are aliased at read time:
    the files stay where they were committed."""
    recorded = [(name, f) for name, f in ((suite or {}).get("protocols") or {}).items()]
    recorded += [(r["protocol"], r["protocol_facts"]) for r in results if isinstance(r.get("protocol_facts"), Mapping)]
    out: dict[str, Alias] = {}
    for name, facts in recorded:
        target = facts.get("alias_of") if isinstance(facts, Mapping) else None
        if isinstance(target, str) and target and target != name:
            out[name] = Alias(name, target, bool(facts.get("alias_test_split")))
    return out


def section_of(protocol: str, alias: Mapping[str, Alias]) -> str:
    """The leaderboard section that shows results (and curves) filed under `protocol`."""
    return alias[protocol].section if protocol in alias else protocol
