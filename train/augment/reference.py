"""The reference implementation: the report's ten augmentations as an albumentations pipeline, each with its own
probability, on an image already at the training size."""
from __future__ import annotations

import albumentations as A
import numpy as np

from train.augment.params import (BORDER, BRIGHTNESS, CONTRAST, CROP_PAD_PERCENT, HSV_SHIFT, JPEG_QUALITY,
                                  ROTATE_DEGREES, ZOOM, blur_limit)
from train.config import Augment


def train_transform(size: tuple[int, int], probs: Augment, seed: int | None = None) -> A.Compose:
    """The report's ten augmentations, each with its own probability, applied to an image already at `size`."""
    kernel = blur_limit(size)
    transforms = [
        A.Blur(blur_limit=kernel, p=probs.blur),
        A.MedianBlur(blur_limit=kernel, p=probs.median_blur),
        A.HorizontalFlip(p=probs.hflip),
        A.HueSaturationValue(hue_shift_limit=HSV_SHIFT[0], sat_shift_limit=HSV_SHIFT[1],
                             val_shift_limit=HSV_SHIFT[2], p=probs.hsv),
        A.CropAndPad(percent=CROP_PAD_PERCENT, keep_size=True, border_mode=BORDER, p=probs.crop_pad),
        A.Rotate(limit=ROTATE_DEGREES, border_mode=BORDER, p=probs.rotate),
        A.Affine(scale=ZOOM, keep_ratio=True, border_mode=BORDER, p=probs.zoom),
        A.RandomBrightnessContrast(brightness_limit=BRIGHTNESS, contrast_limit=0.0, p=probs.brightness),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=CONTRAST, p=probs.contrast),
        A.ImageCompression(quality_range=JPEG_QUALITY, p=probs.jpeg),
    ]
    return A.Compose(transforms, seed=seed, strict=True)



class ReferenceAugment:
    """train_transform as a batch writer (train.data.batches.augmented_batches): the augmented image into its slot.
    Its batches are plain contiguous NCHW, as the albumentations pipeline's always were."""

    deferred = False
    contiguous = True

    def __init__(self, size: tuple[int, int], probs: Augment, seed: int) -> None:
        self.transform = train_transform(size, probs, seed=seed)

    def __call__(self, image: np.ndarray, slot: np.ndarray) -> None:
        np.copyto(slot, self.transform(image=image)["image"])
