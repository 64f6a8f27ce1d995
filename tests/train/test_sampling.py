"""Sampling by loss (--sample-by loss): the keep probability, its effect on a real train stream, the per-item
losses the training epoch records, and a dev run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.dataset import Dataset
from train.config import Augment
from train.data.sampling import FLOOR, LossSampler, LossTable
from train.data.streams import TrainStream
from train.fit.engine import train_one_epoch
from train.model import Device

ROOT = Path(__file__).resolve().parents[2]


def test_keep_grows_with_the_loss_with_a_floor():
    losses = {f"k{i}": i / 10 for i in range(11)}  # 0.0 .. 1.0; the 0.9 quantile is 0.9
    sampler = LossSampler(losses)
    keeps = [sampler.keep(f"k{i}") for i in range(11)]
    assert keeps == sorted(keeps) and keeps[0] == FLOOR and keeps[-1] == 1.0 and keeps[9] == pytest.approx(1.0)
    assert sampler.keep("never seen") == 1.0
    assert LossSampler({}).keep("k0") == 1.0


def _fake_share(dataset, sampler, seed=5):
    stream = TrainStream(dataset, (36, 64), Augment.none(), 8, 20, "none", 30, seed=seed, sampler=sampler)
    labels = torch.cat([batch[1] for batch in stream])
    return float(labels.float().mean())


def test_a_stream_draws_hard_items_more_often(tiny_dataset):
    dataset = Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"])
    frames = pd.read_parquet(tiny_dataset["manifests"] / "frames.parquet")
    train = frames[frames["split"] == "train"]
    # the real frames were hard (loss 2), the fakes easy (loss 0): fakes are kept with the floor's chance
    losses = {k: (2.0 if label == "real" else 0.0) for k, label in zip(train["key"], train["label"])}
    uniform = _fake_share(dataset, None)
    by_loss = _fake_share(dataset, LossSampler(losses))
    n_fake, n_real = int((train["label"] == "fake").sum()), int((train["label"] == "real").sum())
    expected = FLOOR * n_fake / (FLOOR * n_fake + n_real)
    assert uniform > 0.55 and abs(by_loss - expected) < 0.15 and by_loss < uniform - 0.2


def test_the_epoch_records_each_items_own_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    batches = [(torch.randint(0, 255, (4, 3, 4, 4), dtype=torch.uint8), torch.tensor([0, 1, 0, 1]),
                [f"b{b}_{i}" for i in range(4)], ["v"] * 4) for b in range(3)]
    table = LossTable()
    dev = Device.resolve("cpu", False, False)
    first = dev.inputs(batches[0][0])
    with torch.no_grad():
        expected = F.cross_entropy(model(first).float(), batches[0][1], reduction="none")
    train_one_epoch(model, batches, torch.optim.SGD(model.parameters(), lr=0.0), None, dev, 3,
                    on_losses=table.record)
    assert len(table) == 12
    assert [table.losses[f"b0_{i}"] for i in range(4)] == pytest.approx(expected.tolist(), rel=1e-5)


@pytest.mark.slow
def test_dev_run_with_sample_by_loss(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "train.run", "--shards", str(tiny_dataset["shards"]),
                           "--manifests", str(tiny_dataset["manifests"]), "--out", str(out), "--sample-by", "loss",
                           "--weights", "none", "--device", "cpu", "--image-size", "64", "--batch-size", "8",
                           "--workers", "0", "--dev-run", "--no-explain", "--no-lr-find"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(pd.read_csv(out / "metrics.csv")) >= 2  # the second epoch drew by the first one's losses
