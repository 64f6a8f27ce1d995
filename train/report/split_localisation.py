"""Temporal localisation of an evaluated split (`dfd evaluate` on a segment-labelled dataset: LAV-DF, AV-Deepfake1M):
each video's scores over time turned into ranked fake-segment proposals (train.score.localisation) and scored
against the dataset's fake periods: the picture's P(fake) per sampled second (a faces model: its most suspicious face
that second) against the picture's periods, and with an audio model the sound's per window against the sound's
periods; with both, their proposals ranked together against all the fake periods (the benchmarks' target). A
dataset without periods gets nothing (None)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from dfd.files import write_text
from pipeline.dataset import DatasetError, read_table
from train.score.localisation import AP_IOUS, AR_COUNTS, as_segments, localisation_metrics, pooled, proposals
from train.score.tables import markdown_table

log = logging.getLogger(__name__)

PERIODS = ["video_id", "duration", "fake_periods", "picture_periods", "sound_periods"]
PROPOSALS = "localisation_proposals.json"


def split_periods(manifests: Path, video_ids) -> pd.DataFrame | None:
    """The scored videos' durations and periods, or None where the dataset gives no fake period to any of them."""
    try:
        table = read_table(manifests, "videos", PERIODS)
    except DatasetError:  # a manifest written before the audio-visual layouts: no periods
        return None
    table = table.drop_duplicates("video_id").set_index("video_id").reindex(pd.Index(video_ids).unique())
    if not table["fake_periods"].map(lambda p: len(as_segments(p)) > 0).any():
        return None
    return table


def frame_seconds(manifests: Path, keys: pd.Series) -> pd.Series:
    """The second of each scored sample: a frame's own, a face crop's (key FRAME_i) its frame's."""
    table = read_table(manifests, "frames", ["key", "second"]).drop_duplicates("key").set_index("key")["second"]
    seconds = keys.map(table)
    crops = seconds.isna()
    seconds[crops] = keys[crops].str.rsplit("_", n=1).str[0].map(table)
    return seconds


def timelines(samples: pd.DataFrame, periods: pd.DataFrame, column: str, step: float | None = None,
              window: float | None = None) -> dict:
    """Per video (every one of `periods`): (its proposals from the samples' time and p_fake, its `column` periods);
    `window`: the samples are windows of that length starting at their time."""
    by_video = {v: g for v, g in samples.groupby("video_id", sort=False)}
    out = {}
    for video, row in periods.iterrows():
        got = by_video.get(video)
        end = float(row["duration"]) if pd.notna(row["duration"]) else None
        found = (np.zeros((0, 3)) if got is None else
                 proposals(got["time"], got["p_fake"], step, end=end, window=window))
        out[video] = (found, as_segments(row[column]))
    return out


def localise(manifests: Path, frames: pd.DataFrame | None, unit: str, out: Path,
             windows: pd.DataFrame | None = None, spec=None) -> dict | None:
    """The localisation metrics of the picture (`frames`: key, video_id, p_fake; None: the sound alone) and with
    `windows` (video_id, start, p_fake) of the sound, `spec` its AudioFeatures (with both, also of the two's proposals
    ranked together against all fake periods, "picture + sound"), with the proposals written to
    OUT/localisation_proposals.json ({picture|sound: {video_id: [[confidence, start, end]]}}, AV-Deepfake1M's
    prediction format); None where the dataset has no periods (or nothing is scored)."""
    scored = pd.concat([f["video_id"] for f in (frames, windows) if f is not None])
    periods = split_periods(Path(manifests), scored) if len(scored) else None
    if periods is None:
        return None
    result, written = {"ap_ious": list(AP_IOUS), "ar_counts": list(AR_COUNTS)}, {}
    if frames is not None and unit == "frame":
        samples = (frames.assign(time=frame_seconds(Path(manifests), frames["key"])).dropna(subset=["time"])
                   .groupby(["video_id", "time"], as_index=False)["p_fake"].max())
        written["picture"] = timelines(samples, periods, "picture_periods")
    elif frames is not None:
        log.warning("temporal localisation needs a score per second: a clip model's clips are not localised")
    if windows is not None and spec is not None:
        samples = windows.assign(time=windows["start"])[["video_id", "time", "p_fake"]]
        written["sound"] = timelines(samples, periods, "sound_periods", spec.hop_s, spec.window_s)
    if len(written) == 2:  # the benchmarks' own target: every fake segment, found by either
        written["picture + sound"] = {v: (pooled(written["picture"][v][0], written["sound"][v][0]),
                                          as_segments(periods.loc[v, "fake_periods"])) for v in periods.index}
    for name, videos in written.items():
        result[name] = localisation_metrics(list(videos.values()))
    write_text(out / PROPOSALS, json.dumps({name: {v: found.round(4).tolist() for v, (found, _) in videos.items()}
                                            for name, videos in written.items()}) + "\n")
    return result


def localisation_markdown(result: dict) -> str:
    """A table of AP at each IoU and AR at each count (and the challenge score) per scored modality."""
    rows = [[name, level["with_segments"], level["segments"], *level["ap"].values(), *level["ar"].values(),
             level["score"]] for name, level in result.items() if isinstance(level, dict)]
    if not rows:
        return ""
    first = next(level for level in result.values() if isinstance(level, dict))
    columns = ("localisation", "fake videos", "segments", *(f"AP@{k}" for k in first["ap"]),
               *(f"AR@{k}" for k in first["ar"]), "AV1M score")
    return "\n" + markdown_table(columns, rows)
