"""Tracks: link a video's boxes second to second (IoU first, then centre distance), fill short gaps.

Pure functions on plain boxes (x0, y0, x1, y1), so they are testable with hand-made boxes.
"""
from __future__ import annotations

MIN_IOU = 0.3        # a box continues a track whose last box overlaps it this much
MAX_CENTRE = 0.6     # ... or, failing that, whose last centre is within this many box sizes
MAX_GAP = 2          # a track may miss this many frames in a row and still continue (and be filled in)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a, b) -> float:
    """Distance of the centres in units of the larger box's size."""
    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1], 1e-6)
    return ((ca[0] - cb[0]) ** 2 + (ca[1] - cb[1]) ** 2) ** 0.5 / size


def link(frames: list[list[tuple]], max_gap: int = MAX_GAP) -> list[list[int]]:
    """Track ids for each box of each frame (frames in time order). Ids are numbered by first appearance.

    Greedy per frame: the pairs (box, open track) are taken best first, by IoU (>= MIN_IOU), then by centre
    distance (<= MAX_CENTRE); a track is open while it was last seen at most `max_gap` + 1 frames before.
    """
    last: dict[int, tuple[int, tuple]] = {}  # track -> (frame index, box)
    ids: list[list[int]] = []
    next_id = 0
    for t, boxes in enumerate(frames):
        open_tracks = [k for k, (ft, _) in last.items() if t - ft <= max_gap + 1]
        assigned: dict[int, int] = {}
        used: set[int] = set()
        pairs = sorted(((iou(b, last[k][1]), i, k) for i, b in enumerate(boxes) for k in open_tracks), reverse=True)
        for score, i, k in pairs:
            if score < MIN_IOU:
                break
            if i not in assigned and k not in used:
                assigned[i], _ = k, used.add(k)
        pairs = sorted((centre_distance(b, last[k][1]), i, k) for i, b in enumerate(boxes) for k in open_tracks)
        for dist, i, k in pairs:
            if dist > MAX_CENTRE:
                break
            if i not in assigned and k not in used:
                assigned[i], _ = k, used.add(k)
        row = []
        for i, b in enumerate(boxes):
            if i not in assigned:
                assigned[i] = next_id
                next_id += 1
            last[assigned[i]] = (t, b)
            row.append(assigned[i])
        ids.append(row)
    return ids


def gaps(frames: list[list[tuple]], ids: list[list[int]], max_gap: int = MAX_GAP) -> list[tuple[int, int, tuple]]:
    """Boxes to fill in: (frame index, track, box) for each frame a track misses between two of its boxes,
    at most `max_gap` frames in a row, linearly interpolated."""
    seen: dict[int, list[tuple[int, tuple]]] = {}
    for t, (boxes, row) in enumerate(zip(frames, ids)):
        for b, k in zip(boxes, row):
            seen.setdefault(k, []).append((t, b))
    filled = []
    for k in sorted(seen):
        for (t0, b0), (t1, b1) in zip(seen[k], seen[k][1:]):
            if 1 < t1 - t0 <= max_gap + 1:
                for t in range(t0 + 1, t1):
                    a = (t - t0) / (t1 - t0)
                    filled.append((t, k, tuple(p + a * (q - p) for p, q in zip(b0, b1))))
    return filled
