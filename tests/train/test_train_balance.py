"""Issue 11 item 10: --balance weights and none (mix is tested in test_train_data.py): the stream reads every
train frame at the dataset's own class ratio, and only `weights` puts dataset.json's class weights in the loss."""
from __future__ import annotations

import pytest
import torch

from pipeline.dataset import Dataset
from train.config import Augment, load_recipe, TrainConfig
from train.data.streams import TrainStream, make_loader
from train.fit.loop import class_weights


@pytest.mark.parametrize("balance", ["weights", "none"])
def test_balance_weights_and_none(tiny_dataset, balance):
    dataset = Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"])
    n_train = dataset.n_frames("train")
    stream = TrainStream(dataset, (32, 32), Augment(), batch_size=1, n_batches=3 * n_train, balance=balance,
                         shuffle_buffer=5, seed=1)
    keys = [k for b in make_loader(stream, 0) for k in b[2]]
    assert len(keys) == 3 * n_train and len(set(keys)) == n_train  # reshuffled passes over every train frame
    share = sum(k.startswith("fake") for k in keys) / len(keys)
    dataset_share = dataset.n_frames("train", "fake") / n_train  # about 2/3: not rebalanced (mix makes it 1/2)
    assert abs(share - dataset_share) < 0.05
    config = TrainConfig(shards=str(tiny_dataset["shards"]), manifests=str(tiny_dataset["manifests"]), out="x",
                         recipe=load_recipe("demo"), balance=balance)
    weights = class_weights(config, dataset)
    if balance == "weights":
        expected = torch.tensor([dataset.class_weights["real"], dataset.class_weights["fake"]])
        assert torch.allclose(weights, expected) and weights[0] > weights[1]  # fewer reals weigh more
    else:
        assert weights is None
