"""Temporal localisation: a video's scores over time (P(fake) per sampled second of the picture, per window of the
sound) turned into ranked fake-segment proposals, and the benchmarks' metrics of such proposals against the fake
periods a segment-labelled dataset gives (LAV-DF, AV-Deepfake1M).

Proposals: for every threshold of THRESHOLDS, each maximal run of consecutive samples at or above it (a gap of more
than 1.5 steps ends a run) is a segment: of moments (the picture's seconds) from half a step before its first to half
a step after its last; of windows (the sound's) from the end of the window before the run to the start of the one
after it (_bounds); clipped to [0, the video's end]; its confidence is the mean P(fake) over the run. The same
segment found at several thresholds is kept once; the proposals of a video are ranked by confidence (ties: the
longer first) and the first MAX_PROPOSALS kept. No non-maximum suppression: nested runs stay, as the metric below
tolerates (a true segment takes one proposal at most, the best-ranked that matches it; a nested run ranked below it
is a false positive, which lowers AP only where it outranks some true positive).

The metrics follow the authors' evaluation code (read, not copied): AV-Deepfake1M's `avdeepfake1m.evaluation.ap_ar_1d`
(src/loc_1d.rs of github.com/ControlNet/AV-Deepfake1M, as its examples/batfd/evaluate.py calls it) and LAV-DF's
metrics.py (github.com/ControlNet/LAV-DF), which agree:

- IoU of two segments: their overlap over the span from the earlier start to the later end; a proposal matches a
  segment where the IoU is strictly greater than the threshold.
- AP at an IoU threshold: per video, each true segment in turn takes the first proposal (in the video's ranking) that
  matches it and is not yet taken: that proposal is a true positive, every other proposal a false positive (all
  proposals of videos without a fake segment are false positives). Proposals of all videos are ranked together by
  confidence (stable); precision and recall over the ranking (recall over the number of true segments); AP is the area
  under the precision-recall curve with precision made monotone (each recall step weighted by the best precision at
  that rank or below). AV-Deepfake1M: IoU 0.5, 0.75, 0.9, 0.95; LAV-DF: 0.5, 0.75, 0.95.
- AR@N: per video its first N proposals (fewer where it has fewer); at an IoU threshold a true segment is recalled
  where any of them matches it (no one-to-one matching here); recall = recalled / true segments summed over all
  videos, averaged over the IoU thresholds 0.5, 0.55, ..., 0.95 (ten of them, step 0.05). AV-Deepfake1M: N = 50, 30,
  20, 10, 5; LAV-DF: N = 100, 50, 20, 10.
- AV-Deepfake1M's challenge score: the mean of its four APs and its five ARs, half each.

Two places where the authors' code is not followed, each stated: their AP curve starts at the last rank and leaves out
the recall step of the first-ranked proposal (up to 1/number-of-segments too low: nothing on the benchmarks'
thousands of segments, a whole segment's worth on a handful), which `official=True` reproduces; and their AR counts
nothing (neither found nor missed) for a video with fake segments but no proposal, where here its segments are missed.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.1, 0.95, 0.1))  # 0.1, 0.2, ..., 0.9
MAX_PROPOSALS = 100
AP_IOUS = (0.5, 0.75, 0.9, 0.95)          # AV-Deepfake1M's; LAV-DF's are 0.5, 0.75, 0.95
AR_COUNTS = (100, 50, 30, 20, 10, 5)      # AV-Deepfake1M: 50, 30, 20, 10, 5; LAV-DF: 100, 50, 20, 10
AR_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5, 0.55, ..., 0.95
CHALLENGE_AP, CHALLENGE_AR = (0.5, 0.75, 0.9, 0.95), (50, 30, 20, 10, 5)

# A video for the metrics: (proposals, an (n, 3) array of confidence, start, end ranked best first; true segments,
# an (m, 2) array of start, end in seconds)
Video = tuple[np.ndarray, np.ndarray]


def as_segments(rows: Iterable[Sequence[float]] | None, width: int = 2) -> np.ndarray:
    """Rows as a float (n, width) array; an empty one for None, NaN (a missing value of a table) or no rows."""
    missing = rows is None or (isinstance(rows, float) and np.isnan(rows))
    array = np.asarray([] if missing else [list(r) for r in rows], dtype=float)
    return array.reshape(-1, width)


def iou(proposals: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """IoU of every (start, end) of proposals with every one of segments, (n, m): the overlap over the span from the
    earlier start to the later end (the authors' iou_1d; their union where the two overlap)."""
    p, s = as_segments(proposals)[:, None, :], as_segments(segments)[None, :, :]
    inner = np.clip(np.minimum(p[..., 1], s[..., 1]) - np.maximum(p[..., 0], s[..., 0]), 0, None)
    outer = np.maximum(p[..., 1], s[..., 1]) - np.minimum(p[..., 0], s[..., 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(outer > 0, inner / np.where(outer > 0, outer, 1), 0.0)


def runs(times: np.ndarray, above: np.ndarray, step: float) -> list[tuple[int, int]]:
    """(first, last) sample index of each maximal run of samples above, a gap of over 1.5 steps ending a run."""
    out, first = [], None
    for i, hot in enumerate(above):
        if first is not None and (not hot or times[i] - times[i - 1] > 1.5 * step):
            out.append((first, i - 1))
            first = None
        if hot and first is None:
            first = i
    if first is not None:
        out.append((first, len(above) - 1))
    return out


def sample_step(times: np.ndarray) -> float:
    """The sampling step: the median gap between samples (1 s for a single sample)."""
    gaps = np.diff(np.unique(times))
    return float(np.median(gaps)) if len(gaps) else 1.0


def _bounds(times: np.ndarray, first: int, last: int, step: float, window: float | None) -> tuple[float, float]:
    """Where a run of samples puts its segment. A moment (window None) stands for half a step either side. A window
    of sound [start, start + window] is fake where it overlaps a fake period, so the fake part of a run lies inside
    its windows and outside the windows next to it that are not in the run: from the end of the one before to the
    start of the one after (the run's own windows where it has no neighbour; half a step either side of the run's
    middle where that leaves less than a step)."""
    if window is None:
        return times[first] - step / 2, times[last] + step / 2
    start, stop = times[first], times[last] + window
    if first > 0 and times[first] - times[first - 1] <= 1.5 * step:
        start = max(start, times[first - 1] + window)
    if last + 1 < len(times) and times[last + 1] - times[last] <= 1.5 * step:
        stop = min(stop, times[last + 1])
    if stop - start < step:
        middle = (times[first] + times[last] + window) / 2
        start, stop = middle - step / 2, middle + step / 2
    return start, stop


def proposals(times: Sequence[float], scores: Sequence[float], step: float | None = None,
              thresholds: Sequence[float] = THRESHOLDS, end: float | None = None,
              limit: int = MAX_PROPOSALS, window: float | None = None) -> np.ndarray:
    """Ranked proposals (confidence, start, end) of one video's samples (the module's docstring says how): moments
    (`times`, a picture's seconds), or with `window` windows of that length starting at `times` (the sound's);
    `end` clips the last segment (the video's duration)."""
    times, scores = np.asarray(times, dtype=float), np.asarray(scores, dtype=float)
    order = np.argsort(times, kind="stable")
    times, scores = times[order], scores[order]
    if not len(times):
        return np.zeros((0, 3))
    step = step or sample_step(times)
    found: dict[tuple[float, float], float] = {}
    for threshold in thresholds:
        for first, last in runs(times, scores >= threshold, step):
            start, stop = _bounds(times, first, last, step, window)
            start, stop = max(0.0, start), stop if end is None else min(end, stop)
            key = (round(start, 6), round(max(stop, start), 6))
            found[key] = max(found.get(key, -1.0), float(scores[first:last + 1].mean()))
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0][0] - kv[0][1], kv[0][0]))[:limit]
    return np.array([[score, start, stop] for (start, stop), score in ranked]).reshape(-1, 3)


