"""Sampling by loss (--sample-by loss): each train item (frame or face) is drawn with a probability that grows with
its loss in the previous epoch, with a floor so that easy ones still appear; items without a loss yet (the first
epoch, items not drawn since) are always taken.

The train stream reads shards as streams, not by index, so the draw is a rejection on the stream: an item is kept
with probability clip(loss / q, floor, 1), q the QUANTILE of the recorded losses; the skipped items are never
decoded. The epoch still has its n_batches batches, so a run with --sample-by loss takes as many steps as one
without (it reads more of the shards to fill them)."""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np

FLOOR = 0.2      # the least chance an item has of being kept, however easy it was
QUANTILE = 0.9   # items at or above this quantile of the losses are always kept


class LossTable:
    """The last recorded training loss of each item key (kept between epochs, in the training process)."""

    def __init__(self) -> None:
        self.losses: dict[str, float] = {}

    def record(self, keys, losses) -> None:
        for key, loss in zip(keys, np.asarray(losses, dtype=np.float64).reshape(-1)):
            self.losses[key] = float(loss)

    def sampler(self) -> "LossSampler":
        """A frozen view for one epoch's stream (copied into the loader workers when they fork)."""
        return LossSampler(dict(self.losses))

    def __len__(self) -> int:
        return len(self.losses)


class LossSampler:
    """keep(key) -> the probability of keeping the item; `filter` applies it to a stream of raw samples."""

    def __init__(self, losses: dict[str, float], floor: float = FLOOR, quantile: float = QUANTILE) -> None:
        self.losses, self.floor = losses, floor
        values = np.fromiter(losses.values(), dtype=np.float64, count=len(losses))
        self.scale = float(np.quantile(values, quantile)) if len(values) else 0.0

    def keep(self, key: str) -> float:
        loss = self.losses.get(key)
        if loss is None or self.scale <= 0:
            return 1.0
        return float(min(1.0, max(self.floor, loss / self.scale)))

    def filter(self, samples: Iterator[dict], rng: random.Random) -> Iterator[dict]:
        for sample in samples:
            if rng.random() < self.keep(sample["__key__"]):
                yield sample
