"""Image transforms: small JPEG decode + resize, the report's ten albumentations, ImageNet normalisation."""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations otherwise checks PyPI at import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import simplejpeg  # noqa: E402
import torch  # noqa: E402

from train.config import Augment  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Magnitudes, defined at the report's 720-pixel short side and scaled to the training size where they are in
# pixels, so that augmenting after the resize keeps each augmentation's meaning.
REFERENCE_SHORT_SIDE = 720
BLUR_MAX_KERNEL_AT_REF = 7        # box and median blur: kernel 3..7 px at 720p (about 1% of the short side)
HSV_SHIFT = (5, 10, 5)            # "minor": hue, saturation, value shifts in OpenCV units
CROP_PAD_PERCENT = (-0.1, 0.1)    # crop up to 10% or pad up to 10% per side, then back to size
ROTATE_DEGREES = 10               # fastai max_rotate
ZOOM = (1.0, 1.1)                 # fastai max_zoom
BRIGHTNESS = 0.2                  # fastai max_lighting
CONTRAST = 0.2
JPEG_QUALITY = (60, 95)
BORDER = cv2.BORDER_REFLECT_101   # fastai pads by reflection


def decode_resized(jpeg: bytes, size: tuple[int, int]) -> np.ndarray:
    """JPEG bytes -> uint8 HxWx3 RGB of exactly size=(h, w), decoding at the smallest DCT scale that covers it."""
    h, w = size
    image = simplejpeg.decode_jpeg(jpeg, colorspace="RGB", min_height=h, min_width=w)
    if image.shape[:2] != (h, w):
        shrinking = image.shape[0] >= h and image.shape[1] >= w
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image


def _odd(n: float) -> int:
    k = max(3, int(round(n)))
    return k if k % 2 else k + 1


def blur_limit(size: tuple[int, int]) -> tuple[int, int]:
    """Blur kernel range scaled from 720p to this size (albumentations needs odd kernels >= 3)."""
    return 3, _odd(BLUR_MAX_KERNEL_AT_REF * min(size) / REFERENCE_SHORT_SIDE)


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


def to_chw(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> uint8 3xHxW tensor (a copy, contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N)x3xHxW -> float, ImageNet-normalised; runs on whatever device the batch is on."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(-1, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(-1, 1, 1) * 255
    return batch.to(torch.float32, copy=True).sub_(mean).div_(std)  # in place on one copy (keeps the strides)


def denormalize(batch: torch.Tensor) -> torch.Tensor:
    """Inverse of normalize, clamped to uint8 (for figures)."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(-1, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(-1, 1, 1) * 255
    return (batch.float() * std + mean).clamp(0, 255).to(torch.uint8)


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
