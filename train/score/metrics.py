"""THE metrics module: frame- and video-level scores from labels and P(fake), and the video aggregation rules.

Training (train.fit.engine.evaluate), explain, evaluate and predict all call it, so one checkpoint shows
one log loss wherever it appears.

- **Log loss** clips P(fake) once, to [KAGGLE_EPS, 1 - KAGGLE_EPS] with KAGGLE_EPS = 1e-15, as Kaggle's DFDC
  scorer did (its log-loss metric clips with eps 1e-15), in float64 (float32 would round 1 - 1e-15 to 1).
- **Accuracy and balanced accuracy** threshold P(fake) at 0.5 (>= 0.5 is fake).
- **ROC-AUC, average precision, EER** are NaN when the labels hold only one class.
- **EER**: the point of the ROC curve where the false-positive rate equals the false-negative rate (1 - TPR),
  linearly interpolated between the two ROC points where FNR - FPR changes sign (DeepfakeBench's convention).
- **Decision threshold** `choose_threshold`: picked on labelled validation scores, at the EER point (default) or
  at a target false-positive rate; `dfd check` and model packages use it instead of 0.5.
- **Video aggregation** `aggregate(p, rule)`: `mean` (the default, what the trainer has always reported),
  `median`, or `confident`, the DFDC winner's rule (selimsef, `confident_strategy`):
    1. fakes = items with p > 0.8; if fakes > n // 2.5 (Python's float floor division) and fakes > min_fakes:
       the mean of those confident-fake items;
    2. elif more than 0.9 * n items have p < 0.2: the mean of those confident-real items;
    3. else the mean of all items.
  The winner also required more than 11 confident fakes (min_fakes = 11) with 32 frames per video, where
  n // 2.5 = 12 already implies it; at 1 fps a DFDC clip gives ~10 frames, where 11 could never be reached, so
  min_fakes defaults to 0 here; the rule `winner` is the literal one (min_fakes = 11), what a zoo package of the
  winner scores with.
  `frame_max`: the max over each frame's items (its faces), then the mean over frames: SBI's inference
  (`inference_video.py`: the max of a frame's face predictions, then the mean). It needs each item's frame
  (`seconds`); with one face per frame it is the mean.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from train.config import AGGREGATES

KAGGLE_EPS = 1e-15        # Kaggle's DFDC scorer clipped P(fake) to [1e-15, 1 - 1e-15]
SUBMISSION_CLIP = 0.01    # what top DFDC entries clipped their own scores to (reported alongside, labelled so)
THRESHOLD = 0.5           # accuracy: P(fake) >= THRESHOLD is called fake
RULES = AGGREGATES
CONFIDENT_FAKE = 0.8
CONFIDENT_REAL = 0.2
WINNER_MIN_FAKES = 11     # selimsef's confident_strategy: `fakes > sz // 2.5 and fakes > 11`
CONFIDENT_REAL_SHARE = 0.9
METRIC_NAMES = ("log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer", "average_precision")


def _arrays(labels: Sequence[int], p_fake: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(p_fake, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels and p_fake must be 1-d and of one length, got {y.shape} and {p.shape}")
    return y, p


def _two_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2


def item_log_losses(labels: Sequence[int], p_fake: Sequence[float], eps: float = KAGGLE_EPS) -> np.ndarray:
    """Each item's own log loss, -log P(true class), with P(fake) clipped to [eps, 1 - eps]."""
    y, p = _arrays(labels, p_fake)
    p = np.clip(p, eps, 1 - eps)
    return -np.where(y == 1, np.log(p), np.log1p(-p))


def log_loss(labels: Sequence[int], p_fake: Sequence[float], eps: float = KAGGLE_EPS) -> float:
    """Binary log loss with P(fake) clipped to [eps, 1 - eps] (Kaggle's DFDC scorer: eps = 1e-15)."""
    losses = item_log_losses(labels, p_fake, eps)
    if len(losses) == 0:
        raise ValueError("no predictions to score")
    return float(np.mean(losses))


def accuracy(labels: Sequence[int], p_fake: Sequence[float], threshold: float = THRESHOLD) -> float:
    y, p = _arrays(labels, p_fake)
    return float(np.mean((p >= threshold).astype(np.int64) == y))


def balanced_accuracy(labels: Sequence[int], p_fake: Sequence[float], threshold: float = THRESHOLD) -> float:
    """Mean of the per-class recalls at the threshold; plain accuracy when only one class is present."""
    y, p = _arrays(labels, p_fake)
    pred = (p >= threshold).astype(np.int64)
    recalls = [float(np.mean(pred[y == c] == c)) for c in np.unique(y)]
    return float(np.mean(recalls))


