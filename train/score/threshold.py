"""The decision threshold a verdict is given against: a package's stored one (chosen on its validation split when
it was exported), else one chosen now from the run folder's validation scores (explain's video_predictions.parquet,
when explain scored this very checkpoint), else 0.5, said to be unvalidated."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from train.score import metrics
from train.paths import RunLayout, is_package

log = logging.getLogger(__name__)

DEFAULT = {"value": metrics.THRESHOLD, "rule": "default", "target_fpr": None,
           "how": "not chosen on validation data: P(fake) >= 0.5 is called fake"}


def describe(threshold: dict) -> str:
    """One phrase: how the threshold was chosen."""
    if threshold.get("rule") == "eer":
        return f"the EER point of {threshold.get('n')} {threshold.get('split', 'val')} videos"
    if threshold.get("rule") == "fpr":
        return (f"a false-positive rate <= {threshold.get('target_fpr'):g} on {threshold.get('n')} "
                f"{threshold.get('split', 'val')} videos (achieved {threshold.get('fpr'):.3f}, TPR "
                f"{threshold.get('tpr'):.3f})")
    if threshold.get("rule") == "manual":
        return f"chosen by hand (dfd export --threshold {threshold.get('value'):g}), not on validation data"
    return threshold.get("how") or "unvalidated default"


def from_videos(videos: pd.DataFrame, at_fpr: float | None, source: str, aggregate: str) -> dict:
    """choose_threshold on a validation split's video rows (label, p_fake), with where they came from."""
    chosen = metrics.choose_threshold(videos["label"], videos["p_fake"], at_fpr)
    return {**chosen, "split": "val", "level": "video", "aggregate": aggregate, "source": source}


def by_hand(value: float, videos: pd.DataFrame, source: str, aggregate: str) -> dict:
    """A threshold the user gave (`dfd export --threshold`), with what it does on the validation videos: its FPR
    (None without real videos) and TPR (None without fakes)."""
    labels, called = videos["label"].to_numpy(), videos["p_fake"].to_numpy() >= value
    real, fake = int((labels == 0).sum()), int((labels == 1).sum())
    return {"value": float(value), "rule": "manual", "target_fpr": None,
            "fpr": float(called[labels == 0].mean()) if real else None,
            "tpr": float(called[labels == 1].mean()) if fake else None, "n": int(len(labels)), "real": real,
            "fake": fake, "split": "val", "level": "video", "aggregate": aggregate, "source": source}


def run_videos(checkpoint: Path) -> pd.DataFrame | None:
    """The val split's video scores of this checkpoint from its run folder (explain.json names the same file and
    video_predictions.parquet is there), else None."""
    layout = RunLayout.of_checkpoint(checkpoint)
    if layout is None or not layout.explain.is_file() or not layout.video_predictions.is_file():
        return None
    try:
        named = json.loads(layout.explain.read_text()).get("checkpoint")
    except (OSError, ValueError):
        return None
    if not named or layout.resolve(named).resolve() != Path(checkpoint).resolve():
        return None
    return pd.read_parquet(layout.video_predictions, columns=["video_id", "label", "p_fake"])


def decision_threshold(paths: Sequence[Path], stored: Sequence[dict | None], aggregate: str) -> dict:
    """The threshold `dfd check` reports against (see the module doc); an ensemble of several models gets the
    default, as no single model's validated threshold holds for their mean."""
    if len(paths) != 1:
        return {**DEFAULT, "how": "an ensemble's mean P(fake) has no validated threshold: 0.5"}
    if stored and stored[0]:
        return stored[0]
    if not is_package(paths[0]):
        videos = run_videos(Path(paths[0]))
        if videos is not None:
            try:
                return from_videos(videos, None, f"{RunLayout.of_checkpoint(paths[0]).video_predictions}",
                                   aggregate)
            except ValueError as err:
                log.warning("%s: %s; using 0.5", paths[0], err)
    return dict(DEFAULT)
