"""Square face crops: the box grown by a margin on each side, padded (not shifted) at the border, resized."""
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


def crop_face(image: np.ndarray, box, margin: float, size: int) -> np.ndarray:
    """(size, size, 3) RGB crop centred on the box; where the square leaves the image it is black, so the face
    stays centred (a crop shifted inside the frame would move the face off-centre near the border)."""
    h, w = image.shape[:2]
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
