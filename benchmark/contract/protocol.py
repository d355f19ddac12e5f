"""Protocols: what makes results comparable (split, pairing, preprocessing, rate accounting, metric settings)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Protocol:
    name: str
    dataset: str
    description: str  # one line, shown by `bench list protocols`
    rate_unit: str = "bpp"  # "bpp" for images, "bits/sample" for scalar sources
    ms_ssim_win: int = 11
    anchor: str = "jpeg"  # codec the leaderboard's BD-rate is measured against
    split_rule: str = ""
    preprocessing: str = ""
    rate_accounting: str = "bits of x only, from the bytes of the suite's container; side information uncounted"
    psnr: str = "10*log10(1/MSE) per image on the decoded image clamped to [0,1] and rounded to 8 bits, then mean over images"
    fixed_bpps: tuple[float, ...] = (0.1, 0.25, 0.5)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method config overrides
    options: dict[str, Any] = field(default_factory=dict)  # dataset options (direction, sources, ...)
    version: int = 1  # raised whenever a change makes earlier results of this protocol incomparable
    # a published protocol whose preprocessing, rate accounting and metrics this one applies to other samples: its
    # results are shown in that protocol's section (one preprocessing, one name), with their coverage, never ranked
    # against results on its test split; `preprocessing_of_test_split` says whether the samples are that split
    preprocessing_of: str = ""
    preprocessing_of_test_split: bool = False
    # test samples that are frames of this many views side by side (0: not such frames): the runner also records the
    # mean over views of per-view PSNRs (points[].extra.psnr_view_mean), as multi-view papers average them; where
    # the protocol's options hold `views`, a run's dataset option `views` sets it (`for_run`)
    views_per_frame: int = 0

    def options_for(self, method: str) -> dict[str, Any]:
        return dict(self.method_options.get(method, {}))

    def for_run(self, dataset_options: dict[str, Any] | None) -> "Protocol":
        """This protocol as a run with these dataset options codes it: frames of views side by side hold the
        number of views the run's option `views` asks for (read as the datasets read it, ``int(views)``; e.g. cameras
        C1..CV of a WildTrack layout). A value that does not read is left to the dataset, which refuses it."""
        views = (dataset_options or {}).get("views")
        if not self.views_per_frame or "views" not in self.options or views is None:
            return self
        try:
            n = int(views)
        except (TypeError, ValueError):
            return self
        return replace(self, views_per_frame=n) if n >= 2 else self

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "dataset": self.dataset,
            "description": self.description,
            "rate_unit": self.rate_unit,
            "ms_ssim_win": self.ms_ssim_win,
            "anchor": self.anchor,
            "split_rule": self.split_rule,
            "preprocessing": self.preprocessing,
            "psnr": self.psnr,
        }
