"""A video's clips from the decode: the clips' frames cut into clips, each checked (short, gaps), and their tar
members. Light imports (the pool's workers run it): no pyarrow.

The decode (pipeline.ffmpeg.graph.clip_select) keeps, for each clip, its first frame and the next T-1 decoded
frames, and clips never overlap; so the clips' frames, in order, are the clips one after the other, T frames each,
the last one cut short where the video ends. A frame the decoder dropped (a corrupt frame) or a variable-rate file
shows in the frame times, which every clip row keeps; a step between two frames beyond GAP times the video's frame
interval marks the clip as having a gap. A decode error ffmpeg logged between two of a clip's frames (a corrupt
frame it concealed rather than dropped) marks the clip corrupt. Every such clip keeps its frames: the row says
what is wrong (status, warning), nothing else is lost."""
from __future__ import annotations

import json
import logging
import zlib

from pipeline.core.shards import member
from pipeline.ffmpeg.jpeg import jpeg_size
from pipeline.sources.periods import clip_label

log = logging.getLogger(__name__)

GAP = 1.5  # a step between two frames of a clip beyond this many of the video's frame intervals is a gap
STATUSES = ("done", "short", "gap", "corrupt", "none")  # none: a video whose decode gave no clip frame at all


def clip_key(video_id: str, clip: int) -> str:
    return f"{video_id}_c{clip:04d}"


def cut(jpegs: list[bytes], times: list[float], frames: int, video_fps: float | None,
        errors: list[tuple[int, str]] = ()) -> list[dict]:
    """The clips of one video: [{clip, times, status, warning, jpegs}] (times in seconds, rounded to the µs);
    `errors`: (i, error) where ffmpeg logged an error after i of the clips' frames had come out."""
    times: list = list(times)
    if len(times) != len(jpegs):
        log.warning("ffmpeg reported %d clip frame times for %d clip frames; the times are left out",
                    len(times), len(jpegs))
        times = [None] * len(jpegs)
    clips = []
    for clip, first in enumerate(range(0, len(jpegs), frames)):
        t = [None if x is None else round(x, 6) for x in times[first:first + frames]]
        inside = [(i - first, e) for i, e in errors if first < i < first + len(t)]
        status, warning = ("corrupt", f"ffmpeg reported a decode error just before frame {inside[0][0]} of this "
                           f"clip: {inside[0][1][:200]}") if inside else check(t, frames, video_fps)
        clips.append({"clip": clip, "times": t, "status": status, "warning": warning,
                      "jpegs": jpegs[first:first + frames]})
    return clips


def check(times: list[float], frames: int, video_fps: float | None) -> tuple[str, str | None]:
    """(status, warning) of one clip: short where the video ends inside it, gap where its frame times jump."""
    if len(times) < frames:
        return "short", f"the video ends {len(times)} frames into this clip ({frames} asked)"
    if not video_fps or None in times:
        return "done", None
    nominal = 1.0 / video_fps
    for j, (a, b) in enumerate(zip(times, times[1:])):
        if not 0 < b - a <= GAP * nominal:
            return "gap", (f"frame times step {1000 * (b - a):.0f} ms after frame {j} ({1000 * nominal:.0f} ms at "
                           f"{video_fps:g} fps): a dropped or corrupt frame, or a variable frame rate")
    return "done", None


def clip_members(video, split: str, info, frames: int) -> tuple[list[dict], bytes]:
    """A video's clips.parquet rows (`rel`: each clip's first member's offset in the members) and tar members: per
    clip, KEY.000.jpg ... KEY.(n-1).jpg then KEY.json. A decode that gave no clip frame gives one row saying so.
    `picture_label` is the clip's own (pipeline.sources.periods.clip_label), `label` its video's."""
    clips = cut(info.clip_jpegs, info.clip_times, frames, info.fps, info.clip_errors)
    base = {"video_id": video.video_id, "split": split, "label": video.label}
    if not clips:
        return [{**base, "clip": None, "key": None, "status": "none", "n_frames": 0,
                 "warning": "the decode gave no clip frame"}], b""
    rows, members = [], bytearray()
    for c in clips:
        key = clip_key(video.video_id, c["clip"])
        width, height = jpeg_size(c["jpegs"][0])
        row = {**base, "clip": c["clip"], "key": key, "start": c["times"][0], "times": c["times"],
               "n_frames": len(c["jpegs"]), "status": c["status"], "warning": c["warning"], "width": width,
               "height": height, "bytes": sum(map(len, c["jpegs"])), "crc32": [zlib.crc32(j) for j in c["jpegs"]],
               "rel": len(members),
               "picture_label": clip_label(c["times"], info.fps, video.picture_label or video.label,
                                           video.picture_periods)}
        rows.append(row)
        for j, jpeg in enumerate(c["jpegs"]):
            members += member(f"{key}.{j:03d}.jpg", jpeg)
        sample = {k: row[k] for k in ("key", "video_id", "clip", "split", "label", "picture_label", "times", "status",
                                      "width", "height")}
        members += member(f"{key}.json", json.dumps({**sample, "source": video.source, "original": video.original,
                                                     "group": video.group}).encode())
    return rows, bytes(members)
