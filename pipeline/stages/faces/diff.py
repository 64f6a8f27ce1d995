"""How much a fake's face differs from the same box in its original's frame of the same second.

Measure: 1 - SSIM of the two boxes, on grey copies resized to PATCH px and blurred (Gaussian, sigma BLUR).
Why: fake and original are encoded separately, so even untouched pixels differ by compression noise (block edges,
ringing, a shifted DC level). The blur removes most of that high-frequency noise, and SSIM compares local
structure with mean and contrast normalised away, so a brightness offset or a slightly different quantiser does
not read as a change; a swapped or re-rendered face changes structure (edges of eyes, mouth, nose) and does.
A mean absolute difference instead grows with both, so its threshold would depend on the bitrate.
"""
from __future__ import annotations

import cv2
import numpy as np

PATCH = 96
BLUR = 1.0
ASPECT_TOLERANCE = 0.01   # frames of different size are compared after a resize only if aspects match within 1%
MIN_ALIGN_CORR = 0.9      # a crop offset (frames of equal scale, one cut smaller) is accepted above this correlation


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) if image.ndim == 3 else image.astype(np.float32)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window sigma 1.5) of two grey float images in [0, 255]."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (7, 7), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    saa, sbb, sab = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2)
    return float(np.mean(num / den))


def patch(grey: np.ndarray, box) -> np.ndarray | None:
    h, w = grey.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    p = cv2.resize(grey[y0:y1, x0:x1], (PATCH, PATCH), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(p, (0, 0), BLUR)


def box_diff(fake: np.ndarray, original: np.ndarray, box) -> float | None:
    """1 - SSIM of the box in two aligned frames (same size); None for a box too small to compare."""
    a, b = patch(_grey(fake), box), patch(_grey(original), box)
    if a is None or b is None:
        return None
    return max(0.0, 1.0 - ssim(a, b))


def align(fake: np.ndarray, original: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The original frame mapped onto the fake's pixel grid, or (None, why).

    Same size: as is. Same aspect (within 1%): resized. Same scale but one frame cut smaller (FF++ Face2Face and
    NeuralTextures clips can be 832 wide against an 854-wide original): the offset found by normalised
    correlation of grey copies, accepted only above MIN_ALIGN_CORR. Anything else is not guessed.
    """
    fh, fw = fake.shape[:2]
    oh, ow = original.shape[:2]
    if (fh, fw) == (oh, ow):
        return original, None
    if abs((fw / fh) / (ow / oh) - 1) <= ASPECT_TOLERANCE:
        return cv2.resize(original, (fw, fh), interpolation=cv2.INTER_AREA), None
    if fh <= oh and fw <= ow and (fh == oh or fw == ow):
        res = cv2.matchTemplate(_grey(original), _grey(fake), cv2.TM_CCOEFF_NORMED)
        _, best, _, (x, y) = cv2.minMaxLoc(res)
        if best >= MIN_ALIGN_CORR:
            return original[y:y + fh, x:x + fw], None
        return None, f"frame sizes differ ({fw}x{fh} vs original {ow}x{oh}) and no crop offset matches (corr {best:.2f})"
    return None, f"frame sizes differ ({fw}x{fh} vs original {ow}x{oh}), aspect ratios differ: not aligned"
