"""MTCNN (facenet-pytorch 2.5.3, weights in the wheel) on a downscaled copy; boxes mapped back to image pixels."""
from __future__ import annotations

import dataclasses
import json
import logging

import cv2
import numpy as np

from dfd.errors import UsageProblem

from pipeline.spec import FaceCrop

log = logging.getLogger(__name__)

# Frames in which nothing is found are detected once more at this multiple of detect_size (small or dark faces).
RETRY_SCALE = 2.0
# Images MTCNN sees at once: bounds its memory (about 60 MB of pyramid per 640 px image) whatever the clip's length,
# and is large enough for a GPU's batch to stay efficient.
DETECT_BATCH = 16


@dataclasses.dataclass
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the given image's pixels
    score: float
    landmarks: np.ndarray | None  # (5, 2) in the given image's pixels

    @property
    def size(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class DeviceError(UsageProblem, RuntimeError):
    """The device asked for is not there."""


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA device available")
    return device


def downscale(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """A copy whose long side is at most `long_side` (never upscaled), and the factor image -> copy."""
    h, w = image.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


class FaceDetector:
    """`.detect(images)` -> per image, faces sorted largest first, filtered by min_score/min_size/max_faces."""

    def __init__(self, settings: FaceCrop, device: str = "auto"):
        from facenet_pytorch import MTCNN

        self.settings = settings
        self.device = resolve_device(device)
        # min_face_size is the smallest face the pyramid searches for, in detect-copy pixels; 20 is facenet's
        # default and the pyramid's cost grows fast below it.
        self.mtcnn = MTCNN(keep_all=True, thresholds=list(settings.thresholds), min_face_size=20, post_process=False,
                           select_largest=True, device=self.device)

    def _raw(self, images: list[np.ndarray], long_side: int) -> list[list[Face]]:
        """MTCNN on copies scaled to `long_side`; images of equal size run as one batch."""
        out: list[list[Face] | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        small, scales = [], []
        for i, img in enumerate(images):
            s, f = downscale(np.ascontiguousarray(img), long_side)
            small.append(s)
            scales.append(f)
            groups.setdefault(s.shape, []).append(i)
        for idx in groups.values():
            batch = np.stack([small[i] for i in idx])
            boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
            for j, i in enumerate(idx):
                faces = []
                if boxes[j] is not None:
                    for b, p, pt in zip(boxes[j], probs[j], points[j]):
                        faces.append(Face(tuple(float(v) / scales[i] for v in b), float(p),
                                          np.asarray(pt, dtype=np.float64) / scales[i]))
                out[i] = faces
        return out  # type: ignore[return-value]

    def _keep(self, faces: list[Face], shape) -> list[Face]:
        h, w = shape[:2]
        kept = []
        for f in faces:
            x0, y0, x1, y1 = f.box
            f.box = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
            if f.score >= self.settings.min_score and f.size >= self.settings.min_size and f.size > 0:
                kept.append(f)
        kept.sort(key=lambda f: -f.area)
        return kept[: self.settings.max_faces]

    def detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces of each RGB uint8 HxWx3 image, largest first, in batches of at most DETECT_BATCH images (MTCNN's
        pyramid of a batch takes memory in proportion to it: a whole clip at once grew with its length)."""
        out: list[list[Face]] = []
        for start in range(0, len(images), DETECT_BATCH):
            out += self._detect(images[start:start + DETECT_BATCH])
        return out

    def _detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """A second pass at RETRY_SCALE x detect_size runs only on the images where the first found nothing (dark
        or small faces)."""
        if not images:
            return []
        size = self.settings.detect_size
        result = [self._keep(f, img.shape) for f, img in zip(self._raw(images, size), images)]
        retry = [i for i, f in enumerate(result)
                 if not f and max(images[i].shape[:2]) > size]
        if retry and RETRY_SCALE > 1:
            again = self._raw([images[i] for i in retry], int(size * RETRY_SCALE))
            for i, faces in zip(retry, again):
                result[i] = self._keep(faces, images[i].shape)
        return result


def faces_from_json(text: str) -> list[Face]:
    """Faces as the detections cache keeps them (faces_to_json) back to Face records."""
    return [Face(tuple(f["box"]), f["score"], None if f["landmarks"] is None else np.asarray(f["landmarks"]))
            for f in json.loads(text)]


def faces_to_json(faces: list[Face]) -> str:
    """Faces as JSON text, one row of the detections cache (boxes, scores, landmarks as plain floats)."""
    return json.dumps([{"box": [float(v) for v in f.box], "score": float(f.score),
                        "landmarks": None if f.landmarks is None else [[float(a), float(b)] for a, b in f.landmarks]}
                       for f in faces])
