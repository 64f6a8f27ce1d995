"""MP4/MOV box headers: each track kind's length from its mdhd, read without decoding (for the early stop)."""
from __future__ import annotations

import os


def mp4_video_duration(path: str) -> float | None:
    """Seconds of the first video track's media (mdhd) in an MP4/MOV, read from the box headers; None if the file
    is not one or the track says nothing (fragmented, unusual or damaged files: the caller then decodes it all)."""
    return (mp4_tracks(path) or {}).get("vide")


def _boxes(f, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return
        size, kind = int.from_bytes(head[:4], "big"), head[4:8]
        body = pos + 8
        if size == 1 and len(head) == 16:
            size, body = int.from_bytes(head[8:16], "big"), pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            return
        yield kind, body, pos + size
        pos += size


def mp4_tracks(path: str) -> dict[str, float | None] | None:
    """{handler ('vide', 'soun', ...): seconds of the first track of that kind (None where its mdhd says
    nothing)} of an MP4/MOV from its box headers; None if the file is not one (or is damaged before its moov)."""
    try:
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            moov = next(((b, e) for k, b, e in _boxes(f, 0, end) if k == b"moov"), None)
            if moov is None:
                return None
            tracks: dict[str, float | None] = {}
            for kind, body, stop in _boxes(f, *moov):
                mdia = next(((b, e) for k, b, e in _boxes(f, body, stop) if k == b"mdia"), None) \
                    if kind == b"trak" else None
                if mdia is None:
                    continue
                found = {k: b for k, b, _ in _boxes(f, *mdia) if k in (b"hdlr", b"mdhd")}
                if b"hdlr" not in found or b"mdhd" not in found:
                    continue
                f.seek(found[b"hdlr"] + 8)
                handler = f.read(4).decode("latin-1")
                if handler not in tracks:
                    tracks[handler] = _mdhd_seconds(f, found[b"mdhd"])
            return tracks
    except (OSError, IndexError, ValueError):
        return None


def _mdhd_seconds(f, mdhd: int) -> float | None:
    f.seek(mdhd)
    version = f.read(4)[0]
    f.seek(mdhd + (20 if version == 1 else 12))
    scale_and_duration = f.read(12 if version == 1 else 8)
    timescale = int.from_bytes(scale_and_duration[:4], "big")
    duration = int.from_bytes(scale_and_duration[4:], "big")
    return duration / timescale if timescale and 0 < duration < 2 ** (63 if version else 31) else None

