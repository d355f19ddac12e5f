"""Training writes TensorBoard event files beside metrics.csv whose scalars read back (tensorboard's
EventAccumulator) equal to the CSV's; a resumed run's events end as an uninterrupted run's; without the package
(or with BENCH_TENSORBOARD=0) only the CSV is written and the log says why."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.contract.budgets import TrainConfig
from benchmark.contract.data import Sample
from benchmark.training import metrics_log
from benchmark.training.losses import rd_loss_fn
from benchmark.training.trainer import train
from tests.tiny_rd import TinyRD

CFG = dict(steps=6, batch_size=2, crop=16, lr=1e-3, val_every=3, val_samples=2, checkpoint_seconds=0)


def _data():
    g = torch.Generator().manual_seed(0)
    return [Sample(x=torch.rand(3, 24, 24, generator=g), name=f"t{i}") for i in range(4)]


def _train(workdir, on_step=None, **cfg):
    torch.manual_seed(0)
    data = _data()
    train(TinyRD(), rd_loss_fn(0.01), data, data, config=TrainConfig(**{**CFG, **cfg}), workdir=workdir, seed=0,
          tag="tiny", progress=False, on_step=on_step)
    (run_dir,) = workdir.glob("run-*")
    return run_dir


def _scalars(run_dir) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_training_writes_event_files_whose_scalars_read_back(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="the optional `tensorboard` extra is not installed (pip install -e '.[tensorboard]')")
    monkeypatch.delenv(metrics_log.TENSORBOARD_ENV, raising=False)
    run_dir = _train(tmp_path)
    assert list(run_dir.glob("events.out.tfevents.*")), "no event file beside metrics.csv"
    got = _scalars(run_dir)
    assert {"train/loss", "train/bpp", "train/mse", "train/lr", "val/loss"} <= set(got)  # losses, rate, distortion, lr
    df = pd.read_csv(run_dir / "metrics.csv")
    for (split, metric), rows in df.groupby(["split", "metric"]):
        want = dict(zip(rows["step"], rows["value"]))
        assert got[f"{split}/{metric}"] == pytest.approx(want, rel=1e-6), f"{split}/{metric}"  # float32 in events
    assert sorted(got["train/loss"]) == [1, 2, 3, 4, 5, 6] and sorted(got["val/loss"]) == [3, 6]


def test_a_resumed_run_purges_the_events_after_its_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="the optional `tensorboard` extra is not installed (pip install -e '.[tensorboard]')")
    monkeypatch.delenv(metrics_log.TENSORBOARD_ENV, raising=False)
    whole = _scalars(_train(tmp_path / "whole"))

    class Stop(Exception):
        pass

    def crash(step, logs):
        if step == 5:  # checkpoint at 4, events of step 5 written, then killed
            raise Stop

    with pytest.raises(Stop):
        _train(tmp_path / "victim", on_step=crash, checkpoint_every=2)
    resumed = _scalars(_train(tmp_path / "victim", checkpoint_every=2))
    assert sorted(resumed["train/loss"]) == sorted(whole["train/loss"])  # step 5 once, not twice
    assert resumed["train/loss"] == pytest.approx(whole["train/loss"], rel=1e-5)


def test_without_tensorboard_only_the_csv_is_written_and_the_log_says_why(tmp_path, monkeypatch):
    import logging

    from benchmark.progress import LOGGER_NAME, logger

    logger()  # the suite's logger as training sets it up (INFO)

    monkeypatch.setenv(metrics_log.TENSORBOARD_ENV, "0")
    monkeypatch.setattr(metrics_log, "_told", [])
    logs: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logs.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    try:
        run_dir = _train(tmp_path)
    finally:
        logging.getLogger(LOGGER_NAME).removeHandler(handler)
    assert (run_dir / "metrics.csv").is_file() and not list(run_dir.glob("events.out.tfevents.*"))
    assert any("no TensorBoard event files (BENCH_TENSORBOARD=0)" in m for m in logs), logs
    monkeypatch.delenv(metrics_log.TENSORBOARD_ENV)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "tensorboard" else object())
    assert "not installed" in metrics_log.tensorboard_off() and ".[tensorboard]" in metrics_log.tensorboard_off()
