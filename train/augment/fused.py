"""The report's ten augmentations, fused: the same draws as `train.augment.reference`, done with fewer passes.

What stays the same as the plain albumentations pipeline (`augment_impl = "albumentations"`):
- each augmentation is drawn independently with its recipe probability, in the same order, with the same parameter
  ranges (`train.augment.params` holds the magnitudes);
- blur and median blur are the same OpenCV calls with the same odd kernels; HSV, brightness and contrast compute
  their lookup tables with albucore, the very functions albumentations calls, so a pixel maps to the same value;
- the JPEG round trip encodes with OpenCV at the drawn quality exactly like albumentations (an RGB array handed to
  cv2.imencode as is), and decodes the same bytes with libjpeg-turbo (simplejpeg, ~2.5x faster than cv2.imdecode).

What changes, and why it keeps the meaning:
- when rotate or zoom is drawn, flip, crop-and-pad, rotate and zoom are one affine matrix (the product of the
  albumentations matrices, in their order) and one `cv2.warpAffine` with bilinear interpolation and reflected
  borders, instead of up to three resamplings (blurring the picture three times) plus a flip. Where the
  sequential pipeline resamples a crop whose borders it then mirrors, the fused warp reads the real frame pixels
  beyond the crop (and mirrors only at the frame's own edge), so corner fill after a crop + rotation can differ;
  elsewhere the two agree within a small pixel error (tests/train/test_fused_augment.py). Crop-and-pad without them is
  albumentations' own crop, pad and resize (exact, 3x cheaper than a warp at 720p); a flip alone is a flip;
- HSV shifts are one 3-channel LUT between the two colour conversions (no split/merge); brightness and contrast
  are composed into one LUT (exact: both are per-pixel maps of uint8), applied in place with stringzilla;
- the result is written straight into the batch buffer (NHWC uint8), so the batch needs no transpose or stack:
  the trainer gets an NCHW view with channels_last strides (see `train.data.batches.augmented_batches`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import albucore
import cv2
import numpy as np
import simplejpeg

from train.augment.params import (BORDER, BRIGHTNESS, CONTRAST, CROP_PAD_PERCENT, HSV_SHIFT, JPEG_QUALITY,
                                  ROTATE_DEGREES, ZOOM, blur_limit)
from train.config import AUGMENTS, Augment
_ARANGE = np.arange(256, dtype=np.uint8).reshape(1, 256)


@dataclass
class Draw:
    """One image's random parameters; None (False for hflip) where that augmentation was not drawn."""

    blur: int | None = None                      # odd kernel
    median_blur: int | None = None               # odd kernel
    hflip: bool = False
    hsv: tuple[float, float, float] | None = None  # hue, saturation, value shifts (OpenCV units)
    crop_pad: tuple[float, float, float, float] | None = None  # top, right, bottom, left fractions (<0 crop, >0 pad)
    rotate: float | None = None                  # degrees
    zoom: float | None = None                    # scale
    brightness: float | None = None              # beta as a fraction of 255
    contrast: float | None = None                # alpha - 1
    jpeg: int | None = None                      # quality

    def names(self) -> set[str]:
        return {n for n in AUGMENTS if (getattr(self, n) is not None and getattr(self, n) is not False)}


def _odd(rng: random.Random, low: int, high: int) -> int:
    """albumentations' sample_odd_from_range: an odd kernel in [low, high], uniformly."""
    low = max(3, low + (low % 2 == 0))
    high = max(3, high + (high % 2 == 0))
    return rng.randint(low // 2, high // 2) * 2 + 1


def sample(rng: random.Random, probs: Augment, size: tuple[int, int]) -> Draw:
    """Draw every augmentation with its probability and parameter range, in the albumentations pipeline's order."""
    d = Draw()
    kernel = blur_limit(size)
    if rng.random() < probs.blur:
        d.blur = _odd(rng, *kernel)
    if rng.random() < probs.median_blur:
        d.median_blur = _odd(rng, *kernel)
    if rng.random() < probs.hflip:
        d.hflip = True
    if rng.random() < probs.hsv:
        d.hsv = tuple(rng.uniform(-s, s) for s in HSV_SHIFT)
    if rng.random() < probs.crop_pad:
        d.crop_pad = tuple(rng.uniform(*CROP_PAD_PERCENT) for _ in range(4))
    if rng.random() < probs.rotate:
        d.rotate = rng.uniform(-ROTATE_DEGREES, ROTATE_DEGREES)
    if rng.random() < probs.zoom:
        d.zoom = rng.uniform(*ZOOM)
    if rng.random() < probs.brightness:
        d.brightness = rng.uniform(-BRIGHTNESS, BRIGHTNESS)
    if rng.random() < probs.contrast:
        d.contrast = rng.uniform(-CONTRAST, CONTRAST)
    if rng.random() < probs.jpeg:
        d.jpeg = rng.randint(*JPEG_QUALITY)
    return d


# Geometry: forward (source -> destination) 3x3 matrices, composed in the pipeline's order ---------------------


def _center_affine(size: tuple[int, int], scale: float = 1.0, degrees: float = 0.0) -> np.ndarray:
    """albumentations' create_affine_transformation_matrix for a rotation/scale about the image centre."""
    h, w = size
    cx, cy = w / 2 - 0.5, h / 2 - 0.5
    a = np.deg2rad(degrees % 360)
    rot = np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return (np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]]) @ rot @ np.diag([scale, scale, 1.0])
            @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]]))


