"""Issue 26 item 4: clip models scored -- a clips run's checkpoint loads (train.checkpoint), `dfd evaluate` on clip
shards (clip- and video-level metrics), `dfd check VIDEO` clip by clip. One tiny real run: lavfi videos -> `dfd
shards --clip-frames 4` -> `dfd train --input clips --recipe demo_clips` dev run (tests/conftest.py clip_run)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.dataset import Dataset
from train.checkpoint import load_checkpoint
from train.clip_model import TemporalModel
from train.data.clip_streams import ClipShards, ClipValStream
from train.model import Device
from train.score.on_batches import predict


def test_a_clips_run_checkpoint_loads_and_gives_its_recorded_val_loss(clip_run, clip_dataset):
    model, config = load_checkpoint(clip_run / "checkpoints" / "last.pt")
    assert isinstance(model, TemporalModel) and not model.training and config.input == "clips"
    shards = ClipShards(Dataset.open(clip_dataset["shards"], clip_dataset["manifests"]))
    rows = predict(model, ClipValStream(shards.urls("val"), config.image_size, 4), Device(torch.device("cpu")))
    assert len(rows) == shards.n_clips("val") and rows.p_fake.between(0, 1).all()
    metrics = pd.read_csv(clip_run / "metrics.csv")
    assert np.isclose(rows.loss.mean(), metrics.val_loss.iloc[-1], rtol=1e-4)
