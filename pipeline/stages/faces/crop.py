"""Face crops by the box rules of pipeline.spec.FACE_BOXES: square (the box grown by a margin on each side, padded,
not shifted, at the border), per_side and scale (the authors' rules, clipped to the frame), then resized to the
crop size by stretching or isotropically with a centred zero pad (FACE_RESIZES)."""
from __future__ import annotations

import cv2
import numpy as np


def crop_window(box, margin: float) -> tuple[int, int, int]:
    """(x0, y0, side) of the square crop in image pixels (may reach outside the image)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    side_i = max(1, int(round(side)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return int(round(cx - side_i / 2)), int(round(cy - side_i / 2)), side_i


def clipped_window(box, margin: float, rule: str, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a per_side or scale crop, in image pixels, clipped to the image (may be empty). The box
    is rounded to integer pixels first; per_side grows it by int(w * margin) and int(h * margin) on each side (the
    DFDC winner's w // 3), scale takes a square of side round(long side * (1 + 2 margin)) around its centre."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if rule == "per_side":
        pw, ph = int((x1 - x0) * margin), int((y1 - y0) * margin)
        x0, y0, x1, y1 = x0 - pw, y0 - ph, x1 + pw, y1 + ph
    elif rule == "scale":
        side = max(1, int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))))
        x0, y0 = int(round((x0 + x1) / 2 - side / 2)), int(round((y0 + y1) / 2 - side / 2))
        x1, y1 = x0 + side, y0 + side
    else:
        raise ValueError(f"unknown box rule {rule!r}")
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def isotropic_pad(region: np.ndarray, size: int) -> np.ndarray:
    """The long side resized to `size` (area to shrink, cubic to grow; the short side truncated to an integer),
    zero-padded to size x size with the image centred (the DFDC winner's isotropically_resize_image and
    put_to_center)."""
    h, w = region.shape[:2]
    if max(h, w) != size:
        scale = size / max(h, w)
        nw, nh = (size, int(h * scale)) if w > h else (int(w * scale), size)
        region = cv2.resize(region, (max(1, nw), max(1, nh)),
                            interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    out = np.zeros((size, size, region.shape[2]), dtype=region.dtype)
    top, left = (size - region.shape[0]) // 2, (size - region.shape[1]) // 2
    out[top:top + region.shape[0], left:left + region.shape[1]] = region
    return out


def crop_face(image: np.ndarray, box, margin: float, size: int, rule: str = "square",
              resize: str = "stretch") -> np.ndarray:
    """(size, size, 3) RGB crop of the box by `rule` (pipeline.spec.FACE_BOXES), resized by `resize`. square: centred
    on the box; where the square leaves the image it is black, so the face stays centred (a crop shifted inside
    the frame would move the face off-centre near the border)."""
    h, w = image.shape[:2]
    if rule != "square":
        x0, y0, x1, y1 = clipped_window(box, margin, rule, w, h)
        if x1 <= x0 or y1 <= y0:
            return np.zeros((size, size, image.shape[2]), dtype=image.dtype)
        region = image[y0:y1, x0:x1]
        if resize == "isotropic_pad":
            return isotropic_pad(region, size)
        interp = cv2.INTER_AREA if max(region.shape[:2]) > size else cv2.INTER_LINEAR
        return cv2.resize(region, (size, size), interpolation=interp)
    x, y, side = crop_window(box, margin)
    out = np.zeros((side, side, image.shape[2]), dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(0, x), max(0, y), min(w, x + side), min(h, y + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y:sy1 - y, sx0 - x:sx1 - x] = image[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interp)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    import simplejpeg

    return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=quality, colorspace="RGB")


def decode_jpeg(data: bytes) -> np.ndarray:
    """RGB uint8; raises ValueError for data that is not a decodable JPEG."""
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    except Exception as exc:  # simplejpeg raises plain ValueError/RuntimeError subclasses
        raise ValueError(f"JPEG does not decode: {exc}") from exc
