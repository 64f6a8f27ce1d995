"""Faces of videos scored from files: the faces stage's own detector, tracker and crop, so that a faces checkpoint
sees at prediction exactly the crops it saw in training."""
from __future__ import annotations

import itertools
import logging
import time
from typing import Sequence

import numpy as np
import simplejpeg

from pipeline.spec import FaceCrop
from pipeline.stages.faces import FaceDetector
from pipeline.stages.faces.api import detections_to_rows
from pipeline.stages.faces.crop import crop_face, encode_jpeg
from pipeline.stages.faces.detect import DETECT_BATCH
from train.data.decode import decode_resized

log = logging.getLogger(__name__)

NO_FACE_NOTE = "no face found: label 0.5"
FACE_ROW_COLUMNS = ("face", "track", "x0", "y0", "x1", "y1", "note")


class FaceCropper:
    """Prediction's faces: the faces stage's own detector, tracker and crop (pipeline.faces.faces_of_video)
    with the checkpoint's FaceCrop, each crop JPEG-encoded at the stage's quality and decoded at the model's
    input size as the training stream did, so the model sees at prediction what it saw in training."""

    def __init__(self, settings: FaceCrop, size: tuple[int, int], device: str = "auto") -> None:
        self.settings = settings
        self.quality = settings.jpeg_quality
        self.size = tuple(size)
        self.detector = FaceDetector(self.settings, device=device)
        self.seconds = 0.0

    def __call__(self, jpegs: Sequence[bytes], seconds: Sequence[float]) -> tuple[list[dict], np.ndarray]:
        """Face rows (frame index into jpegs, face, track, box) and their crops at the model's size (uint8 NHWC).

        `jpegs`: one video's frames as the pipeline encodes them (time order). As in the faces stage, no video's
        decoded frames are all held: they are decoded for detection DETECT_BATCH at a time and released, then
        each frame with a face is decoded again for its crops. Same rows and crops as faces_of_video on all the
        decoded frames (the detector runs the same batches of DETECT_BATCH)."""
        rows = self.rows(jpegs, seconds)
        start = time.perf_counter()
        crops = []
        for t, group in itertools.groupby(rows, key=lambda r: r["frame"]):  # rows come in frame order
            image = decode_frame(jpegs[t])
            for r in group:
                crop = crop_face(image, (r["x0"], r["y0"], r["x1"], r["y1"]), self.settings.margin,
                                 self.settings.face_size, self.settings.box, self.settings.resize)
                crops.append(decode_resized(encode_jpeg(crop, self.quality), self.size))
            del image
        self.seconds += time.perf_counter() - start
        return rows, (np.stack(crops) if crops else np.zeros((0, *self.size, 3), np.uint8))

    def rows(self, jpegs: Sequence[bytes], seconds: Sequence[float]) -> list[dict]:
        """The face rows of one video's frames (frame index into jpegs, face, track, box), no crops: the faces
        stage's detector in batches of DETECT_BATCH, its tracker and gap filling (detections_to_rows)."""
        start = time.perf_counter()
        detections: list = []
        for i in range(0, len(jpegs), DETECT_BATCH):
            detections += self.detector.detect([decode_frame(j) for j in jpegs[i:i + DETECT_BATCH]])
        self.seconds += time.perf_counter() - start
        return detections_to_rows(detections, list(seconds), self.settings)


def decode_frame(jpeg: bytes) -> np.ndarray:
    """A frame as the faces stage decodes it (RGB uint8); ValueError for bytes that are not a JPEG."""
    return simplejpeg.decode_jpeg(jpeg, colorspace="RGB")


def face_rows(cropper: FaceCropper, scorer, item, base: dict) -> list[dict]:
    """One decoded video -> a row per face with its P(fake); a video without any face gets one row with a note
    (and no p_fake: its submission label is the 0.5 prior)."""
    rows, crops = cropper(item.jpegs, item.seconds)
    if not rows:
        log.warning("%s: no face in %d frames; label 0.5", item.path, len(item.seconds))
        return [{**base, "note": NO_FACE_NOTE}]
    p_fake = scorer(crops)
    stem = base["video_id"]
    return [{**base, "key": f"{stem}_{item.indices[r['frame']]:04d}_{r['face']}", "index": item.indices[r["frame"]],
             "second": r["second"], "p_fake": p, "face": r["face"], "track": r["track"], "x0": r["x0"],
             "y0": r["y0"], "x1": r["x1"], "y1": r["y1"], "note": None} for r, p in zip(rows, p_fake)]
