"""Frame- and video-level metrics from per-frame labels and P(fake): accuracy, balanced accuracy, AUC, log loss."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score

EPS = 1e-7  # P(fake) is clipped to [EPS, 1 - EPS] for log loss, as sklearn does with float32 scores


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC, or NaN when only one class is present."""
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else math.nan


def _log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(log_loss(labels, np.clip(scores, EPS, 1 - EPS), labels=[0, 1]))


def video_scores(video_ids: Sequence[str], labels: Sequence[int], p_fake: Sequence[float]) -> pd.DataFrame:
    """One row per video: its label and score = mean P(fake) over its frames."""
    frame = pd.DataFrame({"video_id": list(video_ids), "label": np.asarray(labels), "p_fake": np.asarray(p_fake)})
    return frame.groupby("video_id", sort=True).agg(label=("label", "first"), p_fake=("p_fake", "mean"),
                                                     frames=("p_fake", "size")).reset_index()


def compute_metrics(labels: Sequence[int], p_fake: Sequence[float], video_ids: Sequence[str],
                    losses: Sequence[float] | None = None) -> dict[str, float]:
    """Frame-level loss, accuracy, balanced accuracy, ROC-AUC and log loss; video-level log loss and ROC-AUC."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(p_fake, dtype=np.float64)
    if len(y) == 0:
        raise ValueError("no predictions to score")
    pred = (p >= 0.5).astype(np.int64)
    videos = video_scores(video_ids, y, p)
    vy, vp = videos["label"].to_numpy(), videos["p_fake"].to_numpy()
    return {
        "val_loss": float(np.mean(losses)) if losses is not None else _log_loss(y, p),
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if len(np.unique(y)) == 2 else float(np.mean(pred == y)),
        "roc_auc": _auc(y, p),
        "log_loss": _log_loss(y, p),
        "video_log_loss": _log_loss(vy, vp),
        "video_auc": _auc(vy, vp),
        "frames": int(len(y)),
        "videos": int(len(videos)),
    }
