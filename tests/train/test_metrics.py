"""train.score.metrics: hand-computed values for every metric and aggregation rule."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from train.score import metrics
from train.score.metrics import KAGGLE_EPS, aggregate, compute_metrics, video_scores


def test_log_loss_clips_once_as_kaggle():
    y = [1, 0, 1, 0]
    p = [1.0, 0.0, 0.0, 0.3]  # the certain wrong answer costs -log(1e-15) = 34.54, not infinity
    expected = -(math.log(1 - 1e-15) * 2 + math.log(1e-15) + math.log(0.7)) / 4
    assert KAGGLE_EPS == 1e-15
    assert metrics.log_loss(y, p) == pytest.approx(expected, rel=1e-12)
    assert metrics.log_loss(y, p, eps=0.01) == pytest.approx(-np.mean(np.log([0.99, 0.99, 0.01, 0.7])))
    assert metrics.item_log_losses([1, 0], [0.25, 0.25]) == pytest.approx([math.log(4), -math.log(0.75)])


def test_accuracy_and_balanced_accuracy_threshold_at_half():
    y = [0, 0, 0, 1]
    p = [0.1, 0.5, 0.2, 0.7]  # 0.5 counts as fake: one real wrong
    assert metrics.accuracy(y, p) == pytest.approx(3 / 4)
    assert metrics.balanced_accuracy(y, p) == pytest.approx((2 / 3 + 1) / 2)
    assert metrics.balanced_accuracy([1, 1], [0.9, 0.1]) == pytest.approx(0.5)  # one class: plain accuracy


def test_auc_ap_eer_by_hand():
    y = [0, 0, 1, 1]
    p = [0.1, 0.6, 0.4, 0.9]
    assert metrics.roc_auc(y, p) == pytest.approx(3 / 4)  # 3 of 4 (fake, real) pairs ordered right
    # ranked: 0.9 fake (P=1, R=.5), 0.6 real, 0.4 fake (P=2/3, R=1): AP = .5*1 + .5*2/3
    assert metrics.average_precision(y, p) == pytest.approx(0.5 + 1 / 3)
    # ROC points (FPR, FNR): (0,1) (0,.5) (.5,.5) (.5,0) (1,0): FPR = FNR = 0.5 at the third
    assert metrics.eer(y, p) == pytest.approx(0.5)
    assert metrics.eer([0, 1], [0.2, 0.8]) == 0.0  # perfectly separated
    assert metrics.eer([0, 1], [0.8, 0.2]) == 1.0  # perfectly reversed


def test_eer_interpolates_between_roc_points():
    # 3 reals, 1 fake: thresholds give (FPR, FNR) (0,1) (0,1) (1/3,1) (1/3,0) ...: crossing on the segment
    # from (1/3, 1) to (1/3, 0) at FPR = 1/3
    y = [0, 0, 0, 1]
    p = [0.9, 0.1, 0.2, 0.5]
    assert metrics.eer(y, p) == pytest.approx(1 / 3)


def test_one_class_gives_nan_for_ranking_metrics():
    s = metrics.score([1, 1, 1], [0.2, 0.7, 0.9])
    assert math.isnan(s["roc_auc"]) and math.isnan(s["eer"]) and math.isnan(s["average_precision"])
    assert s["accuracy"] == pytest.approx(2 / 3)


def test_aggregate_mean_and_median():
    assert aggregate([0.1, 0.2, 0.9]) == pytest.approx(0.4)
    assert aggregate([0.1, 0.2, 0.9], "median") == pytest.approx(0.2)
    with pytest.raises(ValueError, match="allowed: mean, median, confident"):
        aggregate([0.5], "max")
    with pytest.raises(ValueError, match="no scored items"):
        aggregate([], "mean")


def test_aggregate_frame_max_is_sbis_rule():
    """SBI's inference: the max over each frame's faces, then the mean over frames; one face a frame: the mean."""
    p, seconds = [0.1, 0.9, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0, 2.0]
    assert aggregate(p, "frame_max", seconds=seconds) == pytest.approx((0.9 + 0.3 + 0.4) / 3)
    assert aggregate(p, "frame_max", seconds=range(5)) == pytest.approx(aggregate(p))
    with pytest.raises(ValueError, match="needs each item's frame"):
        aggregate(p, "frame_max")
    rows = pd.DataFrame({"video_id": ["a"] * 5 + ["b"] * 2, "label": [1] * 5 + [0] * 2,
                         "second": seconds + [0.0, 1.0], "p_fake": p + [0.2, 0.4]})
    videos = video_scores(rows, "frame_max").set_index("video_id")["p_fake"]
    assert videos.to_dict() == pytest.approx({"a": (0.9 + 0.3 + 0.4) / 3, "b": 0.3})


def test_aggregate_winner_is_confident_with_more_than_11_fakes():
    """selimsef's confident_strategy: 12 confident fakes of 20 pass 'fakes > 20 // 2.5' but not 'fakes > 11'."""
    eleven = [0.9] * 11 + [0.5] * 9
    assert aggregate(eleven, "confident") == pytest.approx(0.9)
    assert aggregate(eleven, "winner") == pytest.approx(np.mean(eleven))
    twelve = [0.9] * 12 + [0.5] * 8
    assert aggregate(twelve, "winner") == pytest.approx(0.9)


