"""The one progress reporter: timed plain log lines when stderr is not a terminal (batch jobs), and the
trainer's metrics CSV in its run folder."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.contract.data import Sample
from benchmark.progress import Reporter, mode
from benchmark.training.trainer import train
from benchmark.training.losses import rd_loss_fn
from benchmark.contract.budgets import TrainConfig
from tests.tiny_rd import TinyRD

REPO = Path(__file__).resolve().parents[1]


def test_log_mode_prints_a_line_per_interval_with_the_fields(capsys, monkeypatch):
    monkeypatch.delenv("BENCH_PROGRESS", raising=False)
    assert mode(True) == "log"  # captured stderr is not a terminal
    assert mode(None) == "off"  # inside pytest unless asked for
    assert mode(False) == "off"
    with Reporter("train tiny", 10, enabled=True, fields=("loss", "bpp", "psnr"), every=0.2) as rep:
        for step in range(1, 6):
            time.sleep(0.15)
            rep.update(step, loss=1.0 / step, bpp=0.5, psnr=30.0 + step, lr=1e-3)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "train tiny" in ln]
    assert len(lines) >= 4, lines  # start, >= 2 timed, end
    assert "steps 0/10" in lines[0]
    assert lines[-1].split(": ", 1)[1].startswith("steps 5/10 (50%) loss 0.2 bpp 0.500 PSNR 35.00 | ")
    assert "it/s" in lines[-1] and "ETA" in lines[-1]


@pytest.mark.slow
def test_bench_run_into_a_file_leaves_timed_progress_lines(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("BENCH_PROGRESS", None)
    with open(tmp_path / "log", "w") as log:
        res = subprocess.run([sys.executable, "-m", "cli.main", "run", "--method", "jpeg", "--dataset", "middlebury_sample",
                              "--limit", "1", "--out", str(tmp_path / "out"), "--log-every", "0.5"],
                             stdout=log, stderr=subprocess.STDOUT, env=env, timeout=900)
    text = (tmp_path / "log").read_text()
    assert res.returncode == 0, text
    lines = [ln for ln in text.splitlines() if "jpeg on middlebury-sample/stereo: images" in ln]
    assert "images 0/1" in lines[0] and "images 1/1 (100%)" in lines[-1] and lines[-1].endswith("done"), text


def test_training_writes_its_metrics_as_a_csv_pandas_reads(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = [Sample(x=torch.rand(3, 24, 24, generator=g), name=f"t{i}") for i in range(4)]
    torch.manual_seed(0)
    cfg = TrainConfig(steps=6, batch_size=2, crop=16, lr=1e-3, val_every=3, val_samples=2, checkpoint_seconds=0)
    train(TinyRD(), rd_loss_fn(0.01), data, data, config=cfg, workdir=tmp_path, seed=0, tag="tiny", progress=False)
    (run_dir,) = tmp_path.glob("run-*")
    df = pd.read_csv(run_dir / "metrics.csv")
    curves = df.pivot_table(index=["step", "split"], columns="metric", values="value")
    train_rows = curves.xs("train", level="split")
    assert list(train_rows.index) == [1, 2, 3, 4, 5, 6]
    assert {"loss", "bpp", "psnr", "lr"} <= set(train_rows.columns)
    assert list(curves.xs("val", level="split").index) == [3, 6]
