"""Self-blended images (SBI, Shiohara & Yamasaki, CVPR 2022): a real face blended with a transformed copy of itself
through a deformed face mask, a "fake" whose only traces are a blending boundary and a source/target mismatch.

One draw, all from one numpy Generator (so a seed gives the same fakes): source and target are copies of the crop;
one of them gets colour and frequency changes (RGB shift, hue/saturation/value, brightness and contrast, then a
downscale or a sharpen); the source and the mask get a small random resize and shift; the mask is the convex hull of
a face outline built from the faces stage's five MTCNN landmarks (eyes, nose, mouth corners), elastically deformed,
then blurred twice by random kernels (the first blur's partial values zeroed: an eroded, soft edge) and scaled by a
blend ratio drawn from SBI's {0.25, 0.5, 0.75, 1, 1, 1}. The recipe's usual augmentations run afterwards.

The operations are written with OpenCV on one Generator rather than through an albumentations pipeline: the
albumentations transforms draw from their own random state, so draws would not follow the stream's seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.stages.faces.crop import crop_window

SYNTHETIC_FAKES = ("sbi",)
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # SBI's dynamic blend ratio
# Where MTCNN's five points sit in its box on average (x, y as a share of the box): the stand-in for a face the
# faces stage kept without landmarks (a gap filled inside a track).
MEAN_LANDMARKS = np.array([[0.31, 0.40], [0.69, 0.40], [0.50, 0.58], [0.35, 0.77], [0.65, 0.77]])


@dataclass(frozen=True)
class SelfBlend:
    image: np.ndarray   # uint8 HxWx3: the blended face
    mask: np.ndarray    # float32 HxW in [0, 1]: the deformed, blurred face mask (before the blend ratio)
    ratio: float        # the blend ratio: pixel = source * mask * ratio + target * (1 - mask * ratio)
    source_changed: bool  # the colour and frequency changes went to the source (else to the target)


def landmarks_in_crop(meta: dict, margin: float) -> np.ndarray:
    """A face row (faces.parquet / the crop's json member) -> its five landmarks as (5, 2) shares of the square crop
    ([0, 1] x [0, 1]); a face without landmarks gets MEAN_LANDMARKS placed in its box."""
    x0, y0, x1, y1 = (float(meta[k]) for k in ("x0", "y0", "x1", "y1"))
    cx0, cy0, side = crop_window((x0, y0, x1, y1), margin)
    points = meta.get("landmarks")
    if points is not None and len(points) == 10 and np.all(np.isfinite(points)):
        pts = np.asarray(points, dtype=np.float64).reshape(5, 2)
    else:
        pts = np.array([x0, y0]) + MEAN_LANDMARKS * np.array([x1 - x0, y1 - y0])
    return (pts - np.array([cx0, cy0])) / side


def face_outline(points: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Five landmarks in pixels -> the points of a face outline around them (temples, cheeks, jaw, chin, brows or
    forehead), whose convex hull is the mask. With `rng`, its width, height and top are varied as SBI varies its
    hull types; without, the middle of those ranges."""
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    down = mouth - eyes
    d = max(float(np.hypot(*down)), 1.0)
    u = -down / d                                         # up the face
    across = points[1] - points[0]
    w = max(float(np.hypot(*across)), 1.0)
    r = across / w                                        # from the left eye to the right one
    wide, tall, top = (1.0, 1.0, 0.55) if rng is None else (rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15),
                                                            rng.uniform(0.3, 0.8))
    chin = mouth - u * 0.8 * d * tall
    outline = [eyes + u * top * d + s * r * 0.55 * w * wide for s in (-1, 1)]       # brows or forehead
    outline += [eyes + u * 0.2 * d + s * r * 0.95 * w * wide for s in (-1, 1)]      # temples
    outline += [mouth + s * r * 0.95 * w * wide for s in (-1, 1)]                   # cheeks
    outline += [chin + u * 0.2 * d + s * r * 0.55 * w * wide for s in (-1, 1)]      # jaw
    outline += [chin]
    return np.vstack([points, np.array(outline)])