def pooled(*found: np.ndarray, limit: int = MAX_PROPOSALS) -> np.ndarray:
    """Several sets of proposals of one video (the picture's, the sound's) ranked together by confidence (stable:
    the first set's first on a tie), the first `limit` kept."""
    rows = np.concatenate([as_segments(f, 3) for f in found]) if found else np.zeros((0, 3))
    return rows[np.argsort(-rows[:, 0], kind="stable")][:limit]


def segments_at(times: Sequence[float], scores: Sequence[float], threshold: float, step: float | None = None,
                end: float | None = None, window: float | None = None) -> list[dict]:
    """The predicted fake segments at one decision threshold: [{start, end, score}] in time order, score the mean
    P(fake) over the segment's samples (what `dfd check` shows)."""
    found = proposals(times, scores, step, (threshold,), end, window=window)
    return [{"start": float(s), "end": float(e), "score": float(c)} for c, s, e in sorted(found, key=lambda r: r[1])]


def _matches(video: Video, threshold: float) -> np.ndarray:
    """Per proposal of a video whether it is a true positive at the IoU threshold (each segment in turn takes the
    first free proposal matching it)."""
    found, segments = video
    taken = np.zeros(len(found), dtype=bool)
    if not len(segments) or not len(found):
        return taken
    hits = iou(found[:, 1:], segments) > threshold
    for column in hits.T:
        free = np.flatnonzero(column & ~taken)
        if len(free):
            taken[free[0]] = True
    return taken


