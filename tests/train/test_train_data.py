"""The trainer's streams on real pipeline shards: val exactly once, exact epoch length, balance, bad inputs."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import pandas as pd
import pytest

from pipeline.dataset import Dataset, DatasetError, ShardError
from train.config import Augment
from train.data.streams import TrainStream, ValStream, make_loader, read_shard, train_batches_per_epoch


@pytest.fixture
def dataset_copy(tiny_dataset, tmp_path) -> dict:
    """A private copy of the session's pipeline output, safe to break."""
    shards, manifests = tmp_path / "shards", tmp_path / "manifests"
    shutil.copytree(tiny_dataset["shards"], shards)
    shutil.copytree(tiny_dataset["manifests"], manifests)
    return {"shards": shards, "manifests": manifests}


def _dataset(ds):
    return Dataset.open(ds["shards"], ds["manifests"])


@pytest.mark.parametrize("workers", [0, 2])
def test_validation_sees_every_frame_exactly_once(tiny_dataset, workers):
    dataset = _dataset(tiny_dataset)
    assert len(dataset.urls("val")) >= 2  # several shards, so two workers really split them
    loader = make_loader(ValStream(dataset.urls("val"), (64, 64), batch_size=4), workers)
    keys = [k for _images, _labels, batch_keys, _videos in loader for k in batch_keys]
    frames = pd.read_parquet(tiny_dataset["manifests"] / "frames.parquet")
    expected = frames.loc[frames["split"] == "val", "key"].tolist()
    assert Counter(keys) == Counter(expected) and len(keys) == dataset.n_frames("val")


@pytest.mark.parametrize("workers", [0, 2])
def test_train_epoch_has_exact_length_and_mixes_classes_50_50(tiny_dataset, workers):
    dataset = _dataset(tiny_dataset)
    assert dataset.n_frames("train", "fake") >= 2 * dataset.n_frames("train", "real")  # really unbalanced
    stream = TrainStream(dataset, (64, 64), Augment(), batch_size=8, n_batches=30, balance="mix",
                         shuffle_buffer=20, seed=3)
    batches = list(make_loader(stream, workers))
    assert len(batches) == 30 and all(b[0].shape == (8, 3, 64, 64) for b in batches)
    labels = [int(v) for b in batches for v in b[1]]
    assert 0.4 < sum(labels) / len(labels) < 0.6
    assert train_batches_per_epoch(dataset, 8) == dataset.n_frames("train") // 8


def test_train_stream_is_reproducible_from_its_seed(tiny_dataset):
    dataset = _dataset(tiny_dataset)

    def keys(seed):
        stream = TrainStream(dataset, (64, 64), Augment(), 4, 6, "none", 10, seed)
        return [k for b in make_loader(stream, 2) for k in b[2]]

    assert keys(1) == keys(1)
    assert keys(1) != keys(2)


def test_missing_and_empty_shards_folder(tmp_path, tiny_dataset):
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset.open(tmp_path / "nope", tiny_dataset["manifests"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="listed in dataset.json but missing"):
        Dataset.open(tmp_path / "empty", tiny_dataset["manifests"])
    with pytest.raises(DatasetError, match="dataset.json does not exist"):
        Dataset.open(tiny_dataset["shards"], tmp_path / "empty")


def test_manifest_without_val_split(dataset_copy):
    path = dataset_copy["manifests"] / "dataset.json"
    data = json.loads(path.read_text())
    data["shards"] = [s for s in data["shards"] if s["split"] != "val"]
    data["frames"].pop("val")
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="no val split"):
        _dataset(dataset_copy)


def test_listed_shard_missing(dataset_copy):
    victim = sorted(dataset_copy["shards"].glob("val-*.tar"))[0]
    victim.unlink()
    with pytest.raises(DatasetError, match=f"shard .*{victim.name} is listed in dataset.json but missing"):
        _dataset(dataset_copy)


def test_truncated_shard_is_an_error_naming_the_shard(dataset_copy):
    """Policy: a truncated shard stops the run before training with an error naming it (never a silent skip)."""
    victim = sorted(dataset_copy["shards"].glob("train-fake-*.tar"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(ShardError, match=f"{victim.name} is truncated"):
        _dataset(dataset_copy)
    # and without frames.parquet to check against, reading the shard fails with its name
    with pytest.raises(ShardError, match=f"cannot read shard .*{victim.name}"):
        list(read_shard(str(victim)))