def roc_auc(labels: Sequence[int], p_fake: Sequence[float]) -> float:
    y, p = _arrays(labels, p_fake)
    return float(roc_auc_score(y, p)) if _two_classes(y) else math.nan


def average_precision(labels: Sequence[int], p_fake: Sequence[float]) -> float:
    """Area under the precision-recall curve of class fake (sklearn's step-wise AP)."""
    y, p = _arrays(labels, p_fake)
    return float(average_precision_score(y, p)) if _two_classes(y) else math.nan


def roc(labels: Sequence[int], p_fake: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) over every threshold (no points dropped), or empty arrays with one class."""
    y, p = _arrays(labels, p_fake)
    if not _two_classes(y):
        return np.array([]), np.array([])
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return fpr, tpr


def eer(labels: Sequence[int], p_fake: Sequence[float]) -> float:
    """Equal error rate: where FPR = FNR on the ROC curve, interpolated linearly between its two nearest points."""
    fpr, tpr = roc(labels, p_fake)
    if len(fpr) == 0:
        return math.nan
    diff = (1 - tpr) - fpr  # from 1 at (0, 0) down to -1 at (1, 1)
    i = int(np.argmax(diff <= 0))
    if i == 0:
        return float(fpr[0])
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def score(labels: Sequence[int], p_fake: Sequence[float]) -> dict[str, float]:
    """Every metric of METRIC_NAMES for one level (frames or videos)."""
    y, p = _arrays(labels, p_fake)
    if len(y) == 0:
        raise ValueError("no predictions to score")
    return {"log_loss": log_loss(y, p), "roc_auc": roc_auc(y, p), "accuracy": accuracy(y, p),
            "balanced_accuracy": balanced_accuracy(y, p), "eer": eer(y, p),
            "average_precision": average_precision(y, p)}


# Decision thresholds ------------------------------------------------------------------------------------------


def choose_threshold(labels: Sequence[int], p_fake: Sequence[float], at_fpr: float | None = None) -> dict:
    """The P(fake) threshold (a score >= it is called fake) chosen on labelled scores (a validation split's videos):
    by default the EER point, the ROC threshold where |FPR - FNR| is smallest (the first, i.e. highest, of ties);
    with `at_fpr`, the lowest threshold whose false-positive rate is still <= at_fpr (the most fakes caught at that
    cost). The value is the midpoint between that ROC point's score and the next lower score, so the same
    validation videos are called fake but a score just under the lowest fake's is not (a perfectly separated
    split would otherwise get the lowest fake's score itself, often 1.0). Returns value, rule ("eer" | "fpr"), target_fpr, the achieved fpr and tpr, and the counts. ValueError with
    one class only (no ROC curve, no threshold)."""
    y, p = _arrays(labels, p_fake)
    if not _two_classes(y):
        raise ValueError(f"a threshold needs real and fake examples; got {int((y == 0).sum())} real and "
                         f"{int((y == 1).sum())} fake")
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    if at_fpr is None:
        i = int(np.argmin(np.abs((1 - tpr) - fpr)))
    else:
        i = int(np.flatnonzero(fpr <= at_fpr)[-1])  # fpr[0] == 0: never empty
    value = _between(thresholds, i)
    return {"value": value, "rule": "eer" if at_fpr is None else "fpr", "target_fpr": at_fpr,
            "fpr": float(fpr[i]), "tpr": float(tpr[i]), "n": int(len(y)), "real": int((y == 0).sum()),
            "fake": int((y == 1).sum())}


def _between(thresholds: np.ndarray, i: int) -> float:
    """Midway from ROC threshold i to the next lower one (sklearn's thresholds fall; the first is +inf)."""
    if i + 1 >= len(thresholds):
        return float(thresholds[i])
    if not math.isfinite(thresholds[i]):  # nothing called fake: just above the highest score
        return float(min(1.0, np.nextafter(thresholds[i + 1], np.inf)))
    return float((thresholds[i] + thresholds[i + 1]) / 2)


# Video aggregation ---------------------------------------------------------------------------------------------


def _confident(p: np.ndarray, min_fakes: int) -> float:
    n = len(p)
    fakes = p > CONFIDENT_FAKE
    if fakes.sum() > n // 2.5 and fakes.sum() > min_fakes:
        return float(p[fakes].mean())
    reals = p < CONFIDENT_REAL
    if reals.sum() > CONFIDENT_REAL_SHARE * n:
        return float(p[reals].mean())
    return float(p.mean())


def aggregate(p_fake_per_item: Sequence[float], rule: str = "mean", min_fakes: int = 0,
              seconds: Sequence[float] | None = None) -> float:
    """One video's P(fake) from its items' (frames' or faces'): mean | median | confident | frame_max (see the
    module doc; frame_max groups the items by `seconds`, their frames' times)."""
    p = np.asarray(p_fake_per_item, dtype=np.float64)
    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r}; allowed: {', '.join(RULES)}")
    if len(p) == 0:
        raise ValueError("cannot aggregate a video with no scored items")
    if rule == "frame_max":
        if seconds is None or len(seconds) != len(p):
            raise ValueError("frame_max needs each item's frame (seconds)")
        return float(pd.Series(p).groupby(np.asarray(seconds, dtype=np.float64)).max().mean())
    if rule == "mean":
        return float(p.mean())
    if rule == "median":
        return float(np.median(p))
    return _confident(p, WINNER_MIN_FAKES if rule == "winner" else min_fakes)


def video_scores(frame_df: pd.DataFrame, rule: str = "mean", by: str = "video_id") -> pd.DataFrame:
    """One row per video (sorted by `by`): `by`, label (when the frame has labels: fake if any of its items is, the
    max of its items' own picture labels: a segment-labelled fake is fake though most of its frames are real, and
    on data with one label per video it is that label), p_fake (the rule over its items' p_fake) and frames (item
    count). Rows with a NaN p_fake are left out."""
    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r}; allowed: {', '.join(RULES)}")
    ok = frame_df[frame_df["p_fake"].notna()]
    grouped = ok.groupby(by, sort=True)
    out = pd.DataFrame({by: list(grouped.groups)})
    if "label" in ok.columns:
        out["label"] = grouped["label"].max().to_numpy()
    if rule == "mean":
        out["p_fake"] = grouped["p_fake"].mean().to_numpy()
    elif rule == "frame_max":
        frame = "second" if "second" in ok.columns else "key"  # without frame times each item is its own frame
        per_frame = ok.groupby([by, frame], sort=True)["p_fake"].max()
        out["p_fake"] = per_frame.groupby(level=0, sort=True).mean().to_numpy()
    elif rule == "median":
        out["p_fake"] = grouped["p_fake"].median().to_numpy()
    else:
        out["p_fake"] = grouped["p_fake"].agg(lambda s: aggregate(s.to_numpy(), rule)).to_numpy().astype(np.float64)
    out["frames"] = grouped.size().to_numpy()
    return out


