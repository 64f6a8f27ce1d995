"""Which videos the sound detector is validated on: folds that keep a speaker (or an original, or an identity group)
on one side, so that the figures and the choice of features are those of voices it has never heard.

`--group-by split` keeps the dataset's own train/val split (one fold: val); the others pool train and val and cut
them into K folds of whole groups: speaker (videos.parquet's speaker, FakeAVCeleb's id folder, AV-Deepfake1M's
VoxCeleb2 id; the pipeline's identity group where a dataset names no speaker, which for DFDC is the original),
original (a fake with its original, every other video alone), group (the pipeline's identity group), video (every
video alone: a fake and its original, a speaker's other clips, land on both sides: the leaky baseline)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.split.hashed import group_unit

GROUP_BY = ("speaker", "original", "group", "video", "split")
FOLDS = 5  # at most; fewer where there are fewer groups


def group_keys(videos: pd.DataFrame, by: str) -> pd.Series:
    """The key that keeps videos together under `by` (one per row of `videos`)."""
    ids = videos["video_id"]
    if by == "video":
        return ids
    if by == "original":
        return videos["original"].where(videos["original"].notna(), ids)
    group = videos["group"].where(videos["group"].notna(), ids)
    if by == "group":
        return group
    return videos["speaker"].where(videos["speaker"].notna(), group)


def assign_folds(videos: pd.DataFrame, by: str, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """The fold of each video (0..K-1; -1: trains in every fold, never validated). `split`: the dataset's val is
    fold 0 and its train -1. Else whole groups are dealt round-robin into K = min(folds, groups) folds in an order
    fixed by (seed, key), so the same data and seed give the same folds."""
    if by == "split":
        return np.where(videos["split"].to_numpy() == "val", 0, -1)
    keys = group_keys(videos, by)
    order = sorted(keys.unique(), key=lambda k: (group_unit(str(k), seed), str(k)))
    k = max(1, min(folds, len(order)))
    fold_of = {key: i % k for i, key in enumerate(order)}
    return keys.map(fold_of).to_numpy()
