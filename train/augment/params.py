"""The recipe's augmentation magnitudes: every implementation (reference, fused, device) draws from these."""
from __future__ import annotations

import cv2

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



def _odd(n: float) -> int:
    k = max(3, int(round(n)))
    return k if k % 2 else k + 1


def blur_limit(size: tuple[int, int]) -> tuple[int, int]:
    """Blur kernel range scaled from 720p to this size (albumentations needs odd kernels >= 3)."""
    return 3, _odd(BLUR_MAX_KERNEL_AT_REF * min(size) / REFERENCE_SHORT_SIDE)


