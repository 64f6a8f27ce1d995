"""Clip streams (--input clips, or face-clips: the faces stage's face tubes, SHARDS/face_clips/, read alike): the clip shards beside the frame shards (SHARDS/clips/, dataset.json's "clips"
section, written by `dfd shards --clip-frames T`) -> clips of T consecutive frames decoded at the model's size ->
batches (N, T, 3, H, W) uint8 with labels, clip keys and video ids, as the frame streams' batches are (N, 3, H, W).

A clip sample is KEY.000.jpg ... KEY.(T-1).jpg and KEY.json; only clips whose status is "done" are used (a short
clip, one with a gap in its frame times or a corrupt frame is left out, as clips.parquet says why). Training clips
are augmented with one draw per clip (train.augment.clip_augment); the shard order, class balance and shuffle buffer are
the frame stream's (train.data.streams.TrainStream)."""
from __future__ import annotations

import json
import random
import logging
from typing import Iterator

import numpy as np
import torch

from pipeline.dataset import LABELS, Dataset, DatasetError, ShardError, own_label, read_dataset_json, shard_url
from train.augment.clip_augment import ClipAugment
from train.data.batches import batch_buffer, worker_index
from train.data.decode import CorruptSample, decode_resized
from train.data.streams import TrainStream, ValStream, worker_seed

log = logging.getLogger(__name__)


class ClipShards:
    """A dataset's clip shards as TrainStream reads shards: urls(split, label) and the clip counts."""

    drop_untouched = False

    def __init__(self, dataset: Dataset, input: str = "clips") -> None:
        key = "face_clips" if input == "face-clips" else "clips"
        section = read_dataset_json(dataset.manifests).get(key)
        spec = dataset.clip_spec
        if spec is None:
            raise DatasetError(f"{dataset.manifests / 'dataset.json'} has no clips: make the shards with "
                               f"`dfd shards --clip-frames T` to train on {input}")
        if not isinstance(section, dict):
            raise DatasetError(f"{dataset.manifests / 'dataset.json'} has no face clips: run `dfd faces` on the "
                               "dataset (it cuts the face tubes of its clips)")
        self.location, self.section, self.frames = dataset.location, section, int(spec.frames)
        self.count = "tubes" if key == "face_clips" else "clips"

    def urls(self, split: str, label: str | None = None) -> list[str]:
        return [shard_url(self.location, s["name"]) for s in self.section.get("shards", [])
                if s["split"] == split and (label is None or s["label"] == label) and s.get(self.count)]

    def n_clips(self, split: str, label: str | None = None) -> int:
        counts = self.section.get("counts", {}).get(split, {})
        return int(counts.get(label, 0)) if label else int(sum(counts.get(k, 0) for k in LABELS))


def decode_clip(sample: dict, size: tuple[int, int]) -> tuple[np.ndarray, int, str, str] | None:
    """A clip sample -> (uint8 (T, H, W, 3) at size, label 0/1, key, video id); the label is the clip's own picture
    label (pipeline.dataset.own_label: its video's in older shards); None for a clip whose status is not
    "done"; CorruptSample where a frame does not decode, ShardError where the sample is malformed."""
    key = sample["__key__"]
    try:
        meta = json.loads(sample["json"])
    except (KeyError, ValueError) as err:
        raise ShardError(f"bad clip {key} in shard {sample.get('__url__')}: {err!r}") from None
    if meta.get("status") != "done":
        return None
    label = own_label(meta)  # the clip's own picture label (its video's in older shards)
    if label not in LABELS:
        raise ShardError(f"clip {key} in shard {sample.get('__url__')} has label {label!r}; training "
                         f"needs one of {sorted(LABELS)}")
    names = sorted(k for k in sample if k.endswith(".jpg"))
    try:
        frames = np.stack([decode_resized(sample[name], size) for name in names])
    except (ValueError, RuntimeError, OSError) as err:
        raise CorruptSample(f"clip {key} in shard {sample.get('__url__')}: a frame does not decode: {err}") from None
    return frames, LABELS[label], key, meta.get("video_id", key.rsplit("_", 1)[0])


def decoded_clips(samples: Iterator[dict], size: tuple[int, int]) -> Iterator[tuple[np.ndarray, int, str, str]]:
    """decode_clip over a stream; a corrupt clip is skipped with a warning, a clip not "done" silently."""
    skipped = 0
    for sample in samples:
        try:
            item = decode_clip(sample, size)
        except CorruptSample as err:
            skipped += 1
            log.warning("skipped corrupt clip (%d so far in this worker): %s", skipped, err)
            continue
        if item is not None:
            yield item


def clip_batches(items: Iterator, size: tuple[int, int], frames: int, batch_size: int,
                 augment: ClipAugment) -> Iterator[tuple]:
    """Training batches: each clip augmented (one draw for all its frames) into its slot of a uint8
    (N, T, H, W, 3) buffer; yields (uint8 (N, T, 3, H, W), labels, keys, video ids)."""
    while True:
        buffer = batch_buffer(batch_size * frames, size).view(batch_size, frames, *size, 3)
        slots = buffer.numpy()
        labels, keys, videos = [], [], []
        for i in range(batch_size):
            clip, label, key, video = next(items)
            if len(clip) != frames:
                raise ShardError(f"clip {key} has {len(clip)} frames where the dataset's clips have {frames}")
            augment(clip, slots[i])
            labels.append(label)
            keys.append(key)
            videos.append(video)
        yield (buffer.permute(0, 1, 4, 2, 3).contiguous(), torch.tensor(labels, dtype=torch.int64), keys, videos)


class ClipTrainStream(TrainStream):
    """One training epoch of clips: exactly n_batches batches over all workers (TrainStream's shard order, balance
    and shuffle buffer over the clip shards)."""

    def __init__(self, shards: ClipShards, size: tuple[int, int], augment, batch_size: int, n_batches: int,
                 balance: str, shuffle_buffer: int, seed: int) -> None:
        super().__init__(shards, size, augment, batch_size, n_batches, balance, shuffle_buffer, seed,
                         augment_impl="fused")

    def __iter__(self):
        worker, n_workers = worker_index()
        quota = self.n_batches // n_workers + (1 if worker < self.n_batches % n_workers else 0)
        seed = worker_seed(self.seed, worker)
        items = decoded_clips(self._samples(random.Random(seed)), self.size)
        batches = clip_batches(items, self.size, self.dataset.frames, self.batch_size,
                               ClipAugment(self.size, self.augment, seed))
        for _ in range(quota):
            yield next(batches)


class ClipValStream(ValStream):
    """Validation clips: every "done" clip of the split once, shards split over nodes and workers, no augmentation."""

    def items(self, samples):
        """(T x 3 x H x W uint8 tensor, label, key, video id) per clip."""
        return ((torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2))), label, key, video)
                for clip, label, key, video in decoded_clips(samples, self.size))
