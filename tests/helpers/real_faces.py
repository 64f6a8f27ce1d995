"""Real faces for tests and figures: frames of the genuine clips in ../shared/data, MTCNN (the faces stage's
detector), the faces stage's crop, and each face's row as faces.parquet stores it (box and five landmarks)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from helpers.paths import SHARED_DATA
from pipeline.spec import FaceCrop
from pipeline.stages.faces import FaceDetector, crop_face

REAL_CLIPS = (SHARED_DATA / "ffpp_sample/original_sequences/youtube/c23/videos/004.mp4",
              SHARED_DATA / "ffpp_sample/original_sequences/youtube/c23/videos/519.mp4",
              SHARED_DATA / "dfdc_sample/dfdc_train_part_0/lynaeydofd.mp4")
MARGIN = FaceCrop().margin


def frame_at(path: Path, second: float) -> np.ndarray:
    """One RGB frame of a clip (ffmpeg seeks to the second)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(second), "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                           check=True).stdout.strip().split(",")
    w, h = int(probe[0]), int(probe[1])
    return np.frombuffer(out[:w * h * 3], np.uint8).reshape(h, w, 3)


def real_faces(size: int = 224, seconds: tuple[float, ...] = (1.0, 4.0)) -> list[tuple[np.ndarray, dict]]:
    """(crop at size x size, its face row: x0, y0, x1, y1 and the ten landmark values in frame pixels) for the
    largest face of each real clip at each second."""
    detector = FaceDetector(FaceCrop(), device="cpu")
    faces = []
    for clip in REAL_CLIPS:
        for second in seconds:
            frame = frame_at(clip, second)
            found = detector.detect([frame])[0]
            if not found:
                continue
            face = found[0]
            row = dict(zip(("x0", "y0", "x1", "y1"), face.box),
                       landmarks=[float(v) for v in np.asarray(face.landmarks).reshape(-1)])
            faces.append((crop_face(frame, face.box, MARGIN, size), row))
    return faces
