"""Fake periods (segments of seconds) of the segment-labelled datasets (LAV-DF, AV-Deepfake1M): read from their
metadata, and the label of a moment (a frame) or a stretch (a window of sound) from them.

A video's periods are a tuple of (start, end) in seconds, sorted; None where the dataset gives no segments (then a
frame or window takes the video's own picture or sound label)."""
from __future__ import annotations

from typing import Sequence

Periods = tuple[tuple[float, float], ...]


def parse_periods(raw, where: str) -> tuple[Periods | None, str | None]:
    """(periods, None), or (None, the reason) for anything but a list of [start, end] pairs with 0 <= start <= end."""
    if raw is None:
        return (), None
    if not isinstance(raw, (list, tuple)):
        return None, f"fake periods in {where} are not a list: {raw!r}"
    out = []
    for pair in raw:
        try:
            start, end = (float(x) for x in pair)
        except (TypeError, ValueError):
            return None, f"fake period {pair!r} in {where} is not [start, end] in seconds"
        if not 0 <= start <= end:
            return None, f"fake period {pair!r} in {where} does not run forward from 0 or later"
        out.append((start, end))
    return tuple(sorted(out)), None


def at(second: float, periods: Sequence[Sequence[float]]) -> bool:
    """Whether the moment lies in a period (start included, end excluded)."""
    return any(start <= second < end for start, end in periods)


def overlaps(start: float, end: float, periods: Sequence[Sequence[float]]) -> bool:
    """Whether the stretch [start, end) shares any time with a period."""
    return any(s < end and start < e for s, e in periods)


def frame_label(second: float, video_label: str | None, periods: Sequence[Sequence[float]] | None) -> str | None:
    """A frame's own label: fake where its moment lies in a fake period of the picture, else real; the video's
    picture label where the dataset gives no periods."""
    if periods is None:
        return video_label
    return "fake" if at(second, periods) else "real"


def clip_label(times, fps: float | None, video_label: str | None,
               periods: Sequence[Sequence[float]] | None) -> str | None:
    """A clip's own picture label: fake where the stretch from its first frame to one frame past its last overlaps a
    fake period of the picture, else real; the video's picture label where the dataset gives no periods or the
    clip's frame times are unknown."""
    known = [t for t in times if t is not None]
    if periods is None or not known:
        return video_label
    return "fake" if overlaps(known[0], known[-1] + (1.0 / fps if fps else 0.0), periods) else "real"


def window_label(start: float, end: float, video_label: str | None,
                 periods: Sequence[Sequence[float]] | None) -> str | None:
    """A window of sound's own label: fake where it overlaps a fake period of the sound, else real; the video's
    sound label where the dataset gives no periods."""
    if periods is None:
        return video_label
    return "fake" if overlaps(start, end, periods) else "real"
