"""train.score.localisation: proposals from scores over time, and AP / AR as AV-Deepfake1M's and LAV-DF's evaluation
code define them, on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from train.score.localisation import (AR_IOUS, as_segments, average_precision, average_recall, iou,
                                      localisation_metrics, pooled, proposals, segments_at)


def test_iou_is_overlap_over_span():
    got = iou([[0, 4], [1, 5], [5, 6], [0, 2]], [[0, 4]])[:, 0]
    assert got.tolist() == pytest.approx([1.0, 3 / 5, 0.0, 0.5])


def test_perfect_proposals_score_one_and_the_official_curve_drops_the_first_step():
    videos = [(np.array([[0.9, 1.0, 3.0]]), np.array([[1.0, 3.0]])),
              (np.array([[0.8, 0.5, 2.5], [0.1, 4.0, 5.0]]), np.array([[0.5, 2.5], [4.0, 5.0]])),
              (np.zeros((0, 3)), np.zeros((0, 2)))]  # a real video, nothing proposed
    for t in (0.5, 0.75, 0.9, 0.95):
        assert average_precision(videos, t) == pytest.approx(1.0)
    # the authors' code leaves out the first rank's recall step: 1 of the 3 segments
    assert average_precision(videos, 0.5, official=True) == pytest.approx(2 / 3)
    assert average_recall(videos, 1) == pytest.approx(2 / 3)  # video 2's second segment is its second proposal
    assert average_recall(videos, 2) == pytest.approx(1.0)
    metrics = localisation_metrics(videos)
    assert metrics["segments"] == 3 and metrics["with_segments"] == 2 and metrics["proposals"] == 3
    assert metrics["score"] == pytest.approx(1.0)


def test_a_shifted_segment_matches_below_its_iou_only():
    videos = [(np.array([[0.7, 1.0, 5.0]]), np.array([[0.0, 4.0]]))]  # IoU 3 / 5 = 0.6
    assert average_precision(videos, 0.5) == 1.0 and average_precision(videos, 0.75) == 0.0
    # recalled at IoU 0.5 and 0.55 of the ten thresholds 0.5, 0.55, ..., 0.95
    assert len(AR_IOUS) == 10 and average_recall(videos, 5) == pytest.approx(0.2)


def test_ranked_false_positives_lower_ap_by_their_rank():
    fake = (np.array([[0.9, 6.0, 8.0], [0.8, 2.0, 4.0]]), np.array([[2.0, 4.0]]))
    assert average_precision([fake], 0.5) == pytest.approx(1 / 2)  # the true one ranked second
    real = (np.array([[0.95, 0.0, 1.0]]), np.zeros((0, 2)))  # a proposal on a video without a fake segment
    assert average_precision([fake, real], 0.5) == pytest.approx(1 / 3)
    # false positives ranked below every true positive cost nothing; a second proposal on a taken segment is one
    later = (np.array([[0.9, 2.0, 4.0], [0.85, 2.0, 4.1], [0.3, 6.0, 8.0]]), np.array([[2.0, 4.0]]))
    assert average_precision([later], 0.5) == pytest.approx(1.0)
    # two segments, ranking TP, FP, TP: precision 1 at recall 1/2, 2/3 at recall 1
    two = (np.array([[0.9, 0.0, 1.0], [0.8, 5.0, 6.0], [0.7, 2.0, 3.0]]), np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert average_precision([two], 0.5) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_videos_without_fake_segments_have_no_metric_and_missed_ones_count():
    assert average_precision([(np.array([[0.9, 0.0, 1.0]]), np.zeros((0, 2)))], 0.5) is None
    assert as_segments(None).shape == as_segments(float("nan")).shape == (0, 2)  # a table's null periods
    assert localisation_metrics([(np.zeros((0, 3)), np.zeros((0, 2)))])["score"] is None
    # a fake video with nothing proposed: its segment is missed (the authors' AR would not count it)
    found = (np.array([[0.9, 0.0, 2.0]]), np.array([[0.0, 2.0]]))
    assert average_recall([found, (np.zeros((0, 3)), np.array([[1.0, 2.0]]))], 5) == pytest.approx(0.5)
    assert average_precision([found, (np.zeros((0, 3)), np.array([[1.0, 2.0]]))], 0.5) == pytest.approx(0.5)


def test_proposals_are_runs_over_thresholds_ranked_by_mean_score():
    times = np.arange(10.0)
    scores = np.full(10, 0.1)
    scores[3:6] = 0.9
    got = proposals(times, scores, end=10.0)
    # at 0.1 the whole video (mean 0.34); from 0.2 to 0.9 seconds 3-5 (each frame covers half a step either side)
    assert np.allclose(got, [[0.9, 2.5, 5.5], [0.34, 0.0, 9.5]])
    assert segments_at(times, scores, 0.5) == [{"start": 2.5, "end": 5.5, "score": pytest.approx(0.9)}]
    # a gap in the samples (silence skipped) ends a run; the end clips the last segment
    assert segments_at([0, 1, 5, 6], [0.8, 0.8, 0.6, 0.6], 0.5, end=6.2) == [
        {"start": 0.0, "end": 1.5, "score": pytest.approx(0.8)},
        {"start": 4.5, "end": 6.2, "score": pytest.approx(0.6)}]
    # windows of 2 s every 1 s starting at 0..5: a run starts where the real window before it ends (the one at 1 s,
    # at 3 s) and, with no window after it, ends with its own last; a lone fake window between real ones (less than
    # a step left between them) takes a step around its middle
    starts = np.arange(6.0)
    assert segments_at(starts, [0, 0, 1, 1, 1, 1], 0.5, window=2.0) == [{"start": 3.0, "end": 7.0, "score": 1.0}]
    assert segments_at(starts, [1, 1, 0, 0, 0, 0], 0.5, window=2.0) == [{"start": 0.0, "end": 2.0, "score": 1.0}]
    assert segments_at(starts, [0, 0, 1, 0, 0, 0], 0.5, window=2.0) == [{"start": 2.5, "end": 3.5, "score": 1.0}]
    assert proposals([], []).shape == (0, 3) and segments_at([0.0, 0.5], [0.1, 0.2], 0.5) == []


def test_check_segments_of_the_picture_and_the_sound():
    from pathlib import Path

    from train.score.verdict import Item, Sound, Verdict, as_json, picture_segments, sound_segments

    crop = np.zeros((4, 4, 3), np.uint8)
    # two faces a second: a second's score is its most suspicious face's
    items = [Item(i, float(s), p, crop, track=t) for i, (s, p, t) in enumerate(
        [(0, 0.1, 0), (0, 0.2, 1), (1, 0.9, 0), (1, 0.1, 1), (2, 0.2, 0), (2, 0.8, 1), (3, 0.1, 0)])]
    verdict = Verdict(Path("v.mp4"), "faces", {"value": 0.5}, "mean", items, seconds=[0.0, 1.0, 2.0, 3.0])
    assert picture_segments(verdict) == [{"start": 0.5, "end": 2.5, "score": pytest.approx(0.85)}]
    # windows of 2 s every 1 s: those starting at 1 and 2 s fake, at 0 and 3 s real: the fake sound lies after 2 s
    # (the end of the window at 0) and before 3 s (the start of the one at 3)
    verdict.sound = Sound("noisy-or", "a.pt", 2.0, 1.0, 0.5, [0.0, 1.0, 2.0, 3.0], [0.2, 0.7, 0.9, 0.4])
    assert sound_segments(verdict.sound) == [{"start": 2.0, "end": 3.0, "score": pytest.approx(0.8)}]
    got = as_json(verdict, "v")
    assert got["segments"][0]["end"] == 2.5 and got["sound"]["segments"][0]["start"] == 2.0
    assert picture_segments(Verdict(Path("v.mp4"), "faces", {"value": 0.5}, "mean")) == []


def test_pooled_proposals_rank_both_sets_together():
    picture, sound = np.array([[0.9, 1.0, 2.0], [0.3, 0.0, 6.0]]), np.array([[0.9, 4.0, 5.0], [0.5, 3.0, 6.0]])
    assert pooled(picture, sound).tolist() == [[0.9, 1.0, 2.0], [0.9, 4.0, 5.0], [0.5, 3.0, 6.0], [0.3, 0.0, 6.0]]
    assert pooled(picture, sound, limit=1).tolist() == [[0.9, 1.0, 2.0]]
    # a video whose picture and sound were each faked once: each found by its own detector
    both = [(pooled(picture, sound), np.array([[1.0, 2.0], [4.0, 5.0]]))]
    assert average_precision(both, 0.9) == pytest.approx(1.0) and pooled(np.zeros((0, 3))).shape == (0, 3)
