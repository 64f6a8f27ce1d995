"""Issue 26 item 3: a clip's augmentations are drawn once and applied to all its frames alike."""
from __future__ import annotations

import numpy as np

from train.augment.clip_augment import ClipAugment
from train.augment.fused import apply
from train.config import Augment

EVERY = Augment(**{name: 1.0 for name in Augment.__dataclass_fields__})  # every augmentation drawn, every time


def _clip(seed: int, t: int = 4, size: int = 32) -> np.ndarray:
    frames = np.random.default_rng(seed).integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    frames[2] = frames[0]  # two equal frames
    return frames


def test_equal_frames_stay_equal_and_every_frame_gets_the_clips_one_draw():
    augment = ClipAugment((32, 32), EVERY, seed=0)
    for seed in range(5):
        clip = _clip(seed)
        out = augment(clip)
        assert out.shape == clip.shape and out.dtype == np.uint8
        assert np.array_equal(out[2], out[0]), "equal frames came out different"
        assert not np.array_equal(out[0], clip[0]), "nothing was augmented"
        for frame, got in zip(clip, out):  # the one draw, frame by frame
            assert np.array_equal(apply(frame, augment.last), got)


def test_draws_differ_between_clips_and_land_in_a_batch_slot():
    augment = ClipAugment((32, 32), EVERY, seed=1)
    clip = _clip(0)
    batch = np.zeros((2, *clip.shape), dtype=np.uint8)
    augment(clip, batch[0])
    first = augment.last
    augment(clip, batch[1])
    assert first != augment.last and not np.array_equal(batch[0], batch[1])
    assert np.array_equal(batch[0][0], batch[0][2])
