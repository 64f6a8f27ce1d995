"""Batches: collated items, uint8 NHWC buffers filled in place (shared memory in loader workers, reused through
BufferPool), and the training batches each augmentation implementation writes into them."""
from __future__ import annotations

from typing import Iterator

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
                    write, take=None) -> Iterator[tuple]:
    """Batches written straight into a uint8 NHWC buffer (from `take()` -> (buffer, token), else a fresh one): each
    decoded sample goes through `write(image, slot)`, whose results come back in a list. Yields uint8 NCHW views with
    channels_last strides, labels, keys, video ids, the buffer's token and the write results."""
    while True:
        images, token = take() if take is not None else (batch_buffer(batch_size, size), None)
        slots = images.numpy()
        labels, keys, videos, written = [], [], [], []
        for i in range(batch_size):
            image, label, key, video = next(items)
            written.append(write(image, slots[i]))
            labels.append(label)
            keys.append(key)
            videos.append(video)
        yield images.permute(0, 3, 1, 2), torch.tensor(labels, dtype=torch.int64), keys, videos, token, written


PREFETCH = 4  # batches each loader worker prepares ahead (DataLoader's prefetch_factor)


class Draws(list):
    """The draws of one device batch, plus `token`: the (worker, slot) of the BufferPool buffer it came in, for
    DeviceAugmented to hand back once it has copied the pixels away (None: a one-off buffer, nothing to return).
    A list subclass with an attribute survives pickling between processes and DataLoader's pin_memory (which
    copies mutable sequences with copy.copy)."""

    token: tuple[int, int] | None = None


class BufferPool:
    """Batch buffers a loader worker reuses instead of allocating fresh shared memory for every batch.

    At 720x1280 a fresh shared-memory batch costs ~3 ms per image in page faults on this project's machines, about
    as much as reading and decoding it (bench-train (3)); the `device` workers do little else. Each worker keeps
    `slots` buffers; a flag per buffer, in shared memory made before the workers fork, says whether the consumer
    has handed it back (`release`). A worker reuses only a buffer handed back explicitly, else it allocates a fresh
    one, so a consumer that never releases (keeps batches, iterates the raw loader) is always safe."""

    MAX_WORKERS = 256

    def __init__(self, slots: int = PREFETCH + 2) -> None:
        import multiprocessing

        self.slots = slots
        self.free = multiprocessing.RawArray("b", self.MAX_WORKERS * slots)  # 0: in use or never made, 1: free
        self._buffers: dict[int, torch.Tensor] = {}  # this process's buffers, by slot

    def take(self, batch_size: int, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int] | None]:
        """A uint8 NHWC buffer and its token: a handed-back one of this worker's if any, else a new one (kept in a
        free slot of the ring if there is one, else one-off with token None)."""
        worker, _ = worker_index()
        shape = (batch_size, size[0], size[1], 3)
        if worker >= self.MAX_WORKERS:
            return batch_buffer(batch_size, size), None
        base = worker * self.slots
        for slot in range(self.slots):
            buf = self._buffers.get(slot)
            if buf is not None and self.free[base + slot] == 1 and tuple(buf.shape) == shape:
                self.free[base + slot] = 0
                return buf, (worker, slot)
        for slot in range(self.slots):
            if slot not in self._buffers:
                self._buffers[slot] = buf = batch_buffer(batch_size, size)
                self.free[base + slot] = 0
                return buf, (worker, slot)
        return batch_buffer(batch_size, size), None

    def release(self, token: tuple[int, int] | None) -> None:
        """The consumer is done with this buffer's pixels: its worker may write the next batch into it."""
        if token is not None:
            worker, slot = token
            self.free[worker * self.slots + slot] = 1


def augmented_batches(items: Iterator[tuple[np.ndarray, int, str, str]], size: tuple[int, int], batch_size: int,
                      augment, pool: BufferPool | None = None) -> Iterator[tuple]:
    """Training batches: each decoded sample (see train.data.decode.decoded) goes through `augment(image, slot)`
    (train.augment.for_impl), which writes it into its slot of a uint8 NHWC buffer.

    Yields (uint8 NCHW images, labels, keys, video ids), plus the draws when `augment.deferred` (the batch is
    augmented on the device: train.augment.device.DeviceAugmented; with a pool, the buffer is one of the worker's
    reused ones and the draws carry its token). The images keep channels_last strides (what the model runs on)
    unless `augment.contiguous` asks for plain NCHW."""
    take = (lambda: pool.take(batch_size, size)) if pool is not None else None
    for images, labels, keys, videos, token, drawn in _filled_batches(items, size, batch_size, augment, take):
        if augment.contiguous:
            images = images.contiguous()
        if not augment.deferred:
            yield images, labels, keys, videos
            continue
        draws = Draws(drawn)
        draws.token = token
        yield images, labels, keys, videos, draws
