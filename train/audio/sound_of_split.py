"""The sound of a sharded split scored by an audio checkpoint (train.evaluate and train.predict --shards with
--audio-checkpoint): each video's WAV read from the audio shards (SHARDS/audio/...) at the offset audio.parquet
records, the P(fake) of its windows and of the video (their mean). A video without sound, whose sound was not
decoded or is silent gets NaN and a note: the fusion then keeps its picture's verdict."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from pipeline.stages.sound.wav import AudioError, read_wav
from pipeline.dataset import DatasetError, MemberReader, has_table, is_local, read_dataset_json, read_table

from .fuse import NO_SOUND, video_sound
from .classifier import AudioModel

COLUMNS = ["video_id", "split", "has_audio", "status", "error", "shard", "offset"]
NOT_IN_TABLE = "not in audio.parquet: scored on the picture alone"


def split_table(shards: str | Path, manifests: str | Path, split: str) -> pd.DataFrame:
    """audio.parquet's rows of the split; DatasetError where the dataset kept no sound or the shards are remote."""
    manifests = Path(manifests)
    if not isinstance(read_dataset_json(manifests).get("audio"), dict) or not has_table(manifests, "audio"):
        raise DatasetError(f"{manifests} has no sound (no audio section in dataset.json, or no audio.parquet): "
                           "make the shards again without --no-audio, or leave out --audio-checkpoint")
    if not is_local(str(shards)):
        raise DatasetError(f"{shards}: the sound is read from local audio shards (SHARDS/audio); copy them here")
    table = read_table(manifests, "audio", COLUMNS)
    return table[table["split"] == split].drop_duplicates("video_id").set_index("video_id")


def _note(row) -> str | None:
    """Why a row has no sound to score (None: it has)."""
    if row.has_audio is None or pd.isna(row.has_audio) or not bool(row.has_audio):
        return NO_SOUND
    if row.status != "done" or not isinstance(row.shard, str) or pd.isna(row.offset):
        return f"sound not decoded ({row.error or row.status}): scored on the picture alone"
    return None


def split_sounds(model: AudioModel, shards: str | Path, manifests: str | Path, split: str,
                 video_ids: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a row per video: video_id, sound, note; a row per window: video_id, start, audio_p_fake) of the given
    videos of the split (the ones its picture was scored for), read through one MemberReader."""
    table = split_table(shards, manifests, split)
    videos, windows = [], []
    with MemberReader(shards) as reader:
        for video in video_ids:
            if video not in table.index:
                videos.append({"video_id": video, "sound": np.nan, "note": NOT_IN_TABLE})
                continue
            row = table.loc[video]
            note = _note(row)
            if note is None:
                name, wav = reader.members(row.shard, int(row.offset))[0]
                if name != f"{video}.wav":
                    raise DatasetError(f"{Path(shards) / row.shard}: {name} at byte {row.offset}, where audio.parquet "
                                       f"puts {video}.wav")
                try:
                    sound, note, w = video_sound(model, *read_wav(wav))
                except AudioError as exc:
                    raise DatasetError(f"{Path(shards) / row.shard}: {name}: {exc}") from None
                windows += [{"video_id": video, "start": s, "audio_p_fake": p} for s, p in zip(w["start"], w["p_fake"])]
            else:
                sound = np.nan
            videos.append({"video_id": video, "sound": sound, "note": note})
    return (pd.DataFrame(videos, columns=["video_id", "sound", "note"]),
            pd.DataFrame(windows, columns=["video_id", "start", "audio_p_fake"]))
