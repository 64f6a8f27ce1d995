"""The worker side of the pool: decode one video into the staging area. Light imports: no pyarrow, no tqdm."""
from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path

from .discover import Video
from .frames import FrameError, extract
from .shards import member, write_staged


@dataclasses.dataclass(frozen=True)
class Job:
    video: Video
    split: str
    shards: str
    fps: float
    size: tuple[int, int]
    quality: int
    timeout: float
    ffmpeg: str
    skip_frames: str = "none"


def base_row(video: Video, split: str) -> dict:
    return {"video_id": video.video_id, "path": video.path, "source": video.source, "label": video.label,
            "original": video.original, "group": video.group, "split": split}


def source_stat(path: str) -> list | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def process_video(job: Job) -> dict:
    """Worker: decode one video once into the staging area; return its manifest row (no pixels)."""
    video = job.video
    row = {**base_row(video, job.split), "source_stat": source_stat(video.path)}
    try:
        info, frames = extract(video.path, job.fps, job.size, job.quality, job.timeout, job.ffmpeg,
                               job.skip_frames)
    except FrameError as exc:
        meta = {**row, "status": "failed", "error": str(exc), "frames": []}
        write_staged(Path(job.shards), video.video_id, meta, None)
        return meta
    members, frame_rows = bytearray(), []
    for f in frames:
        key = f"{video.video_id}_{f.index:04d}"
        crc = zlib.crc32(f.jpeg)
        sample = {"key": key, "video_id": video.video_id, "index": f.index, "second": f.second,
                  "label": video.label, "split": job.split, "source": video.source, "original": video.original,
                  "group": video.group, "width": f.width, "height": f.height, "crc32": crc}
        frame_rows.append({"key": key, "index": f.index, "second": f.second, "bytes": len(f.jpeg),
                           "width": f.width, "height": f.height, "crc32": crc, "rel": len(members)})
        members += member(f"{key}.jpg", f.jpeg) + member(f"{key}.json", json.dumps(sample).encode())
    meta = {**row, "status": "done", "error": None, "warning": info.errors[0] if info.errors else None,
            "duration": info.duration, "width": info.width, "height": info.height, "fps": info.fps,
            "rotation": info.rotation, "n_frames": len(frames), "frame_width": frames[0].width,
            "frame_height": frames[0].height, "bytes": sum(r["bytes"] for r in frame_rows), "frames": frame_rows}
    write_staged(Path(job.shards), video.video_id, meta, bytes(members))
    return meta
