"""Lip sync as a third column of `dfd evaluate --sync` and `dfd benchmark --sync`: each video of a split measured
from its video file (the path videos.parquet records; lip sync needs the file at its native frame rate, which the
shards do not keep) by train.audio.sync_of_files, beside the picture's and the sound's P(fake).

A relative path is read relative to the dataset's folder (the manifests folder's parent), never the working
folder. A video whose file is gone, that has no sound, no speech, no face or several faces is named with the reason
and left out of the sync metrics (its `sync` is NaN); the metrics are of the videos measured, balanced accuracy at
the rule's own threshold (train.score.verdict.SYNC_THRESHOLD, the 0.5 train.score.metrics uses)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.dataset import read_table
from train.score import metrics
from train.score.verdict import SYNC_THRESHOLD

from .sync_of_files import SyncSpan, sync_detector, sync_verdict

log = logging.getLogger(__name__)

COLUMNS = ["video_id", "sync", "sync_offset_s", "sync_note"]
_MEASURED: dict[tuple, tuple] = {}  # (file, mtime, size, weights) -> (p_fake, offset_s, note): a benchmark's
                                    # detectors share one test set's lip sync


def video_file(path: str | None, manifests: Path) -> tuple[Path | None, str | None]:
    """(the video file, None) or (None, why there is none)."""
    if not isinstance(path, str) or not path:
        return None, "videos.parquet records no path: lip sync needs the video file"
    file = Path(path)
    file = file if file.is_absolute() else Path(manifests).resolve().parent / file
    if not file.is_file():
        return None, f"video file not found: {file} (lip sync needs the video file)"
    return file, None


def _measure(file: Path, detector, span: SyncSpan, weights) -> tuple:
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size, span, str(weights))
    if key not in _MEASURED:
        sync = sync_verdict(file, detector, span, weights=weights)
        _MEASURED[key] = (np.nan if sync.p_fake is None else sync.p_fake,
                          np.nan if sync.offset_s is None else sync.offset_s, sync.note)
    return _MEASURED[key]


def split_syncs(manifests: str | Path, video_ids: Iterable[str], device: str = "auto",
                span: SyncSpan = SyncSpan(), weights: str | Path | None = None) -> pd.DataFrame:
    """A row per video: video_id, sync (P(fake) that picture and sound do not belong together, NaN where not
    measured), sync_offset_s and sync_note (why not)."""
    video_ids = list(video_ids)
    table = read_table(manifests, "videos", ["video_id", "path"]).drop_duplicates("video_id").set_index("video_id")
    detector, rows = None, []
    for video in tqdm(video_ids, desc="lip sync", unit="video", disable=None):
        file, note = video_file(table["path"].get(video), Path(manifests))
        if file is None:
            rows.append({"video_id": video, "sync": np.nan, "sync_offset_s": np.nan, "sync_note": note})
            continue
        detector = detector or sync_detector(device)
        p, offset, note = _measure(file, detector, span, weights)
        rows.append({"video_id": video, "sync": p, "sync_offset_s": offset, "sync_note": note})
    return pd.DataFrame(rows, columns=COLUMNS)


def with_sync(videos: pd.DataFrame, manifests: str | Path, device: str = "auto",
              weights: str | Path | None = None) -> tuple[dict, pd.DataFrame]:
    """(the sync level: counts, rule, threshold and metrics of the videos measured; the video table with sync,
    sync_offset_s and sync_note columns)."""
    from .sync_of_files import rule_of

    measured = split_syncs(manifests, videos["video_id"], device, weights=weights)
    videos = videos.drop(columns=[c for c in COLUMNS[1:] if c in videos]).merge(measured, on="video_id", how="left")
    scored = videos.dropna(subset=["sync"])
    missed = videos[videos["sync"].isna()]
    for video, note in zip(missed["video_id"], missed["sync_note"]):
        log.warning("lip sync: %s: not measured: %s", video, note)
    level = {"videos": int(len(scored)), "not_measured": int(len(missed)), "threshold": SYNC_THRESHOLD,
             "rule": rule_of(weights), **(metrics.score(scored["label"], scored["sync"]) if len(scored) else {})}
    return level, videos