# Both levels at once ---------------------------------------------------------------------------------------------


def frame_and_video(frame_df: pd.DataFrame, rule: str = "mean") -> tuple[dict, dict, pd.DataFrame]:
    """(frame metrics, video metrics, the video table) from per-item rows with video_id, label, p_fake."""
    videos = video_scores(frame_df, rule)
    frame = {"frames": int(len(frame_df)), **score(frame_df["label"], frame_df["p_fake"])}
    video = {"videos": int(len(videos)), **score(videos["label"], videos["p_fake"]), "aggregate": rule}
    return frame, video, videos


def compute_metrics(labels: Sequence[int], p_fake: Sequence[float], video_ids: Sequence[str],
                    losses: Sequence[float] | None = None, rule: str = "mean") -> dict[str, float]:
    """The trainer's per-epoch row: val_loss (mean cross-entropy, else the log loss), every frame metric under its
    own name, every video metric prefixed `video_` (`video_auc` is the video ROC-AUC), frames, videos."""
    y, p = _arrays(labels, p_fake)
    if len(y) == 0:
        raise ValueError("no predictions to score")
    frame, video, _ = frame_and_video(pd.DataFrame({"video_id": list(video_ids), "label": y, "p_fake": p}), rule)
    row = {"val_loss": float(np.mean(losses)) if losses is not None else frame["log_loss"]}
    row.update({k: frame[k] for k in METRIC_NAMES})
    row.update({f"video_{k}": video[k] for k in METRIC_NAMES})
    row["video_auc"] = row.pop("video_roc_auc")
    row.update(frames=frame["frames"], videos=video["videos"])
    return row


def json_safe(value):
    """NaN and infinities -> None (JSON has neither), recursively: metrics.json, explain.json."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
