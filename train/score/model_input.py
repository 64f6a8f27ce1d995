"""THE path from a video file to what a model sees, for predict (train.score.videos) and check
(train.score.one_video) alike: the pipeline's own frames at the model's frame settings (`pipeline.ffmpeg.extract`,
the same JPEGs the shards hold), then for a frames model each frame decoded and resized as the validation stream
does (`frame_inputs`), for a faces model the faces stage's detect, track and crop on those JPEGs
(train.score.face_crops.FaceCropper); for a clip model the clips the same decode keeps at the video's own rate (its
clip branch, at the run's clip spec) cut into clips as the clips stage cuts them (`sample_clips`)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.ffmpeg.extract import FrameError, extract
from pipeline.spec import Clips, FrameSampling
from pipeline.stages.clips.members import cut
from train.data.decode import decode_resized


def sample(path: Path, settings: FrameSampling) -> list:
    """One video's sampled frames (pipeline.frames.Frame: jpeg, index, second, width, height) as the pipeline made
    the training shards; FrameError or OSError as ffmpeg or the file says."""
    _, frames = extract(str(path), settings.fps, settings.size, settings.quality, settings.timeout,
                        skip_frames=settings.skip_frames)
    return frames


def sample_clips(path: Path, settings: FrameSampling, clips: Clips) -> tuple[list, list[dict]]:
    """One video's sampled frames and its clips as the pipeline made the clip shards (one decode, the clip branch
    at `clips`): [{clip, times, status, warning, jpegs}] (pipeline.stages.clips.members.cut); FrameError or
    OSError as ffmpeg or the file says."""
    info, frames = extract(str(path), settings.fps, settings.size, settings.quality, settings.timeout,
                           skip_frames=settings.skip_frames, clips=clips)
    return frames, cut(info.clip_jpegs, info.clip_times, clips.frames, info.fps, info.clip_errors)


def frame_inputs(jpegs: Sequence[bytes], size: tuple[int, int]) -> np.ndarray:
    """A frames model's input: each JPEG decoded and resized as ValStream does (uint8 NHWC); ValueError for bytes
    that are not a JPEG, or for no JPEG at all."""
    return np.stack([decode_resized(j, size) for j in jpegs])


@dataclass
class Decoded:
    """One video's frames at the model's input size (uint8 NHWC), or for a faces model the pipeline's JPEGs of
    its frames (decoded by the FaceCropper a few at a time), or the reason it has none."""

    path: Path
    images: np.ndarray | None = None
    jpegs: list[bytes] | None = None
    indices: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    error: str | None = None
    decode_s: float = 0.0


def decode_video(path: Path, settings: FrameSampling, size: tuple[int, int] | None) -> Decoded:
    """`sample`, then `frame_inputs` at `size` (size None: the JPEGs themselves, for the faces stage's detector: a
    whole clip's decoded frames are never held). Never raises: a video that fails carries its error."""
    start = time.perf_counter()
    try:
        frames = sample(path, settings)
        indices, seconds = [f.index for f in frames], [f.second for f in frames]
        if not size:
            return Decoded(path, jpegs=[f.jpeg for f in frames], indices=indices, seconds=seconds,
                           decode_s=time.perf_counter() - start)
        images = frame_inputs([f.jpeg for f in frames], size)
    except FrameError as err:
        return Decoded(path, error=str(err), decode_s=time.perf_counter() - start)
    except (OSError, ValueError, RuntimeError) as err:  # unreadable file, a JPEG simplejpeg refuses
        return Decoded(path, error=f"{err.__class__.__name__}: {err}", decode_s=time.perf_counter() - start)
    return Decoded(path, images=images, indices=indices, seconds=seconds, decode_s=time.perf_counter() - start)
