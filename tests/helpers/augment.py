"""Test- and benchmark-only augmentation helpers, kept out of the shipped code: `only` isolates augmentations,
`albumentations_for` is the plain albumentations pipeline one fused draw stands for (the reference the fused and
device paths are checked and benchmarked against), `eval_transform` the old no-augmentation transform."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from train.augment.fused import Draw
from train.augment.params import BORDER
from train.config import AUGMENTS, Augment
from train.data.decode import to_chw
from train.model import normalize


def only(*names: str) -> Augment:
    """These augmentations on every image (p = 1), the others off: how benchmarks and tests isolate them."""
    unknown = set(names) - set(AUGMENTS)
    if unknown:
        raise ValueError(f"unknown augmentations {sorted(unknown)}; known: {', '.join(AUGMENTS)}")
    return Augment(**{name: (1.0 if name in names else 0.0) for name in AUGMENTS})


def albumentations_for(d: Draw):
    """The plain albumentations pipeline with this draw's parameters fixed (degenerate ranges, p=1): the reference
    the fused path is tested and benchmarked against."""
    import albumentations as A

    t = []
    if d.blur:
        t.append(A.Blur(blur_limit=(d.blur, d.blur), p=1))
    if d.median_blur:
        t.append(A.MedianBlur(blur_limit=(d.median_blur, d.median_blur), p=1))
    if d.hflip:
        t.append(A.HorizontalFlip(p=1))
    if d.hsv:
        t.append(A.HueSaturationValue(*[(v, v) for v in d.hsv], p=1))
    if d.crop_pad:
        t.append(A.CropAndPad(percent=tuple((v, v) for v in d.crop_pad), keep_size=True, border_mode=BORDER, p=1))
    if d.rotate is not None:
        t.append(A.Rotate(limit=(d.rotate, d.rotate), border_mode=BORDER, p=1))
    if d.zoom is not None:
        t.append(A.Affine(scale=(d.zoom, d.zoom), keep_ratio=True, border_mode=BORDER, p=1))
    if d.brightness is not None:
        t.append(A.RandomBrightnessContrast(brightness_limit=(d.brightness, d.brightness), contrast_limit=0, p=1))
    if d.contrast is not None:
        t.append(A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(d.contrast, d.contrast), p=1))
    if d.jpeg:
        t.append(A.ImageCompression(quality_range=(d.jpeg, d.jpeg), p=1))
    return A.Compose(t, strict=True)


def eval_transform(image_size: int | tuple[int, int]):
    """A callable: decoded uint8 HxWx3 RGB -> float 3xHxW ImageNet-normalised tensor at image_size (no augmentation)."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)

    def transform(image: np.ndarray) -> torch.Tensor:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 RGB array, got {image.dtype} {image.shape}")
        if image.shape[:2] != size:
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return normalize(to_chw(image))

    return transform
