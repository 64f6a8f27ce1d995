"""Augmentations of a clip: the report's ten augmentations drawn once per clip and applied to all its frames alike,
so that augmenting adds no flicker or jitter between frames (which a clip model would learn as a cue).

One draw (train.augment.fused.sample: each augmentation with its recipe probability, the same ranges) is applied to
every frame by train.augment.fused.apply, the same code the frame path's fused implementation runs."""
from __future__ import annotations

import random

import numpy as np

from train.augment.fused import Draw, apply, sample
from train.config import Augment


class ClipAugment:
    """Callable: uint8 clip (T, H, W, 3) RGB at `size` -> the augmented clip, written into `out` when given (a slot
    of a (N, T, H, W, 3) batch buffer). The draw of the last call is kept in `last` (for tests and figures)."""

    def __init__(self, size: tuple[int, int], probs: Augment, seed: int | None = None) -> None:
        self.size, self.probs = tuple(size), probs
        self.rng = random.Random(seed)
        self.last: Draw | None = None

    def draw(self) -> Draw:
        return sample(self.rng, self.probs, self.size)

    def __call__(self, frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"a clip is (T, H, W, 3), got shape {frames.shape}")
        self.last = draw = self.draw()
        out = np.empty_like(frames) if out is None else out
        for frame, slot in zip(frames, out):
            apply(frame, draw, slot)
        return out
