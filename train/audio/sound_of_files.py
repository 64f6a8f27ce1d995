"""Scoring the sound of video files with an audio checkpoint (train.predict --audio-checkpoint): each video's sound
as the pipeline keeps it (pipeline.frames.extract_sound, its picture not decoded), its windows' P(fake) and the
video's (their mean); and the sound's part of a `dfd check` verdict."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.stages.sound.wav import AudioError, read_wav, wav_bytes
from pipeline.ffmpeg.extract import FrameError, extract_sound
from train.score.verdict import Sound

from .fuse import NO_SOUND, fuse, video_sound
from .classifier import AudioModel

RATE = 16000  # the pipeline's default; a checkpoint's windows are in seconds, so any rate works


def score_sounds(model: AudioModel, paths: Sequence[Path], names: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a row per video: filename, sound, note; a row per window: filename, start, audio_p_fake)."""
    videos, windows = [], []
    for path, name in zip(paths, names):
        try:
            track = extract_sound(str(path), RATE)
        except FrameError as exc:
            videos.append({"filename": name, "sound": np.nan, "note": f"sound unreadable ({exc}): picture alone"})
            continue
        if not track.has_audio or track.status != "done":
            note = NO_SOUND if not track.has_audio else f"sound not decoded ({track.error}): picture alone"
            videos.append({"filename": name, "sound": np.nan, "note": note})
            continue
        try:
            samples, rate = read_wav(wav_bytes(track.pcm, RATE))
        except AudioError as exc:
            videos.append({"filename": name, "sound": np.nan, "note": f"{exc}: picture alone"})
            continue
        sound, note, w = video_sound(model, samples, rate)
        videos.append({"filename": name, "sound": sound, "note": note})
        windows += [{"filename": name, "start": s, "audio_p_fake": p} for s, p in zip(w["start"], w["p_fake"])]
    return pd.DataFrame(videos, columns=["filename", "sound", "note"]), pd.DataFrame(
        windows, columns=["filename", "start", "audio_p_fake"])


def sound_verdict(model: AudioModel, path: Path, p_picture: float | None, rule: str = "noisy-or",
                  name: str = "") -> Sound:
    """The sound's part of one checked video (dfd check --audio-model): its windows, its P(fake), and the fused
    P(fake) by `rule` (the picture's alone without sound, the sound's alone where the picture has none)."""
    videos, windows = score_sounds(model, [Path(path)], [str(path)])
    row = videos.iloc[0]
    sound = Sound(rule, name, model.spec.window_s, model.spec.hop_s,
                  None if np.isnan(row["sound"]) else float(row["sound"]), list(map(float, windows["start"])),
                  list(map(float, windows["audio_p_fake"])), row["note"], threshold=model.threshold)
    if p_picture is None:
        sound.fused = sound.p_fake
    else:
        sound.fused = float(fuse(p_picture, np.nan if sound.p_fake is None else sound.p_fake, rule))
    return sound
