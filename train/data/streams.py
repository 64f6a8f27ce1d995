"""Streams: shards -> samples (shard shuffle and splitting, shuffle buffer, class balance) -> decoded, augmented
batches; the training epoch, the validation pass and the DataLoader over them."""
from __future__ import annotations

import functools
import logging
import os
import random
import tarfile
from typing import Iterator, Sequence

import cv2
import numpy as np
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset
from webdataset.gopen import gopen_schemes

from dfd.children import dataloader_worker_init
from pipeline.dataset import Dataset, ShardError
from train.augment import for_impl, is_deferred
from train.config import Augment
from train.data.batches import PREFETCH, augmented_batches, batched, jpeg_batches, worker_index
from train.data.decode import checked, decoded, to_chw, untouched_fake
from train.data.sampling import LossSampler
from train.data.blended_fakes import Synthetic

log = logging.getLogger(__name__)


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **kw):
    """Open any URL fsspec knows (s3://, gs://, az://, hf://, ...) for schemes webdataset has no handler of."""
    import fsspec

    return fsspec.open(url, mode).open()


def read_shard(url: str) -> Iterator[dict]:
    """Raw samples (dict with __key__, jpg, json) of one tar; a read error becomes a ShardError naming the shard."""
    gopen_schemes["__default__"] = _gopen_fsspec  # URL schemes webdataset has no handler of (s3://, az://): fsspec
    try:
        yield from wds.tarfile_to_samples()([{"url": url}])
    except (tarfile.TarError, OSError, ValueError) as err:
        raise ShardError(f"cannot read shard {url}: {err}") from None


def read_shards(urls: Iterator[str]) -> Iterator[dict]:
    for url in urls:
        yield from read_shard(url)


def worker_seed(*parts: int) -> int:
    """A 32-bit seed from integers (run seed, stage, epoch, worker), stable across processes and runs."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def my_shards(urls: Sequence[str], rng: random.Random) -> list[str]:
    """This node's and this worker's share of the shuffled shard list, or all of them if the share is empty."""
    urls = list(urls)
    random.Random(rng.random()).shuffle(urls)  # same order on every worker: rng is seeded per epoch below
    share = list(wds.split_by_worker(wds.split_by_node(urls)))
    return share or urls


def shard_cycle(urls: Sequence[str], rng: random.Random, resample: bool) -> Iterator[str]:
    """Endless shard order: random draws with replacement (resampled) or reshuffled passes."""
    urls = list(urls)
    while True:
        if resample:
            yield rng.choice(urls)
        else:
            rng.shuffle(urls)
            yield from urls


class TrainStream(IterableDataset):
    """One training epoch: exactly n_batches augmented batches in total over all workers.

    augment_impl: one of train.augment.IMPLS (resolved: not "auto"); with a deferred one ("device") the workers only
    read and check the JPEG bytes and draw: its batches are (JpegBatch, labels, keys, videos, draws), decoded and
    augmented on the device by train.augment.device.DeviceAugmented.
    """

    def __init__(self, dataset: Dataset, size: tuple[int, int], augment: Augment, batch_size: int,
                 n_batches: int, balance: str, shuffle_buffer: int, seed: int, augment_impl: str = "albumentations",
                 synthetic: Synthetic | None = None, sampler: LossSampler | None = None) -> None:
        super().__init__()
        self.synthetic = synthetic  # self-blended fakes from real faces (train.data.blended_fakes)
        self.sampler = sampler      # --sample-by loss: items kept by their last loss (train.data.sampling)
        self.dataset, self.size, self.augment = dataset, size, augment
        self.batch_size, self.n_batches, self.balance = batch_size, n_batches, balance
        self.shuffle_buffer, self.seed, self.augment_impl = shuffle_buffer, seed, augment_impl
        self.deferred = is_deferred(augment_impl)  # raises naming the allowed ones

    def _stream(self, urls: list[str], rng: random.Random, resample: bool) -> Iterator[dict]:
        shuffled_order = random.Random(self.seed)  # shared by all workers: same epoch shard permutation
        shards = shard_cycle(my_shards(urls, shuffled_order), rng, resample)
        buffer = self.shuffle_buffer
        return wds.shuffle(buffer, initial=buffer, rng=random.Random(rng.random()))(read_shards(shards))

    def _samples(self, rng: random.Random) -> Iterator[dict]:
        m = self.dataset
        if self.synthetic is not None and self.synthetic.real_only:
            return self._stream(m.urls("train", "real"), rng, resample=False)
        if self.balance == "mix":
            real = self._stream(m.urls("train", "real"), random.Random(rng.random()), resample=True)
            fake = self._stream(m.urls("train", "fake"), random.Random(rng.random()), resample=True)
            random.seed(rng.random())  # wds.RandomMix draws from the module-level `random`
            return iter(wds.RandomMix([real, fake], probs=[0.5, 0.5]))
        return self._stream(m.urls("train"), rng, resample=False)

    def __iter__(self):
        worker, n_workers = worker_index()
        quota = self.n_batches // n_workers + (1 if worker < self.n_batches % n_workers else 0)
        seed = worker_seed(self.seed, worker)
        samples = self._samples(random.Random(seed))
        if self.dataset.drop_untouched:
            samples = (s for s in samples if not untouched_fake(s))
        if self.sampler is not None:
            samples = self.sampler.filter(samples, random.Random(worker_seed(seed, 2)))
        augment = for_impl(self.augment_impl, self.size, self.augment, seed)
        if self.deferred:  # (no synthetic fakes here: TrainConfig refuses them with the device path)
            batches = jpeg_batches(checked(samples), self.batch_size, augment)
        else:
            items = (decoded(samples, self.size) if self.synthetic is None
                     else self.synthetic.items(samples, self.size, worker_seed(seed, 1)))
            batches = augmented_batches(items, self.size, self.batch_size, augment)
        for _ in range(quota):
            yield next(batches)


class ValStream(IterableDataset):
    """Validation (or any split): every frame exactly once, shards split over nodes and workers, no augmentation."""

    def __init__(self, urls: Sequence[str], size: tuple[int, int], batch_size: int) -> None:
        super().__init__()
        self.urls, self.size, self.batch_size = list(urls), size, batch_size

    def __iter__(self):
        shards = wds.split_by_worker(wds.split_by_node(self.urls))
        yield from batched(self.items(read_shards(iter(shards))), self.batch_size, partial=True)

    def items(self, samples: Iterator[dict]) -> Iterator[tuple]:
        """(CHW uint8 tensor, label, key, video id) per sample."""
        return ((to_chw(image), label, key, video) for image, label, key, video in decoded(samples, self.size))


def make_loader(dataset: IterableDataset, workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over a stream that already yields batches.

    With workers, OpenCV is set to one thread here, in the parent, before the workers fork (they inherit it): one
    core per worker, no oversubscription. Calling cv2.setNumThreads inside a forked worker can deadlock."""
    if workers:
        cv2.setNumThreads(1)
    return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                      prefetch_factor=PREFETCH if workers else None, persistent_workers=False,
                      worker_init_fn=functools.partial(dataloader_worker_init, os.getpid()) if workers else None)


def train_batches_per_epoch(dataset: Dataset, batch_size: int, real_only: bool = False) -> int:
    """Epoch length from the manifest's counts: as many full batches as there are train frames (real ones only)."""
    return max(1, dataset.n_frames("train", "real" if real_only else None) // batch_size)
