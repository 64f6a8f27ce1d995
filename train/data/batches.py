"""Batches: collated items, uint8 NHWC buffers filled in place (shared memory in loader workers), the training
batches each CPU augmentation implementation writes into them, and the device path's batches of JPEG bytes."""
from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np
import torch
from torch.utils.data import get_worker_info


def collate(items: list) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """[(uint8 CHW, label, key, video)] -> (uint8 NCHW, int64 labels, keys, video ids)."""
    images = torch.stack([item[0] for item in items])
    labels = torch.tensor([item[1] for item in items], dtype=torch.int64)
    return images, labels, [item[2] for item in items], [item[3] for item in items]


def batched(samples: Iterator, batch_size: int, partial: bool) -> Iterator:
    batch = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield collate(batch)
            batch = []
    if batch and partial:
        yield collate(batch)


def worker_index() -> tuple[int, int]:
    """(worker id, number of workers). OpenCV's thread count is not set here: cv2.setNumThreads in a forked
    worker, after the parent used OpenCV's pool, deadlocks (seen in test_train_data with workers=2); make_loader
    sets it in the parent before the fork."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


def batch_buffer(batch_size: int, size: tuple[int, int]) -> torch.Tensor:
    """An empty uint8 NHWC batch; in a loader worker it is allocated in shared memory, so handing it to the main
    process copies nothing."""
    images = torch.empty((batch_size, size[0], size[1], 3), dtype=torch.uint8)
    return images.share_memory_() if get_worker_info() is not None else images


def _filled_batches(items: Iterator[tuple[np.ndarray, int, str, str]], size: tuple[int, int], batch_size: int,
                    write) -> Iterator[tuple]:
    """Batches written straight into a fresh uint8 NHWC buffer: each decoded sample goes through `write(image,
    slot)`, whose results come back in a list. Yields uint8 NCHW views with channels_last strides, labels, keys,
    video ids and the write results."""
    while True:
        images = batch_buffer(batch_size, size)
        slots = images.numpy()
        labels, keys, videos, written = [], [], [], []
        for i in range(batch_size):
            image, label, key, video = next(items)
            written.append(write(image, slots[i]))
            labels.append(label)
            keys.append(key)
            videos.append(video)
        yield images.permute(0, 3, 1, 2), torch.tensor(labels, dtype=torch.int64), keys, videos, written


PREFETCH = 4  # batches each loader worker prepares ahead (DataLoader's prefetch_factor)


class JpegBatch(NamedTuple):
    """A batch's JPEG files as the shards hold them, for the device to decode (train.augment.device.decode_batch):
    one uint8 tensor with the files one after the other (one shared-memory hand-over from a loader worker) and
    each file's length."""

    data: torch.Tensor     # uint8, 1-D
    lengths: torch.Tensor  # int64, one per image


def jpeg_batches(items: Iterator[tuple[bytes, int, str, str]], batch_size: int, augment) -> Iterator[tuple]:
    """The device path's training batches (train.data.decode.checked items: JPEG bytes, not pixels): (JpegBatch,
    labels, keys, video ids, draws), each image's draw from `augment.draw()` (train.augment.device.DeferredAugment).
    A loader worker only reads the tar, checks each frame's crc32 and draws."""
    while True:
        jpegs, labels, keys, videos, draws = [], [], [], [], []
        for _ in range(batch_size):
            jpeg, label, key, video = next(items)
            jpegs.append(jpeg)
            labels.append(label)
            keys.append(key)
            videos.append(video)
            draws.append(augment.draw())
        data = torch.frombuffer(bytearray(b"".join(jpegs)), dtype=torch.uint8)
        lengths = torch.tensor([len(j) for j in jpegs], dtype=torch.int64)
        yield JpegBatch(data, lengths), torch.tensor(labels, dtype=torch.int64), keys, videos, draws


def augmented_batches(items: Iterator[tuple[np.ndarray, int, str, str]], size: tuple[int, int], batch_size: int,
                      augment) -> Iterator[tuple]:
    """Training batches: each decoded sample (see train.data.decode.decoded) goes through `augment(image, slot)`
    (train.augment.for_impl), which writes it into its slot of a uint8 NHWC buffer.

    Yields (uint8 NCHW images, labels, keys, video ids). The images keep channels_last strides (what the model runs
    on) unless `augment.contiguous` asks for plain NCHW. The device path's batches are jpeg_batches."""
    for images, labels, keys, videos, _written in _filled_batches(items, size, batch_size, augment):
        yield (images.contiguous() if augment.contiguous else images), labels, keys, videos
