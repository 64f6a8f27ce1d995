"""Faces of videos scored from files: the faces stage's own detector, tracker and crop, so that a faces checkpoint
sees at prediction exactly the crops it saw in training."""
from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

from pipeline.faces import FaceDetector, FaceSettings, faces_of_video
from pipeline.faces.crop import encode_jpeg
from train.data.decode import decode_resized

log = logging.getLogger(__name__)

NO_FACE_NOTE = "no face found: label 0.5"
FACE_ROW_COLUMNS = ("face", "track", "x0", "y0", "x1", "y1", "note")


class FaceCropper:
    """Prediction's faces: the faces stage's own detector, tracker and crop (pipeline.faces.faces_of_video)
    with the checkpoint's FaceSettings, each crop JPEG-encoded at the stage's quality and decoded at the model's
    input size as the training stream did, so the model sees at prediction what it saw in training."""

    def __init__(self, settings: dict, size: tuple[int, int], device: str = "auto") -> None:
        self.settings = FaceSettings.from_dict(settings)
        self.quality = int(settings.get("jpeg_quality", 90))
        self.size = tuple(size)
        self.detector = FaceDetector(self.settings, device=device)
        self.seconds = 0.0

    def __call__(self, images: Sequence[np.ndarray], seconds: Sequence[float]) -> tuple[list[dict], np.ndarray]:
        """Face rows (frame index into images, face, track, box) and their crops at the model's size (uint8 NHWC)."""
        start = time.perf_counter()
        rows = faces_of_video(list(images), list(seconds), self.detector, self.settings)
        crops = [decode_resized(encode_jpeg(r.pop("crop"), self.quality), self.size) for r in rows]
        self.seconds += time.perf_counter() - start
        return rows, (np.stack(crops) if crops else np.zeros((0, *self.size, 3), np.uint8))


def face_rows(cropper: FaceCropper, scorer, item, base: dict) -> list[dict]:
    """One decoded video -> a row per face with its P(fake); a video without any face gets one row with a note
    (and no p_fake: its submission label is the 0.5 prior)."""
    rows, crops = cropper(list(item.images), item.seconds)
    if not rows:
        log.warning("%s: no face in %d frames; label 0.5", item.path, len(item.seconds))
        return [{**base, "note": NO_FACE_NOTE}]
    p_fake = scorer(crops)
    stem = base["video_id"]
    return [{**base, "key": f"{stem}_{item.indices[r['frame']]:04d}_{r['face']}", "index": item.indices[r["frame"]],
             "second": r["second"], "p_fake": p, "face": r["face"], "track": r["track"], "x0": r["x0"],
             "y0": r["y0"], "x1": r["x1"], "y1": r["y1"], "note": None} for r, p in zip(rows, p_fake)]