def test_aggregate_confident_is_the_dfdc_winners_rule():
    # 10 items: confident fakes (> 0.8) must number more than 10 // 2.5 = 4
    five_fakes = [0.9, 0.95, 0.85, 0.9, 1.0, 0.1, 0.1, 0.1, 0.5, 0.5]
    assert aggregate(five_fakes, "confident") == pytest.approx(np.mean([0.9, 0.95, 0.85, 0.9, 1.0]))
    four_fakes = [0.9, 0.95, 0.85, 0.9, 0.1, 0.1, 0.1, 0.1, 0.5, 0.5]
    assert aggregate(four_fakes, "confident") == pytest.approx(np.mean(four_fakes))  # falls through to the mean
    # the winner's absolute floor (more than 11 confident fakes) is a parameter
    assert aggregate(five_fakes, "confident", min_fakes=11) == pytest.approx(np.mean(five_fakes))
    # confident reals (< 0.2) must be more than 0.9 * n: 10 of 10 yes, 9 of 10 no
    reals = [0.1] * 5 + [0.05] * 5
    assert aggregate(reals, "confident") == pytest.approx(0.075)
    nine_reals = [0.1] * 9 + [0.6]
    assert aggregate(nine_reals, "confident") == pytest.approx(np.mean(nine_reals))
    # with 32 frames (the winner's setting) 13 confident fakes are needed (32 // 2.5 = 12)
    assert aggregate([0.9] * 13 + [0.3] * 19, "confident") == pytest.approx(0.9)
    assert aggregate([0.9] * 12 + [0.3] * 20, "confident") == pytest.approx((0.9 * 12 + 0.3 * 20) / 32)


def test_video_scores_per_rule():
    frames = pd.DataFrame({"video_id": ["b", "b", "b", "a", "a"], "label": [1, 1, 1, 0, 0],
                           "p_fake": [0.9, 0.95, 0.1, 0.3, 0.1]})
    mean = video_scores(frames).set_index("video_id")
    assert list(mean.index) == ["a", "b"]
    assert mean.loc["a", "p_fake"] == pytest.approx(0.2) and mean.loc["b", "frames"] == 3
    assert mean.loc["b", "label"] == 1
    assert video_scores(frames, "median").set_index("video_id").loc["b", "p_fake"] == pytest.approx(0.9)
    # b: 2 confident fakes > 3 // 2.5 = 1 -> their mean
    assert video_scores(frames, "confident").set_index("video_id").loc["b", "p_fake"] == pytest.approx(0.925)


def test_compute_metrics_row_uses_the_one_log_loss():
    labels = [0, 0, 1, 1, 1, 1]
    p = [0.2, 0.4, 0.9, 0.6, 0.3, 0.1]
    videos = ["a", "a", "b", "b", "c", "c"]
    m = compute_metrics(labels, p, videos)
    assert m["log_loss"] == pytest.approx(metrics.log_loss(labels, p), rel=1e-12)
    # video scores: a=0.3 (real), b=0.75, c=0.2 (fake)
    assert m["video_log_loss"] == pytest.approx(-(math.log(0.7) + math.log(0.75) + math.log(0.2)) / 3)
    assert m["video_accuracy"] == pytest.approx(2 / 3) and m["video_auc"] == pytest.approx(0.5)
    assert m["video_eer"] == pytest.approx(0.5) and m["videos"] == 3 and m["frames"] == 6
    assert set(metrics.METRIC_NAMES) <= set(m)
