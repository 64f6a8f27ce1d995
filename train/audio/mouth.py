"""The mouth of one video's speaker at the native frame rate: a `MouthTube` (T grey mouth crops and their times).

From a span decoded at the native rate (pipeline.ffmpeg.native): MTCNN (the faces stage's detector) on every
DETECT_EVERY_S, its boxes linked into tracks (pipeline.stages.faces.track), the one face followed, its five landmarks
interpolated to every frame, and the mouth box cut from each frame's luma. A face tube of the clips stage (T face
crops with their landmarks and times) gives the same MouthTube through `mouth_tube`, so the measure
(train.audio.sync) does not care where its crops came from.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from dfd.errors import ToolkitError
from pipeline.spec import FaceCrop
from pipeline.stages.faces import track

DETECT_EVERY_S = 0.2      # the detector runs on one frame in this many seconds; landmarks between are interpolated
MIN_FACE_SHARE = 0.5      # the face must be found in at least this share of the detected frames
SECOND_FACE = 0.5         # another track seen at least this share as often, at least this share as large: several faces
MOUTH_SIZE = (32, 48)     # crops are resized to (h, w)
MOUTH_BOX = (1.3, 0.9)    # the mouth box: width, height in eye distances, centred on the mouth corners' middle
SYNC_FACES = FaceCrop(min_size=20)  # the mouth needs a face, not a face the picture models could judge


class NoMouth(ToolkitError, ValueError):
    """No one mouth to follow in the span (no face, several faces); the message says which."""


@dataclasses.dataclass
class MouthTube:
    """T grey mouth crops (T, h, w) float32 and their times (seconds in the video)."""

    crops: np.ndarray
    times: np.ndarray

    @property
    def fps(self) -> float:
        gaps = np.diff(self.times)
        return float(1.0 / np.median(gaps)) if len(gaps) else 0.0


def mouth_boxes(landmarks: np.ndarray) -> np.ndarray:
    """(T, 5, 2) MTCNN landmarks (eyes, nose, mouth corners) -> (T, 4) mouth boxes x0, y0, x1, y1."""
    eyes = np.linalg.norm(landmarks[:, 1] - landmarks[:, 0], axis=1)
    centre = (landmarks[:, 3] + landmarks[:, 4]) / 2
    half = np.stack([MOUTH_BOX[0] * eyes / 2, MOUTH_BOX[1] * eyes / 2], axis=1)
    return np.concatenate([centre - half, centre + half], axis=1)


def mouth_tube(grey_frames, landmarks: np.ndarray, times: np.ndarray) -> MouthTube:
    """Mouth crops of grey frames (a sequence of HxW uint8: a span's luma, or a face tube's crops) given each frame's
    five landmarks in that frame's pixels."""
    crops = []
    for frame, (x0, y0, x1, y1) in zip(grey_frames, mouth_boxes(landmarks)):
        h, w = frame.shape[:2]
        x0, x1 = int(np.clip(round(x0), 0, w - 2)), int(np.clip(round(x1), 1, w))
        y0, y1 = int(np.clip(round(y0), 0, h - 2)), int(np.clip(round(y1), 1, h))
        patch = frame[y0:max(y1, y0 + 2), x0:max(x1, x0 + 2)]
        crops.append(cv2.resize(patch, MOUTH_SIZE[::-1], interpolation=cv2.INTER_AREA).astype(np.float32))
    return MouthTube(np.stack(crops), np.asarray(times, np.float64))


def follow_face(detections: list, n_frames: int, every: int) -> np.ndarray:
    """The one face's landmarks at each of n_frames frames, from detections on frames 0, every, 2*every, ...;
    NoMouth when no face is found often enough or another face is there about as often and as large."""
    ids = track.link([[f.box for f in faces] for faces in detections])
    seen: dict[int, list] = {}
    for t, (faces, row) in enumerate(zip(detections, ids)):
        for f, k in zip(faces, row):
            if f.landmarks is not None:
                seen.setdefault(k, []).append((t * every, f))
    ranked = sorted(seen.values(), key=lambda v: -len(v))
    if not ranked or len(ranked[0]) < MIN_FACE_SHARE * len(detections):
        found = len(ranked[0]) if ranked else 0
        raise NoMouth(f"no face: one was found in {found} of {len(detections)} frames looked at")
    main = ranked[0]
    size = np.median([f.size for _, f in main])
    for other in ranked[1:]:
        if len(other) >= SECOND_FACE * len(main) and np.median([f.size for _, f in other]) >= SECOND_FACE * size:
            raise NoMouth(f"several faces: {1 + sum(len(o) >= SECOND_FACE * len(main) for o in ranked[1:])} "
                          "people in the span, whose mouth speaks is not told apart")
    at = np.array([t for t, _ in main], np.float64)
    points = np.stack([np.asarray(f.landmarks, np.float64).reshape(5, 2) for _, f in main])
    frames = np.arange(n_frames, dtype=np.float64)
    out = np.empty((n_frames, 5, 2))
    for j in range(5):
        for c in range(2):
            out[:, j, c] = np.interp(frames, at, points[:, j, c])
    return out


def span_mouth(span, detector) -> MouthTube:
    """The speaker's mouth in a decoded span (pipeline.ffmpeg.native.NativeSpan), every frame."""
    n = len(span.times)
    every = max(1, round(DETECT_EVERY_S * span.fps))
    detections = detector.detect([span.rgb(i) for i in range(0, n, every)])
    landmarks = follow_face(detections, n, every)
    return mouth_tube((span.gray(i) for i in range(n)), landmarks, span.times)