def crop_pad_sides(percent: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[list[int], list[int]]:
    """albumentations CropAndPad's integer (crop, pad) per side (top, right, bottom, left) for these fractions."""
    h, w = size
    sides = [int(percent[0] * h), int(percent[1] * w), int(percent[2] * h), int(percent[3] * w)]
    pad = [max(v, 0) for v in sides]
    crop = [-min(v, 0) for v in sides]  # |fraction| <= 0.1: never crops the image away (no _prevent_zero case)
    return crop, pad


def _crop_pad_matrix(percent, size) -> np.ndarray:
    """Crop/pad by whole pixels, then cv2.resize back to size (pixel-centre convention), as one affine map."""
    h, w = size
    (ct, cr, cb, cl), (pt, pr, pb, pl) = crop_pad_sides(percent, size)
    rows, cols = h - ct - cb + pt + pb, w - cl - cr + pl + pr
    if (rows, cols) == (h, w) and ct == pt and cl == pl:
        return np.eye(3)
    sx, sy = w / cols, h / rows
    # x in the source -> u = x - cl + pl in the cropped/padded image -> (u + 0.5) * sx - 0.5 after the resize
    return np.array([[sx, 0, (pl - cl + 0.5) * sx - 0.5], [0, sy, (pt - ct + 0.5) * sy - 0.5], [0, 0, 1]])


def geometry(d: Draw, size: tuple[int, int]) -> np.ndarray | None:
    """The forward matrix of flip -> crop-and-pad -> rotate -> zoom, or None when none was drawn."""
    h, w = size
    m = np.eye(3)
    if d.hflip:
        m = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]]) @ m
    if d.crop_pad is not None:
        m = _crop_pad_matrix(d.crop_pad, size) @ m
    if d.rotate is not None:
        m = _center_affine(size, degrees=d.rotate) @ m
    if d.zoom is not None:
        m = _center_affine(size, scale=d.zoom) @ m
    return None if np.allclose(m, np.eye(3), atol=1e-12) else m


# Colour: lookup tables computed by the functions albumentations uses ------------------------------------------


def hsv_lut(hue: float, sat: float, val: float) -> np.ndarray:
    """A 256x1x3 LUT for an OpenCV HSV image: albumentations' shift_hsv (sat stays 0 where it was 0)."""
    lut_h = np.mod(np.arange(0, 256, dtype=np.int16) + hue, 180).astype(np.uint8) if hue != 0 else _ARANGE[0]
    lut_s = albucore.add_constant(_ARANGE.copy(), sat)[0] if sat != 0 else _ARANGE[0].copy()
    lut_s[0] = 0  # albumentations resets the saturation of grey pixels (S == 0) after the shift
    lut_v = albucore.add_constant(_ARANGE.copy(), val)[0] if val != 0 else _ARANGE[0]
    return np.ascontiguousarray(np.stack([lut_h, lut_s, lut_v], axis=-1).reshape(256, 1, 3))


def brightness_contrast_lut(brightness: float | None, contrast: float | None) -> np.ndarray | None:
    """The two RandomBrightnessContrast steps (brightness first) composed into one uint8 LUT."""
    lut = _ARANGE[0]
    if brightness is not None:
        lut = albucore.multiply_add(_ARANGE.copy(), 1.0, brightness * 255)[0]
    if contrast is not None:
        lut = albucore.multiply_add(_ARANGE.copy(), 1.0 + contrast, 0.0)[0][lut]
    return None if brightness is None and contrast is None else np.ascontiguousarray(lut)


