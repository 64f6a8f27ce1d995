"""The sound of a dataset's videos, read through pipeline.dataset: which videos train and validate, their WAVs."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.stages.sound.wav import read_wav
from pipeline.dataset import MemberReader, DatasetError, has_table, read_dataset_json, read_table
from pipeline.sources.periods import window_label

log = logging.getLogger(__name__)

FAKE_AUDIO = ("manipulated", "all")
COLUMNS = ["video_id", "split", "label", "has_audio", "status", "shard", "offset", "crc32", "audio_manipulated"]
# videos.parquet's columns the sound detector uses where a dataset has them (the audio-visual datasets' own sound
# label and periods, the speaker; the original and identity group of every dataset)
VIDEO_COLUMNS = ("original", "group", "speaker", "sound_label", "sound_periods")


@dataclasses.dataclass
class AudioSet:
    """The videos with sound of one dataset: a table (video_id, split, label, y, shard, offset, crc32)."""

    shards: Path
    manifests: Path
    videos: pd.DataFrame
    fake_audio: str

    def split(self, name: str) -> pd.DataFrame:
        return self.videos[self.videos["split"] == name]

    def sounds(self, rows: pd.DataFrame):
        """(row, float samples, rate) of each row, its WAV read at its offset (shards opened once each)."""
        with MemberReader(self.shards) as reader:
            for row in rows.itertuples(index=False):
                name, wav = reader.members(row.shard, int(row.offset))[0]
                if name != f"{row.video_id}.wav":
                    raise DatasetError(f"{self.shards / row.shard}: {name} at byte {row.offset}, where audio.parquet "
                                       f"puts {row.video_id}.wav")
                samples, rate = read_wav(wav)
                yield row, samples, rate


def _with_video_columns(table: pd.DataFrame, manifests: Path) -> pd.DataFrame:
    """audio.parquet's rows with videos.parquet's VIDEO_COLUMNS (null where an older manifest lacks one)."""
    videos = read_table(manifests, "videos")
    videos = videos.drop_duplicates("video_id").set_index("video_id")
    for column in VIDEO_COLUMNS:
        values = videos[column] if column in videos.columns else pd.Series(None, index=videos.index, dtype=object)
        table[column] = table["video_id"].map(values)
    return table


def sound_table(manifests: str | Path, fake_audio: str = "manipulated") -> pd.DataFrame:
    """audio.parquet's labelled videos with decoded sound, with videos.parquet's VIDEO_COLUMNS and y (1: the sound is
    fake); fake_audio 'manipulated' leaves out the fakes whose sound was found to be their original's
    (audio_manipulated false: a real voice under a fake picture; unknown is kept), 'all' keeps them. A video whose
    dataset labels its sound (sound_label: FakeAVCeleb, LAV-DF, AV-Deepfake1M) is kept with that label."""
    if fake_audio not in FAKE_AUDIO:
        raise DatasetError(f"fake_audio must be one of {', '.join(FAKE_AUDIO)}, got {fake_audio!r}")
    manifests = Path(manifests)
    data = read_dataset_json(manifests)
    if not isinstance(data.get("audio"), dict) or not has_table(manifests, "audio"):
        raise DatasetError(f"{manifests} has no sound (no audio section in dataset.json, or no audio.parquet): "
                           "make the shards again without --no-audio")
    table = read_table(manifests, "audio", COLUMNS)
    table = table[table["has_audio"].fillna(False).astype(bool) & (table["status"] == "done")
                  & table["label"].isin(["real", "fake"])].copy()
    table = _with_video_columns(table, manifests)
    untouched = ((table["label"] == "fake") & (table["audio_manipulated"] == False)  # noqa: E712 (null kept)
                 & table["sound_label"].isna())
    if fake_audio == "manipulated":
        log.info("audio: %d fakes keep their original's sound and are left out (--fake-audio manipulated)",
                 int(untouched.sum()))
        table = table[~untouched]
    table["y"] = (table["sound_label"].where(table["sound_label"].notna(), table["label"]) == "fake").astype(int)
    return table.sort_values("video_id").reset_index(drop=True)


def open_audio(shards: str | Path, manifests: str | Path, fake_audio: str = "manipulated",
               pooled: bool = False) -> AudioSet:
    """The dataset's sound (sound_table) for training: train and val each need real and fake sound (pooled: the
    two together, which the folds then cut)."""
    table = sound_table(manifests, fake_audio)
    for split in (("train+val",) if pooled else ("train", "val")):
        rows = table[table["split"].isin(split.split("+"))]
        counts = rows["y"].map({0: "real", 1: "fake"}).value_counts().to_dict()
        if counts.get("real", 0) == 0 or counts.get("fake", 0) == 0:
            raise DatasetError(f"{manifests}: the {split} split has sound of {counts or 'no videos'}; the audio "
                               "detector needs real and fake sound in train and val")
    return AudioSet(Path(shards), Path(manifests), table, fake_audio)


def window_table(audio: AudioSet, rows: pd.DataFrame, spec, features) -> tuple[pd.DataFrame, np.ndarray]:
    """(a row per window: video_id, label, start; the windows' feature matrix) of the given videos. A window's
    label is its own where the dataset gives the sound's fake periods (fake where it overlaps one), else its video's."""
    from .features import windows

    meta, feats = [], []
    for row, samples, rate in audio.sounds(rows):
        periods = _periods(getattr(row, "sound_periods", None))
        for start, w in windows(samples, rate, spec):
            own = window_label(start, start + len(w) / rate, "fake" if row.y else "real", periods)
            meta.append({"video_id": row.video_id, "label": int(own == "fake"), "start": start})
            feats.append(features(w, rate, spec))
    if not feats:
        raise DatasetError(f"{audio.manifests}: no window of sound above {spec.min_rms_db} dBFS")
    return pd.DataFrame(meta), np.stack(feats)


def _periods(value) -> list | None:
    """sound_periods as read from Parquet (an array of [start, end] arrays, or null) as a list of pairs or None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return [tuple(float(x) for x in pair) for pair in value]