def average_precision(videos: Sequence[Video], threshold: float, official: bool = False) -> float | None:
    """AP at one IoU threshold over all videos (None where no video has a fake segment); `official` leaves out
    the first rank's recall step as the authors' code does."""
    n_segments = sum(len(segments) for _, segments in videos)
    if not n_segments:
        return None
    confidence = np.concatenate([as_segments(found, 3)[:, 0] for found, _ in videos])
    hits = np.concatenate([_matches((as_segments(found, 3), as_segments(seg)), threshold) for found, seg in videos])
    hits = hits[np.argsort(-confidence, kind="stable")]
    true = np.cumsum(hits)
    precision = true / np.arange(1, len(hits) + 1)
    recall = true / n_segments
    best_below = np.maximum.accumulate(precision[::-1])[::-1]  # the best precision at this rank or below
    steps = np.diff(np.concatenate([[0.0], recall]))
    if official and len(steps):
        steps[0] = 0.0
    return float((steps * best_below).sum())


def average_recall(videos: Sequence[Video], count: int, thresholds: Sequence[float] = AR_IOUS) -> float | None:
    """AR@count averaged over the IoU thresholds (None where no video has a fake segment)."""
    recalled = np.zeros(len(thresholds))
    total = 0
    for found, segments in videos:
        found, segments = as_segments(found, 3)[:count], as_segments(segments)
        total += len(segments)
        if len(segments) and len(found):
            best = iou(found[:, 1:], segments).max(axis=0)
            recalled += [(best > t).sum() for t in thresholds]
    return float((recalled / total).mean()) if total else None


def localisation_metrics(videos: Sequence[Video], ap_ious: Sequence[float] = AP_IOUS,
                         ar_counts: Sequence[int] = AR_COUNTS) -> dict:
    """AP at each IoU, AR at each count, AV-Deepfake1M's challenge score, and the counts they rest on."""
    ap = {f"{t:g}": average_precision(videos, t) for t in ap_ious}
    ar = {str(n): average_recall(videos, n) for n in ar_counts}
    parts = [ap.get(f"{t:g}") for t in CHALLENGE_AP] + [ar.get(str(n)) for n in CHALLENGE_AR]
    score = (None if any(p is None for p in parts) else
             0.5 * float(np.mean(parts[:len(CHALLENGE_AP)])) + 0.5 * float(np.mean(parts[len(CHALLENGE_AP):])))
    return {"videos": len(videos), "with_segments": sum(bool(len(as_segments(s))) for _, s in videos),
            "segments": sum(len(as_segments(s)) for _, s in videos),
            "proposals": sum(len(as_segments(f, 3)) for f, _ in videos), "ap": ap, "ar": ar, "score": score}
