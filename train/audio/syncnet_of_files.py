"""SyncNet on a video file (dfd check --sync --sync-weights, dfd evaluate --sync --sync-weights): the span decoded
at its native rate (pipeline.ffmpeg.native), the speaker followed by MTCNN as the signal-level measure follows it
(train.audio.mouth.follow_face), frames taken at SyncNet's 25 fps, the face cut and resized to 224x224 as the
authors' pipeline cuts it, and the sound's MFCC: train.audio.syncnet's offset search into the verdict's `Sync`.

The authors cut around S3FD's box (half side bs, centre x, y: rows y - bs .. y + 1.8 bs, columns x - 1.4 bs ..
x + 1.4 bs, the frame padded with grey 110); MTCNN's five landmarks stand in for that box here: its centre midway
between the eyes' and the mouth corners' middles, bs = FACE_HALF times their distance (an MTCNN box of a frontal
face is about twice the eye-to-mouth distance)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.ffmpeg.native import decode_span
from train.score.verdict import Sync

from .mouth import DETECT_EVERY_S, follow_face
from .syncnet import (FACE_SIZE, FPS, RULE, VSHIFT, distances, embeddings, load_syncnet, mfcc, p_fake_of, search)

FACE_HALF = 1.0   # bs in eye-to-mouth distances
CROP_SCALE = 0.4  # the authors' crop_scale
PAD_GREY = 110    # the authors' padding value


def face_crop(frame_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """One 224x224 BGR face crop from a frame and its five landmarks (eyes, nose, mouth corners)."""
    eyes, mouth = landmarks[:2].mean(0), landmarks[3:].mean(0)
    bs = FACE_HALF * float(np.linalg.norm(mouth - eyes)) + 1.0
    x, y = (eyes + mouth) / 2
    pad = int(CROP_SCALE * bs) + int(bs)
    padded = cv2.copyMakeBorder(frame_bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(PAD_GREY,) * 3)
    x, y = x + pad, y + pad
    top, bottom = int(y - bs), int(y + bs * (1 + 2 * CROP_SCALE))
    left, right = int(x - bs * (1 + CROP_SCALE)), int(x + bs * (1 + CROP_SCALE))
    return cv2.resize(padded[max(top, 0):bottom, max(left, 0):right], (FACE_SIZE, FACE_SIZE))


def faces_at_25(span, detector) -> tuple[np.ndarray, np.ndarray]:
    """(T, 224, 224, 3) BGR face crops at 25 fps over the span, their times; NoMouth from follow_face."""
    n = len(span.times)
    every = max(1, round(DETECT_EVERY_S * span.fps))
    landmarks = follow_face(detector.detect([span.rgb(i) for i in range(0, n, every)]), n, every)
    times = np.arange(span.times[0], span.times[-1] + 1e-9, 1.0 / FPS)
    picks = np.clip(np.searchsorted(span.times, times), 0, n - 1)
    crops = [face_crop(np.ascontiguousarray(span.rgb(i)[..., ::-1]), landmarks[i]) for i in picks]
    return np.stack(crops), times


def syncnet_sync(path: Path, detector, weights: str | Path, samples: np.ndarray, rate: int, start_s: float,
                 seconds: float, long_side: int) -> Sync:
    """SyncNet's Sync of one file (FrameError, NoMouth or ValueError with a reason when nothing to measure)."""
    net = load_syncnet(weights)
    faces, times = faces_at_25(decode_span(str(path), start_s, seconds, long_side), detector)
    first = int(round(times[0] * rate))
    sound = samples[first: first + int(round(len(times) / FPS * rate))] * 32768.0
    found = search(distances(*embeddings(net, faces, mfcc(sound, rate), len(sound))))
    s, p_fake = p_fake_of(found)
    shifts = np.arange(-VSHIFT, VSHIFT + 1)
    agreement = float(np.median(found.mean)) - found.mean
    return Sync(rule=RULE, p_fake=p_fake, offset_s=-found.offset / FPS, agreement=float(agreement.max()),
                confidence=found.confidence, in_sync=s,
                starts=[round(float(t), 3) for t in times[:len(found.framewise)]],
                windows=[float(v) for v in found.framewise], fps=FPS, seconds=float(len(times) / FPS),
                lags_s=[float(k / FPS) for k in shifts], correlation=[float(v) for v in agreement],
                window_s=1.0 / FPS)
