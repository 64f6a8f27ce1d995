"""One video checked: what the model sees by the path predict takes (train.score.model_input: the pipeline's own
frames at the model's frame settings, resized as in validation, or the faces stage's detect-and-crop for a faces
model; for a clip model the clips of the same decode, sample_clips), every face (or frame, or clip) scored, into a
Verdict (train.score.verdict) that keeps what the page shows."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline.ffmpeg.extract import FrameError
from train.score.face_crops import FaceCropper
from pipeline.spec import Clips, FrameSampling
from train.score.model_input import frame_inputs, sample, sample_clips
from train.score.on_batches import Scorer
from train.score.verdict import Item, Verdict

log = logging.getLogger(__name__)


def decode_video(path: Path, settings: FrameSampling, clips: Clips | None = None) -> tuple[list, str | None]:
    """The sampled frames (with `clips`: (frames, the clips)), or [] and why not."""
    if not path.is_file():
        return [], "no such file" if not path.exists() else "not a file"
    try:
        if clips is not None:
            frames, cut = sample_clips(path, settings, clips)
            return ((frames, cut), None) if cut else ([], "no clip: the video is shorter than one clip")
        frames = sample(path, settings)
    except FrameError as err:
        return [], f"not a readable video ({str(err).strip().splitlines()[0] if str(err).strip() else 'ffmpeg failed'})"
    except OSError as err:
        return [], f"cannot be read ({err.__class__.__name__}: {err})"
    if not frames:
        return [], "not a readable video (ffmpeg gave no frames)"
    return frames, None


def clip_items(cut: list[dict], size: tuple[int, int], frames: int) -> list[Item]:
    """One Item per whole clip (a clip the video's end cut short is left out: the model takes T frames), at its
    first frame's second; its input decoded and resized as ClipValStream does."""
    items = []
    for c in cut:
        if len(c["jpegs"]) < frames:
            continue
        clip = frame_inputs(c["jpegs"], size)
        items.append(Item(len(items), c["times"][0] or 0.0, 0.0, clip[frames // 2], clip=clip, status=c["status"]))
    return items


def score_clips(path: Path, scorer: Scorer, settings: FrameSampling, clips: Clips, size: tuple[int, int],
                timings: dict) -> tuple[list[Item], list, list[bytes], str | None]:
    """A clip model on one video file: (the scored clips, the sampled frames, each scored clip's first JPEG, why
    there are none); the clips of the pipeline's clip branch of its one decode, at the run's clip spec. Never
    raises for a file that is not a video."""
    start = time.perf_counter()
    decoded, error = decode_video(Path(path), settings, clips)
    timings["decode_s"] = time.perf_counter() - start
    if error:
        return [], [], [], error
    frames, cut = decoded
    start = time.perf_counter()
    items = clip_items(cut, size, clips.frames)
    timings["resize_s"] = time.perf_counter() - start
    if not items:
        return [], frames, [], f"no whole clip of {clips.frames} frames in the video"
    start = time.perf_counter()
    for item, p in zip(items, scorer(np.stack([i.clip for i in items]))):
        item.p_fake = float(p)
    timings["score_s"] = time.perf_counter() - start
    return items, frames, [c["jpegs"][0] for c in cut if len(c["jpegs"]) >= clips.frames], None


def check_clip_video(path: Path, scorer: Scorer, settings: FrameSampling, clips: Clips, size: tuple[int, int],
                     threshold: dict, aggregate: str) -> Verdict:
    """A clip model's verdict: the video's clips scored (score_clips), the video's P(fake) their aggregate."""
    verdict = Verdict(Path(path), "clips", threshold, aggregate)
    verdict.items, frames, verdict.jpegs, verdict.error = score_clips(path, scorer, settings, clips, size,
                                                                      verdict.timings)
    verdict.seconds = [i.second for i in verdict.items]
    verdict.size = (frames[0].width, frames[0].height) if frames else None
    return verdict


def _face_items(frames: list, cropper: FaceCropper) -> list[Item]:
    rows, crops = cropper([f.jpeg for f in frames], [f.second for f in frames])
    return [Item(r["frame"], r["second"], 0.0, crop, r["track"], r["face"], (r["x0"], r["y0"], r["x1"], r["y1"]))
            for r, crop in zip(rows, crops)]


def check_video(path: Path, scorer: Scorer, settings: FrameSampling, size: tuple[int, int], cropper: FaceCropper | None,
                threshold: dict, aggregate: str) -> Verdict:
    """Decode, (detect and crop,) score; a file that is not a video gives a Verdict with its error, never raises."""
    verdict = Verdict(Path(path), "faces" if cropper else "frames", threshold, aggregate)
    start = time.perf_counter()
    frames, verdict.error = decode_video(Path(path), settings)
    verdict.timings["decode_s"] = time.perf_counter() - start
    if verdict.error:
        return verdict
    verdict.jpegs, verdict.seconds = [f.jpeg for f in frames], [f.second for f in frames]
    verdict.size = (frames[0].width, frames[0].height)
    start = time.perf_counter()
    if cropper is not None:
        items = _face_items(frames, cropper)
    else:
        items = [Item(i, f.second, 0.0, image) for i, (f, image)
                 in enumerate(zip(frames, frame_inputs([f.jpeg for f in frames], size)))]
    verdict.timings["detect_s" if cropper else "resize_s"] = time.perf_counter() - start
    start = time.perf_counter()
    if items:
        for item, p in zip(items, scorer(np.stack([i.crop for i in items]))):
            item.p_fake = float(p)
    verdict.timings["score_s"] = time.perf_counter() - start
    verdict.items = items
    if not items:
        log.warning("%s: no face in %d sampled frames", path, len(frames))
    return verdict
