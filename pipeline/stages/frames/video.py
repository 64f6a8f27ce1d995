"""The worker side of the pool: decode one video into the staging area. Light imports: no pyarrow, no tqdm."""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import zlib
from pathlib import Path

from pipeline.ffmpeg.stderr import AudioTrack
from pipeline.spec import Clips
from pipeline.stages.clips.members import clip_members
from pipeline.stages.sound.wav import fingerprint, rms_dbfs, wav_bytes
from pipeline.sources.periods import frame_label
from pipeline.sources.video import Video
from pipeline.ffmpeg.extract import FrameError, extract
from pipeline.core.shards import member, write_staged


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
    audio_rate: int | None = None  # keep the sound at this rate (None: --no-audio)
    clips: Clips | None = None     # keep clips of consecutive frames (None: no --clip-frames)


def base_row(video: Video, split: str) -> dict:
    return {"video_id": video.video_id, "path": video.path, "source": video.source, "label": video.label,
            "original": video.original, "group": video.group, "split": split, "picture_label": video.picture_label,
            "sound_label": video.sound_label, "speaker": video.speaker, "fake_periods": video.fake_periods,
            "picture_periods": video.picture_periods, "sound_periods": video.sound_periods}


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
                               job.skip_frames, job.audio_rate, job.clips)
    except FrameError as exc:
        meta = {**row, "status": "failed", "error": str(exc), "frames": []}
        write_staged(Path(job.shards), video.video_id, meta, None)
        return meta
    members, frame_rows = bytearray(), []
    for f in frames:
        key = f"{video.video_id}_{f.index:04d}"
        crc = zlib.crc32(f.jpeg)
        picture = frame_label(f.second, video.picture_label or video.label, video.picture_periods)
        sample = {"key": key, "video_id": video.video_id, "index": f.index, "second": f.second,
                  "label": video.label, "split": job.split, "source": video.source, "original": video.original,
                  "group": video.group, "width": f.width, "height": f.height, "crc32": crc, "picture_label": picture}
        frame_rows.append({"key": key, "index": f.index, "second": f.second, "bytes": len(f.jpeg),
                           "width": f.width, "height": f.height, "crc32": crc, "rel": len(members),
                           "picture_label": picture})
        members += member(f"{key}.jpg", f.jpeg) + member(f"{key}.json", json.dumps(sample).encode())
    meta = {**row, "status": "done", "error": None, "warning": info.errors[0] if info.errors else None,
            "duration": info.duration, "width": info.width, "height": info.height, "fps": info.fps,
            "rotation": info.rotation, "n_frames": len(frames), "frame_width": frames[0].width,
            "frame_height": frames[0].height, "bytes": sum(r["bytes"] for r in frame_rows), "frames": frame_rows}
    audio = clips = None
    if info.audio is not None:
        meta["audio"], audio = audio_row(video, job.split, info.audio)
    if job.clips is not None:
        meta["clips"], clips = clip_members(video, job.split, info, job.clips.frames)
    write_staged(Path(job.shards), video.video_id, meta, bytes(members), audio, clips)
    return meta


def audio_row(video: Video, split: str, track: AudioTrack) -> tuple[dict, bytes | None]:
    """A video's row of audio.parquet (its fingerprint in base64 while it is staged) and its tar members (a WAV
    and a json) where there is sound; `rel` is the WAV member's offset in them."""
    row = {"video_id": video.video_id, "split": split, "label": video.label, "has_audio": track.has_audio,
           "status": track.status, "error": track.error, "warning": track.warning, "codec": track.codec,
           "source_rate": track.source_rate, "channels": track.channels, "sample_rate": track.sample_rate,
           "duration": track.duration, "rms": None, "bytes": None, "crc32": None, "fingerprint": None, "rel": None}
    if not (track.has_audio and track.status == "done"):
        return row, None
    wav = wav_bytes(track.pcm, track.sample_rate)
    rms = rms_dbfs(track.pcm)
    row.update(rms=None if rms == float("-inf") else rms, bytes=len(wav), crc32=zlib.crc32(wav), rel=0,
               fingerprint=base64.b64encode(fingerprint(track.pcm, track.sample_rate)).decode())
    if rms == float("-inf"):
        row["warning"] = row["warning"] or "digital silence"
    sample = {"key": video.video_id, "video_id": video.video_id, "label": video.label, "split": split,
              "source": video.source, "original": video.original, "group": video.group,
              "sample_rate": track.sample_rate, "duration": track.duration, "crc32": row["crc32"]}
    return row, member(f"{video.video_id}.wav", wav) + member(f"{video.video_id}.json", json.dumps(sample).encode())
