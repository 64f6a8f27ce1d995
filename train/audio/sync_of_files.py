"""Lip sync of a video file (dfd check --sync): a span decoded at its native rate (pipeline.ffmpeg.native), the
speaker's mouth followed (train.audio.mouth), the sound as the pipeline keeps it (pipeline.ffmpeg.extract's
extract_sound, 16-bit mono), measured by train.audio.sync into the verdict's `Sync`. Whatever cannot be measured (no
sound, no speech, no face, several faces, too short an overlap) gives a Sync whose p_fake is None and whose note
says why; it never raises for a video the picture models could read."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipeline.ffmpeg.extract import extract_sound
from pipeline.ffmpeg.native import decode_span
from pipeline.ffmpeg.stderr import FrameError
from train.score.verdict import Sync

from .mouth import SYNC_FACES, MouthTube, NoMouth, span_mouth
from .sync import P_FAKE_RULE, WINDOW_S, NoSync, check_sound, measure

RATE = 16000


@dataclasses.dataclass(frozen=True)
class SyncSpan:
    """Which seconds are measured and how small the picture is decoded."""

    start_s: float = 0.0
    seconds: float = 10.0
    long_side: int = 640


def sound_of(path: Path) -> tuple[np.ndarray | None, str | None]:
    """(float samples at RATE, None) or (None, why there is no sound to measure)."""
    try:
        track = extract_sound(str(path), RATE)
    except FrameError as exc:
        return None, f"sound unreadable ({exc})"
    if not track.has_audio:
        return None, "no sound track"
    if track.status != "done":
        return None, f"sound not decoded ({track.error})"
    return np.frombuffer(track.pcm, "<i2").astype(np.float32) / 32768.0, None


def tube_of(path: Path, detector, span: SyncSpan = SyncSpan()) -> MouthTube:
    """The speaker's mouth over the span; FrameError or NoMouth with a one-line reason."""
    return span_mouth(decode_span(str(path), span.start_s, span.seconds, span.long_side), detector)


def sync_of(tube: MouthTube, samples: np.ndarray) -> Sync:
    """A mouth tube (from a file or, later, a face tube of the clips stage) and its sound into the verdict's Sync."""
    try:
        r = measure(tube, samples, RATE)
    except NoSync as exc:
        return Sync(rule=P_FAKE_RULE, note=str(exc))
    return Sync(rule=P_FAKE_RULE, p_fake=r.p_fake, offset_s=r.offset_s, agreement=r.agreement,
                confidence=r.confidence, in_sync=r.in_sync, starts=r.starts, windows=r.windows, fps=r.fps,
                seconds=r.seconds, lags_s=r.lags_s, correlation=r.correlation, window_s=WINDOW_S)


def sync_detector(device: str = "auto"):
    """The faces stage's MTCNN with lip sync's settings (smaller faces kept: a mouth is followed, not judged)."""
    from pipeline.stages.faces.detect import FaceDetector

    return FaceDetector(SYNC_FACES, device)


def rule_of(weights: str | Path | None) -> str:
    """The p_fake rule of the measure in use: SyncNet's with weights, else the signal level's."""
    if weights is None:
        return P_FAKE_RULE
    from .syncnet import RULE

    return RULE


def sync_verdict(path: Path, detector, span: SyncSpan = SyncSpan(), use: str = "off",
                 weights: str | Path | None = None) -> Sync:
    """One file's lip sync, or a Sync with p_fake None and the reason; `use`: how the verdict may use it; `weights`:
    SyncNet's (train.audio.syncnet_of_files) instead of the signal-level measure."""
    samples, why = sound_of(Path(path))
    if samples is None:
        sync = Sync(rule=rule_of(weights), note=why)
    else:
        try:
            check_sound(samples[: int((span.start_s + span.seconds) * RATE)], RATE, span.start_s)
            if weights is None:
                sync = sync_of(tube_of(Path(path), detector, span), samples)
            else:
                from .syncnet_of_files import syncnet_sync

                sync = syncnet_sync(Path(path), detector, weights, samples, RATE, span.start_s, span.seconds,
                                    span.long_side)
        except (FrameError, NoMouth, NoSync) as exc:
            sync = Sync(rule=rule_of(weights), note=str(exc))
    sync.use = use
    return sync