def jpeg_roundtrip(image: np.ndarray, quality: int, out: np.ndarray | None = None) -> np.ndarray:
    """albumentations' ImageCompression: cv2.imencode at `quality` (array as is), decoded again (libjpeg-turbo),
    into `out` if given."""
    ok, data = cv2.imencode(".jpg", image, (int(cv2.IMWRITE_JPEG_QUALITY), int(quality)))
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    # BGR: the byte order cv2 encoded, so the channels come back where they were
    decoded = simplejpeg.decode_jpeg(data, colorspace="BGR", buffer=out)
    return decoded if out is None else out


def crop_pad_resize(image: np.ndarray, percent, out: np.ndarray | None = None) -> np.ndarray:
    """Crop-and-pad alone, done as albumentations does it (whole-pixel crop, reflected pad, cv2.resize back):
    exact, and 3x cheaper than a general warp at 720p."""
    size = image.shape[:2]
    crop, pad = crop_pad_sides(percent, size)
    if not any(crop + pad):
        return image
    (ct, cr, cb, cl), (pt, pr, pb, pl) = crop, pad
    x = image[ct:size[0] - cb, cl:size[1] - cr]
    if any(pad):
        x = cv2.copyMakeBorder(x, pt, pb, pl, pr, borderType=BORDER)
    if x.shape[:2] == size:  # as much padded as cropped: albumentations' resize is then a copy
        return x
    return cv2.resize(x, (size[1], size[0]), dst=out, interpolation=cv2.INTER_LINEAR)


def apply(image: np.ndarray, d: Draw, out: np.ndarray | None = None) -> np.ndarray:
    """Apply one draw to a uint8 HxWx3 RGB image (not modified); the result goes to `out` if given."""
    size = image.shape[:2]
    x = image
    if d.blur is not None:
        x = cv2.blur(x, (d.blur, d.blur), borderType=BORDER)
    if d.median_blur is not None:
        x = cv2.medianBlur(x, d.median_blur)
    if d.hsv is not None and any(d.hsv):
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        cv2.LUT(hsv, hsv_lut(*d.hsv), dst=hsv)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=hsv)
    lut = brightness_contrast_lut(d.brightness, d.contrast)
    last_is_warp = lut is None and d.jpeg is None
    dst = out if last_is_warp else None
    if d.rotate is not None or d.zoom is not None:  # one warp for all the geometric ones drawn
        m = geometry(d, size)
        x = cv2.warpAffine(x, m[:2], (size[1], size[0]), dst=dst, flags=cv2.INTER_LINEAR, borderMode=BORDER)
    elif d.crop_pad is not None:  # axis-aligned: flip (cheap), then albumentations' own crop, pad and resize
        if d.hflip:
            x = cv2.flip(x, 1)
        x = crop_pad_resize(x, d.crop_pad, out=dst)
    elif d.hflip:
        x = cv2.flip(x, 1, dst=dst)
    if lut is not None:  # in place, on a copy of its own (the output slot where nothing comes after)
        target = out if out is not None and d.jpeg is None else (np.empty_like(x) if x is image else x)
        if target is not x:
            np.copyto(target, x)
        x = albucore.sz_lut(target, lut, inplace=True)  # stringzilla's byte translate: ~3x faster than cv2.LUT
    if d.jpeg is not None:
        x = jpeg_roundtrip(x, d.jpeg, out=out)
    if out is not None and x is not out:
        np.copyto(out, x)
        return out
    return x if x is not image else image.copy()


class FusedAugment:
    """Callable: uint8 HxWx3 RGB at `size` -> augmented uint8 HxWx3 RGB (written into `out` when given); as a batch
    writer (train.data.batches.augmented_batches) it keeps the batch's channels_last strides."""

    deferred = False
    contiguous = False

    def __init__(self, size: tuple[int, int], probs: Augment, seed: int | None = None) -> None:
        self.size, self.probs = tuple(size), probs
        self.rng = random.Random(seed)

    def draw(self) -> Draw:
        return sample(self.rng, self.probs, self.size)

    def __call__(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return apply(image, self.draw(), out)