def hull_mask(shape: tuple[int, int], outline: np.ndarray) -> np.ndarray:
    """float32 HxW: 1 inside the convex hull of the outline points (pixels), 0 outside."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(outline).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(np.float32)


def _lut(values: np.ndarray) -> np.ndarray:
    """Per-channel lookup tables (3, 256) of float values -> cv2.LUT's (1, 256, 3) uint8 table, rounded and clipped."""
    return np.clip(np.round(values), 0, 255).astype(np.uint8).T[None].copy()


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB shift, hue/saturation/value, brightness and contrast (each a per-channel lookup table), then a downscale
    or a sharpen (SBI's source transforms)."""
    levels = np.arange(256, dtype=np.float64)
    out = cv2.LUT(image, _lut(levels[None] + rng.uniform(-20, 20, (3, 1))))
    dh, ds, dv = rng.uniform(-5, 5), rng.uniform(-25, 25), rng.uniform(-25, 25)
    hue = np.where(levels < 180, np.round(levels + dh) % 180, levels)  # OpenCV's 8-bit hue is 0..179
    hsv = cv2.LUT(cv2.cvtColor(out, cv2.COLOR_RGB2HSV), _lut(np.stack([hue, levels + ds, levels + dv])))
    contrast, brightness = 1 + rng.uniform(-0.1, 0.1), 255 * rng.uniform(-0.1, 0.1)
    ramp = (levels - 127.5) * contrast + 127.5 + brightness
    out = cv2.LUT(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), _lut(np.stack([ramp] * 3)))
    h, w = out.shape[:2]
    if rng.random() < 0.5:
        factor = rng.uniform(2, 4)
        small = cv2.resize(out, (max(1, int(w / factor)), max(1, int(h / factor))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    alpha, blurred = rng.uniform(0.2, 0.5), cv2.GaussianBlur(out, (0, 0), 1.0)
    return cv2.addWeighted(out, 1 + alpha, blurred, -alpha, 0)


def _affine(source: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same small random resize (0.95..1/0.95) and shift (3% across, 1.5% down) of source and mask."""
    h, w = mask.shape
    scale = rng.uniform(0.95, 1 / 0.95)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    m[:, 2] += (rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.015, 0.015) * h)
    warp = dict(dsize=(w, h), borderMode=cv2.BORDER_REFLECT_101)
    return (cv2.warpAffine(source, m, flags=cv2.INTER_LINEAR, **warp),
            cv2.warpAffine(mask, m, flags=cv2.INTER_LINEAR, **warp))


ELASTIC_STEP = 4  # the displacement fields are drawn on a grid this much coarser and resized up (they are smooth)


def _elastic(mask: np.ndarray, rng: np.random.Generator, alpha: float = 50, sigma: float = 7) -> np.ndarray:
    """An elastic deformation (random displacement fields smoothed by a Gaussian of sigma px), scaled from SBI's
    256 px; the fields are drawn at 1/ELASTIC_STEP of the size (4x less blurred noise: the same displacements)."""
    h, w = mask.shape
    k = max(h, w) / 256
    small = (max(1, h // ELASTIC_STEP), max(1, w // ELASTIC_STEP))
    fields = []
    for _ in range(2):
        noise = cv2.GaussianBlur(rng.uniform(-1, 1, small).astype(np.float32), (0, 0), sigma * k / ELASTIC_STEP)
        fields.append(cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR) * (alpha * k / ELASTIC_STEP))
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, gx + fields[0], gy + fields[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)


def _blurred(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's blend mask: blurred by a random odd kernel, everything below the peak zeroed (eroded), blurred again by
    another, normalised to a peak of 1; kernels drawn at a 256 px scale."""
    h, w = mask.shape
    k = max(h, w) / 256
    out = mask
    for step in range(2):
        size = int(rng.integers(5, 27) * k) | 1
        out = cv2.GaussianBlur(out, (size, size), 0)
        peak = float(out.max())
        if peak <= 0:
            return out
        out = out / peak
        if step == 0:
            out[out < 1] = 0
    return out.astype(np.float32)


def self_blend(image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> SelfBlend:
    """uint8 HxWx3 face and its five landmarks as shares of the image -> a self-blended fake of it."""
    h, w = image.shape[:2]
    pixels = np.asarray(points, dtype=np.float64) * np.array([w, h])
    mask = hull_mask((h, w), face_outline(pixels, rng))
    source, target = image.copy(), image.copy()
    source_changed = bool(rng.random() < 0.5)
    if source_changed:
        source = _colour(source, rng)
    else:
        target = _colour(target, rng)
    source, mask = _affine(source, mask, rng)
    mask = _blurred(_elastic(mask, rng), rng)
    ratio = float(rng.choice(BLEND_RATIOS))
    weight = np.ascontiguousarray(mask * np.float32(ratio))
    blended = cv2.blendLinear(source, target, weight, 1 - weight)  # source * w + target * (1 - w), rounded
    return SelfBlend(blended, mask, ratio, source_changed)
